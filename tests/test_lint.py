"""Static checks: ruff on the Python, yamllint on the YAML, and the architecture rules: jobs/ imports nothing of the
tooling, the product (dask_platform) nothing of the test bed, the test bed lives outside the product and the wheel,
no cloud branch outside dask_platform/clouds/, nothing edits sys.path, scripts/ holds only thin entry points,
functions stay short."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import yaml

import dask_platform
from tests.support.repo import REPO

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


def imported_modules(path: Path) -> list[str]:
    """The absolute modules ``path`` imports, and the strings naming a module to run or import (``-m testbed.x``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def offenders_of(folder: Path, forbidden: set[str]) -> list[str]:
    return [
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path in sorted(folder.rglob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[0] in forbidden
    ]


# What is not the product: the test bed (testbed/), the tests and the benchmarks. Neither the tooling nor the jobs
# may import them: they are not in the wheel or the image.
NOT_THE_PRODUCT = {"testbed", "tests", "benchmarks"}


# The clouds the tool knows; what differs between them lives in dask_platform/clouds/<cloud>.py (docs/clouds.md).
CLOUD_NAMES = {"aws", "gcp", "azure", "minikube"}


def cloud_branches(source: str) -> list[int]:
    """The lines of ``source`` that compare something with a cloud's name (``cloud == "aws"``, ``in ("gcp", ...)``)
    or key a dict literal by one: a branch on the cloud, which belongs in the cloud's module."""

    def named(node: ast.AST) -> bool:
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(named(e) for e in node.elts)
        return isinstance(node, ast.Constant) and node.value in CLOUD_NAMES

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
        elif isinstance(node, ast.Dict):
            parts = [k for k in node.keys if k is not None]
        else:
            continue
        if any(named(part) for part in parts):
            lines.append(node.lineno)
    return lines


def test_no_cloud_branch_outside_the_clouds_package():
    """Generic code asks the cluster's ``Cloud`` (dask_platform/clouds/) and never compares cloud names."""
    package = REPO_ROOT / "dask_platform"
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in sorted(package.rglob("*.py"))
        if (package / "clouds") not in path.parents
        for line in cloud_branches(path.read_text())
    ]
    assert offenders == []


def test_the_cloud_branch_rule_sees_comparisons_and_dict_keys():
    """The rule above can fail: it finds the shapes the tool's cloud branches had before dask_platform/clouds/."""
    source = 'if cluster.cloud == "aws":\n    pass\nLABEL = {"gcp": "x"}\nok = c in ("azure", "minikube")\nx = "aws"\n'
    assert cloud_branches(source) == [1, 3, 4]


def test_jobs_import_nothing_from_the_tooling():
    """jobs/ runs on the workers: no tooling, Kubernetes or helm libraries, and nothing that is not shipped."""
    forbidden = {"dask_platform", "scripts", "kubernetes", "pyhelm3", "kr8s", "click"} | NOT_THE_PRODUCT
    assert offenders_of(REPO_ROOT / "jobs", forbidden) == []


def test_the_product_imports_nothing_of_the_test_bed():
    """dask_platform is what users install: it never imports (or runs with -m) the test bed, tests or benchmarks."""
    assert offenders_of(REPO_ROOT / "dask_platform", NOT_THE_PRODUCT) == []
    runs = [
        f"{path.relative_to(REPO_ROOT)}: {node.value}"
        for path in sorted((REPO_ROOT / "dask_platform").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.split(".")[0] in NOT_THE_PRODUCT
        and node.value.replace(".", "").replace("_", "").isalnum()
    ]
    assert runs == []


def test_the_test_bed_is_outside_the_product_package():
    """The single-node cluster and the harness are testbed/, a sibling of dask_platform/; no product module is
    named like the test bed (node, nodes, testbed)."""
    import testbed
    import testbed.node

    assert Path(testbed.__file__).parent == REPO_ROOT / "testbed"
    assert (REPO_ROOT / "dask_platform") not in Path(testbed.node.__file__).parents
    product = [p for p in (REPO_ROOT / "dask_platform").rglob("*") if "__pycache__" not in p.parts]
    named_like_it = [str(p.relative_to(REPO_ROOT)) for p in product if p.name.startswith(("node", "testbed"))]
    assert named_like_it == []
    assert list((REPO_ROOT / "dask_platform").rglob("*.c")) == [], "C sources (the node's pause.c) are the test bed's"


def test_the_test_bed_finds_the_checkout_in_one_place():
    """testbed.CHECKOUT is the checkout's root; no other test-bed module counts parent folders of its own file (a
    count that silently breaks when a module moves: Azurite's path did, and its tests were skipped)."""
    counted = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted((REPO_ROOT / "testbed").rglob("*.py"))
        if path.name != "__init__.py" or path.parent.name != "testbed"
        if re.search(r"__file__\)(\.resolve\(\))?\.(parents\[|parent\.parent)", path.read_text())
    ]
    assert counted == []


def test_the_package_docstring_lists_its_modules():
    """dask_platform/__init__.py's module list names every module and subpackage, and nothing else."""
    listed = set(re.findall(r"^    (\w+/?)  ", dask_platform.__doc__, re.MULTILINE))
    present = {p.stem for p in (REPO_ROOT / "dask_platform").glob("*.py")} - {"__init__", "__main__"}
    present |= {f"{p.name}/" for p in (REPO_ROOT / "dask_platform").iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert listed == present


def test_the_cli_docstring_names_its_commands():
    """cli.py's docstring names exactly the commands `dask-platform --help` lists."""
    from dask_platform import cli

    named = re.search(r"lists the commands \(([^)]*)\)", cli.__doc__).group(1)
    assert {c.strip() for c in named.split(",")} == set(cli.main.commands)


def test_the_wheel_ships_the_product_and_the_jobs_only(tmp_path: Path):
    """Built from a copy of the working tree as pip builds it: dask_platform/ and jobs/, no test bed or tests."""
    source = tmp_path / "src"
    for rel in clone_files():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes((REPO_ROOT / rel).read_bytes())
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run([*cmd, "--disable-pip-version-check", "-w", str(tmp_path), str(source)], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == {"dask_platform", "jobs"}
    assert "dask_platform/clouds/aws.yaml" in names  # the node group data (package-data)
    test_bed = [n for n in names if any(p.startswith(("node", "testbed")) for p in PurePosixPath(n).parts)]
    assert test_bed == []


def clone_files() -> list[str]:
    """Every file git tracks (or would), as relative paths: what a fresh clone holds."""
    tracked = run("git", "ls-files", "--cached", "--others", "--exclude-standard").stdout.splitlines()
    return [p for p in tracked if (REPO_ROOT / p).is_file()]


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
# The two test-bed functions came from tests/support/ (where the rule does not apply) unchanged; to be split.
LONG_FUNCTIONS_ALLOWED = {
    "jobs/rossmann/data.py::generate",
    "testbed/boot.py::boot",
    "testbed/envtest.py::start_control_plane",
}
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
        # or the chart's files it renders as they are (the operator's CRDs, generated from the wheel)
        for pattern in re.findall(r'\.Files\.Glob "([^"]+)"', text):
            kinds |= {yaml.safe_load(f.read_text())["kind"] for f in (templates.parent).glob(pattern)}
        if "/" not in rel or path.suffix != ".yaml" or {k.lower() for k in kinds} != {path.stem}:
            misplaced.append(f"{rel}: {sorted(kinds)}")
    assert misplaced == []
