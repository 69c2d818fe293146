"""Tenants: the platform's teams or people, each with a namespace where they create their own Dask clusters.

Declared in values (``tenants.<name>``, defaults and caps in ``tenancy``; charts/dask-platform/values.schema.yaml),
rendered by the chart (templates/tenants/, templates/operator/) and synced like every other object. This module holds
what the tools need of them, as pure functions over the effective values or the rendered objects:

- ``tenant_problems``: the rules a JSON schema cannot express (a namespace that collides with the platform's or a
  system one, a quota too small for one scheduler and one worker, an idle timeout above the platform's cap, a worker
  group that does not exist), each as (key path, what was expected);
- ``tenant_namespace``: the namespace name, as templates/tenants/_helpers.tpl (dp.tenantNamespace) makes it;
- ``TenantSettings`` / ``tenant_settings``: what submit needs to create a tenant's cluster, read from the rendered
  ConfigMap of the tenant (templates/tenants/configmap.yaml), so the chart stays the one place that shapes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dask_platform.errors import UserError
from dask_platform.quantity import parse_quantity

TENANT_LABEL = "dask-platform/tenant"
# On a tenant's RoleBinding: tenants.<name>.principals, comma-separated (templates/tenants/rolebinding.yaml).
PRINCIPALS_ANNOTATION = "dask-platform/principals"
SETTINGS_KEY = "tenant"  # a key of the tenant's settings ConfigMap (templates/tenants/configmap.yaml)
# Namespaces no tenant may take besides the platform's own and KEDA's: Kubernetes' own (kubernetes docs,
# "Namespaces": default, kube-node-lease, kube-public, kube-system) and Argo CD's ([tool.dask-platform.argocd]).
SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


def tenant_namespace(effective: dict[str, Any], name: str) -> str:
    return f"{effective['tenancy']['namespacePrefix']}{name}"


def _group(effective: dict[str, Any], tenant: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    name = tenant.get("workerGroup") or effective["tenancy"]["workerGroup"]
    return name, (effective.get("dask", {}).get("workerGroups") or {}).get(name)


def _size(resources: dict[str, Any], resource: str) -> Decimal:
    """What one container of the group counts against the quota (its limit, else its request)."""
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    value = limits.get(resource, requests.get(resource))
    return parse_quantity(value) if value is not None else Decimal(0)


def tenant_problems(
    effective: dict[str, Any], platform_namespace: str, reserved: Iterable[str] = ()
) -> Iterator[tuple[list[Any], str]]:
    """Each problem of the declared tenants as (key path, message); nothing when there are none."""
    tenants = effective.get("tenants") or {}
    tenancy = effective["tenancy"]
    cap = tenancy["maxIdleTimeoutSeconds"]
    if tenancy["idleTimeoutSeconds"] > cap:
        yield (
            ["tenancy", "idleTimeoutSeconds"],
            f"{tenancy['idleTimeoutSeconds']} s is above tenancy.maxIdleTimeoutSeconds ({cap} s): expected at most "
            "the cap",
        )
    taken = {
        platform_namespace: "the platform's own namespace",
        effective["global"]["keda"]["namespace"]: "KEDA's namespace",
        **{ns: "a namespace of Kubernetes or Argo CD" for ns in (*SYSTEM_NAMESPACES, *reserved)},
    }
    for name, tenant in tenants.items():
        namespace = tenant_namespace(effective, name)
        if namespace in taken:
            yield (
                ["tenants", name],
                f"tenant {name!r} would live in namespace {namespace!r}, {taken[namespace]}: expected another name "
                "(or tenancy.namespacePrefix)",
            )
        taken[namespace] = f"tenant {name!r}'s"
        timeout = tenant.get("idleTimeoutSeconds")
        if timeout is not None and timeout > cap:
            yield (
                ["tenants", name, "idleTimeoutSeconds"],
                f"{timeout} s is above tenancy.maxIdleTimeoutSeconds ({cap} s): expected at most the cap",
            )
        yield from _size_problems(effective, name, tenant)


def _size_problems(effective: dict[str, Any], name: str, tenant: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """A tenant's worker group must exist and be enabled; its quota must hold a scheduler and a worker, and one
    cluster at its maxWorkers (or submit's default run would wait for ever)."""
    group_name, group = _group(effective, tenant)
    if group is None or group.get("enabled") is False:
        groups = effective.get("dask", {}).get("workerGroups") or {}
        known = ", ".join(sorted(n for n, g in groups.items() if (g or {}).get("enabled", True)))
        state = "does not exist" if group is None else "is disabled"
        where = ["tenants", name, "workerGroup"] if tenant.get("workerGroup") else ["tenancy", "workerGroup"]
        yield where, f"worker group {group_name!r} {state}: expected an enabled one of dask.workerGroups ({known})"
        return
    quota = tenant["quota"]
    for resource in ("cpu", "memory"):
        need = 2 * _size(group["resources"], resource)  # a scheduler and a worker, each sized as the group
        if parse_quantity(quota[resource]) < need:
            yield (
                ["tenants", name, "quota", resource],
                f"quota {quota[resource]} is below one scheduler and one worker of worker group {group_name!r} "
                f"({resource} {_show(need, resource)}): expected at least that",
            )
            return
    workers = tenant.get("maxWorkers") or effective["tenancy"]["maxWorkers"]
    fits = admitted_pods(quota, group["resources"])
    if fits < 1 + workers:
        yield (
            ["tenants", name, "maxWorkers"] if tenant.get("maxWorkers") else ["tenancy", "maxWorkers"],
            f"{workers} workers and a scheduler need {1 + workers} pods of worker group {group_name!r}, but "
            f"tenant {name!r}'s quota admits {fits}: expected maxWorkers at most {fits - 1}",
        )


def admitted_pods(quota: dict[str, Any], resources: dict[str, Any]) -> int:
    """How many pods sized as ``resources`` the quota admits at once (its pods, cpu and memory)."""
    fits = [int(quota["pods"])]
    for resource in ("cpu", "memory"):
        one = _size(resources, resource)
        if one:
            fits.append(int(parse_quantity(quota[resource]) // one))
    return min(fits)


def _show(value: Decimal, resource: str) -> str:
    if resource == "memory" and value % 2**30 == 0:
        return f"{value // 2**30}Gi"
    return f"{value.normalize():f}"


# --- what submit needs, from the rendered objects -------------------------------------------------------------


@dataclass(frozen=True)
class TenantSettings:
    """A tenant's settings as the chart rendered them (templates/tenants/configmap.yaml)."""

    tenant: str
    namespace: str
    image: str
    image_pull_policy: str
    image_pull_secrets: tuple[str, ...]
    service_account: str
    worker_group: str
    resources: dict[str, Any]
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    idle_timeout: int
    max_workers: int
    clusters: int
    scheduler_port: int
    dashboard_port: int
    security_context: dict[str, Any]
    pod_labels: dict[str, str]
    pod_annotations: dict[str, str]

    @classmethod
    def from_data(cls, data: dict[str, str]) -> TenantSettings:
        """From the ConfigMap's data (strings; the nested values as JSON)."""
        return cls(
            tenant=data["tenant"],
            namespace=data["namespace"],
            image=data["image"],
            image_pull_policy=data["imagePullPolicy"],
            image_pull_secrets=tuple(json.loads(data["imagePullSecrets"])),
            service_account=data["serviceAccountName"],
            worker_group=data["workerGroup"],
            resources=json.loads(data["resources"]),
            node_selector=json.loads(data["nodeSelector"]),
            tolerations=json.loads(data["tolerations"]),
            idle_timeout=int(data["idleTimeoutSeconds"]),
            max_workers=int(data["maxWorkers"]),
            clusters=int(data["clusters"]),
            scheduler_port=int(data["schedulerPort"]),
            dashboard_port=int(data["dashboardPort"]),
            security_context=json.loads(data["securityContext"]),
            pod_labels=json.loads(data["podLabels"]),
            pod_annotations=json.loads(data["podAnnotations"]),
        )


def tenant_settings(objects: Iterable[dict[str, Any]]) -> dict[str, TenantSettings]:
    """name -> settings of every tenant among rendered objects (their ConfigMaps labelled with the tenant)."""
    out = {}
    for obj in objects:
        labels = obj.get("metadata", {}).get("labels") or {}
        if obj.get("kind") == "ConfigMap" and TENANT_LABEL in labels and SETTINGS_KEY in (obj.get("data") or {}):
            settings = TenantSettings.from_data(obj["data"])
            out[settings.tenant] = settings
    return out


def tenant_groups(objects: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """tenant -> the Kubernetes groups its RoleBinding binds (templates/tenants/rolebinding.yaml), from rendered
    objects: what each cloud's plan maps its people to."""
    out: dict[str, list[str]] = {}
    for obj in objects:
        tenant = (obj.get("metadata", {}).get("labels") or {}).get(TENANT_LABEL)
        if obj.get("kind") == "RoleBinding" and tenant:
            out.setdefault(tenant, []).extend(s["name"] for s in obj.get("subjects", []) if s.get("kind") == "Group")
    return {t: g for t, g in sorted(out.items()) if g}


def find_tenant(objects: Iterable[dict[str, Any]], name: str, where: str) -> TenantSettings:
    tenants = tenant_settings(objects)
    if name not in tenants:
        known = ", ".join(sorted(tenants)) or "none"
        raise UserError(f"no tenant {name!r} in {where} (tenants: {known}): declare it under tenants in the values")
    return tenants[name]
