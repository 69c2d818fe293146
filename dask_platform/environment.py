"""The runtime environment's single source of truth, and everything derived from it (`dask-platform versions`).

pyproject.toml holds the pinned runtime packages ([project] dependencies, the notebook and gpu extras), the Python
version and the image repository ([tool.dask-platform]). From them this module derives:

- the platform image tag, ``<dask version>-py<python>-<build>`` (GPU variant: ``...-gpu``), where ``<build>`` is a
  hash of everything the image is built from (image_inputs): a changed lock, Dockerfile or Dask configuration gives
  a new tag, so every build is addressable, nodes never run two builds under one tag, and a changed image rolls the
  pods. The image is the environment only: it carries no job code (the submitter ships its ``jobs`` package,
  jobs/shipping.py), so a job edit changes no generated file and restarts no scheduler or JupyterLab;
- the charts' ``appVersion`` (the Dask version: the platform release the labels carry) and
  ``global.image.{repository,tag}`` defaults;
- ``binder/environment.yml``, the conda environment for laptops, Binder and repo2docker;
- the Python version the Dockerfile builds from;
- the dask-kubernetes operator's CRDs in the chart, copied from the pinned wheel (dask_platform/daskoperator.py).

    dask-platform versions show      # the derived facts as JSON (CI and the image workflow read this)
    dask-platform versions sync      # rewrite the derived files
    dask-platform versions check     # exit 1 with a diff when a derived file is stale
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from dask_platform.errors import UserError
from dask_platform.generated import AnyOutput, Output
from dask_platform.repo import RepoTree

COMMAND = "versions sync"


@dataclass(frozen=True)
class Environment:
    python: str
    dask: str
    image_repository: str
    pins: dict[str, str]  # the direct runtime pins (dependencies + notebook extra)
    build: str  # hash of the image's inputs (image_inputs)

    @property
    def image_tag(self) -> str:
        return f"{self.dask}-py{self.python}-{self.build}"

    @property
    def gpu_image_tag(self) -> str:
        return f"{self.image_tag}-gpu"


def _pin(requirement: str, source: Path) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.strip())
    if not match:
        raise UserError(f"{requirement!r}: every runtime dependency must be pinned with ==", file=source)
    return match.group(1).lower(), match.group(3)


# What docker/Dockerfile builds the image from, as paths from the repository root, in the order the tag's <build>
# hashes them (each pattern's files sorted). The one list: image_inputs reads it, and the tests check that the
# Dockerfile copies nothing else and that the image workflow's trigger (.github/workflows/image.yml) never leaves a
# file out. The globs mean the same to pathlib and to GitHub's path filters: `*` stays within a folder, `**/` spans
# any number of folders, none included (GitHub's filter pattern cheat sheet: `docs/**/*.md` matches
# `docs/README.md`; https://docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions).
# No job code: jobs/ is not copied into the image (tests/test_environment.py checks that a job edit changes no
# generated file).
IMAGE_INPUT_PATTERNS = (
    "docker/Dockerfile",
    "docker/dask.yaml",
    "requirements/image.txt",
    "requirements/image-gpu.txt",
)


def image_inputs(tree: RepoTree) -> list[Path]:
    """Every file IMAGE_INPUT_PATTERNS matches: the Dockerfile, its Dask configuration and the image locks. A
    pattern that matches nothing is an error (a renamed input would silently leave the hash)."""
    files = []
    for pattern in IMAGE_INPUT_PATTERNS:
        matched = sorted(p for p in tree.root.glob(pattern) if p.is_file())
        if not matched:
            raise UserError(f"no file matches the image input {pattern!r} (IMAGE_INPUT_PATTERNS)", file=tree.root)
        files += matched
    return files


def build_id(tree: RepoTree) -> str:
    """10 hex digits of a SHA-256 over the image inputs' paths and contents."""
    digest = hashlib.sha256()
    for path in image_inputs(tree):
        digest.update(path.relative_to(tree.root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:10]


def load_environment(tree: RepoTree) -> Environment:
    pyproject = tree.pyproject
    data = tomllib.loads(tree.read_text(pyproject))
    project = data["project"]
    settings = data.get("tool", {}).get("dask-platform", {})
    for key in ("python", "image"):
        if key not in settings:
            raise UserError("missing setting", file=pyproject, key_path=f"tool.dask-platform.{key}")
    pins = dict(_pin(r, pyproject) for r in project["dependencies"])
    pins.update(_pin(r, pyproject) for r in project.get("optional-dependencies", {}).get("notebook", []))
    if "dask" not in pins:
        raise UserError("dask must be pinned", file=pyproject, key_path="project.dependencies")
    return Environment(settings["python"], pins["dask"], settings["image"], pins, build_id(tree))


def read_lock(path: Path) -> dict[str, str]:
    """name -> version of a pip requirements file written by uv pip compile."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "==" in line:
            name, version = line.split("==", 1)
            out[name.split("[")[0].lower()] = version.split(";")[0].strip()
    return out


# --- derived files ------------------------------------------------------------------------------------------


GENERATED = f"# Generated by `dask-platform {COMMAND}` from pyproject.toml and requirements/image.txt; do not edit."


def environment_yml(env: Environment, image_lock: Path) -> str:
    """A conda environment with the same Python and every package of the image lock, pinned."""
    pins = read_lock(image_lock)
    lines = [
        GENERATED,
        "# The platform image's environment for conda users, Binder and repo2docker:",
        "#   conda env create -f binder/environment.yml && conda activate dask-platform",
        "name: dask-platform",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={env.python}",
        "  - pip",
        "  - pip:",
        *[f"      - {name}=={version}" for name, version in sorted(pins.items())],
    ]
    return "\n".join(lines) + "\n"


def _replace_line(text: str, pattern: str, replacement: str, source: Path) -> str:
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise UserError(f"expected a line matching {pattern!r}", file=source)
    return new


def chart_yaml(env: Environment, text: str, source: Path) -> str:
    return _replace_line(text, r"^appVersion: .*$", f'appVersion: "{env.dask}"', source)


def chart_values(env: Environment, text: str, source: Path) -> str:
    """Set global.image.repository and tag: the first ``image:`` block under ``global:``."""
    block = re.search(r"^global:\n(?:  .*\n|\n)*?  image:\n((?:    .*\n)+)", text, flags=re.MULTILINE)
    if not block:
        raise UserError("expected global.image", file=source)
    body = block.group(1)
    body = _replace_line(body, r"^    repository: .*$", f"    repository: {env.image_repository}", source)
    body = _replace_line(body, r"^    tag: .*$", f'    tag: "{env.image_tag}"', source)
    return text[: block.start(1)] + body + text[block.end(1) :]


def dockerfile(env: Environment, text: str, source: Path) -> str:
    return _replace_line(text, r"^ARG PLATFORM_PYTHON=.*$", f"ARG PLATFORM_PYTHON={env.python}", source)


def version_outputs(tree: RepoTree) -> list[AnyOutput]:
    """Every file (or line of a file) derived from the pins, with the text it should have: also the
    dask-kubernetes operator's CRDs, copied from the pinned wheel (dask_platform/daskoperator.py)."""
    from dask_platform import daskoperator

    env = load_environment(tree)
    values_file = tree.chart / "values.yaml"
    charts = [tree.chart / "Chart.yaml", *sorted(tree.chart.glob("charts/*/Chart.yaml"))]
    return [
        *(Output(chart, chart_yaml(env, tree.read_text(chart), chart)) for chart in charts),
        Output(values_file, chart_values(env, tree.read_text(values_file), values_file)),
        Output(tree.dockerfile, dockerfile(env, tree.read_text(tree.dockerfile), tree.dockerfile)),
        Output(tree.conda_environment, environment_yml(env, tree.image_lock)),
        daskoperator.crd_output(tree, env.pins[daskoperator.PACKAGE]),
    ]
