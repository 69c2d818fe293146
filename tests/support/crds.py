"""CustomResourceDefinitions for the custom resources the platform renders, so that the tests' real API servers
(testbed/envtest.py, the single-node cluster) store and serve Argo CD's, KEDA's and prometheus-operator's
objects instead of leaving them out.

Generated, not upstream's manifests: no Debian, PyPI or npm package ships those projects' CRD YAML (the npm
@kubernetes-models packages in scripts/crd hold compiled validators, not schemas), and nothing is downloaded from
elsewhere. Each CRD is built from its upstream CRD's identity: group, version, kind, plural, short names, scope,
the required top-level fields and whether status is a subresource, with the upstream file named beside it. Its
schema is structural and keeps spec and status as given (x-kubernetes-preserve-unknown-fields): what spec may hold
is checked offline against the real schemas (dask_platform/crdschema.py, tests/test_argocd.py). The server checks
the rest for real: that the kind exists under that group and version, namespaced, with spec present, and what a
server does with an object (encoding it, server-side apply and its field owners, pruning, deletion).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

CRD_API = "apiextensions.k8s.io/v1"
MANAGED_BY = {"app.kubernetes.io/managed-by": "dask-platform-tests"}


@dataclass(frozen=True)
class CrdIdentity:
    group: str
    version: str
    kind: str
    plural: str
    short_names: tuple[str, ...]
    required: tuple[str, ...]  # the top-level fields the upstream schema requires
    status_subresource: bool
    source: str  # the upstream CRD these facts come from
    categories: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


ARGO_CD = (
    # argoproj/argo-cd manifests/crds/application-crd.yaml (Argo CD 3.x): required metadata and spec, subresources {}.
    CrdIdentity(
        "argoproj.io", "v1alpha1", "Application", "applications", ("app", "apps"), ("metadata", "spec"), False,
        "argoproj/argo-cd manifests/crds/application-crd.yaml",
    ),
    # argoproj/argo-cd manifests/crds/appproject-crd.yaml: no subresources.
    CrdIdentity(
        "argoproj.io", "v1alpha1", "AppProject", "appprojects", ("appproj", "appprojs"), ("metadata", "spec"), False,
        "argoproj/argo-cd manifests/crds/appproject-crd.yaml",
    ),
    # argoproj/argo-cd manifests/crds/applicationset-crd.yaml: subresources status.
    CrdIdentity(
        "argoproj.io", "v1alpha1", "ApplicationSet", "applicationsets", ("appset", "appsets"), ("metadata", "spec"),
        True, "argoproj/argo-cd manifests/crds/applicationset-crd.yaml",
    ),
)  # fmt: skip
KEDA = (
    # kedacore/keda config/crd/bases/keda.sh_scaledobjects.yaml (KEDA 2.x): required spec, subresources status.
    CrdIdentity(
        "keda.sh", "v1alpha1", "ScaledObject", "scaledobjects", ("so",), ("spec",), True,
        "kedacore/keda config/crd/bases/keda.sh_scaledobjects.yaml",
    ),
)  # fmt: skip
PROMETHEUS_OPERATOR = (
    # prometheus-operator/prometheus-operator example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml
    # (0.91.0): category prometheus-operator, required spec, subresources status.
    CrdIdentity(
        "monitoring.coreos.com", "v1", "PodMonitor", "podmonitors", ("pmon",), ("spec",), True,
        "prometheus-operator/prometheus-operator example/prometheus-operator-crd/"
        "monitoring.coreos.com_podmonitors.yaml",
        ("prometheus-operator",),
    ),
)  # fmt: skip
ALL = ARGO_CD + KEDA + PROMETHEUS_OPERATOR


def build_crd(crd: CrdIdentity) -> dict[str, Any]:
    """A structural apiextensions.k8s.io/v1 CRD for ``crd``: spec and status kept as given."""
    kept = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": dict(kept),
            "status": dict(kept),
        },
        "required": list(crd.required),
    }
    version: dict[str, Any] = {
        "name": crd.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
    }
    if crd.status_subresource:
        version["subresources"] = {"status": {}}
    names: dict[str, Any] = {
        "kind": crd.kind,
        "listKind": f"{crd.kind}List",
        "plural": crd.plural,
        "singular": crd.kind.lower(),
        "shortNames": list(crd.short_names),
    }
    if crd.categories:
        names["categories"] = list(crd.categories)
    return {
        "apiVersion": CRD_API,
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd.name, "labels": dict(MANAGED_BY), "annotations": {"dask-platform/source": crd.source}},
        "spec": {"group": crd.group, "names": names, "scope": "Namespaced", "versions": [version]},
    }


def _served(api: Any, crd: CrdIdentity) -> bool:
    """Whether the server's discovery lists ``crd``'s resource (what a client's apply looks up first)."""
    from kubernetes.client.exceptions import ApiException

    try:
        response = api.call_api(
            f"/apis/{crd.api_version}", "GET", auth_settings=["BearerToken"], _return_http_data_only=True,
            _preload_content=False,
        )  # fmt: skip
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(r.get("name") == crd.plural for r in json.loads(response.data).get("resources", []))


def _wait(api: Any, crds: tuple[CrdIdentity, ...], served: bool, timeout: float = 60) -> None:
    from kubernetes.dynamic import DynamicClient

    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(_served(api, c) is served for c in crds):
            DynamicClient(api).resources.invalidate_cache()  # the client's discovery cache file, shared by clients
            return
        time.sleep(0.2)
    state = "served" if served else "gone"
    raise RuntimeError(f"CRDs not {state} after {timeout:.0f} s: {[c.name for c in crds]}")


def install_crds(api: Any, crds: tuple[CrdIdentity, ...] = ALL) -> None:
    """Create (or update) the CRDs and wait until the server serves their resources."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    extensions = client.ApiextensionsV1Api(api)
    for crd in crds:
        body = build_crd(crd)
        try:
            extensions.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            live = extensions.read_custom_resource_definition(crd.name)
            body["metadata"]["resourceVersion"] = live.metadata.resource_version
            extensions.replace_custom_resource_definition(crd.name, body)
    _wait(api, crds, served=True)


def remove_crds(api: Any, crds: tuple[CrdIdentity, ...] = ALL) -> None:
    """Delete the CRDs (and so every object of theirs) and wait until the server no longer serves them."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    extensions = client.ApiextensionsV1Api(api)
    for crd in crds:
        try:
            extensions.delete_custom_resource_definition(crd.name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    _wait(api, crds, served=False)
