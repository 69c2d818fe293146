"""Values layers of a cluster and helm's rules for merging them.

The effective values of a cluster are, in order of precedence (last wins):

    chart values.yaml  <-  values/<cloud>.yaml  <-  settings from cluster.yaml  <-  cluster.yaml `values:`

"Settings from cluster.yaml" are the values that follow from its other keys: its name and Kubernetes version, and
what the provisioning plan decides (dask_platform/provision.py planned_values: Jupyter's zone, its Service's source
range), so the plan and the chart read each such fact from one place.

Helm's rules: maps merge key by key, lists and scalars replace, and a null deletes the key (including the chart
default). ``merge_layers`` combines the user layers the way ``helm -f a.yaml -f b.yaml`` does (nulls kept as
deletion markers), and ``coalesce`` applies them over the chart defaults as helm does before rendering.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from dask_platform.clusters import Cluster, explain, schema_errors
from dask_platform.errors import UserError, key_path_str
from dask_platform.quantity import format_bytes, parse_quantity
from dask_platform.repo import RepoTree
from dask_platform.schema import load_schema
from dask_platform.tenants import tenant_problems


@dataclass(frozen=True)
class Layer:
    """One source of values: the file it came from, where in that file the values start, and what it sets."""

    file: Path
    values: dict[str, Any]
    prefix: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterValues:
    """What helm gets for a cluster (``user``: the merged layers) and what its templates see (``effective``)."""

    user: dict[str, Any]
    effective: dict[str, Any]


# --- helm's merge rules -------------------------------------------------------------------------------------


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge user value layers as ``helm -f a -f b`` does: maps merge, anything else replaces; nulls stay
    (they delete chart defaults later, in ``coalesce``)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _merge_two(merged, layer)
    return merged


def _merge_two(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_two(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def coalesce(defaults: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The values a template sees: ``user`` over ``defaults``; a null in ``user`` deletes the default key.

    As in helm, a null for a key the defaults do not have stays a null."""
    out = copy.deepcopy(user)
    _coalesce_into(out, defaults)
    return out


def _coalesce_into(dst: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, default in defaults.items():
        if key not in dst:
            dst[key] = copy.deepcopy(default)
        elif dst[key] is None:
            del dst[key]
        elif isinstance(dst[key], dict) and isinstance(default, dict):
            _coalesce_into(dst[key], default)


# --- a cluster's layers ---------------------------------------------------------------------------------------


def cluster_layers(tree: RepoTree, cluster: Cluster) -> list[Layer]:
    """The user layers of a cluster, lowest precedence first."""
    from dask_platform.provision import planned_values

    cloud_file = tree.values_file(cluster.cloud)
    derived = merge_layers(
        {"global": {"clusterName": cluster.name, "kubernetesVersion": cluster.kubernetes_version}},
        planned_values(cluster),
    )
    return [
        Layer(cloud_file, tree.load_mapping(cloud_file)),
        Layer(cluster.path, derived),
        Layer(cluster.path, cluster.overrides, prefix=("values",)),
    ]


def build_values(tree: RepoTree, cluster: Cluster) -> ClusterValues:
    """The values of a cluster, checked against the chart's schema (errors name the file that set the key)."""
    layers = cluster_layers(tree, cluster)
    user = merge_layers(*(layer.values for layer in layers))
    effective = coalesce(tree.load_mapping(tree.chart / "values.yaml"), user)
    validate_values(effective, layers, load_schema(tree), tree.chart / "values.yaml")
    argocd_namespace = tree.tool_settings("argocd").get("namespace", "argocd")
    for path, message in [
        *node_selection_problems(cluster, effective),
        *node_fit_problems(cluster, effective),
        *tenant_problems(effective, cluster.namespace, reserved=[argocd_namespace]),
    ]:
        file, path = blame(path, layers, tree.chart / "values.yaml")
        raise UserError(message, file=file, key_path=key_path_str(path))
    return ClusterValues(user, effective)


def _get_path(values: Any, path: list[Any]) -> bool:
    for part in path:
        if (isinstance(values, dict) and part in values) or (
            isinstance(values, list) and isinstance(part, int) and part < len(values)
        ):
            values = values[part]
        else:
            return False
    return True


def blame(path: list[Any], layers: list[Layer], defaults_file: Path) -> tuple[Path, list[Any]]:
    """Which file set the value at ``path`` last (the file a user must fix), and the key path in that file."""
    for depth in range(len(path), 0, -1):
        for layer in reversed(layers):
            if _get_path(layer.values, path[:depth]):
                return layer.file, [*layer.prefix, *path]
    return defaults_file, path


def validate_values(
    effective: dict[str, Any], layers: list[Layer], schema: dict[str, Any], defaults_file: Path
) -> None:
    """Check the effective values against the chart's schema; the first error names its file and key path."""
    errors = schema_errors(effective, schema)
    if not errors:
        check_semantics(effective, layers, defaults_file)
        return
    # The most specific error first: jsonschema reports "if/then" failures at the parent, the cause deeper.
    err = max(errors, key=lambda e: len(e.absolute_path))
    for candidate in errors:
        if candidate.context:
            deepest = max(candidate.context, key=lambda e: len(e.absolute_path))
            if len(deepest.absolute_path) >= len(err.absolute_path):
                err = deepest
    path, message = explain(err)
    file, path = blame(path, layers, defaults_file)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise UserError(f"{message}{more}", file=file, key_path=key_path_str(path))


def check_semantics(effective: dict[str, Any], layers: list[Layer], defaults_file: Path) -> None:
    """Rules a JSON schema cannot express (comparisons between keys), with the same file/key-path errors."""
    for path, message in resource_problems(effective):
        file, path = blame(path, layers, defaults_file)
        raise UserError(message, file=file, key_path=key_path_str(path))
    for name, group in (effective.get("dask", {}).get("workerGroups") or {}).items():
        scaling = (group or {}).get("autoscaling") or {}
        low, high = scaling.get("minReplicas"), scaling.get("maxReplicas")
        if low is not None and high is not None and low > high:
            path = ["dask", "workerGroups", name, "autoscaling", "minReplicas"]
            file, path = blame(path, layers, defaults_file)
            raise UserError(
                f"minReplicas {low} is greater than maxReplicas {high}", file=file, key_path=key_path_str(path)
            )


def resource_blocks(values: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """Every container resources block ({requests, limits}) in the values, with its key path."""
    if isinstance(values, dict):
        if isinstance(values.get("requests"), dict) and isinstance(values.get("limits"), dict):
            yield list(path), values
        for key, value in values.items():
            yield from resource_blocks(value, (*path, key))


def resource_problems(effective: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """A request above its limit (the API server refuses such a pod template at sync time, after review):
    the key path of the request and what was expected."""
    for path, block in resource_blocks(effective):
        for resource, request in block["requests"].items():
            limit = block["limits"].get(resource)
            if request is None or limit is None:
                continue
            try:
                too_big = parse_quantity(request) > parse_quantity(limit)
            except ValueError as exc:
                yield [*path, "requests", resource], str(exc)
                continue
            if too_big:
                yield (
                    [*path, "requests", resource],
                    f"request {request} is above the limit {limit} (limits.{resource}): expected a request no "
                    "larger than its limit",
                )


def _enabled(effective: dict[str, Any], path: list[Any]) -> bool:
    """Whether every component on ``path`` is on (an ``enabled: false`` anywhere above switches it off)."""
    node: Any = effective
    for part in path:
        if isinstance(node, dict) and node.get("enabled") is False:
            return False
        node = node.get(part) if isinstance(node, dict) else None
    return not (isinstance(node, dict) and node.get("enabled") is False)


def pod_owners(effective: dict[str, Any]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """Every enabled component that runs pods (it has a resources block), with its key path and settings: where its
    nodeSelector and tolerations are."""
    for path, _block in resource_blocks(effective):
        owner = path[:-1]
        if not path or path[-1] != "resources" or not _enabled(effective, owner):
            continue
        settings: Any = effective
        for part in owner:
            settings = settings[part]
        yield owner, settings


def node_selection_problems(cluster: Cluster, effective: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """A pod that selects no node group the plan creates, or only groups whose taints it does not tolerate, would
    stay Pending: the key path of its nodeSelector or tolerations."""
    from dask_platform.clouds import cloud
    from dask_platform.provision import matching_groups, node_groups, tolerates

    label = cloud(cluster.cloud).node_group_label
    if not label:
        return
    groups = node_groups(cluster)
    for owner, settings in pod_owners(effective):
        selector = settings.get("nodeSelector") or {}
        matches = matching_groups(cluster, groups, selector)
        if not matches:
            planned = ", ".join(g.name for g in groups)
            yield (
                [*owner, "nodeSelector"],
                f"selects no node group that `dask-platform plan` creates ({planned}; dask_platform/provision.py): "
                f"expected e.g. {label}: {groups[0].name}, with labels its nodes carry",
            )
            continue
        tolerations = settings.get("tolerations") or []
        untolerated = {
            g.name: [t for t in g.all_taints if not any(tolerates(x, t) for x in tolerations)] for g in matches
        }
        if all(untolerated.values()):
            name, taints = next(iter(untolerated.items()))
            yield (
                [*owner, "tolerations"],
                f"does not tolerate the taint {taints[0]} of node group {name!r} it selects: expected a toleration "
                f"for it (key {taints[0].key}, effect {taints[0].effect})",
            )


def node_fit_problems(cluster: Cluster, effective: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """A pod whose requests exceed what one node of the group it selects leaves for pods (machines.py: capacity
    minus the cloud's reservations and DaemonSets) would stay Pending: the key path of the request."""
    from dask_platform.clouds import cloud
    from dask_platform.machines import allocatable
    from dask_platform.provision import node_groups

    label = cloud(cluster.cloud).node_group_label
    if not label:
        return
    types = {g.name: g.instance_type for g in node_groups(cluster)}
    for owner, settings in pod_owners(effective):
        group = (settings.get("nodeSelector") or {}).get(label)
        room = allocatable(cluster.cloud, types.get(group, ""))
        if room is None:
            continue
        block = settings["resources"]
        wanted = {"cpu": Decimal(room.cpu_m) / 1000, "memory": Decimal(room.memory_bytes)}
        for resource, have in wanted.items():
            request = block["requests"].get(resource)
            if request is not None and parse_quantity(request) > have:
                yield (
                    [*owner, "resources", "requests", resource],
                    f"request {request} does not fit a node of group {group!r} ({room.describe()} after the "
                    f"cloud's reservations and DaemonSets, dask_platform/machines.py): expected at most "
                    f"{f'{room.cpu_m}m' if resource == 'cpu' else format_bytes(room.memory_bytes)}",
                )
