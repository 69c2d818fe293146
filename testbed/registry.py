"""A small OCI registry on 127.0.0.1 over TLS, with the token authentication of the distribution spec
(https://distribution.github.io/distribution/spec/auth/token/): /v2/ answers 401 with a Bearer challenge, the token
endpoint hands an anonymous client a token too, and a repository under ``private/`` serves its manifests only to a
token issued for the user's Basic credentials. Enough for ``docker manifest inspect`` to ask it what a kubelet or a
logged-in workflow would ask GitHub's registry."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

USER, PASSWORD = "ci", "secret"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + hashlib.sha256(CONFIG).hexdigest(),
            "size": len(CONFIG),
        },
        "layers": [],
    }
).encode()


@dataclass(frozen=True)
class Registry:
    host: str  # localhost:<port>
    cert: Path  # the server's self-signed certificate (for SSL_CERT_FILE)
    tags: frozenset[str]  # "<repository>:<tag>" that exist

    def docker_config(self, folder: Path) -> Path:
        """A Docker configuration folder holding the user's login to this registry (what `docker login` writes)."""
        folder.mkdir(parents=True, exist_ok=True)
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (folder / "config.json").write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        return folder


def handler(tags: frozenset[str]) -> type[BaseHTTPRequestHandler]:
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, code: int, body: bytes = b"{}", ctype: str = "application/json", extra: dict | None = None):
            self.send_response(code)
            for key, value in {"Content-Type": ctype, "Content-Length": str(len(body)), **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path, auth = urlparse(self.path).path, self.headers.get("Authorization", "")
            if path == "/token":
                if auth and auth != basic:
                    return self.reply(401)
                return self.reply(200, json.dumps({"token": "user" if auth else "anonymous"}).encode())
            realm = f'Bearer realm="https://{self.headers["Host"]}/token",service="test"'
            if auth not in ("Bearer user", "Bearer anonymous"):
                return self.reply(401, extra={"WWW-Authenticate": realm})
            if path == "/v2/":
                return self.reply(200)
            name, _, rest = path[len("/v2/") :].partition("/manifests/")
            if name.startswith("private/") and auth != "Bearer user":
                return self.reply(401, b'{"errors":[{"code":"DENIED"}]}', extra={"WWW-Authenticate": realm})
            if rest and f"{name}:{rest}" in tags:
                digest = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
                return self.reply(
                    200, MANIFEST, "application/vnd.oci.image.manifest.v1+json", {"Docker-Content-Digest": digest}
                )
            if "/blobs/" in path:
                return self.reply(200, CONFIG, "application/octet-stream")
            return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

    return Handler


@contextmanager
def running_registry(folder: Path, tags: set[str]) -> Iterator[Registry]:
    """Serve ``tags`` ("<repository>:<tag>") until the block ends; the certificate is made with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [*openssl, "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(frozenset(tags)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Registry(f"localhost:{server.server_address[1]}", cert, frozenset(tags))
    finally:
        server.shutdown()
        server.server_close()
