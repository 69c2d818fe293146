"""Images for the test node, built here without a registry and imported into its containerd:

- the pod sandbox ("pause"): our own pause.c, static, in an otherwise empty image;
- the base: a Debian bookworm root filesystem (mmdebstrap, minbase) with Python 3.11 and pip, standing in for
  python:3.11-slim-bookworm (Debian's EXTERNALLY-MANAGED marker removed, as in that image: pip installs into
  /usr/local);
- the platform image: docker/Dockerfile itself, built by buildah with BASE_IMAGE pointing at that base, and pip's
  CA bundle of this machine passed as a build secret (nothing of it stays in the image).

Each is rebuilt only when its inputs change (a content key beside the archive, under the node's state folder).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from testbed.node.config import Layout

PAUSE_IMAGE = "localhost/dask-platform-node/pause:1"
BASE_IMAGE = "localhost/dask-platform-node/python-base:bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates", "passwd")


@dataclass(frozen=True)
class Buildah:
    """buildah with a private storage, so the machine's own container storage is never touched."""

    layout: Layout

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        root = self.layout.state / "buildah"
        cmd = ["buildah", "--root", str(root / "storage"), "--runroot", str(self.layout.run / "buildah"), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
        if proc.returncode != 0:
            raise UserError(f"buildah {args[0]} failed: {(proc.stderr or proc.stdout)[-3000:]}")
        return proc


def content_key(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def pip_cert() -> str | None:
    """The CA bundle this machine's pip uses (its config or PIP_CERT), for the image build."""
    proc = subprocess.run(["python3", "-m", "pip", "config", "get", "global.cert"], capture_output=True, text=True)
    cert = os.environ.get("PIP_CERT") or (proc.stdout.strip() if proc.returncode == 0 else "")
    return cert if cert and Path(cert).is_file() else None


def archive(layout: Layout, name: str) -> Path:
    return layout.state / "images" / f"{name}.tar"


def push_archive(buildah: Buildah, image: str, dest: Path) -> None:
    """Write ``image`` to the docker-archive ``dest``, replacing an older build atomically (buildah refuses to add
    to an existing archive, and a half-written one must never be imported)."""
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    buildah("push", image, f"docker-archive:{partial}:{image}")
    os.replace(partial, dest)


def built(layout: Layout, name: str, key: str) -> bool:
    stamp = layout.state / "images" / f"{name}.key"
    return archive(layout, name).is_file() and stamp.is_file() and stamp.read_text() == key


def mark_built(layout: Layout, name: str, key: str) -> None:
    (layout.state / "images" / f"{name}.key").write_text(key)


def build_pause(layout: Layout, echo: Callable[[str], None]) -> Path:
    source = Path(__file__).with_name("pause.c")
    key = content_key(source.read_bytes())
    if built(layout, "pause", key):
        return archive(layout, "pause")
    echo("building the pause image")
    work = layout.state / "images" / "pause-build"
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(work / "pause"), str(source)], check=True)
    buildah = Buildah(layout)
    ctr = buildah("from", "scratch").stdout.strip()
    try:
        buildah("copy", ctr, str(work / "pause"), "/pause")
        buildah("config", "--entrypoint", '["/pause"]', ctr)
        buildah("commit", ctr, PAUSE_IMAGE)
    finally:
        buildah("rm", ctr)
    push_archive(buildah, PAUSE_IMAGE, archive(layout, "pause"))
    mark_built(layout, "pause", key)
    return archive(layout, "pause")


def debian_source() -> str:
    """One-line apt source for bookworm main from this machine's own apt configuration."""
    stanza = subprocess.run(
        ["bash", str(RepoTree.checkout().root / "scripts/apt-sources.sh"), "bookworm"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    uri = next(line.split()[1] for line in stanza.splitlines() if line.startswith("URIs:"))
    return f"deb {uri} bookworm main"


def build_base(layout: Layout, echo: Callable[[str], None]) -> None:
    key = content_key(" ".join(BASE_PACKAGES).encode())
    stamp = layout.state / "images" / "python-base.key"
    exists = (
        subprocess.run(
            [
                "buildah",
                "--root",
                str(layout.state / "buildah" / "storage"),
                "--runroot",
                str(layout.run / "buildah"),
                "inspect",
                "--type",
                "image",
                BASE_IMAGE,
            ],
            capture_output=True,
        ).returncode
        == 0
    )
    if exists and stamp.is_file() and stamp.read_text() == key:
        return
    echo("building the Debian bookworm + Python base image (mmdebstrap, about 2 minutes)")
    rootfs = layout.state / "images" / "python-base-rootfs.tar"
    hooks = [
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
        'ln -sf python3 "$1"/usr/bin/python',
        'ln -sf pip3 "$1"/usr/bin/pip',
        'rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*',  # no registry inside the image
    ]
    cmd = ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}"]
    cmd += [f"--customize-hook={hook}" for hook in hooks]
    proc = subprocess.run([*cmd, "bookworm", str(rootfs), debian_source()], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"mmdebstrap failed: {proc.stderr[-3000:]}")
    buildah = Buildah(layout)
    ctr = buildah("from", "scratch").stdout.strip()
    try:
        buildah("add", ctr, str(rootfs), "/")
        buildah("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ctr)
        buildah("config", "--cmd", "python3", ctr)
        buildah("commit", ctr, BASE_IMAGE)
    finally:
        buildah("rm", ctr)
    rootfs.unlink()
    mark_built(layout, "python-base", key)


def build_platform(tree: RepoTree, layout: Layout, image: str, echo: Callable[[str], None]) -> Path:
    """docker/Dockerfile built by buildah over the local base; returns the archive to import."""
    key = content_key(image.encode())  # the tag carries the hash of the image's inputs (environment.build_id)
    if built(layout, "platform", key):
        return archive(layout, "platform")
    build_base(layout, echo)
    echo(f"building {image} from docker/Dockerfile (buildah, a few minutes)")
    args = ["bud", "--pull=never", "--layers=false", "-f", str(tree.dockerfile), "-t", image]
    args += ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
    cert = pip_cert()
    if cert:
        args += ["--secret", f"id=cacert,src={cert}"]
    buildah = Buildah(layout)
    buildah(*args, str(tree.root))
    push_archive(buildah, image, archive(layout, "platform"))
    mark_built(layout, "platform", key)
    return archive(layout, "platform")


def import_image(layout: Layout, name: str) -> None:
    """Import archive ``name`` into the node's containerd (namespace k8s.io), unless this build of it already is."""
    stamp = layout.state / "images" / f"{name}.imported"
    key = (layout.state / "images" / f"{name}.key").read_text()
    if stamp.is_file() and stamp.read_text() == key:
        return
    ctr = ["ctr", "--address", str(layout.containerd_socket), "-n", "k8s.io", "images", "import"]
    proc = subprocess.run([*ctr, str(archive(layout, name))], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"ctr images import {name} failed: {proc.stderr[-2000:]}")
    stamp.write_text(key)
