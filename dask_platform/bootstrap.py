"""Point an Argo CD at this repository (`dask-platform bootstrap`). Two routes, chosen by cluster.yaml ``argocd``:

    dask-platform bootstrap minikube --dry-run          # print what would be applied
    dask-platform bootstrap minikube                    # a cluster that runs its own Argo CD (argocd.server:
                                                        #   https://kubernetes.default.svc), current kube context
    dask-platform bootstrap --fleet --context mgmt      # the fleet's Argo CD on a management cluster: every
                                                        #   cluster registered there (argocd.name), e.g. aws-example
    dask-platform jupyter-token aws-example --context eks-prod   # then, once per fleet cluster: Jupyter's token

In a cluster of its own it creates Jupyter's token Secret (once), then applies the committed argocd/appproject.yaml
and an ApplicationSet that makes the cluster's Application from the committed clusters/<name>/application.yaml (so a
later change of that file reaches Argo CD from git). For the fleet it applies argocd/appproject.yaml and
argocd/applicationset.yaml as `dask-platform render` wrote them; the token Secret lives in each workload cluster,
which the management cluster's credentials do not reach: `dask-platform jupyter-token`. A fleet cluster is refused
without --fleet (an in-cluster Argo CD knows no cluster by that name), and an in-cluster one with it (in the fleet's
Argo CD, https://kubernetes.default.svc is the management cluster). Argo CD itself must already run (its CRDs are
checked first). The apply is server-side with a fixed field manager, so running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dask_platform.argocd import build_bootstrap_applicationset, in_cluster, load_settings
from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree

FIELD_MANAGER = "dask-platform-bootstrap"


def bootstrap_objects(tree: RepoTree, name: str) -> list[dict[str, Any]]:
    """For a cluster that runs its own Argo CD: the AppProject (covering every cluster) and the ApplicationSet that
    makes this cluster's Application from its committed application.yaml, in apply order."""
    cluster = load_cluster(tree, name)  # a clear error for an unknown or broken cluster
    if not in_cluster(cluster):
        raise UserError(
            f"{name} is synced by the fleet's Argo CD (argocd: {cluster.settings['argocd']}): apply the fleet's "
            "manifests to the management cluster with `dask-platform bootstrap --fleet --context CONTEXT`",
            file=cluster.path,
            key_path="argocd",
        )
    application = tree.load_mapping(tree.application_file(name))
    if application.get("kind") != "Application":
        raise UserError("expected the Application `dask-platform render` writes", file=tree.application_file(name))
    appset = build_bootstrap_applicationset(load_settings(tree), cluster)
    return [tree.load_mapping(tree.argocd_dir / "appproject.yaml"), appset]


def fleet_objects(tree: RepoTree) -> list[dict[str, Any]]:
    """For the fleet's Argo CD: the committed AppProject and root ApplicationSet, in apply order."""
    return [tree.load_mapping(tree.argocd_dir / name) for name in ("appproject.yaml", "applicationset.yaml")]


def server_side_apply(objects: list[dict[str, Any]], api_client: Any, dry_run: bool = False) -> list[str]:
    """Apply ``objects`` with server-side apply; returns one line per object (kind/name: created|configured)."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    dynamic = DynamicClient(api_client)
    lines = []
    for obj in objects:
        try:
            resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            raise UserError(
                f"the cluster has no {obj['kind']} ({obj['apiVersion']}) resource: install Argo CD "
                "first (its CRDs define it)"
            ) from None
        meta = obj["metadata"]
        try:
            existing = resource.get(name=meta["name"], namespace=meta.get("namespace"))
        except ApiException as exc:
            if exc.status != 404:
                raise
            existing = None
        kwargs = {"field_manager": FIELD_MANAGER, "force_conflicts": True}
        if dry_run:
            kwargs["dry_run"] = "All"
        try:
            dynamic.server_side_apply(resource, body=obj, name=meta["name"], namespace=meta.get("namespace"), **kwargs)
        except ApiException as exc:
            raise UserError(
                f"applying {obj['kind']}/{meta['name']} failed: {exc.status} {exc.reason}: {(exc.body or '')[:300]}"
            ) from None
        lines.append(
            f"{obj['kind']}/{meta['name']}: {'configured' if existing else 'created'}"
            f"{' (server dry run)' if dry_run else ''}"
        )
    return lines


def ensure_jupyter_token(api_client: Any, namespace: str, name: str, key: str) -> str | None:
    """Create JupyterLab's login-token Secret when it is missing (the namespace too) and return the new token,
    to be shown once; None when the Secret already exists (its token is never read back). The chart only
    references this Secret: a token rendered into a manifest would sit in git and change on every render."""
    import secrets

    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    if secret_exists(core, namespace, name):
        return None
    try:
        core.create_namespace({"metadata": {"name": namespace}})
    except ApiException as exc:
        if exc.status != 409:
            raise UserError(f"creating namespace {namespace} failed: {exc.status} {exc.reason}") from None
    token = secrets.token_hex(24)
    body = {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "dask-platform"}},
        "type": "Opaque",
        "stringData": {key: token},
    }
    core.create_namespaced_secret(namespace, body)
    return token


@dataclass(frozen=True)
class JupyterSecrets:
    """The Secrets a cluster's Jupyter pod reads and the chart never renders."""

    namespace: str
    token_secret: str
    token_key: str
    tls_secret: str  # "" when Jupyter serves plain HTTP
    tls_hosts: list[str]  # the names its Service answers to in the cluster


def jupyter_secrets(tree: RepoTree, name: str) -> JupyterSecrets:
    """From the cluster's effective values and its committed Jupyter Service (found by its component label)."""
    from dask_platform.render import rendered_objects
    from dask_platform.values import build_values

    cluster = load_cluster(tree, name)
    effective = build_values(tree, cluster).effective
    jupyter = effective["jupyter"]
    services = [
        o["metadata"]["name"]
        for o in rendered_objects(tree, name)
        if o["kind"] == "Service" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "jupyter"
    ]
    tls = (jupyter.get("tls") or {}).get("secretName", "") if services else ""
    domain = effective["global"]["clusterDomain"]
    hosts = [f"{s}.{cluster.namespace}.svc.{domain}" for s in services] + [
        f"{s}.{cluster.namespace}.svc" for s in services
    ]
    return JupyterSecrets(cluster.namespace, jupyter["tokenSecret"]["name"], jupyter["tokenSecret"]["key"], tls, hosts)


def build_self_signed_tls(hosts: list[str], now: datetime, days: int = 825) -> tuple[bytes, bytes]:
    """A self-signed server certificate (PEM) and its EC P-256 key (PEM) for ``hosts`` (subjectAltName DNS names),
    valid from ``now`` for ``days`` (825: the longest lifetime browsers accept for a TLS server certificate). Not a
    CA: trusting it lets its key vouch for these names only (the key sits in Jupyter's pod)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_jupyter_tls(api_client: Any, namespace: str, name: str, hosts: list[str]) -> bool:
    """Create Jupyter's kubernetes.io/tls Secret, self-signed for ``hosts``, when it is missing; True if created.
    An existing one (a real certificate, cert-manager's) is never touched."""
    import base64

    from kubernetes import client

    core = client.CoreV1Api(api_client)
    if secret_exists(core, namespace, name):
        return False
    cert, key = build_self_signed_tls(hosts, datetime.now(UTC))
    body = {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "dask-platform"}},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()},
    }
    core.create_namespaced_secret(namespace, body)
    return True


def secret_exists(core: Any, namespace: str, name: str) -> bool:
    """Whether the Secret exists (a read, which needs `get` on Secrets; its content is not used)."""
    from kubernetes.client.exceptions import ApiException

    try:
        core.read_namespaced_secret(name, namespace)
        return True
    except ApiException as exc:
        if exc.status != 404:
            raise UserError(f"reading Secret {namespace}/{name} failed: {exc.status} {exc.reason}") from None
    return False
