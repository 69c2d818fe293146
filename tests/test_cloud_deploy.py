"""First deploy on EKS, GKE and AKS: each cloud fact the rendered objects and the plans rely on, pinned with its
primary source (we cannot reach a cloud, so the source is the proof)."""

from __future__ import annotations

import pytest
import yaml

from dask_platform import render
from dask_platform.repo import RepoTree
from tests.conftest import objects_of

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


# --- what a node leaves for pods (dask_platform/nodes.py) -------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "millicores"), [(1, 60), (2, 100), (4, 140), (8, 180), (16, 260), (32, 420), (64, 740)]
)
def test_aks_cpu_reservation_is_its_published_table(cores, millicores):
    """learn.microsoft.com/azure/aks/node-resource-reservations: the CPU table, row by row."""
    from dask_platform.nodes import Machine, reserved_cpu_m

    assert reserved_cpu_m("azure", Machine(cores, 16384, 110)) == millicores


@pytest.mark.parametrize(("cores", "millicores"), [(1, 60), (2, 70), (4, 80), (8, 90), (16, 110)])
def test_eks_and_gke_cpu_reservation(cores, millicores):
    """nodeadm config.go and autoscaler gce/reserved.go: 6% / 1% / 0.5% / 0.25% tiers."""
    from dask_platform.nodes import Machine, reserved_cpu_m

    assert reserved_cpu_m("aws", Machine(cores, 16384, 58)) == millicores
    assert reserved_cpu_m("gcp", Machine(cores, 16384, 110)) == millicores


def test_memory_reservations_follow_each_clouds_formula():
    from dask_platform.nodes import MACHINES, reserved_memory_mib

    # EKS: 11 x maxPods + 255 MiB + 100 MiB eviction + 7.5% kernel: m6i.xlarge (58 pods) 893 + 100 + 1228.8
    assert reserved_memory_mib("aws", MACHINES["aws"]["m6i.xlarge"]) == int(893 + 100 + 16384 * 0.075)
    # GKE: 25% of 4000 + 20% of 4000 + 10% of 8000 + 6% of 384 = 2623.04 MiB, + 100 eviction + kernel 256+16+64
    assert reserved_memory_mib("gcp", MACHINES["gcp"]["e2-standard-4"]) == int(2623.04 + 100 + 336)
    # AKS 1.29+: min(20 x 110 + 50, 25%) = 2250 MiB, + 100 eviction + 2.5% kernel
    assert reserved_memory_mib("azure", MACHINES["azure"]["Standard_D4s_v5"]) == int(2250 + 100 + 409.6)


def test_every_pod_of_every_example_fits_one_node_of_the_group_it_selects(rendered, clouds_by_cluster):
    """Judged on the rendered objects, independently of the render-time check in values.py."""
    from dask_platform.clusters import load_cluster
    from dask_platform.nodes import allocatable
    from dask_platform.provision import NODE_GROUP_LABEL, node_groups
    from dask_platform.quantity import parse_quantity
    from tests.conftest import REPO

    checked = 0
    for name, r in rendered.items():
        cloud = clouds_by_cluster[name]
        if cloud == "minikube":
            continue
        types = {g.name: g.instance_type for g in node_groups(load_cluster(REPO, name))}
        for dep in objects_of(r, "Deployment").values():
            spec = dep["spec"]["template"]["spec"]
            room = allocatable(cloud, types[spec["nodeSelector"][NODE_GROUP_LABEL[cloud]]])
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
