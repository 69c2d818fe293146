"""Static checks: ruff on the Python, yamllint on the YAML, architecture rules on imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from scripts.common import REPO_ROOT

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)


def test_ruff():
    proc = run(str(BIN / "ruff"), "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format():
    proc = run(str(BIN / "ruff"), "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint():
    proc = run(str(BIN / "yamllint"), "--strict", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_jobs_import_nothing_from_the_tooling():
    """jobs/ runs on the workers: no scripts/, Kubernetes or helm libraries."""
    forbidden = {"scripts", "kubernetes", "pyhelm3", "kr8s", "click"}
    offenders = []
    for path in (REPO_ROOT / "jobs").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []
