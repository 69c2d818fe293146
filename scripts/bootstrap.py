"""Point a cluster's Argo CD at this repository: apply the AppProject and the cluster's Application.

    python scripts/bootstrap.py minikube --dry-run          # print what would be applied
    python scripts/bootstrap.py minikube                    # server-side apply to the current kube context
    python scripts/bootstrap.py aws-example --context eks-prod

Argo CD itself must already run in the cluster (its CRDs are checked first). The apply is server-side with a
fixed field manager, so running it again changes nothing; from then on Argo CD syncs clusters/<name>/rendered/.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.argocd import build_application, build_appproject, load_settings
from scripts.common import CLUSTERS_DIR, UserError, report_user_errors
from scripts.layers import cluster_names, load_cluster

FIELD_MANAGER = "dask-platform-bootstrap"


def bootstrap_objects(name: str, clusters_dir: Path = CLUSTERS_DIR) -> list[dict[str, Any]]:
    """The AppProject (covering every cluster) and this cluster's Application, in apply order."""
    settings = load_settings()
    clusters = [load_cluster(n, clusters_dir) for n in cluster_names(clusters_dir)]
    cluster = load_cluster(name, clusters_dir)
    return [build_appproject(settings, clusters), build_application(settings, cluster)]


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


@click.command()
@click.argument("cluster")
@click.option("--dry-run", is_flag=True, help="Print the objects; touch nothing.")
@click.option("--server-dry-run", is_flag=True, help="Send them to the API server with dryRun=All.")
@click.option("--context", "kube_context", help="kubeconfig context (default: the current one).")
@report_user_errors
def main(cluster: str, dry_run: bool, server_dry_run: bool, kube_context: str | None) -> None:
    """Apply CLUSTER's AppProject and Application to the kube context."""
    objects = bootstrap_objects(cluster)
    if dry_run:
        click.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
        return
    from kubernetes import config

    try:
        api_client = config.new_client_from_config(context=kube_context)
    except Exception as exc:
        raise UserError(f"no usable kubeconfig: {exc}") from None
    for line in server_side_apply(objects, api_client, dry_run=server_dry_run):
        click.echo(line)


if __name__ == "__main__":
    main()
