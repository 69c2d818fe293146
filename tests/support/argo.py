"""What Argo CD does to a Deployment when it syncs, for tests on a real API server or node: server-side apply as its
field manager, and RespectIgnoreDifferences (the Application's ignored fields take their live values first)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from dask_platform.render import render_clusters
from dask_platform.repo import RepoTree

ARGO_MANAGER = "argocd-controller"  # the field manager of Argo CD's server-side apply (argo-cd docs, sync-options.md)


def _dynamic(api: Any) -> Any:
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api)


def worker_deployment(
    tree: RepoTree, helm: Path, cluster: str, workers: dict[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    """The default worker group's Deployment as ``cluster`` renders with ``workers`` merged over that group's values
    (cluster.yaml is rewritten: use a scratch tree, or put the file back)."""
    path = tree.cluster_file(cluster)
    doc = yaml.safe_load(path.read_text())
    if namespace:
        doc["namespace"] = namespace
    values = doc.get("values") or {}
    doc["values"] = values
    groups = values.setdefault("dask", {}).setdefault("workerGroups", {})
    groups["default"] = {**(groups.get("default") or {}), **workers}
    path.write_text(yaml.safe_dump(doc))
    [r] = render_clusters(tree, [cluster], helm)
    return next(o for o in r.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "dask-worker-default")


def apply_as(api: Any, obj: dict[str, Any], manager: str) -> None:
    resource = _dynamic(api).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    meta = obj["metadata"]
    _dynamic(api).server_side_apply(
        resource, body=obj, name=meta["name"], namespace=meta["namespace"], field_manager=manager, force_conflicts=True
    )


def argo_sync_respecting(api: Any, desired: dict[str, Any], application: dict[str, Any]) -> None:
    """Argo CD's sync with RespectIgnoreDifferences=true: each field the Application's ignoreDifferences names for
    this kind takes its live value before the apply (argo-cd docs sync-options.md; controller/sync.go
    normalizeTargetResources). Uses the generated Application, so its settings are what is tested."""
    assert "RespectIgnoreDifferences=true" in application["spec"]["syncPolicy"]["syncOptions"]
    desired = copy.deepcopy(desired)
    live = _dynamic(api).resources.get(api_version=desired["apiVersion"], kind=desired["kind"])
    live_obj = live.get(name=desired["metadata"]["name"], namespace=desired["metadata"]["namespace"]).to_dict()
    group = desired["apiVersion"].rpartition("/")[0]
    for rule in application["spec"]["ignoreDifferences"]:
        if (rule["group"], rule["kind"]) != (group, desired["kind"]):
            continue
        for pointer in rule["jsonPointers"]:
            *parents, leaf = pointer.strip("/").split("/")
            src, dst = live_obj, desired
            for part in parents:
                src, dst = src[part], dst.setdefault(part, {})
            dst[leaf] = src[leaf]
    apply_as(api, desired, ARGO_MANAGER)
