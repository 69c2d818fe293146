"""First deploy on EKS, GKE and AKS: each cloud fact the rendered objects and the plans rely on, pinned with its
primary source (we cannot reach a cloud, so the source is the proof)."""

from __future__ import annotations

import pytest
import yaml

from dask_platform import render
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from tests.support.repo import objects_of

pytestmark = pytest.mark.helm

# cloud -> the annotation its default load-balancer controller reads to make a LoadBalancer Service internal.
INTERNAL_LOAD_BALANCER = {
    # kubernetes/cloud-provider-aws pkg/providers/v1/aws.go: ServiceAnnotationLoadBalancerInternal. The
    # `aws-load-balancer-scheme` annotation is read only by the AWS Load Balancer Controller (not installed).
    "aws": ("service.beta.kubernetes.io/aws-load-balancer-internal", "true"),
    # cloud.google.com/kubernetes-engine/docs/concepts/service-load-balancer-parameters
    "gcp": ("networking.gke.io/load-balancer-type", "Internal"),
    # learn.microsoft.com/azure/aks/internal-lb; cloud-provider-azure pkg/consts/consts.go
    "azure": ("service.beta.kubernetes.io/azure-load-balancer-internal", "true"),
}


def jupyter_service(r) -> dict:
    [svc] = [s for name, s in objects_of(r, "Service").items() if name.endswith("-jupyter")]
    return svc


def test_jupyter_load_balancer_is_internal_by_the_annotation_its_controller_reads(rendered, clouds_by_cluster):
    for name, r in rendered.items():
        cloud = clouds_by_cluster[name]
        svc = jupyter_service(r)
        if cloud == "minikube":
            assert svc["spec"]["type"] == "NodePort"
            continue
        assert svc["spec"]["type"] == "LoadBalancer", name
        key, value = INTERNAL_LOAD_BALANCER[cloud]
        annotations = svc["metadata"].get("annotations", {})
        assert annotations.get(key) == value, (name, annotations)
        assert "service.beta.kubernetes.io/aws-load-balancer-scheme" not in annotations, name


def test_load_balancer_source_ranges_are_a_value(scratch: RepoTree, helm):
    path = scratch.cluster_file("aws-example")
    settings = yaml.safe_load(path.read_text())
    settings["values"]["jupyter"] = {"service": {"loadBalancerSourceRanges": ["10.20.0.0/16", "192.0.2.7/32"]}}
    path.write_text(yaml.safe_dump(settings))
    [r] = render.render_clusters(scratch, ["aws-example"], helm)
    assert jupyter_service(r)["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16", "192.0.2.7/32"]
    # a ClusterIP Service (the scheduler's) gets none, whatever is set
    [sched] = [s for n, s in objects_of(r, "Service").items() if n.endswith("-scheduler")]
    assert "loadBalancerSourceRanges" not in sched["spec"]


def test_a_source_range_that_is_not_a_cidr_is_refused(scratch: RepoTree, helm):
    from dask_platform.errors import UserError

    path = scratch.cluster_file("aws-example")
    settings = yaml.safe_load(path.read_text())
    settings["values"]["jupyter"] = {"service": {"loadBalancerSourceRanges": ["office"]}}
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(UserError, match=r"key values\.jupyter\.service\.loadBalancerSourceRanges\[0\]"):
        render.render_clusters(scratch, ["aws-example"], helm)


# --- what a node leaves for pods (dask_platform/machines.py) ----------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "millicores"), [(1, 60), (2, 100), (4, 140), (8, 180), (16, 260), (32, 420), (64, 740)]
)
def test_aks_cpu_reservation_is_its_published_table(cores, millicores):
    """learn.microsoft.com/azure/aks/node-resource-reservations: the CPU table, row by row."""
    from dask_platform.machines import Machine, reserved_cpu_m

    assert reserved_cpu_m("azure", Machine(cores, 16384, 110)) == millicores


@pytest.mark.parametrize(("cores", "millicores"), [(1, 60), (2, 70), (4, 80), (8, 90), (16, 110)])
def test_eks_and_gke_cpu_reservation(cores, millicores):
    """nodeadm config.go and autoscaler gce/reserved.go: 6% / 1% / 0.5% / 0.25% tiers."""
    from dask_platform.machines import Machine, reserved_cpu_m

    assert reserved_cpu_m("aws", Machine(cores, 16384, 58)) == millicores
    assert reserved_cpu_m("gcp", Machine(cores, 16384, 110)) == millicores


def test_memory_reservations_follow_each_clouds_formula():
    from dask_platform.clouds import cloud
    from dask_platform.machines import reserved_memory_mib

    # EKS: 11 x maxPods + 255 MiB + 100 MiB eviction + 7.5% kernel: m6i.xlarge (58 pods) 893 + 100 + 1228.8
    assert reserved_memory_mib("aws", cloud("aws").machines["m6i.xlarge"]) == int(893 + 100 + 16384 * 0.075)
    # GKE: 25% of 4000 + 20% of 4000 + 10% of 8000 + 6% of 384 = 2623.04 MiB, + 100 eviction + kernel 256+16+64
    assert reserved_memory_mib("gcp", cloud("gcp").machines["e2-standard-4"]) == int(2623.04 + 100 + 336)
    # AKS 1.29+: min(20 x 110 + 50, 25%) = 2250 MiB, + 100 eviction + 2.5% kernel
    assert reserved_memory_mib("azure", cloud("azure").machines["Standard_D4s_v5"]) == int(2250 + 100 + 409.6)


def test_every_pod_of_every_example_fits_one_node_of_the_group_it_selects(rendered, clouds_by_cluster):
    """Judged on the rendered objects, independently of the render-time check in values.py."""
    from dask_platform.clouds import CLOUDS
    from dask_platform.clusters import load_cluster
    from dask_platform.machines import allocatable
    from dask_platform.provision import node_groups
    from dask_platform.quantity import parse_quantity
    from tests.support.repo import REPO

    checked = 0
    for name, r in rendered.items():
        cloud = clouds_by_cluster[name]
        if cloud == "minikube":
            continue
        types = {g.name: g.instance_type for g in node_groups(load_cluster(REPO, name))}
        for dep in objects_of(r, "Deployment").values():
            spec = dep["spec"]["template"]["spec"]
            room = allocatable(cloud, types[spec["nodeSelector"][CLOUDS[cloud].node_group_label]])
            cpu = sum(parse_quantity(c["resources"]["requests"]["cpu"]) for c in spec["containers"])
            memory = sum(parse_quantity(c["resources"]["requests"]["memory"]) for c in spec["containers"])
            assert cpu * 1000 <= room.cpu_m and memory <= room.memory_bytes, (name, dep["metadata"]["name"], room)
            checked += 1
    assert checked >= 9


def test_a_worker_bigger_than_its_nodes_allocatable_is_refused_at_render(scratch: RepoTree, helm):
    """3900m fits the 4 vCPU of an m6i.xlarge but not what EKS leaves of it (3740m): it would stay Pending."""
    from dask_platform.errors import UserError

    path = scratch.cluster_file("aws-example")
    settings = yaml.safe_load(path.read_text())
    settings["values"]["dask"]["workerGroups"] = {"default": {"resources": {"requests": {"cpu": "3900m"}}}}
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(UserError) as info:
        render.render_clusters(scratch, ["aws-example"], helm)
    message = str(info.value)
    assert message.startswith(f"{path}: key values.dask.workerGroups.default.resources.requests.cpu: request 3900m")
    assert "group 'workers' (m6i.xlarge: 3740m CPU" in message and "expected at most 3740m" in message


def test_gke_pods_may_reach_the_metadata_server_for_workload_identity_and_nothing_more(rendered, clouds_by_cluster):
    """GKE docs (concepts/workload-identity, "GKE metadata server"): with NetworkPolicy enforced, allow egress to
    169.254.169.252/32 port 988, and with Dataplane V2 to 169.254.169.254/32 port 80."""
    wanted = [("169.254.169.252/32", 988), ("169.254.169.254/32", 80)]
    for name, r in rendered.items():
        for policy in objects_of(r, "NetworkPolicy").values():
            blocks = [
                (peer["ipBlock"]["cidr"], rule["ports"][0]["port"])
                for rule in policy["spec"].get("egress", [])
                for peer in rule.get("to", [])
                if "ipBlock" in peer
            ]
            component = policy["metadata"]["name"].rsplit("-", 1)[-1]
            if clouds_by_cluster[name] == "gcp" and component in ("workers", "jupyter"):
                assert blocks == wanted, (name, policy["metadata"]["name"])
            else:
                assert blocks == [], (name, policy["metadata"]["name"])


# --- cluster-autoscaler -------------------------------------------------------------------------------------------

# The ClusterRole rules kubernetes/autoscaler ships (charts/cluster-autoscaler/templates/clusterrole.yaml, and
# cluster-autoscaler/cloudprovider/aws/examples/cluster-autoscaler-autodiscover.yaml), by the minor that added them.
# Left out on purpose: the `extensions` group (removed in Kubernetes 1.22), `endpoints` and the cluster-wide
# configmaps rule (resource locks older than the Lease one our flags use; the status ConfigMap is in our Role).
UPSTREAM_CLUSTER_ROLE = [
    ("1.0", "", "events", {"create", "patch"}),
    ("1.0", "", "pods/eviction", {"create"}),
    ("1.0", "", "pods/status", {"update"}),
    ("1.0", "", "nodes", {"watch", "list", "get", "update"}),
    ("1.0", "", "namespaces", {"watch", "list", "get"}),
    ("1.0", "", "pods", {"watch", "list", "get"}),
    ("1.0", "", "services", {"watch", "list", "get"}),
    ("1.0", "", "replicationcontrollers", {"watch", "list", "get"}),
    ("1.0", "", "persistentvolumeclaims", {"watch", "list", "get"}),
    ("1.0", "", "persistentvolumes", {"watch", "list", "get"}),
    ("1.0", "batch", "jobs", {"watch", "list", "get"}),
    ("1.0", "batch", "cronjobs", {"watch", "list", "get"}),
    ("1.0", "policy", "poddisruptionbudgets", {"watch", "list"}),
    ("1.0", "apps", "daemonsets", {"watch", "list", "get"}),
    ("1.0", "apps", "replicasets", {"watch", "list", "get"}),
    ("1.0", "apps", "statefulsets", {"watch", "list", "get"}),
    ("1.0", "storage.k8s.io", "storageclasses", {"watch", "list", "get"}),
    ("1.0", "storage.k8s.io", "csinodes", {"watch", "list", "get"}),
    ("1.0", "storage.k8s.io", "csidrivers", {"watch", "list", "get"}),
    ("1.0", "storage.k8s.io", "csistoragecapacities", {"watch", "list", "get"}),
    ("1.32", "storage.k8s.io", "volumeattachments", {"watch", "list", "get"}),  # issue #7663, PR #7904
    ("1.35", "resource.k8s.io", "resourceclaims", {"watch", "list", "get"}),  # DRA always on: PR #10278
    ("1.35", "resource.k8s.io", "resourceslices", {"watch", "list", "get"}),
    ("1.35", "resource.k8s.io", "deviceclasses", {"watch", "list", "get"}),
]


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


@pytest.mark.parametrize("minor", ["1.35", "1.36"])
def test_autoscaler_rbac_grants_what_upstream_ships_for_each_supported_minor(scratch: RepoTree, helm, minor):
    from dask_platform.clusters import supported_kubernetes_minors

    assert minor in supported_kubernetes_minors(scratch)
    path = scratch.cluster_file("aws-example")
    settings = yaml.safe_load(path.read_text())
    settings["kubernetesVersion"] = minor
    path.write_text(yaml.safe_dump(settings))
    [r] = render.render_clusters(scratch, ["aws-example"], helm)
    [role] = [
        o
        for o in objects_of(r, "ClusterRole").values()
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == "cluster-autoscaler"
    ]
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        if not rule.get("resourceNames")
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for since, group, resource, verbs in UPSTREAM_CLUSTER_ROLE:
        if _minor(since) <= _minor(minor):
            assert verbs <= granted.get((group, resource), set()), (minor, group, resource)


def test_autoscaler_is_system_cluster_critical_and_its_metrics_reachable_by_the_scraper(scratch: RepoTree, helm):
    """Upstream's chart runs it as system-cluster-critical, so a Dask pod cannot preempt it; metricsFrom (the
    scraper's peers) reaches its metrics port through the NetworkPolicy."""
    path = scratch.cluster_file("aws-example")
    settings = yaml.safe_load(path.read_text())
    scraper = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    settings["values"]["global"] = {"networkPolicy": {"metricsFrom": [scraper]}}
    path.write_text(yaml.safe_dump(settings))
    [r] = render.render_clusters(scratch, ["aws-example"], helm)
    deployment = objects_of(r, "Deployment")["dask-cluster-autoscaler"]
    assert deployment["spec"]["template"]["spec"]["priorityClassName"] == "system-cluster-critical"
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    policy = objects_of(r, "NetworkPolicy")["dask-cluster-autoscaler"]
    assert policy["spec"]["ingress"] == [{"from": [scraper], "ports": [{"port": port["name"], "protocol": "TCP"}]}]


# --- GPU workers ----------------------------------------------------------------------------------------------------

# Node labels each cloud itself sets on a GPU node group's nodes (sources in values/<cloud>.yaml beside the
# selectors): a selector on any other label never matches, and the group stays Pending.
CLOUD_SET_NODE_LABELS = {
    "aws": {"eks.amazonaws.com/nodegroup"},
    "gcp": {"cloud.google.com/gke-nodepool", "cloud.google.com/gke-accelerator"},
    "azure": {"kubernetes.azure.com/agentpool", "kubernetes.azure.com/accelerator"},
}


@pytest.mark.parametrize("name", ["aws-example", "gcp-example", "azure-example"])
def test_gpu_workers_select_labels_the_cloud_sets_and_cache_kernels_on_a_writable_path(scratch: RepoTree, helm, name):
    path = scratch.cluster_file(name)
    settings = yaml.safe_load(path.read_text())
    settings.setdefault("values", {}).setdefault("dask", {})["workerGroups"] = {"gpu": {"enabled": True}}
    path.write_text(yaml.safe_dump(settings))
    [r] = render.render_clusters(scratch, [name], helm)
    spec = objects_of(r, "Deployment")["dask-worker-gpu"]["spec"]["template"]["spec"]
    assert set(spec["nodeSelector"]) <= CLOUD_SET_NODE_LABELS[settings["cloud"]], spec["nodeSelector"]
    [container] = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    assert env["CUPY_CACHE_DIR"].startswith("/tmp/") and mounts["/tmp"] in empty_dirs
    assert container["securityContext"]["readOnlyRootFilesystem"] is True  # why the default ~/.cupy cannot work


def test_the_gpu_image_carries_the_cuda_runtime_libraries():
    """CuPy's `ctk` extra installs the CUDA components as wheels (docs.cupy.dev install), so the -gpu image needs
    only the node's driver."""
    from tests.support.repo import REPO

    lock = (REPO.root / "requirements/image-gpu.txt").read_text()
    assert "\ncupy-cuda12x==" in lock
    for wheel in ("nvidia-cuda-runtime-cu12==", "nvidia-cuda-nvrtc-cu12==", "nvidia-cublas-cu12=="):
        assert f"\n{wheel}" in lock, wheel
    assert "nvidia-cuda-runtime-cu12" not in (REPO.root / "requirements/image.txt").read_text()


# --- storage for Jupyter's home -------------------------------------------------------------------------------------

# The StorageClass each cloud creates itself (sources in values/<cloud>.yaml); EKS creates no gp3 class.
CLOUD_STORAGE_CLASSES = {"gcp": "standard-rwo", "azure": "managed-csi", "minikube": "standard"}


@pytest.mark.parametrize("name", ["aws-example", "gcp-example", "azure-example", "minikube"])
def test_jupyter_home_gets_a_storage_class_that_exists(scratch: RepoTree, helm, name):
    path = scratch.cluster_file(name)
    settings = yaml.safe_load(path.read_text())
    settings.setdefault("values", {})["jupyter"] = {"persistence": {"enabled": True}}
    path.write_text(yaml.safe_dump(settings))
    [r] = render.render_clusters(scratch, [name], helm)
    [claim] = objects_of(r, "PersistentVolumeClaim").values()
    wanted = claim["spec"]["storageClassName"]
    created = objects_of(r, "StorageClass")
    if settings["cloud"] == "aws":
        # made by the chart for the EBS CSI driver that the plan installs (test_provision checks the add-on)
        assert created[wanted]["provisioner"] == "ebs.csi.aws.com"
        assert created[wanted]["parameters"] == {"type": "gp3"}
        assert created[wanted]["volumeBindingMode"] == "WaitForFirstConsumer"
    else:
        assert created == {} and wanted == CLOUD_STORAGE_CLASSES[settings["cloud"]]


# --- taints and tolerations: workers (and GPU) pools only for Dask workers ------------------------------------------


def cloud_values(name: str) -> dict:
    """The effective values of an example cluster, every worker group of values/<cloud>.yaml kept (enabled or not)."""
    from dask_platform.clusters import load_cluster
    from dask_platform.values import build_values
    from tests.support.repo import REPO

    return build_values(REPO, load_cluster(REPO, name)).effective


@pytest.mark.parametrize("name", ["aws-example", "gcp-example", "azure-example"])
def test_each_worker_group_tolerates_exactly_the_taints_of_the_group_it_selects_and_nothing_else_does(name: str):
    """Worker pools are tainted so that kube-system pods, which keep cluster-autoscaler from removing a node
    (autoscaler FAQ, "What types of pods can prevent CA from removing a node?"), stay off them. Each worker group of
    values/<cloud>.yaml, enabled or not, tolerates the taints of its planned group and no other; the scheduler,
    Jupyter and cluster-autoscaler tolerate none of the tainted groups' taints."""
    from dask_platform.clusters import load_cluster
    from dask_platform.provision import matching_groups, node_groups, tolerates
    from tests.support.repo import REPO

    cluster = load_cluster(REPO, name)
    groups = node_groups(cluster)
    taints = {t for g in groups for t in g.all_taints}
    effective = cloud_values(name)
    worker_groups = effective["dask"]["workerGroups"]
    assert {"default", "gpu"} <= set(worker_groups)
    for group_name, values in worker_groups.items():
        [group] = matching_groups(cluster, groups, values["nodeSelector"])
        tolerations = values.get("tolerations") or []
        for taint in group.all_taints:
            assert any(tolerates(t, taint) for t in tolerations), (group_name, str(taint))
        for toleration in tolerations:
            assert any(tolerates(toleration, t) for t in group.all_taints), (group_name, toleration)
            assert not any(tolerates(toleration, t) for t in taints - set(group.all_taints)), (group_name, toleration)
    others = [effective["dask"]["scheduler"], effective["jupyter"], effective["cluster-autoscaler"]]
    for values in others:
        assert not any(tolerates(t, taint) for t in values.get("tolerations") or [] for taint in taints)


def test_the_rendered_workers_tolerate_the_workers_taint_and_jupyter_does_not(rendered, clouds_by_cluster):
    for name, r in rendered.items():
        if clouds_by_cluster[name] == "minikube":
            continue
        deployments = objects_of(r, "Deployment")
        worker = deployments["dask-worker-default"]["spec"]["template"]["spec"]
        assert worker["tolerations"] == [
            {"key": "dask-platform/workers", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ], name
        for other in ("dask-scheduler", "dask-jupyter"):
            assert "tolerations" not in deployments[other]["spec"]["template"]["spec"], (name, other)


def set_worker_group(tree: RepoTree, name: str, group: str, values: dict) -> None:
    path = tree.cluster_file(name)
    settings = yaml.safe_load(path.read_text())
    settings.setdefault("values", {}).setdefault("dask", {})["workerGroups"] = {group: values}
    path.write_text(yaml.safe_dump(settings))


def test_a_worker_group_that_selects_no_planned_group_is_refused_at_render(scratch: RepoTree, helm):
    """An enabled group whose nodeSelector matches no node group of the plan would stay Pending: exit 2 with the file
    and key path."""
    from click.testing import CliRunner

    from dask_platform.cli import main as cli

    set_worker_group(scratch, "aws-example", "gpu", {"enabled": True, "nodeSelector": {NODE_LABEL_AWS: "gpus"}})
    result = CliRunner().invoke(cli, ["--repo", str(scratch.root), "render", "aws-example"])
    assert result.exit_code == 2, result.output
    assert (
        "clusters/aws-example/cluster.yaml: key values.dask.workerGroups.gpu.nodeSelector: selects no node group"
        in (result.output)
    )
    # a label the plan knows for another group only: the gpu group carries no gke-accelerator label on AWS, the
    # workers group no accelerator label on GKE
    set_worker_group(scratch, "gcp-example", "extra", {"replicas": 1, **WORKER_SIZE, "nodeSelector": GPU_ON_WORKERS})
    with pytest.raises(UserError, match=r"key values\.dask\.workerGroups\.extra\.nodeSelector: selects no node group"):
        render.render_clusters(scratch, ["gcp-example"], helm)


def test_a_worker_group_that_does_not_tolerate_its_pools_taint_is_refused_at_render(scratch: RepoTree, helm):
    set_worker_group(scratch, "azure-example", "gpu", {"enabled": True, "tolerations": []})
    with pytest.raises(UserError) as info:
        render.render_clusters(scratch, ["azure-example"], helm)
    assert str(info.value).endswith(
        "key values.dask.workerGroups.gpu.tolerations: does not tolerate the taint sku=gpu:NoSchedule of node group "
        "'gpu' it selects: expected a toleration for it (key sku, effect NoSchedule)"
    )
    # disabled, it is not judged at render (the static test above checks values/<cloud>.yaml)
    set_worker_group(scratch, "azure-example", "gpu", {"enabled": False, "tolerations": []})
    render.render_clusters(scratch, ["azure-example"], helm)


def test_gke_gpu_nodes_leave_room_for_the_gpu_daemonsets():
    """GKE runs nvidia-driver-installer (150m, its init containers) and nvidia-gpu-device-plugin (50m/20Mi) on GPU
    nodes only (container-engine-accelerators manifests): an n1-standard-4 with a T4 leaves 200m less."""
    from dask_platform.machines import allocatable

    assert allocatable("gcp", "e2-standard-4").cpu_m - allocatable("gcp", "n1-standard-4").cpu_m == 200
    assert allocatable("gcp", "n1-standard-4").cpu_m == 4000 - 80 - 440 - 200


NODE_LABEL_AWS = "eks.amazonaws.com/nodegroup"
WORKER_SIZE = {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}
GPU_ON_WORKERS = {"cloud.google.com/gke-nodepool": "workers", "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
