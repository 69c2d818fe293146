"""A real kube-apiserver + etcd on free loopback ports (the envtest shape: no kubelet, no Docker).

``start_control_plane`` starts both from the assets scripts/envtest.sh provides (KUBEBUILDER_ASSETS, or a cached
build from Debian's packages), waits for /readyz, writes an admin kubeconfig, and always stops the apiserver
before etcd. An existing cluster can be used instead by setting DASK_PLATFORM_TEST_KUBECONFIG.

The tests create custom resources: a KUBEBUILDER_ASSETS apiserver must be one that encodes them (scripts/kube-build.sh
builds with reflect2 1.0.2 and json-iterator 1.1.12 for that; a Debian 1.20 build without them dies on the first).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dask_platform.repo import RepoTree
from testbed.daskproc import free_port

ADMIN_TOKEN = "dask-platform-test-admin"


@dataclass(frozen=True)
class ControlPlane:
    kubeconfig: Path
    server: str
    version: str


def assets() -> Path:
    """The folder with kube-apiserver and etcd (built on first use; raises if that is impossible)."""
    proc = subprocess.run(
        ["bash", str(RepoTree.checkout().root / "scripts/envtest.sh")], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/envtest.sh failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _wait_ready(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kube-apiserver exited:\n{log.read_text()[-3000:]}")
        try:
            request = urllib.request.Request(f"{url}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"kube-apiserver not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def start_control_plane(workdir: Path) -> Iterator[ControlPlane]:
    existing = os.environ.get("DASK_PLATFORM_TEST_KUBECONFIG")
    if existing:
        yield ControlPlane(Path(existing), "", "external")
        return
    folder = assets()
    workdir.mkdir(parents=True, exist_ok=True)
    certs = workdir / "certs"
    certs.mkdir(exist_ok=True)
    subprocess.run(["openssl", "genrsa", "-out", str(certs / "sa.key"), "2048"], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", str(certs / "sa.key"), "-pubout", "-out", str(certs / "sa.pub")],
        check=True,
        capture_output=True,
    )
    (workdir / "tokens.csv").write_text(f"{ADMIN_TOKEN},admin,admin,system:masters\n")
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    etcd_log, api_log = workdir / "etcd.log", workdir / "apiserver.log"
    etcd = api = None
    try:
        etcd = subprocess.Popen(
            [
                str(folder / "etcd"),
                "--data-dir",
                str(workdir / "etcd-data"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer_port}",
            ],
            stdout=etcd_log.open("w"),
            stderr=subprocess.STDOUT,
        )
        api = subprocess.Popen(
            [
                str(folder / "kube-apiserver"),
                "--etcd-servers",
                etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(api_port),
                "--insecure-port",
                "0",
                "--cert-dir",
                str(certs),
                "--token-auth-file",
                str(workdir / "tokens.csv"),
                "--authorization-mode",
                "RBAC",
                "--service-account-key-file",
                str(certs / "sa.pub"),
                "--service-account-signing-key-file",
                str(certs / "sa.key"),
                "--service-account-issuer",
                "https://kubernetes.default.svc",
                "--service-cluster-ip-range",
                "10.0.0.0/24",
                "--disable-admission-plugins",
                "ServiceAccount",
                "--endpoint-reconciler-type",
                "none",
            ],
            stdout=api_log.open("w"),
            stderr=subprocess.STDOUT,
        )
        server = f"https://127.0.0.1:{api_port}"
        _wait_ready(server, 60, api, api_log)
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: envtest\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n"
            f"users:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\n"
            "contexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: admin\n"
            "current-context: envtest\n"
        )
        yield ControlPlane(kubeconfig, server, "1.20")
    finally:
        _stop(api)  # the apiserver first: stopping etcd first makes it hang for ~25 s
        _stop(etcd)
        shutil.rmtree(workdir / "etcd-data", ignore_errors=True)
