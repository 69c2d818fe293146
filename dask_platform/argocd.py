"""Argo CD manifests derived from the clusters: an AppProject, one Application per cluster, and a root
ApplicationSet (git files generator over clusters/*/cluster.yaml) for an Argo CD that manages every cluster.

Written by `dask-platform render` (with the clusters' manifests they derive from): argocd/appproject.yaml,
argocd/applicationset.yaml and the pointer clusters/<name>/application.yaml. Repo URL, revision, Argo CD namespace
and project name come from [tool.dask-platform.argocd] in pyproject.toml. The AppProject allows exactly the kinds
the clusters render (plus Namespace, for CreateNamespace), so a chart change that adds a kind shows in its diff.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from dask_platform.clusters import Cluster
from dask_platform.errors import UserError
from dask_platform.generated import Output, header
from dask_platform.repo import RepoTree


@dataclass(frozen=True)
class ArgoSettings:
    repo_url: str
    revision: str
    namespace: str
    project: str


def load_settings(tree: RepoTree) -> ArgoSettings:
    data = tree.tool_settings("argocd")
    missing = [k for k in ("repo-url", "revision", "namespace", "project") if not data.get(k)]
    if missing:
        raise UserError("missing setting", file=tree.pyproject, key_path=f"tool.dask-platform.argocd.{missing[0]}")
    return ArgoSettings(data["repo-url"], data["revision"], data["namespace"], data["project"])


Kind = tuple[str, str]  # (API group, kind)


def kinds_of(objects: Iterable[dict[str, Any]]) -> tuple[set[Kind], set[Kind]]:
    """(namespaced, cluster-scoped) (group, kind) pairs of rendered objects."""
    namespaced, cluster_scoped = set(), set()
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        (namespaced if obj["metadata"].get("namespace") else cluster_scoped).add((group, obj["kind"]))
    return namespaced, cluster_scoped


def destination(cluster: Cluster) -> dict[str, str]:
    """Where Argo CD sends this cluster's objects: cluster.yaml ``argocd`` names the registered cluster (``name``)
    or its API server (``server``; https://kubernetes.default.svc when Argo CD runs in that cluster). The schema
    requires exactly one, so no two clusters silently share the in-cluster default."""
    target = cluster.settings["argocd"]
    key = "name" if "name" in target else "server"
    return {key: target[key], "namespace": cluster.namespace}


def build_appproject(
    settings: ArgoSettings, clusters: list[Cluster], objects: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """The project every cluster's Application belongs to: this repository, the clusters' destinations, and the
    kinds in ``objects``: what the clusters render plus what any chart feature could add (render_outputs passes
    the all-features scenario too), so a values PR that turns a feature on still syncs."""
    namespaced, cluster_scoped = kinds_of(objects)
    cluster_scoped.add(("", "Namespace"))  # CreateNamespace=true
    destinations = sorted({tuple(sorted(destination(c).items())) for c in clusters})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": settings.project, "namespace": settings.namespace},
        "spec": {
            "description": "dask-platform: Dask, Jupyter and node autoscaling rendered from this repository",
            "sourceRepos": [settings.repo_url],
            "destinations": [dict(d) for d in destinations],
            "clusterResourceWhitelist": [{"group": g, "kind": k} for g, k in sorted(cluster_scoped)],
            "namespaceResourceWhitelist": [{"group": g, "kind": k} for g, k in sorted(namespaced)],
            "orphanedResources": {"warn": True},
        },
    }


# RespectIgnoreDifferences: at sync, the ignored fields of the desired state take their live values (argo-cd docs,
# sync-options.md "Respect ignore difference configs"), so a sync keeps the replica count KEDA set.
SYNC_POLICY: dict[str, Any] = {
    "automated": {"prune": True, "selfHeal": True},
    "syncOptions": ["CreateNamespace=true", "ServerSideApply=true", "PruneLast=true", "RespectIgnoreDifferences=true"],
    "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
}
# The Deployments' replica count is the chart's starting value; with worker autoscaling KEDA's HPA owns it
# afterwards (argo-cd docs, best_practices.md "Leaving Room For Imperativeness"). Ignored on every Deployment: the
# other ones run a single replica that nothing else changes.
IGNORE_DIFFERENCES: list[dict[str, Any]] = [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]
# Names: the Application `dask-platform bootstrap` applies (a cluster's own Argo CD) and the ones the ApplicationSet
# generates (one Argo CD for the fleet) differ, so the two routes never overwrite each other's Application.
FLEET_PREFIX = "dask-platform-fleet-"


def build_application(settings: ArgoSettings, cluster: Cluster) -> dict[str, Any]:
    """The Application that syncs one cluster's rendered manifests into it."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": f"dask-platform-{cluster.name}",
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/part-of": "dask-platform", "dask-platform/cluster": cluster.name},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": settings.project,
            "source": {
                "repoURL": settings.repo_url,
                "targetRevision": settings.revision,
                "path": f"clusters/{cluster.name}/rendered",
                "directory": {"recurse": False},
            },
            "destination": destination(cluster),
            "ignoreDifferences": IGNORE_DIFFERENCES,
            "syncPolicy": SYNC_POLICY,
        },
    }


def build_applicationset(settings: ArgoSettings) -> dict[str, Any]:
    """The root: one Application per clusters/*/cluster.yaml, for an Argo CD that manages every cluster, sent
    where the file's ``argocd`` says (a registered cluster ``name`` or a ``server``; the templatePatch picks the
    one given, since Argo CD refuses both)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "dask-platform", "namespace": settings.namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [
                {
                    "git": {
                        "repoURL": settings.repo_url,
                        "revision": settings.revision,
                        "files": [{"path": "clusters/*/cluster.yaml"}],
                    }
                }
            ],
            "template": {
                "metadata": {
                    "name": FLEET_PREFIX + "{{ .path.basename }}",
                    "labels": {
                        "app.kubernetes.io/part-of": "dask-platform",
                        "dask-platform/cluster": "{{ .path.basename }}",
                    },
                },
                "spec": {
                    "project": settings.project,
                    "source": {
                        "repoURL": settings.repo_url,
                        "targetRevision": settings.revision,
                        "path": "{{ .path.path }}/rendered",
                        "directory": {"recurse": False},
                    },
                    "destination": {"namespace": "{{ .namespace }}"},
                    "ignoreDifferences": IGNORE_DIFFERENCES,
                    "syncPolicy": SYNC_POLICY,
                },
            },
            "templatePatch": DESTINATION_PATCH,
        },
    }


# The destination from cluster.yaml's argocd block: name or server, whichever the file gives (ApplicationSet
# Template.md: templatePatch, Go templates only).
DESTINATION_PATCH = """spec:
  destination:
    {{- if hasKey .argocd "name" }}
    name: {{ .argocd.name | quote }}
    {{- else }}
    server: {{ .argocd.server | quote }}
    {{- end }}
"""

SOURCES = "pyproject.toml [tool.dask-platform.argocd] and clusters/"


def dump(obj: dict[str, Any]) -> str:
    return header("render --all", SOURCES) + yaml.safe_dump(obj, sort_keys=False, width=120)


def argocd_outputs(
    tree: RepoTree,
    clusters: list[Cluster],
    objects: Iterable[dict[str, Any]],
    possible: Iterable[dict[str, Any]],
) -> list[Output]:
    """The Argo CD manifests for ``clusters`` (all of them) whose rendered objects are ``objects``; ``possible``:
    objects a values change could add (their kinds are allowed too)."""
    settings = load_settings(tree)
    allowed = [*objects, *possible]
    outputs = [
        Output(tree.argocd_dir / "appproject.yaml", dump(build_appproject(settings, clusters, allowed))),
        Output(tree.argocd_dir / "applicationset.yaml", dump(build_applicationset(settings))),
    ]
    outputs += [Output(tree.application_file(c.name), dump(build_application(settings, c))) for c in clusters]
    return outputs
