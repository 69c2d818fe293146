"""The dask-kubernetes operator's facts in one place: its pinned version, its CRDs (generated from the wheel) and the
custom resources a tenant's cluster is made of.

The CRDs ship inside the pinned wheel, with upstream's operator chart
(``dask_kubernetes/operator/deployment/helm/dask-kubernetes-operator/crds/*.yaml``). ``dask-platform versions sync``
copies them into ``charts/dask-platform/files/dask-kubernetes-crds/`` with a header and one change: the Argo CD
sync option ``ServerSideApply=true`` (daskcluster.yaml is ~284 KB and daskjob.yaml ~471 KB, over the 262,144-byte
limit of the ``kubectl.kubernetes.io/last-applied-configuration`` annotation that client-side apply writes:
kubernetes apimachinery ``TotalAnnotationSizeLimitB``; Argo CD docs, sync-options.md "Server-Side Apply"). The
platform's Applications sync server-side anyway; the annotation keeps the CRDs server-side in any other Application
that syncs them. The chart renders them, with its labels, when any tenant is declared
(templates/operator/customresourcedefinition.yaml), so Argo CD and helm both install and upgrade them. The wheel
pinned in pyproject.toml is the one source: the sync refuses an installed dask-kubernetes of another version.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path
from typing import Any

import yaml

from dask_platform.errors import UserError
from dask_platform.generated import FolderOutput, header
from dask_platform.repo import RepoTree

PACKAGE = "dask-kubernetes"
GROUP = "kubernetes.dask.org"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
# Where the wheel keeps them (the package's own Helm chart).
WHEEL_CRDS = "operator/deployment/helm/dask-kubernetes-operator/crds"
# kind -> plural, for every CRD the wheel ships (a test checks this against the files).
KINDS = {
    "DaskAutoscaler": "daskautoscalers",
    "DaskCluster": "daskclusters",
    "DaskJob": "daskjobs",
    "DaskWorkerGroup": "daskworkergroups",
}
SYNC_OPTIONS = {"argocd.argoproj.io/sync-options": "ServerSideApply=true"}
# What `versions sync` writes the CRDs as.
COMMAND = "versions sync"


def crd_folder(tree: RepoTree) -> Path:
    return tree.chart / "files" / "dask-kubernetes-crds"


def installed_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise UserError(f"{PACKAGE} is not installed here: run scripts/dev setup") from None


def wheel_crds() -> dict[str, str]:
    """file name -> text of the CRDs inside the installed wheel."""
    folder = resources.files("dask_kubernetes").joinpath(WHEEL_CRDS)
    return {p.name: p.read_text() for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".yaml")}


def build_crd(text: str, source: str) -> dict[str, Any]:
    """Upstream's CRD with Argo CD's server-side apply option added to its annotations, nothing else changed."""
    crd = yaml.safe_load(text)
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise UserError(f"not a CustomResourceDefinition in the {PACKAGE} wheel: {source}")
    metadata_ = crd.setdefault("metadata", {})
    metadata_["annotations"] = {**(metadata_.get("annotations") or {}), **SYNC_OPTIONS}
    return crd


def crd_output(tree: RepoTree, pinned: str) -> FolderOutput:
    """The chart's copy of the pinned wheel's CRDs, each file with the generated-file header."""
    installed = installed_version()
    if installed != pinned:
        raise UserError(
            f"{PACKAGE} {installed} is installed but {pinned} is pinned: run scripts/dev setup",
            file=tree.pyproject,
            key_path="project.dependencies",
        )
    files = {}
    for name, text in wheel_crds().items():
        source = f"the {PACKAGE}=={pinned} wheel's {name}"
        crd = build_crd(text, source)
        files[name] = header(COMMAND, source) + yaml.safe_dump(crd, sort_keys=False, width=120)
    return FolderOutput(crd_folder(tree), files)


def load_crds(tree: RepoTree) -> list[dict[str, Any]]:
    """The committed CRDs (what the chart renders)."""
    return [yaml.safe_load(p.read_text()) for p in sorted(crd_folder(tree).glob("*.yaml"))]
