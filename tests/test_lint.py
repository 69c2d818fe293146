"""Static checks: ruff on the Python, yamllint on the YAML, and the architecture rules: jobs/ imports nothing of the
tooling, nothing edits sys.path, scripts/ holds only thin entry points, functions stay short."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

REPO_ROOT = REPO.root

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
    """jobs/ runs on the workers: no tooling, Kubernetes or helm libraries."""
    forbidden = {"dask_platform", "scripts", "kubernetes", "pyhelm3", "kr8s", "click"}
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


def python_files() -> list[Path]:
    tracked = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py").stdout.split()
    return [REPO_ROOT / p for p in tracked if (REPO_ROOT / p).is_file()]


def test_nothing_edits_sys_path():
    """The tooling is an installed package: no module reaches others by editing the import path."""
    edits = ("sys.path.insert", "sys.path.append", "sys.path[:0]", "site.addsitedir")
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in python_files()
        if path != Path(__file__) and any(e in path.read_text() for e in edits)
    ]
    assert offenders == []


def test_scripts_are_thin_entry_points():
    """scripts/*.py only hand over to the dask_platform package."""
    for path in sorted((REPO_ROOT / "scripts").glob("*.py")):
        tree = ast.parse(path.read_text())
        imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert imports and all(n.module.startswith("dask_platform") for n in imports), path
        assert len([n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]) == 0, path


# Data generators may be long: one function that lays out a whole synthetic data set reads best in one place.
LONG_FUNCTIONS_ALLOWED = {"jobs/rossmann/data.py::generate"}
MAX_FUNCTION_LINES = 60


def test_no_function_over_60_lines_outside_tests_and_data_generators():
    long = []
    for path in python_files():
        rel = path.relative_to(REPO_ROOT).as_posix()
        if rel.startswith("tests/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{rel}::{node.name}" not in LONG_FUNCTIONS_ALLOWED:
                    long.append(f"{rel}::{node.name} ({lines} lines)")
    assert long == []


def test_the_readme_stays_a_five_minute_read():
    """What it is, the two set-up commands, the layout and links: the manual lives in docs/."""
    size = len((REPO_ROOT / "README.md").read_bytes())
    assert size <= 8000, f"README.md is {size} bytes; move detail to docs/"


def test_the_chart_keeps_one_folder_per_component_and_files_named_after_their_kind():
    """zero-to-jupyterhub's shape: templates/<component>/<kind>.yaml; helpers in _helpers*.tpl files only."""
    import re

    templates = REPO_ROOT / "charts/dask-platform/templates"
    assert not (REPO_ROOT / "charts/dask-platform/charts").exists(), "subcharts are gone: one chart"
    misplaced = []
    for path in sorted(templates.rglob("*")):
        rel = path.relative_to(templates).as_posix()
        if path.is_dir() or rel == "NOTES.txt" or path.name.startswith("_helpers"):
            continue
        text = path.read_text()
        # the literal kind lines, or the helper that writes the whole object (dp.serviceAccount, dp.priorityClass)
        kinds = set(re.findall(r"^kind: (\w+)$", text, flags=re.M)) or set(
            re.findall(r'^\{\{ include "dp\.(\w+)"', text, flags=re.M)
        )
        if "/" not in rel or path.suffix != ".yaml" or {k.lower() for k in kinds} != {path.stem}:
            misplaced.append(f"{rel}: {sorted(kinds)}")
    assert misplaced == []
