"""Jupyter's TLS, for real: the rendered JupyterLab command and arguments, run here with a certificate made the way
`dask-platform jupyter-token` makes it, answer HTTPS that verifies for the Service's cluster name, and nothing else."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dask_platform.bootstrap import build_self_signed_tls, jupyter_secrets
from tests.support.repo import REPO, objects_of

pytestmark = pytest.mark.helm

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_api(port: int, context: ssl.SSLContext | None, server_name: str) -> int:
    """GET /api with the TLS name ``server_name`` (the cluster's DNS name) on 127.0.0.1; returns the status."""
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), 10), server_hostname=server_name)
    conn.request("GET", "/api")
    return conn.getresponse().status


def test_rendered_jupyter_serves_tls_for_its_service_name(rendered, tmp_path: Path):
    deployment = objects_of(rendered["aws-example"], "Deployment")["dask-jupyter"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    wanted = jupyter_secrets(REPO, "aws-example")
    assert wanted.tls_secret == "jupyter-tls" and "dask-jupyter.dask.svc" in wanted.tls_hosts
    cert, key = build_self_signed_tls(wanted.tls_hosts, datetime.now(UTC))
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls/tls.crt").write_bytes(cert)
    (tmp_path / "tls/tls.key").write_bytes(key)
    port = free_port()
    args = [a.replace(mount["mountPath"], str(tmp_path / "tls")) for a in container["args"]]
    args = [a for a in args if not a.startswith(("--ServerApp.ip=", "--ServerApp.port=", "--ServerApp.root_dir="))]
    args += ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--ServerApp.root_dir={tmp_path}"]
    args += ["--allow-root"] if os.geteuid() == 0 else []  # the pod runs as uid 1000; CI runs as root
    env = {**os.environ, "HOME": str(tmp_path), "JUPYTER_TOKEN": "t0ken", "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    command = [str(BIN / container["command"][0]), *container["command"][1:], *args]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        trusted = ssl.create_default_context(cadata=cert.decode())
        deadline = time.monotonic() + 90
        while True:
            try:
                status = get_api(port, trusted, "dask-jupyter.dask.svc")
                break
            except (ConnectionRefusedError, ssl.SSLEOFError, OSError):
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "jupyter did not start"
                time.sleep(0.5)
        assert status == 200
        with pytest.raises(ssl.SSLCertVerificationError):  # a name the certificate does not carry
            get_api(port, trusted, "jupyter.example.com")
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that does not trust this certificate
            get_api(port, ssl.create_default_context(), "dask-jupyter.dask.svc")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)):
            get_api(port, None, "")  # plain HTTP gets no answer
    finally:
        proc.terminate()
        proc.wait(30)


def test_every_cloud_example_serves_tls_and_minikube_plain_http(rendered):
    for name, r in rendered.items():
        service = objects_of(r, "Service")["dask-jupyter"]
        [port] = service["spec"]["ports"]
        tls = r.values.effective["jupyter"]["tls"]["secretName"]
        assert bool(tls) == (name != "minikube")
        assert (port["name"], port["port"]) == (("https-jupyter", 443) if tls else ("http-jupyter", 80))
