"""Against a real kube-apiserver + etcd (testbed/envtest.py): what Argo CD does with the rendered manifests, the
helm lifecycle through pyhelm3, and RBAC proven with SubjectAccessReview.

The server is 1.20 (the newest Debian can build); objects of API versions it lacks are checked offline by
tests/test_kubernetes_valid.py and named here when left out. Argo CD's, KEDA's and prometheus-operator's objects
are created for real, under CRDs built from their upstream identities (tests/support/crds.py; their spec is
checked offline against the real schemas by tests/test_argocd.py). Never skipped in CI: a missing server fails there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml

from dask_platform.bootstrap import bootstrap_objects, server_side_apply
from dask_platform.clusters import load_cluster
from dask_platform.crdschema import is_custom
from dask_platform.errors import UserError
from dask_platform.render import all_feature_objects, render_clusters
from dask_platform.repo import RepoTree
from dask_platform.values import build_values
from testbed.envtest import ControlPlane
from tests.support import crds as crd
from tests.support.argo import ArgoApplication, sync_options
from tests.support.repo import REPO

REPO_ROOT, CHART_DIR = REPO.root, REPO.chart

pytestmark = [pytest.mark.apiserver, pytest.mark.slow, pytest.mark.helm]

RBAC_TABLE = yaml.safe_load((REPO_ROOT / "tests/rbac_table.yaml").read_text())
PART_OF = "app.kubernetes.io/part-of=dask-platform"


@pytest.fixture(scope="module")
def crds(api) -> tuple[crd.CrdIdentity, ...]:
    """Argo CD's, KEDA's and prometheus-operator's CRDs on the server (tests/support/crds.py)."""
    crd.install_crds(api)
    return crd.ALL


def dynamic(api):
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api)


def ensure_namespace(api, name: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != 409:
            raise


def served(api, objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(objects whose API version this server serves, names of the others)."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    keep, left_out = [], []
    for obj in objects:
        try:
            dynamic(api).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            keep.append(obj)
        except ResourceNotFoundError:
            left_out.append(f"{obj['apiVersion']} {obj['kind']}/{obj['metadata']['name']}")
    return keep, left_out


def live_objects(api, kinds: set[tuple[str, str]], namespace: str) -> set[str]:
    """kind/name of every platform object of ``kinds`` on the server (namespaced ones in ``namespace``)."""
    out = set()
    for api_version, kind in kinds:
        resource = dynamic(api).resources.get(api_version=api_version, kind=kind)
        ns = namespace if resource.namespaced else None
        for item in resource.get(namespace=ns, label_selector=PART_OF).items:
            out.add(f"{kind}/{item.metadata.name}")
    return out


def live_everywhere(api, kinds: set[tuple[str, str]]) -> set[str]:
    """kind/namespace/name (kind/name when cluster-scoped) of every platform object of ``kinds``, in any namespace:
    a cluster with tenants has objects in their namespaces too."""
    out = set()
    for api_version, kind in kinds:
        for item in dynamic(api).resources.get(api_version=api_version, kind=kind).get(label_selector=PART_OF).items:
            out.add("/".join(p for p in (kind, item.metadata.namespace, item.metadata.name) if p))
    return out


def ident(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return "/".join(p for p in (obj["kind"], meta.get("namespace"), meta["name"]) if p)


def kinds_of(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["apiVersion"], o["kind"]) for o in objects}


def load_rendered(name: str) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(REPO.rendered_dir(name).glob("*.yaml"))]


@pytest.mark.parametrize("name", REPO.cluster_names())
def test_argo_sync_applies_then_prunes_to_exactly_the_new_set(api, name: str, scratch: RepoTree, helm):
    objects, left_out = served(api, load_rendered(name))
    # The 1.20 server has no policy/v1: PodDisruptionBudgets are left out here (named below) and validated
    # offline for every supported minor by tests/test_kubernetes_valid.py.
    assert {entry.split()[1].split("/")[0] for entry in left_out} <= {"PodDisruptionBudget"}, left_out
    assert any(entry.startswith("policy/v1 PodDisruptionBudget/dask-worker-") for entry in left_out)
    namespace = objects[0]["metadata"].get("namespace", "dask")
    kinds = kinds_of(objects)
    application = yaml.safe_load(REPO.application_file(name).read_text())
    argo = ArgoApplication(api)
    argo.sync(application, objects)
    assert live_everywhere(api, kinds) == {ident(o) for o in objects}
    again = server_side_apply(objects, api)  # idempotent: a second sync only reconfigures
    assert all(line.endswith("configured") for line in again)

    # A values change: Jupyter off, 3 workers. Re-render from a scratch copy and sync with pruning.
    cluster_file = scratch.cluster_file(name)
    doc = yaml.safe_load(cluster_file.read_text())
    doc.setdefault("values", {}).update(
        {"jupyter": {"enabled": False}, "dask": {"workerGroups": {"default": {"replicas": 3}}}}
    )
    cluster_file.write_text(yaml.safe_dump(doc))
    new_objects, _ = served(api, render_clusters(scratch, [name], helm)[0].objects)
    pruned = argo.sync(application, new_objects)
    assert "Deployment/dask-jupyter" in pruned and "ServiceAccount/dask-jupyter" in pruned
    kept = {ident(o) for o in objects if "Prune=false" in sync_options(o)}
    assert kept == ({f"PersistentVolumeClaim/{namespace}/dask-jupyter"} if name != "minikube" else set())  # notebooks
    assert live_everywhere(api, kinds) == {ident(o) for o in new_objects} | kept
    worker = (
        dynamic(api)
        .resources.get(api_version="apps/v1", kind="Deployment")
        .get(name="dask-worker-default", namespace=namespace)
    )
    assert worker.spec.replicas == 3

    argo.sync(application, [])  # leave the server empty for the next cluster
    for entry in kept:
        delete_claim(api, entry.split("/")[-1], namespace)
    finish_namespace_deletions(api)  # the tenants' namespaces, pruned with the rest
    assert live_everywhere(api, kinds) == set()


def delete_claim(api, name: str, namespace: str) -> None:
    """Delete a PersistentVolumeClaim by hand, as its docs say, and drop the kubernetes.io/pvc-protection finalizer
    the way the controller manager's pvc-protection controller does once no pod uses the claim (this server runs
    no controllers)."""
    claims = dynamic(api).resources.get(api_version="v1", kind="PersistentVolumeClaim")
    claims.delete(name=name, namespace=namespace)
    claims.patch(
        name=name,
        namespace=namespace,
        body={"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )


def finish_namespace_deletions(api) -> None:
    """Finish the deletion of every Terminating namespace the way the controller manager's namespace controller does
    once it has deleted what they held (this server runs no controllers): their finalizers are emptied through the
    namespace's finalize subresource."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    for ns in core.list_namespace().items:
        if ns.metadata.deletion_timestamp is not None:
            ns.spec.finalizers = []
            core.replace_namespace_finalize(ns.metadata.name, ns)


def test_server_rejects_what_it_should(api):
    """The server validates for real: a Deployment without a selector is refused with its own message."""

    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
        },
    }
    with pytest.raises(UserError, match="422"):
        server_side_apply([bad], api)


def argo_manifests() -> list[dict[str, Any]]:
    """What Argo CD itself reads: the committed AppProject, ApplicationSet and every cluster's Application."""
    paths = sorted(REPO.argocd_dir.glob("*.yaml")) + sorted(REPO.clusters_dir.glob("*/application*.yaml"))
    return [yaml.safe_load(p.read_text()) for p in paths]


def read_back(api, obj: dict[str, Any]) -> dict[str, Any]:
    resource = dynamic(api).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    return resource.get(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace")).to_dict()


def delete_custom(api, obj: dict[str, Any]) -> None:
    """Delete ``obj``; a finalizer Argo CD's controller would lift (its resources deleted) is lifted here."""
    resource = dynamic(api).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    meta = obj["metadata"]
    resource.delete(name=meta["name"], namespace=meta.get("namespace"))
    if meta.get("finalizers"):
        resource.patch(
            body={"metadata": {"finalizers": None}}, name=meta["name"], namespace=meta.get("namespace"),
            content_type="application/merge-patch+json",
        )  # fmt: skip


def test_bootstrap_without_argo_cd_leaves_nothing_behind(api, crds, control_plane: ControlPlane, monkeypatch):
    """The command as a person runs it: on a cluster without Argo CD it stops with one line before it creates any
    Secret (it used to create the namespace, the token and the TLS Secret first)."""
    from click.testing import CliRunner
    from kubernetes import client
    from kubernetes.config import kube_config

    from dask_platform.cli import main as cli

    # the client reads $KUBECONFIG when it is imported: point its default at this server's kubeconfig instead
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(control_plane.kubeconfig))
    crd.remove_crds(api, crd.ARGO_CD)
    try:
        result = CliRunner().invoke(cli, ["bootstrap", "minikube"])
    finally:
        crd.install_crds(api, crd.ARGO_CD)
    assert result.exit_code == 2 and "install Argo CD first" in result.output, result.output
    names = {s.metadata.name for s in client.CoreV1Api(api).list_secret_for_all_namespaces().items}
    assert not names & {"jupyter-token", "jupyter-tls"}


def test_bootstrap_without_argo_cd_says_so_and_with_it_creates_the_project_and_appset(api, crds):
    """`dask-platform bootstrap` against the server: without Argo CD's CRDs it stops with a clear message; with them
    it creates the AppProject and the ApplicationSet, which the server stores and returns as applied; a second run
    only reconfigures. (Before kube-build.sh put reflect2 1.0.2 and json-iterator 1.1.12 under the Debian-built
    apiserver, it crashed encoding any custom resource and this was checked offline only.)"""
    ensure_namespace(api, "argocd")
    crd.remove_crds(api, crd.ARGO_CD)
    try:
        with pytest.raises(UserError, match=r"no AppProject \(argoproj.io/v1alpha1\) resource: install Argo CD first"):
            server_side_apply(bootstrap_objects(REPO, "minikube"), api)
    finally:
        crd.install_crds(api, crd.ARGO_CD)
    objects = bootstrap_objects(REPO, "minikube")
    assert server_side_apply(objects, api) == [
        "AppProject/dask-platform: created",
        "ApplicationSet/dask-platform-minikube: created",
    ]
    for obj in objects:
        live = read_back(api, obj)
        assert live["spec"] == obj["spec"] and live["metadata"].get("labels") == obj["metadata"].get("labels")
    assert all(line.endswith("configured") for line in server_side_apply(objects, api))
    for obj in objects:
        delete_custom(api, obj)


def test_every_custom_resource_is_created_for_real(api, crds):
    """Every Argo CD manifest Argo CD reads (AppProject, ApplicationSet, each cluster's Application) is stored as
    written. Deleting an Application waits for Argo CD's resources finalizer, as tests/support/argo.py's model of
    deleting an Application assumes."""
    objects = argo_manifests()
    assert {o["kind"] for o in objects} == {"AppProject", "ApplicationSet", "Application"}
    for namespace in {o["metadata"]["namespace"] for o in objects}:
        ensure_namespace(api, namespace)
    assert all(line.endswith(": created") for line in server_side_apply(objects, api))
    for obj in objects:
        assert read_back(api, obj)["spec"] == obj["spec"], obj["metadata"]["name"]
    application = next(o for o in objects if o["kind"] == "Application")
    assert application["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    dynamic(api).resources.get(api_version=application["apiVersion"], kind="Application").delete(
        name=application["metadata"]["name"], namespace=application["metadata"]["namespace"]
    )
    held = read_back(api, application)["metadata"]
    assert held["deletionTimestamp"] and held["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    for obj in objects:
        delete_custom(api, obj)
    assert not [o for o in objects if _exists(api, o)]


def _exists(api, obj: dict[str, Any]) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        read_back(api, obj)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def numeric_quantities(obj: dict[str, Any]) -> list[str]:
    """The container resource quantities ``obj`` writes as numbers. 1.20's server-side apply types a Quantity as a
    string and refuses them ("expected string"); newer servers take them, their kube-openapi typing
    io.k8s.apimachinery.pkg.api.resource.Quantity as an untyped scalar (kube-openapi pkg/schemaconv/smd.go)."""
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [
        f"{container['name']} {kind}.{name}"
        for container in pod.get("containers", []) + pod.get("initContainers", [])
        for kind in ("limits", "requests")
        for name, value in ((container.get("resources") or {}).get(kind) or {}).items()
        if not isinstance(value, str)
    ]


def test_every_optional_feature_syncs_with_its_custom_resources(api, crds, helm):
    """The chart with every optional feature on, synced as Argo CD syncs it (tests/support/argo.py): the KEDA
    ScaledObject and the PodMonitor are applied with the rest, stored as rendered, and pruned when a values change
    drops them. Left out: policy/v1 (absent on 1.20). Every quantity is rendered as a string (1.20's server-side
    apply refuses a number there: numeric_quantities; the GPU count was one)."""
    objects, left_out = served(api, all_feature_objects(REPO, helm))
    assert {entry.split()[1].split("/")[0] for entry in left_out} == {"PodDisruptionBudget"}, left_out
    numeric = {f"{o['kind']}/{o['metadata']['name']}": numeric_quantities(o) for o in objects}
    assert {k: v for k, v in numeric.items() if v} == {}
    assert "dask-worker-gpu" in {o["metadata"]["name"] for o in objects}
    custom = [o for o in objects if is_custom(o)]
    assert {o["kind"] for o in custom} == {"ScaledObject", "PodMonitor"}
    application = yaml.safe_load(REPO.application_file("minikube").read_text())
    namespace, kinds, argo = application["spec"]["destination"]["namespace"], kinds_of(objects), ArgoApplication(api)
    assert {o["metadata"].get("namespace", namespace) for o in objects} == {namespace, "tenant-scenario"}
    argo.sync(application, objects)
    assert live_everywhere(api, kinds) == {ident(o) for o in objects}
    for obj in custom:
        assert read_back(api, obj)["spec"] == obj["spec"], obj["metadata"]["name"]
    assert all(line.endswith("configured") for line in server_side_apply(objects, api))
    pruned = argo.sync(application, [o for o in objects if not is_custom(o)])
    assert sorted(pruned) == sorted(f"{o['kind']}/{o['metadata']['name']}" for o in custom)
    assert live_objects(api, kinds_of(custom), namespace) == set()
    argo.sync(application, [])
    for obj in objects:
        if "Prune=false" in sync_options(obj):
            delete_claim(api, obj["metadata"]["name"], namespace)
    finish_namespace_deletions(api)
    assert live_everywhere(api, kinds) == set()


def test_the_secrets_jupyter_needs_are_created_once(api):
    """The fleet route's step per workload cluster (`dask-platform jupyter-token aws-example`), and bootstrap's: the
    login token and, since the cloud examples serve TLS, a kubernetes.io/tls Secret whose certificate names the
    Service; a second run leaves both as they are (a real certificate put there later is never replaced)."""
    import base64

    from cryptography import x509
    from kubernetes import client

    from dask_platform.cli import jupyter_secret_lines

    core = client.CoreV1Api(api)
    first = jupyter_secret_lines(REPO, "aws-example", api)
    assert first[0].startswith("Secret dask/jupyter-token: created; JupyterLab's token (shown once): ")
    assert first[1].startswith("Secret dask/jupyter-tls: created, self-signed for dask-jupyter.dask.svc.cluster.local")
    tls = core.read_namespaced_secret("jupyter-tls", "dask")
    assert tls.type == "kubernetes.io/tls"
    cert = x509.load_pem_x509_certificate(base64.b64decode(tls.data["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["dask-jupyter.dask.svc.cluster.local", "dask-jupyter.dask.svc"]
    assert jupyter_secret_lines(REPO, "aws-example", api) == [
        "Secret dask/jupyter-token: exists",
        "Secret dask/jupyter-tls: exists",
    ]
    assert core.read_namespaced_secret("jupyter-tls", "dask").data == tls.data
    for name in ("jupyter-token", "jupyter-tls"):
        core.delete_namespaced_secret(name, "dask")


# --- helm lifecycle -------------------------------------------------------------------------------------------


NAMESPACED_KINDS = [
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
]
CLUSTER_KINDS = [
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
]


def release_objects(api, namespace: str, release: str) -> set[str]:
    """The release's objects on the server. An object being deleted counts as gone: with no controller-manager
    here, the PVC's kubernetes.io/pvc-protection finalizer is never lifted, so it stays Terminating."""
    out = set()
    for api_version, kind in NAMESPACED_KINDS + CLUSTER_KINDS:
        resource = dynamic(api).resources.get(api_version=api_version, kind=kind)
        ns = namespace if resource.namespaced else None
        for item in resource.get(namespace=ns, label_selector=f"app.kubernetes.io/instance={release}").items:
            if item.metadata.deletionTimestamp and "kubernetes.io/pvc-protection" in (item.metadata.finalizers or []):
                continue
            out.add(f"{kind}/{item.metadata.name}")
    return out


def test_helm_install_upgrade_rollback_uninstall(api, control_plane: ControlPlane, helm):
    import pyhelm3

    namespace, release = "helm-lifecycle", "lc"
    user = build_values(REPO, load_cluster(REPO, "aws-example")).user  # every component, cluster-autoscaler too
    user["jupyter"] = {**user.get("jupyter", {}), "persistence": {"enabled": True, "size": "1Gi"}}
    client = pyhelm3.Client(executable=str(helm), kubeconfig=control_plane.kubeconfig)

    async def lifecycle() -> dict[str, Any]:
        seen: dict[str, Any] = {"before": release_objects(api, namespace, release)}
        chart = await client.get_chart(CHART_DIR)
        first = await client.install_or_upgrade_release(
            release, chart, user, namespace=namespace, create_namespace=True
        )
        seen["installed"] = release_objects(api, namespace, release)
        seen["first_revision"] = first.revision
        changed = {
            **user,
            "dask": {
                **user["dask"],
                "workerGroups": {"default": {**user["dask"]["workerGroups"]["default"], "replicas": 7}},
            },
        }
        second = await client.install_or_upgrade_release(release, chart, changed, namespace=namespace)
        seen["upgraded_replicas"] = _replicas(api, namespace, f"{release}-worker-default")
        seen["second_revision"] = second.revision
        await second.release.rollback(first.revision)
        seen["rolled_back_replicas"] = _replicas(api, namespace, f"{release}-worker-default")
        seen["history"] = [r.revision for r in await second.release.history()]
        await second.release.uninstall(wait=False)
        seen["after"] = release_objects(api, namespace, release)
        return seen

    seen = asyncio.run(lifecycle())
    assert seen["before"] == set()
    kinds = {o.split("/")[0] for o in seen["installed"]}
    assert kinds == {
        "ServiceAccount",
        "Service",
        "PersistentVolumeClaim",
        "Deployment",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    }
    assert (seen["first_revision"], seen["second_revision"]) == (1, 2)
    assert seen["upgraded_replicas"] == 7
    assert seen["rolled_back_replicas"] == user["dask"]["workerGroups"]["default"]["replicas"]
    assert seen["history"] == [1, 2, 3]
    # helm keeps the users' notebooks (helm.sh/resource-policy: keep on the home claim), and only them.
    assert seen["after"] == {"PersistentVolumeClaim/lc-jupyter"}, f"left behind: {seen['after']}"
    delete_claim(api, "lc-jupyter", namespace)


def _replicas(api, namespace: str, name: str) -> int:
    deployment = dynamic(api).resources.get(api_version="apps/v1", kind="Deployment")
    return deployment.get(name=name, namespace=namespace).spec.replicas


# --- the documented values flows through a model of Argo CD's sync (tests/support/argo.py) ----------------------


def run_cli(tree: RepoTree, *args: str) -> None:
    from click.testing import CliRunner

    from dask_platform.cli import main as cli

    result = CliRunner().invoke(cli, ["--repo", str(tree.root), *args])
    assert result.exit_code == 0, result.output


def values_set(tree: RepoTree, *assignments: str) -> None:
    """`dask-platform values set minikube ...` then `dask-platform render --all`, as a person runs them."""
    run_cli(tree, "values", "set", "minikube", *assignments)
    run_cli(tree, "render", "--all")


@pytest.fixture
def flows(api, scratch: RepoTree) -> RepoTree:
    """A scratch repository whose minikube cluster renders into its own namespace, emptied afterwards."""
    path = scratch.cluster_file("minikube")
    doc = yaml.safe_load(path.read_text())
    doc["namespace"] = "flows"
    path.write_text(yaml.safe_dump(doc))
    run_cli(scratch, "render", "--all")
    yield scratch


def test_values_flows_through_argo_cds_sync(api, crds, flows: RepoTree):
    """The documented flows, each a `values set` -> `render --all` -> Argo CD sync (modelled, on the real server):
    a worker count reaches the cluster; switching the group to autoscaling keeps the count KEDA's HPA set and later
    syncs keep KEDA's; switching back restores the values' count. Before, every Deployment's replicas were
    ignored, so the first flow kept the old count forever."""
    from kubernetes import client

    argo = ArgoApplication(api)
    apps = client.AppsV1Api(api)
    name, namespace = "dask-worker-default", "flows"

    def sync() -> None:
        application = yaml.safe_load(flows.application_file("minikube").read_text())
        objects, _ = served(api, load_tree_rendered(flows, "minikube"))
        argo.sync(application, objects)

    def hpa_scales_to(n: int) -> None:  # what KEDA's HPA does: the scale subresource, as the controller manager
        apps.patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": n}}, field_manager="kube-controller-manager"
        )

    sync()
    assert _replicas(api, namespace, name) == 2  # values/minikube.yaml
    values_set(flows, "dask.workerGroups.default.replicas=6")
    sync()
    assert _replicas(api, namespace, name) == 6

    hpa_scales_to(5)  # e.g. someone scaled by hand: the next sync puts the values' count back (selfHeal)
    sync()
    assert _replicas(api, namespace, name) == 6

    values_set(flows, "dask.workerGroups.default.autoscaling.enabled=true")
    application = yaml.safe_load(flows.application_file("minikube").read_text())
    assert [r["name"] for r in application["spec"]["ignoreDifferences"]] == [name]
    hpa_scales_to(7)  # KEDA's HPA, once the ScaledObject exists
    sync()
    assert _replicas(api, namespace, name) == 7  # the switch keeps what runs
    assert live_objects(api, {("keda.sh/v1alpha1", "ScaledObject")}, namespace) == {f"ScaledObject/{name}"}
    hpa_scales_to(3)
    sync()
    assert _replicas(api, namespace, name) == 3  # and later syncs keep KEDA's count

    values_set(flows, "dask.workerGroups.default.autoscaling.enabled=false")
    sync()
    assert _replicas(api, namespace, name) == 6  # back to the values' count
    assert live_objects(api, {("keda.sh/v1alpha1", "ScaledObject")}, namespace) == set()  # pruned
    assert argo.delete_application()
    assert live_objects(api, {("apps/v1", "Deployment")}, namespace) == set()


def test_jupyters_home_outlives_prune_and_application_deletion(api, flows: RepoTree):
    """The home volume's claim (persistence on, as every cloud example has it) is neither pruned when persistence is
    turned off nor deleted with the Application: the users' notebooks are on it."""
    argo = ArgoApplication(api)
    claims = {("v1", "PersistentVolumeClaim")}

    def sync() -> list[str]:
        application = yaml.safe_load(flows.application_file("minikube").read_text())
        objects, _ = served(api, load_tree_rendered(flows, "minikube"))
        return argo.sync(application, objects)

    values_set(flows, "jupyter.persistence.enabled=true")
    sync()
    assert live_objects(api, claims, "flows") == {"PersistentVolumeClaim/dask-jupyter"}
    values_set(flows, "jupyter.persistence.enabled=false")
    assert "PersistentVolumeClaim/dask-jupyter" not in sync()
    assert live_objects(api, claims, "flows") == {"PersistentVolumeClaim/dask-jupyter"}
    values_set(flows, "jupyter.persistence.enabled=true")
    sync()
    deleted = argo.delete_application()
    assert "Deployment/dask-jupyter" in deleted and "PersistentVolumeClaim/dask-jupyter" not in deleted
    assert live_objects(api, claims, "flows") == {"PersistentVolumeClaim/dask-jupyter"}
    delete_claim(api, "dask-jupyter", "flows")


def load_tree_rendered(tree: RepoTree, name: str) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(tree.rendered_dir(name).glob("*.yaml"))]


# --- RBAC -----------------------------------------------------------------------------------------------------


def subject(entry: dict[str, Any]) -> str:
    return entry["serviceAccount"] if "serviceAccount" in entry else f"group:{entry['group']}"


def access_rows() -> list[tuple[str, bool, dict[str, Any]]]:
    return [
        (subject(entry), allowed, check)
        for entry in RBAC_TABLE
        for allowed in (True, False)
        for check in entry["allowed" if allowed else "denied"]
    ]


def describe(check: dict[str, Any]) -> str:
    resource = check["resource"] + (f"/{check['subresource']}" if check.get("subresource") else "")
    group = f"{check['group']}/" if check.get("group") else ""
    name = f" {check['name']}" if check.get("name") else ""
    where = {
        "own": "own namespace",
        "other": "other namespace",
        "": "cluster-wide",
        "tenant": "the tenant's namespace",
        "other-tenant": "another tenant's namespace",
    }[check.get("namespace", "own")]
    return f"{check['verb']} {group}{resource}{name} ({where})"


def rbac_markdown() -> str:
    lines = ["| ServiceAccount or group | may | may not |", "|---|---|---|"]
    for entry in RBAC_TABLE:
        may = "<br>".join(describe(c) for c in entry["allowed"]) or "nothing (no Role at all)"
        may_not = "<br>".join(describe(c) for c in entry["denied"])
        who = f"`{entry['serviceAccount']}`" if "serviceAccount" in entry else f"group `{entry['group']}`"
        lines.append(f"| {who}: {entry['why']} | {may} | {may_not} |")
    return "\n".join(lines)


def test_docs_show_the_rbac_table():
    assert rbac_markdown() in (REPO_ROOT / "docs/rbac.md").read_text(), "paste tests.test_apiserver.rbac_markdown()"


@pytest.mark.parametrize(
    ("account", "allowed", "check"),
    access_rows(),
    ids=[f"{a}-{'may' if ok else 'not'}-{describe(c)}" for a, ok, c in access_rows()],
)
def test_rbac_subject_access_review(api, account: str, allowed: bool, check: dict[str, Any]):
    from kubernetes import client

    objects = [
        o
        for o in load_rendered("aws-example")
        if o["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    ]
    namespace = "dask"
    finish_namespace_deletions(api)  # a tenant's namespace pruned by an earlier sync here
    for name in {namespace} | {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}:
        ensure_namespace(api, name)
    server_side_apply(objects, api)
    if account.startswith("group:"):  # a tenant's person: any user of the group
        user, groups = "someone@example.com", [account.removeprefix("group:"), "system:authenticated"]
    else:
        sa = next(
            o
            for o in objects
            if o["kind"] == "ServiceAccount" and o["metadata"]["labels"]["app.kubernetes.io/component"] == account
        )
        user = f"system:serviceaccount:{namespace}:{sa['metadata']['name']}"
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    ns = {
        "own": namespace,
        "other": "elsewhere",
        "": "",
        "tenant": "tenant-forecasting",
        "other-tenant": "tenant-pricing",
    }[check.get("namespace", "own")]
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=groups,
            resource_attributes=client.V1ResourceAttributes(
                namespace=ns or None,
                verb=check["verb"],
                group=check.get("group", ""),
                resource=check["resource"],
                subresource=check.get("subresource"),
                name=check.get("name"),
            ),
        )
    )
    result = client.AuthorizationV1Api(api).create_subject_access_review(review)
    assert result.status.allowed is allowed, f"{account}: {describe(check)}: {result.status.reason}"
