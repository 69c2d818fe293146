"""The repository's tree as one object: where the chart, the values, the clusters and the generated files are.

Every function that reads or writes the repository takes a ``RepoTree`` instead of deriving paths itself, so a
test (or a reviewer's scratch checkout) points the whole tooling at another folder with one argument. A tree may
carry unsaved edits (``with_text``): reading through it sees the edited text, which is how a values change is
validated on the real paths before anything is written.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from dask_platform.errors import CHECKOUT, UserError


@dataclass(frozen=True)
class RepoTree:
    root: Path
    edits: dict[Path, str] = field(default_factory=dict, compare=False)

    @classmethod
    def checkout(cls) -> RepoTree:
        """The checkout this package is installed from (``scripts/dev`` installs it in editable mode)."""
        return cls(CHECKOUT)

    # --- where things are ------------------------------------------------------------------------------

    @property
    def chart(self) -> Path:
        return self.root / "charts" / "dask-platform"

    @property
    def values_dir(self) -> Path:
        return self.root / "values"

    @property
    def clusters_dir(self) -> Path:
        return self.root / "clusters"

    @property
    def cluster_schema(self) -> Path:
        return self.clusters_dir / "cluster.schema.yaml"

    @property
    def argocd_dir(self) -> Path:
        return self.root / "argocd"

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def dockerfile(self) -> Path:
        return self.root / "docker" / "Dockerfile"

    @property
    def dask_config(self) -> Path:
        """The Dask configuration of the worker processes: the image's /etc/dask/dask.yaml, and the embedded
        cluster's."""
        return self.root / "docker" / "dask.yaml"

    @property
    def conda_environment(self) -> Path:
        return self.root / "binder" / "environment.yml"

    @property
    def image_lock(self) -> Path:
        return self.root / "requirements" / "image.txt"

    @property
    def all_features_values(self) -> Path:
        """Values that turn every optional chart feature on (what the AppProject must allow)."""
        return self.chart / "scenarios" / "all-features-values.yaml"

    @property
    def crd_dir(self) -> Path:
        """The npm project whose packages carry the CRD schemas (Argo CD, KEDA, prometheus-operator)."""
        return self.root / "scripts" / "crd"

    def values_file(self, cloud: str) -> Path:
        return self.values_dir / f"{cloud}.yaml"

    def cluster_file(self, name: str) -> Path:
        return self.clusters_dir / name / "cluster.yaml"

    def rendered_dir(self, name: str) -> Path:
        return self.clusters_dir / name / "rendered"

    def application_file(self, name: str) -> Path:
        """The cluster's generated Application: application-in-cluster.yaml for a cluster that runs its own Argo CD,
        else application.yaml (dask_platform/argocd.py application_path writes them)."""
        own = self.clusters_dir / name / "application-in-cluster.yaml"
        return own if own.exists() else self.clusters_dir / name / "application.yaml"

    def rel(self, path: Path) -> str:
        """``path`` as the repository names it (clusters/minikube/cluster.yaml), whichever folder the tree is in."""
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)

    # --- reading (through unsaved edits) ----------------------------------------------------------------

    def with_text(self, path: Path, text: str) -> RepoTree:
        """This tree with ``path`` reading as ``text`` (nothing is written)."""
        return replace(self, edits={**self.edits, path: text})

    def read_text(self, path: Path) -> str:
        if path in self.edits:
            return self.edits[path]
        try:
            return path.read_text()
        except FileNotFoundError:
            raise UserError("file not found", file=path) from None

    def load_yaml(self, path: Path) -> Any:
        """One YAML document; a missing file or a syntax error is a UserError naming the file."""
        return parse_yaml(self.read_text(path), path)

    def load_mapping(self, path: Path) -> dict[str, Any]:
        data = self.load_yaml(path)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise UserError("expected a mapping at the top level", file=path)
        return data

    def tool_settings(self, *keys: str) -> dict[str, Any]:
        """``[tool.dask-platform.<keys>]`` of pyproject.toml."""
        data = tomllib.loads(self.read_text(self.pyproject)).get("tool", {}).get("dask-platform", {})
        for key in keys:
            data = data.get(key, {})
        return data

    def cluster_names(self) -> list[str]:
        return sorted(p.parent.name for p in self.clusters_dir.glob("*/cluster.yaml"))

    def clouds(self) -> list[str]:
        return sorted(p.stem for p in self.values_dir.glob("*.yaml"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate mapping keys, as helm's YAML parser does."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: Path | str) -> Any:
    """Parse one YAML document; syntax errors become a UserError naming the file, line and column."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"YAML syntax error: {where}{problem}", file=source) from None
