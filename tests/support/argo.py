"""A model of Argo CD's automated sync of one Application, run against a real API server or node, so the documented
flows (a values PR -> render -> sync) can be tested without Argo CD. What it models, each from Argo CD's docs or
source:

- CreateNamespace=true: the destination namespace is created first (sync-options.md "Create Namespace").
- Order: by sync wave (the argocd.argoproj.io/sync-wave annotation, default 0), then by kind in gitops-engine's
  order (pkg/sync/sync_tasks.go, kindOrder), then by name (sync-waves.md "How Do I Configure Waves?").
- RespectIgnoreDifferences=true: each target's fields named by a matching ignoreDifferences rule (group, kind and,
  when given, name and namespace: diffing.md "Application Level Configuration") are removed from the target, then
  the live object's values of those fields are copied in; a new object is applied as rendered (controller/sync.go
  normalizeTargetResources).
- ServerSideApply=true: every object is applied server-side as the field manager argocd-controller, conflicts
  forced (sync-options.md "Server-Side Apply").
- Prune: objects this Application applied before and no longer renders are deleted, after the other objects with
  PruneLast=true, except those annotated argocd.argoproj.io/sync-options: Prune=false (sync-options.md "No Prune
  Resources", "Prune Last").
- Deleting the Application with its resources finalizer deletes what it manages, except those annotated
  Delete=false (sync-options.md "No Resource Deletion").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dask_platform.render import render_clusters
from dask_platform.repo import RepoTree

ARGO_MANAGER = "argocd-controller"  # the field manager of Argo CD's server-side apply (argo-cd docs, sync-options.md)
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
# gitops-engine pkg/sync/sync_tasks.go kindOrder (the kinds before Deployment, as there; others sort after them).
KIND_ORDER = [
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy", "PodDisruptionBudget",
    "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass", "PersistentVolume",
    "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
    "IngressClass", "Ingress", "APIService",
]  # fmt: skip


def _dynamic(api: Any) -> Any:
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api)


def _key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"]


def sync_options(obj: dict[str, Any]) -> set[str]:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(SYNC_OPTIONS, "")
    return {part.strip() for part in value.split(",") if part.strip()}


def sync_order(obj: dict[str, Any]) -> tuple[int, int, str]:
    wave = int(((obj["metadata"].get("annotations") or {}).get(SYNC_WAVE)) or 0)
    kind = KIND_ORDER.index(obj["kind"]) if obj["kind"] in KIND_ORDER else len(KIND_ORDER)
    return wave, kind, obj["metadata"]["name"]


def rule_matches(rule: dict[str, Any], obj: dict[str, Any]) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    meta = obj["metadata"]
    return (
        (rule.get("group", ""), rule["kind"]) == (group, obj["kind"])
        and rule.get("name", meta["name"]) == meta["name"]
        and rule.get("namespace", meta.get("namespace")) == meta.get("namespace")
    )


def _pointer(pointer: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.strip("/").split("/")]


def respect_ignored(target: dict[str, Any], live: dict[str, Any] | None, rules: list[dict[str, Any]]) -> dict:
    """The target Argo CD applies with RespectIgnoreDifferences: ignored fields removed, then the live values of
    those fields put in (controller/sync.go normalizeTargetResources); a new object as rendered."""
    if live is None:
        return target
    target = copy.deepcopy(target)
    for rule in rules:
        if not rule_matches(rule, target):
            continue
        for pointer in rule.get("jsonPointers", []):
            *parents, leaf = _pointer(pointer)
            dst, src = target, live
            for part in parents:
                dst = dst.setdefault(part, {})
                src = (src or {}).get(part) if isinstance(src, dict) else None
            dst.pop(leaf, None)
            if isinstance(src, dict) and leaf in src:
                dst[leaf] = copy.deepcopy(src[leaf])
    return target


def apply_as(api: Any, obj: dict[str, Any], manager: str) -> None:
    resource = _dynamic(api).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    meta = obj["metadata"]
    _dynamic(api).server_side_apply(
        resource, body=obj, name=meta["name"], namespace=meta.get("namespace"), field_manager=manager,
        force_conflicts=True,
    )  # fmt: skip


def get_live(api: Any, obj: dict[str, Any]) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    resource = _dynamic(api).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    try:
        return resource.get(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace")).to_dict()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def delete(api: Any, key: tuple[str, str, str, str]) -> None:
    api_version, kind, namespace, name = key
    resource = _dynamic(api).resources.get(api_version=api_version, kind=kind)
    resource.delete(name=name, namespace=namespace or None)


@dataclass
class ArgoApplication:
    """One Application's automated sync against ``api``; ``managed`` is what it applied and still tracks."""

    api: Any
    managed: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)

    def sync(self, application: dict[str, Any], objects: list[dict[str, Any]]) -> list[str]:
        """Sync ``objects`` under the (refreshed) ``application``; returns the pruned kind/names."""
        spec = application["spec"]
        options = set(spec["syncPolicy"].get("syncOptions", []))
        assert "ServerSideApply=true" in options  # the only apply this model implements
        if "CreateNamespace=true" in options:
            ensure_namespace(self.api, spec["destination"]["namespace"])
        rules = spec.get("ignoreDifferences") or []
        for obj in sorted(objects, key=sync_order):
            target = obj
            if "RespectIgnoreDifferences=true" in options:
                target = respect_ignored(obj, get_live(self.api, obj), rules)
            apply_as(self.api, target, ARGO_MANAGER)
            self.managed[_key(obj)] = obj
        wanted = {_key(o) for o in objects}
        pruned = []
        if spec["syncPolicy"].get("automated", {}).get("prune"):
            for key, obj in sorted(self.managed.items()):
                if key in wanted:
                    continue
                if "Prune=false" not in sync_options(obj):
                    delete(self.api, key)
                    pruned.append(f"{key[1]}/{key[3]}")
                del self.managed[key]  # Argo CD reports it as not in git (orphaned), not as its own
        return pruned

    def delete_application(self) -> list[str]:
        """The Application deleted with resources-finalizer.argocd.argoproj.io: its resources go, but Delete=false."""
        deleted = []
        for key, obj in sorted(self.managed.items()):
            if "Delete=false" not in sync_options(obj):
                delete(self.api, key)
                deleted.append(f"{key[1]}/{key[3]}")
        self.managed.clear()
        return deleted


def ensure_namespace(api: Any, name: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != 409:
            raise


def render_with_workers(
    tree: RepoTree, helm: Path, cluster: str, workers: dict[str, Any], namespace: str | None = None
) -> list[dict[str, Any]]:
    """``cluster``'s objects rendered with ``workers`` merged over the default worker group's values (cluster.yaml
    is rewritten: use a scratch tree, or put the file back)."""
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
    return r.objects


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
