"""Tenants declared in values (templates/tenants/, templates/operator/, dask_platform/tenants.py): what the chart
renders for them, the operator's CRDs from the pinned wheel, the per-cloud mapping of people, and the one-line
errors of bad input (file, key path, exit 2)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dask_platform import daskoperator
from dask_platform.cli import main as cli
from dask_platform.clouds.aws import build_eksctl_access_entries
from dask_platform.clusters import load_cluster
from dask_platform.environment import load_environment
from dask_platform.errors import UserError
from dask_platform.policy import check_objects
from dask_platform.render import render_clusters
from dask_platform.repo import RepoTree
from dask_platform.submit.tenant import build_tenant_cluster, create_cluster, delete_cluster
from dask_platform.tenants import TENANT_LABEL, tenant_namespace, tenant_settings
from dask_platform.values import build_values
from tests.support.repo import REPO

pytestmark = pytest.mark.helm

# The 262,144-byte limit of all annotations of an object (k8s.io/apimachinery pkg/api/validation/objectmeta.go:
# TotalAnnotationSizeLimitB), which client-side apply's last-applied-configuration annotation must fit in.
ANNOTATION_LIMIT = 256 * 1024


def committed(name: str) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(REPO.rendered_dir(name).glob("*.yaml"))]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def set_tenants(tree: RepoTree, tenants: dict, cluster: str = "aws-example", **values) -> None:
    path = tree.cluster_file(cluster)
    doc = yaml.safe_load(path.read_text())
    doc.setdefault("values", {})["tenants"] = tenants
    doc["values"].update(values)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def render_cli(tree: RepoTree, name: str = "aws-example"):
    return CliRunner().invoke(cli, ["--repo", str(tree.root), "render", name])


QUOTA = {"cpu": "8", "memory": "32Gi", "pods": 4, "clusters": 1}
FITS = {"quota": QUOTA, "maxWorkers": 1}  # two 4-CPU pods of the examples' worker groups: a scheduler and a worker


# --- what the chart renders ------------------------------------------------------------------------------------


def test_each_tenant_gets_its_namespace_and_what_lives_in_it():
    objects = committed("aws-example")
    effective = build_values(REPO, load_cluster(REPO, "aws-example")).effective
    names = sorted(effective["tenants"])
    assert names == ["forecasting", "pricing"]
    # the Python name of a tenant's namespace is the chart's (dp.tenantNamespace)
    assert sorted(o["metadata"]["name"] for o in by_kind(objects, "Namespace")) == [
        tenant_namespace(effective, n) for n in names
    ]
    for name in names:
        namespace = tenant_namespace(effective, name)
        inside = sorted(
            (o["kind"], o["metadata"]["name"]) for o in objects if o["metadata"].get("namespace") == namespace
        )
        assert inside == [
            ("ConfigMap", "dask-tenant"),
            ("LimitRange", "dask-limits"),
            ("NetworkPolicy", "dask-default-deny"),
            ("NetworkPolicy", "dask-tenant"),
            ("ResourceQuota", "dask-quota"),
            ("Role", "dask-operator"),
            ("Role", "dask-tenant-member"),
            ("RoleBinding", "dask-operator"),
            ("RoleBinding", "dask-tenant-member"),
            ("ServiceAccount", "dask-tenant"),
        ]
        assert all(
            o["metadata"]["labels"][TENANT_LABEL] == name
            for o in objects
            if o["metadata"].get("namespace") == namespace
        )
    quota = next(o for o in by_kind(objects, "ResourceQuota") if o["metadata"]["namespace"] == "tenant-pricing")
    assert quota["spec"]["hard"] == {
        "requests.cpu": "8",
        "limits.cpu": "8",
        "requests.memory": "32Gi",
        "limits.memory": "32Gi",
        "pods": "6",
        "count/daskclusters.kubernetes.dask.org": "1",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    # The tenant's namespace is synced before its ServiceAccount and RBAC (wave -1).
    assert {o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] for o in by_kind(objects, "Namespace")} == {
        "-2"
    }
    assert check_objects(objects) == []


def test_tenant_settings_take_the_worker_groups_size_and_the_tenancy_defaults():
    objects = committed("aws-example")
    effective = build_values(REPO, load_cluster(REPO, "aws-example")).effective
    settings = tenant_settings(objects)
    group = effective["dask"]["workerGroups"]["default"]
    assert settings["forecasting"].resources == group["resources"]
    assert settings["forecasting"].node_selector == group["nodeSelector"]
    assert settings["forecasting"].tolerations == group["tolerations"]
    assert settings["forecasting"].idle_timeout == effective["tenancy"]["idleTimeoutSeconds"]
    assert (settings["pricing"].idle_timeout, settings["pricing"].max_workers) == (900, 1)
    image = effective["global"]["image"]
    assert settings["pricing"].image == f"{image['repository']}:{image['tag']}"
    assert settings["pricing"].namespace == "tenant-pricing"
    limits = next(o for o in by_kind(objects, "LimitRange") if o["metadata"]["namespace"] == "tenant-pricing")
    [container] = limits["spec"]["limits"]
    assert container["default"] == {
        k: str(v) for k, v in group["resources"]["limits"].items() if k in ("cpu", "memory")
    }


def test_no_tenants_no_operator(rendered):
    for name in ("gcp-example", "azure-example", "minikube"):
        kinds = {o["kind"] for o in rendered[name].objects}
        assert "CustomResourceDefinition" not in kinds and "Namespace" not in kinds, name
        assert not [o for o in rendered[name].objects if "operator" in o["metadata"]["name"]], name


def test_the_operator_runs_standalone_on_the_tenants_namespaces_from_the_platform_image():
    objects = committed("aws-example")
    [deployment] = [o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "dask-operator"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["kopf", "run", "--module", "dask_kubernetes.operator.controller", "--standalone"]
    assert container["args"] == [
        "--liveness=http://0.0.0.0:8080/healthz",
        "--namespace=tenant-forecasting",
        "--namespace=tenant-pricing",
    ]
    scheduler = next(o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "dask-scheduler")
    assert container["image"] == scheduler["spec"]["template"]["spec"]["containers"][0]["image"]
    assert pod["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # Its only cluster-wide right: list and watch CRDs.
    [cluster_role] = [
        o
        for o in by_kind(objects, "ClusterRole")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    assert cluster_role["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]}
    ]


# --- the operator's CRDs, from the pinned wheel ----------------------------------------------------------------


def test_the_crds_are_the_pinned_wheels_with_server_side_apply():
    pinned = load_environment(REPO).pins[daskoperator.PACKAGE]
    assert daskoperator.installed_version() == pinned
    crds = daskoperator.load_crds(REPO)
    assert {c["spec"]["names"]["kind"]: c["spec"]["names"]["plural"] for c in crds} == daskoperator.KINDS
    wheel = {name: yaml.safe_load(text) for name, text in daskoperator.wheel_crds().items()}
    for path in sorted(daskoperator.crd_folder(REPO).glob("*.yaml")):
        text = path.read_text()
        assert text.startswith(f"# Generated by `dask-platform versions sync` from the dask-kubernetes=={pinned} wheel")
        ours, theirs = yaml.safe_load(text), wheel[path.name]
        assert ours["metadata"].pop("annotations") == daskoperator.SYNC_OPTIONS
        assert ours == theirs  # nothing else changed
    # Why server-side: two of them would not fit client-side apply's annotation.
    big = sorted(p.name for p in daskoperator.crd_folder(REPO).glob("*.yaml") if p.stat().st_size > ANNOTATION_LIMIT)
    assert big == ["daskcluster.yaml", "daskjob.yaml"]
    rendered = by_kind(committed("aws-example"), "CustomResourceDefinition")
    assert sorted(r["metadata"]["name"] for r in rendered) == sorted(c["metadata"]["name"] for c in crds)


def test_a_wheel_of_another_version_is_refused(monkeypatch):
    monkeypatch.setattr(daskoperator, "installed_version", lambda: "2025.7.0")
    with pytest.raises(Exception, match=r"dask-kubernetes 2025.7.0 is installed but 2026.3.0 is pinned"):
        daskoperator.crd_output(REPO, "2026.3.0")


# --- people and identity per cloud ---------------------------------------------------------------------------


def test_eks_access_entries_map_each_principal_once_to_its_tenants_groups(scratch: RepoTree, helm):
    tenants = {
        "pricing": {"group": "pricing", "principals": ["arn:aws:iam::111122223333:role/a"], **FITS},
        "risk": {
            "group": "risk",
            "principals": ["arn:aws:iam::111122223333:role/a", "arn:aws:iam::111122223333:role/b"],
            **FITS,
        },
    }
    set_tenants(scratch, tenants)
    [result] = render_clusters(scratch, ["aws-example"], helm)
    entries = build_eksctl_access_entries(result.objects)
    assert entries == [
        {"principalARN": "arn:aws:iam::111122223333:role/a", "kubernetesGroups": ["pricing", "risk"]},
        {"principalARN": "arn:aws:iam::111122223333:role/b", "kubernetesGroups": ["risk"]},
    ]


def test_a_tenants_identity_gets_its_own_role_with_its_grants():
    result = CliRunner().invoke(cli, ["--repo", str(REPO.root), "plan", "aws-example"])
    assert result.exit_code == 0, result.output
    assert (
        "  - metadata:\n      name: dask-tenant\n      namespace: tenant-forecasting\n"
        "    roleName: aws-example-tenant-forecasting\n    roleOnly: true\n    attachPolicyARNs:\n"
        "    - arn:aws:iam::111122223333:policy/aws-example-forecasting-data\n"
    ) in result.output
    assert "principalARN: arn:aws:iam::111122223333:role/forecasting-analysts" in result.output


# --- bad input: one line, the file and the key path, exit 2 ----------------------------------------------------


@pytest.mark.parametrize(
    ("tenants", "extra", "message"),
    [
        (
            {"pricing": {"group": "g", **FITS, "colour": "blue"}},
            {},
            "key values.tenants.pricing.colour: unknown key 'colour'; expected one of: group, idleTimeoutSeconds, "
            "maxWorkers, principals, quota, serviceAccount, workerGroup",
        ),
        (
            {"pricing": {"group": "g", "quota": {**QUOTA, "cpu": "2"}}},
            {},
            "key values.tenants.pricing.quota.cpu: quota 2 is below one scheduler and one worker of worker group "
            "'default'",
        ),
        (
            {"dask": {"group": "g", **FITS}},
            {"tenancy": {"namespacePrefix": ""}},
            "key values.tenants.dask: tenant 'dask' would live in namespace 'dask', the platform's own namespace",
        ),
        (
            {"argocd": {"group": "g", **FITS}},
            {"tenancy": {"namespacePrefix": ""}},
            "key values.tenants.argocd: tenant 'argocd' would live in namespace 'argocd', a namespace of Kubernetes "
            "or Argo CD",
        ),
        (
            {"pricing": {"group": "g", **FITS, "idleTimeoutSeconds": 86400}},
            {},
            "key values.tenants.pricing.idleTimeoutSeconds: 86400 s is above tenancy.maxIdleTimeoutSeconds (7200 s)",
        ),
        (
            {"pricing": {"group": "g", "quota": QUOTA, "workerGroup": "huge"}},
            {},
            "key values.tenants.pricing.workerGroup: worker group 'huge' does not exist",
        ),
        (
            {"pricing": {"group": "g", "quota": {**QUOTA, "pods": 1}}},
            {},
            "key values.tenants.pricing.quota.pods: 1 is less than the minimum of 2",
        ),
        (
            {"pricing": {"group": "g", "quota": QUOTA, "maxWorkers": 3}},
            {},
            "key values.tenants.pricing.maxWorkers: 3 workers and a scheduler need 4 pods of worker group 'default', "
            "but tenant 'pricing''s quota admits 2: expected maxWorkers at most 1",
        ),
        (
            {"pricing": {"group": "g", "quota": QUOTA, "workerGroup": "gpu"}},
            {},
            "key values.tenants.pricing.workerGroup: worker group 'gpu' is disabled",
        ),
    ],
    ids=["unknown-field", "quota-below-one-worker", "platform-namespace", "argocd-namespace", "idle-above-cap",
         "no-such-group", "one-pod", "max-workers-beyond-quota", "disabled-group"],
)  # fmt: skip
def test_bad_tenants_are_refused_with_file_and_key_path(scratch: RepoTree, tenants, extra, message):
    set_tenants(scratch, tenants, **extra)
    before = {p.name for p in scratch.rendered_dir("aws-example").iterdir()}
    result = render_cli(scratch)
    assert result.exit_code == 2, result.output
    assert f"clusters/aws-example/cluster.yaml: {message}" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert {p.name for p in scratch.rendered_dir("aws-example").iterdir()} == before  # nothing half-written


def test_a_tenant_declared_twice_is_refused_with_its_line(scratch: RepoTree):
    path: Path = scratch.cluster_file("minikube")
    path.write_text(
        path.read_text()
        + "values:\n  tenants:\n    alice: {group: a, quota: {cpu: '4', memory: 8Gi, pods: 3, clusters: 1}}\n"
        + "    alice: {group: b, quota: {cpu: '4', memory: 8Gi, pods: 3, clusters: 1}}\n"
    )
    result = render_cli(scratch, "minikube")
    assert result.exit_code == 2, result.output
    assert "clusters/minikube/cluster.yaml" in result.output and "duplicate key 'alice'" in result.output


# --- a tenant's cluster, as submit --tenant builds it ----------------------------------------------------------


def forecasting():
    return tenant_settings(committed("aws-example"))["forecasting"]


def test_a_tenants_cluster_takes_its_settings_and_passes_the_platforms_pod_policy():
    settings = forecasting()
    body = build_tenant_cluster(settings, "dask-abc123", 3)
    assert (body["apiVersion"], body["kind"]) == (daskoperator.API_VERSION, "DaskCluster")
    spec = body["spec"]
    assert (spec["idleTimeout"], spec["worker"]["replicas"]) == (settings.idle_timeout, 3)
    for role in ("scheduler", "worker"):
        pod = spec[role]["spec"]
        assert check_objects([{"kind": "Pod", "metadata": {"name": role}, "spec": pod}]) == [], role
        assert pod["serviceAccountName"] == settings.service_account and pod["automountServiceAccountToken"] is False
        assert pod["nodeSelector"] == settings.node_selector and pod["tolerations"] == settings.tolerations
        [container] = pod["containers"]
        assert container["image"] == settings.image and container["resources"] == settings.resources
    service_ports = {p["name"]: p["port"] for p in spec["scheduler"]["service"]["ports"]}
    assert service_ports == {"tcp-comm": settings.scheduler_port, "http-dashboard": settings.dashboard_port}


def test_more_workers_than_the_tenants_maximum_is_refused():
    pricing = tenant_settings(committed("aws-example"))["pricing"]
    with pytest.raises(UserError, match=r"2 workers for tenant 'pricing': expected 1 to 1"):
        build_tenant_cluster(pricing, "dask-x", 2)


def test_tenant_needs_a_cluster_and_an_unknown_tenant_is_named(scratch: RepoTree):
    result = CliRunner().invoke(cli, ["--repo", str(scratch.root), "submit", "rossmann", "--tenant", "pricing"])
    assert result.exit_code == 2 and "--tenant needs --cluster" in result.output
    result = CliRunner().invoke(
        cli, ["--repo", str(scratch.root), "submit", "rossmann", "--cluster", "aws-example", "--tenant", "nobody"]
    )
    assert result.exit_code == 2, result.output
    assert "no tenant 'nobody' in clusters/aws-example/rendered (tenants: forecasting, pricing)" in result.output


# --- on a real API server: the real CRDs, the quota and the walls between tenants ------------------------------


def as_group(control_plane, group: str):
    """An API client that acts as a person of ``group`` (impersonation, as the admin may)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    api.set_default_header("Impersonate-User", f"someone-of-{group}@example.com")
    api.set_default_header("Impersonate-Group", group)
    return api


@pytest.fixture(scope="module")
def tenants_served(api):
    """aws-example's tenant objects and the operator's CRDs (from the wheel) applied server-side, as Argo CD syncs
    them. The API server runs without a controller manager, so each ResourceQuota's status is set as the quota
    controller's first sync sets it (hard = spec.hard, nothing used); the admission that enforces it is the
    server's own."""
    from kubernetes import client

    from dask_platform.bootstrap import server_side_apply

    objects = committed("aws-example")
    crds = by_kind(objects, "CustomResourceDefinition")
    server_side_apply(crds, api)
    deadline = time.time() + 60
    while time.time() < deadline and not all(served_kind(api, c) for c in crds):
        time.sleep(0.2)
    tenant_objects = [o for o in objects if o["metadata"].get("namespace", "").startswith("tenant-")]
    server_side_apply(by_kind(objects, "Namespace") + tenant_objects, api)
    core = client.CoreV1Api(api)
    for quota in by_kind(objects, "ResourceQuota"):
        hard = quota["spec"]["hard"]
        body = {"status": {"hard": hard, "used": {k: "0" for k in hard}}}
        core.patch_namespaced_resource_quota_status(quota["metadata"]["name"], quota["metadata"]["namespace"], body)
    return objects


def served_kind(api, crd: dict) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        api.call_api(
            f"/apis/{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}/{crd['spec']['names']['plural']}",
            "GET", auth_settings=["BearerToken"], _return_http_data_only=True, _preload_content=False,
        )  # fmt: skip
    except ApiException:
        return False
    return True


@pytest.mark.apiserver
@pytest.mark.slow
def test_a_second_cluster_beyond_the_quota_is_refused_naming_the_quota(control_plane, tenants_served):
    pricing = tenant_settings(tenants_served)["pricing"]
    people = as_group(control_plane, "dask-tenant-pricing")
    create_cluster(people, pricing.namespace, build_tenant_cluster(pricing, "dask-first", 1))
    with pytest.raises(UserError) as info:
        create_cluster(people, pricing.namespace, build_tenant_cluster(pricing, "dask-second", 1))
    message = str(info.value)
    assert message.startswith("cannot create DaskCluster dask-second in tenant-pricing: ")
    assert "exceeded quota: dask-quota" in message and "count/daskclusters.kubernetes.dask.org=1" in message
    delete_cluster(people, pricing.namespace, "dask-first")


@pytest.mark.apiserver
@pytest.mark.slow
def test_the_real_crd_schema_checks_what_is_created(control_plane, tenants_served):
    forecasting_ = tenant_settings(tenants_served)["forecasting"]
    body = build_tenant_cluster(forecasting_, "dask-typo", 2)
    body["spec"]["worker"]["replicas"] = "two"
    with pytest.raises(UserError, match=r"spec.worker.replicas"):
        create_cluster(as_group(control_plane, "dask-tenant-forecasting"), forecasting_.namespace, body)


@pytest.mark.apiserver
@pytest.mark.slow
def test_another_tenants_people_get_403_on_its_clusters(control_plane, tenants_served):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    settings = tenant_settings(tenants_served)
    forecasting_, pricing = settings["forecasting"], settings["pricing"]
    create_cluster(as_group(control_plane, "dask-tenant-forecasting"), forecasting_.namespace,
                   build_tenant_cluster(forecasting_, "dask-mine", 2))  # fmt: skip
    bob = client.CustomObjectsApi(as_group(control_plane, "dask-tenant-pricing"))
    args = (daskoperator.GROUP, daskoperator.VERSION, forecasting_.namespace, "daskclusters")
    for call in (
        lambda: bob.get_namespaced_custom_object(*args, "dask-mine"),
        lambda: bob.list_namespaced_custom_object(*args),
        lambda: bob.delete_namespaced_custom_object(*args, "dask-mine"),
    ):
        with pytest.raises(ApiException) as info:
            call()
        assert info.value.status == 403, info.value
    assert pricing.namespace != forecasting_.namespace
    delete_cluster(as_group(control_plane, "dask-tenant-forecasting"), forecasting_.namespace, "dask-mine")


@pytest.mark.parametrize(
    ("cluster", "group", "expected"),
    [
        ("gcp-example", "pricing-team@example.com", "--security-group=gke-security-groups@example.com"),
        ("azure-example", "1c4e3a8b-2f0d-4b6e-9a7c-5d8f0e2b3a41", "--enable-aad"),
    ],
)
def test_gke_and_aks_plans_map_the_tenants_groups(scratch: RepoTree, helm, cluster: str, group: str, expected: str):
    from dask_platform.provision import build_plan

    set_tenants(scratch, {"pricing": {"group": group, **FITS}}, cluster=cluster)
    [result] = render_clusters(scratch, [cluster], helm)
    plan = build_plan(load_cluster(scratch, cluster), result.objects)
    create = next(
        line for line in plan.splitlines() if " create " in line and ("clusters create" in line or "aks create" in line)
    )
    assert expected in create
    # without tenants, neither flag
    [plain] = render_clusters(REPO, [cluster], helm)
    assert expected not in build_plan(load_cluster(REPO, cluster), plain.objects)


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        ("gcp-example", "'pricing-team': on GKE a tenant's group is a Google group's email"),
        ("azure-example", "'pricing-team': on AKS a tenant's group is a Microsoft Entra group's object id"),
    ],
)
def test_a_group_the_cloud_cannot_bind_is_refused_by_the_plan(scratch: RepoTree, cluster: str, message: str):
    set_tenants(scratch, {"pricing": {"group": "pricing-team", **FITS}}, cluster=cluster)
    assert render_cli(scratch, cluster).exit_code == 0
    result = CliRunner().invoke(cli, ["--repo", str(scratch.root), "plan", cluster])
    assert result.exit_code == 2, result.output
    assert f"clusters/{cluster}/cluster.yaml: key values.tenants.pricing.group: {message}" in result.output


def test_cost_report_prices_a_tenants_pods_and_its_quota():
    from dask_platform.costs import cost_lines, prices

    table = prices("aws")
    [forecasting_line, pricing_line] = [line for line in cost_lines(REPO, "aws-example") if "tenant " in line]
    node = table.machines["m6i.xlarge"]  # values/aws.yaml's workers group: one 4-CPU worker per node
    assert forecasting_line.startswith(f"#   tenant forecasting: ${node:.3f} per pod-hour (1/1 of a m6i.xlarge);")
    assert f"at its quota (8 pods) ${8 * node:.2f}/hour" in forecasting_line  # 32 CPU / 4 per pod
    assert f"at its quota (2 pods) ${2 * node:.2f}/hour" in pricing_line  # 8 CPU / 4 per pod


def test_tenant_rows_say_age_idle_and_cost():
    from dask_platform.submit.tenant import build_rows, format_rows

    obj = {
        "metadata": {"name": "dask-a1", "namespace": "tenant-pricing", "creationTimestamp": "2026-12-06T10:00:00Z"},
        "spec": {"worker": {"replicas": 3}},
        "status": {"phase": "Running"},
    }
    now = 1796551200.0 + 3900  # 2026-12-06T10:00:00Z + 1 h 5 min
    [row] = build_rows([("pricing", obj)], now, {"pricing": 0.5}, {"tenant-pricing/dask-a1": now - 600})
    assert (row.age_s, row.idle_s, row.hourly, row.workers) == (3900, 600, 2.0, 3)
    assert format_rows([row])[1].split() == ["pricing", "dask-a1", "1h05m", "Running", "3", "10m", "2.00"]


@pytest.mark.apiserver
@pytest.mark.slow
def test_tenants_lists_the_clusters_running(control_plane, tenants_served, monkeypatch):
    forecasting_ = tenant_settings(tenants_served)["forecasting"]
    people = as_group(control_plane, "dask-tenant-forecasting")
    create_cluster(people, forecasting_.namespace, build_tenant_cluster(forecasting_, "dask-listed", 2))
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    result = CliRunner().invoke(cli, ["--repo", str(REPO.root), "tenants", "aws-example", "--no-idle"])
    assert result.exit_code == 0, result.output
    [row] = [line.split() for line in result.output.splitlines() if "dask-listed" in line]
    assert row[0] == "forecasting" and row[4] == "2" and row[5] == "-"
    assert float(row[6]) == pytest.approx(3 * forecasting_price(), abs=0.01)
    delete_cluster(people, forecasting_.namespace, "dask-listed")


def forecasting_price() -> float:
    from dask_platform.costs import prices

    return prices("aws").machines["m6i.xlarge"]


def test_the_operator_clients_supported_range_is_what_the_docs_say():
    """docs/tenants.md: kr8s warns outside 1.28-1.35; the platform supports the minors it has autoscaler images for."""
    from kr8s import _constants

    from dask_platform.clusters import supported_kubernetes_minors

    assert (
        str(_constants.KUBERNETES_MINIMUM_SUPPORTED_VERSION),
        str(_constants.KUBERNETES_MAXIMUM_SUPPORTED_VERSION),
    ) == (
        "1.28",
        "1.35",
    )
    docs = (REPO.root / "docs/tenants.md").read_text()
    assert "outside 1.28-1.35" in docs
    assert supported_kubernetes_minors(REPO) == ["1.35", "1.36"] and "The platform supports 1.35 and 1.36" in docs


def test_every_scheduler_of_the_image_serves_distributeds_routes_and_the_api():
    """docker/dask.yaml (the image's /etc/dask/dask.yaml): distributed's default routes plus its scheduler API, which
    KEDA (adaptive_target), the operator (check_idle, retire_workers) and `dask-platform tenants` call."""
    import distributed  # noqa: F401 - loads distributed's defaults into dask.config
    from dask.config import defaults

    shipped = {}
    for layer in defaults:
        shipped = layer.get("distributed", {}).get("scheduler", {}).get("http", {}).get("routes", shipped) or shipped
    image = yaml.safe_load((REPO.root / "docker/dask.yaml").read_text())
    assert image["distributed"]["scheduler"]["http"]["routes"] == [*shipped, "distributed.http.scheduler.api"]


def test_the_images_kubecluster_idle_timeout_is_the_platforms_default():
    image = yaml.safe_load((REPO.root / "docker/dask.yaml").read_text())
    chart = yaml.safe_load((REPO.chart / "values.yaml").read_text())
    assert image["kubernetes"]["idle-timeout"] == chart["tenancy"]["idleTimeoutSeconds"]
