"""The cloud side of the pods' identities, derived from the ServiceAccounts the chart renders.

A ServiceAccount's identity annotation (set in clusters/<name>/cluster.yaml values) names the cloud identity its
pods act as; that identity must exist and trust exactly that ServiceAccount. `dask-platform plan` emits the steps
that create it, from the rendered objects (the names Argo CD applies), and grants it the cluster.yaml ``grants``
of its component. The per-cloud builders (IRSA, Workload Identity) and annotations are in
dask_platform/clouds/<cloud>.py; this module holds what they share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dask_platform.clusters import Cluster
from dask_platform.tenants import TENANT_LABEL


@dataclass(frozen=True)
class Identity:
    """A rendered ServiceAccount with a cloud identity: its component, where it is, and the identity it names."""

    component: str  # the grants key (cluster.yaml grants.<component>); a tenant's: tenant-<name>
    namespace: str
    service_account: str
    cloud_id: str
    values_path: str = ""  # where its annotations are set under values, when not <component> (a tenant's)

    @property
    def subject(self) -> str:
        """How the cluster's OIDC tokens name this ServiceAccount (the `sub` claim)."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def identities(cluster: Cluster, objects: list[dict[str, Any]]) -> list[Identity]:
    """The ServiceAccounts in ``objects`` (a cluster's rendered objects) that carry the cloud's identity annotation."""
    from dask_platform.clouds import cloud  # not at the top: the cloud modules build on this module

    key = cloud(cluster.cloud).identity_annotation
    found = []
    for obj in objects:
        if obj.get("kind") != "ServiceAccount" or not key:
            continue
        meta = obj["metadata"]
        cloud_id = (meta.get("annotations") or {}).get(key)
        if cloud_id:
            labels = meta.get("labels", {})
            tenant = labels.get(TENANT_LABEL)
            if tenant:  # a tenant's own identity (templates/tenants/serviceaccount.yaml)
                where = f"tenants.{tenant}"
                found.append(Identity(f"tenant-{tenant}", meta["namespace"], meta["name"], cloud_id, where))
                continue
            component = labels.get("app.kubernetes.io/component", meta["name"])
            found.append(Identity(component, meta["namespace"], meta["name"], cloud_id))
    return sorted(found, key=lambda i: i.component)


def grants(cluster: Cluster, component: str) -> list[str]:
    """What cluster.yaml ``grants.<component>`` gives the component's identity (policy ARNs, roles)."""
    return list((cluster.settings.get("grants") or {}).get(component) or [])


def value_key(identity: Identity, cluster: Cluster) -> str:
    """The cluster.yaml key path of the identity's annotation (for errors about its value)."""
    from dask_platform.clouds import cloud

    where = identity.values_path or identity.component
    return f"values.{where}.serviceAccount.annotations.{cloud(cluster.cloud).identity_annotation}"


class Shell(str):
    """A command-line word the shell must expand (a "$(...)" substitution): printed as is, not quoted."""
