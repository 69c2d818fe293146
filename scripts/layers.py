"""Values layers: clusters/<name>/cluster.yaml, values/<cloud>.yaml, and helm's rules for merging them.

The effective values of a cluster are, in order of precedence (last wins):

    chart values.yaml  <-  values/<cloud>.yaml  <-  settings from cluster.yaml  <-  cluster.yaml `values:`

Helm's rules: maps merge key by key, lists and scalars replace, and a null deletes the key (including the chart
default). ``merge_layers`` combines the user layers the way ``helm -f a.yaml -f b.yaml`` does (nulls kept as
deletion markers), and ``coalesce`` applies them over the chart defaults as helm does before rendering.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from scripts.common import (
    CHART_DIR,
    CLUSTERS_DIR,
    VALUES_DIR,
    UserError,
    key_path_str,
    load_yaml_file,
)

CLUSTER_SCHEMA_FILE = CLUSTERS_DIR / "cluster.schema.yaml"


@dataclass(frozen=True)
class Layer:
    """One source of values: the file it came from, where in that file the values start, and what it sets."""

    file: Path
    values: dict[str, Any]
    prefix: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cluster:
    """A cluster as described by clusters/<name>/cluster.yaml."""

    name: str
    cloud: str
    namespace: str
    release: str
    kubernetes_version: str
    path: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def rendered_dir(self) -> Path:
        return self.folder / "rendered"


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


# --- reading the layers ---------------------------------------------------------------------------------------


def chart_defaults(chart_dir: Path = CHART_DIR) -> dict[str, Any]:
    values = load_yaml_file(chart_dir / "values.yaml")
    if not isinstance(values, dict):
        raise UserError("expected a mapping at the top level", file=chart_dir / "values.yaml")
    return values


def supported_kubernetes_minors(defaults: dict[str, Any] | None = None) -> list[str]:
    """The Kubernetes minors the chart supports: those it has a cluster-autoscaler image for."""
    defaults = defaults if defaults is not None else chart_defaults()
    tags = defaults["cluster-autoscaler"]["image"]["tagByKubernetesMinor"]
    return sorted(tags, key=lambda v: tuple(int(p) for p in v.split(".")))


def available_clouds(values_dir: Path = VALUES_DIR) -> list[str]:
    return sorted(p.stem for p in values_dir.glob("*.yaml"))


def cluster_names(clusters_dir: Path = CLUSTERS_DIR) -> list[str]:
    return sorted(p.parent.name for p in clusters_dir.glob("*/cluster.yaml"))


def _schema_errors(instance: Any, schema: dict[str, Any]) -> list[jsonschema.ValidationError]:
    validator = jsonschema.Draft7Validator(schema)
    return sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message))


def load_cluster(name: str, clusters_dir: Path = CLUSTERS_DIR) -> Cluster:
    """Read and check clusters/<name>/cluster.yaml."""
    path = clusters_dir / name / "cluster.yaml"
    if not path.parent.is_dir():
        known = ", ".join(cluster_names(clusters_dir)) or "none"
        raise UserError(f"no cluster named {name!r} (known: {known})", file=path.parent)
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise UserError("expected a mapping at the top level", file=path)
    schema = load_yaml_file(CLUSTER_SCHEMA_FILE)
    errors = _schema_errors(data, schema)
    if errors:
        key_path, message = explain(errors[0])
        raise UserError(message, file=path, key_path=key_path_str(key_path))
    clouds = available_clouds(clusters_dir.parent / "values")
    if data["cloud"] not in clouds:
        raise UserError(
            f"unknown cloud {data['cloud']!r}: expected one of {', '.join(clouds)} (a file values/<cloud>.yaml)",
            file=path,
            key_path="cloud",
        )
    minors = supported_kubernetes_minors()
    if data["kubernetesVersion"] not in minors:
        raise UserError(
            f"Kubernetes {data['kubernetesVersion']} is not supported: expected one of {', '.join(minors)}",
            file=path,
            key_path="kubernetesVersion",
        )
    settings = {k: v for k, v in data.items() if k != "values"}
    return Cluster(
        name=name,
        cloud=data["cloud"],
        namespace=data["namespace"],
        release=data.get("release", "dask"),
        kubernetes_version=data["kubernetesVersion"],
        path=path,
        overrides=data.get("values") or {},
        settings=settings,
    )


def cluster_layers(cluster: Cluster, values_dir: Path | None = None) -> list[Layer]:
    """The user layers of a cluster, lowest precedence first."""
    values_dir = values_dir or cluster.folder.parent.parent / "values"
    cloud_file = values_dir / f"{cluster.cloud}.yaml"
    cloud_values = load_yaml_file(cloud_file) or {}
    if not isinstance(cloud_values, dict):
        raise UserError("expected a mapping at the top level", file=cloud_file)
    derived = {"global": {"clusterName": cluster.name, "kubernetesVersion": cluster.kubernetes_version}}
    return [
        Layer(cloud_file, cloud_values),
        Layer(cluster.path, derived),
        Layer(cluster.path, cluster.overrides, prefix=("values",)),
    ]


def _get_path(values: Any, path: list[Any]) -> tuple[bool, Any]:
    for part in path:
        if (isinstance(values, dict) and part in values) or (
            isinstance(values, list) and isinstance(part, int) and part < len(values)
        ):
            values = values[part]
        else:
            return False, None
    return True, values


def blame(path: list[Any], layers: list[Layer], defaults_file: Path) -> tuple[Path, list[Any]]:
    """Which file set the value at ``path`` last (the file a user must fix), and the key path in that file."""
    for depth in range(len(path), 0, -1):
        for layer in reversed(layers):
            found, _ = _get_path(layer.values, path[:depth])
            if found:
                return layer.file, [*layer.prefix, *path]
    return defaults_file, path


def validate_values(effective: dict[str, Any], layers: list[Layer], schema: dict[str, Any]) -> None:
    """Check the effective values against the chart's schema; the first error names its file and key path."""
    errors = _schema_errors(effective, schema)
    if not errors:
        check_semantics(effective, layers)
        return
    # The most specific error first: jsonschema reports "if/then" failures at the parent, the cause deeper.
    err = max(errors, key=lambda e: len(e.absolute_path))
    for candidate in errors:
        if candidate.context:
            deepest = max(candidate.context, key=lambda e: len(e.absolute_path))
            if len(deepest.absolute_path) >= len(err.absolute_path):
                err = deepest
    path, message = explain(err)
    file, path = blame(path, layers, CHART_DIR / "values.yaml")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise UserError(f"{message}{more}", file=file, key_path=key_path_str(path))


def explain(err: jsonschema.ValidationError) -> tuple[list[Any], str]:
    """The key path and message a user should see: an unknown key is named in the path itself, with the
    keys that are allowed there."""
    path = list(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        unknown = sorted(k for k in err.instance if k not in allowed)
        if unknown and allowed:
            return [*path, unknown[0]], f"unknown key {unknown[0]!r}; expected one of: {', '.join(allowed)}"
    return path, err.message


def check_semantics(effective: dict[str, Any], layers: list[Layer]) -> None:
    """Rules a JSON schema cannot express (comparisons between keys), with the same file/key-path errors."""
    for name, group in (effective.get("dask", {}).get("workerGroups") or {}).items():
        scaling = (group or {}).get("autoscaling") or {}
        low, high = scaling.get("minReplicas"), scaling.get("maxReplicas")
        if low is not None and high is not None and low > high:
            path = ["dask", "workerGroups", name, "autoscaling", "minReplicas"]
            file, path = blame(path, layers, CHART_DIR / "values.yaml")
            raise UserError(
                f"minReplicas {low} is greater than maxReplicas {high}", file=file, key_path=key_path_str(path)
            )
