"""User-facing errors: one line that names the file, the key path and what was expected; exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

CHECKOUT = Path(__file__).resolve().parent.parent


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


class VersionMismatch(UserError):
    """Client and cluster run versions that cannot exchange pickled tasks: exit code 3."""

    exit_code = 3


def display_path(path: Path | str) -> str:
    """A path relative to the checkout (or to the working folder) when it is inside it, else as given."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    resolved = path.resolve()
    for base in (CHECKOUT, Path.cwd()):
        if resolved.is_relative_to(base):
            return str(resolved.relative_to(base))
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


F = TypeVar("F", bound=Callable[..., Any])


def report_user_errors(func: F) -> F:
    """Decorate a CLI command: a UserError prints one line to stderr and exits with its code, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
