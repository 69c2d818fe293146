"""Shared plumbing of the tooling: repository paths, user-facing errors, YAML reading, atomic writes."""

from __future__ import annotations

import difflib
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = REPO_ROOT / "charts" / "dask-platform"
VALUES_DIR = REPO_ROOT / "values"
CLUSTERS_DIR = REPO_ROOT / "clusters"


class UserError(Exception):
    """Bad input from a user: printed as one line (file, key path, what was expected), exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, file: Path | str | None = None, key_path: str | None = None):
        self.file = Path(file) if file is not None else None
        self.key_path = key_path
        self.detail = message
        super().__init__(self.format())

    def format(self) -> str:
        where = []
        if self.file is not None:
            where.append(display_path(self.file))
        if self.key_path:
            where.append(f"key {self.key_path}")
        return f"{': '.join(where)}: {self.detail}" if where else self.detail


def display_path(path: Path | str) -> str:
    """A path relative to the repository when it is inside it, else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def key_path_str(parts: Iterable[Any]) -> str:
    """('dask', 'workerGroups', 'gpu', 'replicas') -> 'dask.workerGroups.gpu.replicas'; list items as [i]."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


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


def load_yaml_file(path: Path) -> Any:
    """Read a YAML file; a missing file or bad YAML is a UserError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError("file not found", file=path) from None
    return parse_yaml(text, path)


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once: readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unified_diff(old: str, new: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"{name} (committed)", f"{name} (rendered)")
    )


F = TypeVar("F", bound=Callable[..., Any])


def report_user_errors(func: F) -> F:
    """Decorate a CLI command: a UserError prints one line to stderr and exits 2, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def clusters_dir_option(func: F) -> F:
    """The --clusters-dir option the commands that read clusters/ share (tests point it at a scratch copy)."""
    return click.option(
        "--clusters-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=CLUSTERS_DIR,
        show_default=True,
        help="Folder of the cluster folders (values/ is its sibling).",
    )(func)
