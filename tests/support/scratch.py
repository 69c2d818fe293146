"""A scratch copy of the repository: every file git tracks (or would), as a fresh git repository with one commit, plus a
link to the installed CRD-schema packages. Tests change it freely; the tooling reads it through a RepoTree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from dask_platform.repo import RepoTree

CHECKOUT = RepoTree.checkout()


def tracked_files(root: Path) -> list[str]:
    """Files git tracks, and new ones it does not ignore: the working tree as a commit would take it."""
    command = ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    out = subprocess.run(command, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True)


def scratch_copy(dest: Path) -> RepoTree:
    """Copy the working-tree version of every tracked file to ``dest`` and commit it there."""
    for rel in tracked_files(CHECKOUT.root):
        src = CHECKOUT.root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    modules = CHECKOUT.crd_dir / "node_modules"
    if modules.is_dir():
        (dest / "scripts/crd/node_modules").symlink_to(modules)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "base")
    return RepoTree(dest)


def render_with(tree: RepoTree, helm: Path, name: str, values: dict) -> Any:
    """Cluster ``name`` of a scratch ``tree`` rendered with ``values`` as its cluster.yaml `values:` (replaced)."""
    import yaml

    from dask_platform.render import render_clusters

    path = tree.cluster_file(name)
    settings = yaml.safe_load(path.read_text())
    settings["values"] = values
    path.write_text(yaml.safe_dump(settings))
    [rendered] = render_clusters(tree, [name], helm)
    return rendered
