"""Argo CD manifests derived from the clusters: an AppProject, one Application per cluster, and a root
ApplicationSet for an Argo CD that manages a fleet of clusters from outside them.

Two routes, chosen by cluster.yaml ``argocd``: ``server: https://kubernetes.default.svc`` means Argo CD runs inside
that cluster (`dask-platform bootstrap NAME` applies its Application there); a registered ``name`` (or another
``server``) means the fleet's Argo CD, on a management cluster, syncs it through the ApplicationSet. The
ApplicationSet reads each fleet cluster's committed application.yaml (git files generator), so both routes get the
same destination and ignore rules from one file; an in-cluster cluster's file is application-in-cluster.yaml, which
the fleet never matches: in the fleet's Argo CD, kubernetes.default.svc is the management cluster itself.

Written by `dask-platform render` (with the clusters' manifests they derive from): argocd/appproject.yaml,
argocd/applicationset.yaml and the pointer clusters/<name>/application[-in-cluster].yaml. Repo URL, revision, Argo
CD namespace and project name come from [tool.dask-platform.argocd] in pyproject.toml. The AppProject allows exactly
the kinds the clusters render (plus Namespace, for CreateNamespace), so a chart change that adds a kind shows in its
diff.
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
    settings: ArgoSettings,
    clusters: list[Cluster],
    objects: Iterable[dict[str, Any]],
    namespaces: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """The project every cluster's Application belongs to: this repository, the clusters' destinations, and the
    kinds in ``objects``: what the clusters render plus what any chart feature could add (render_outputs passes
    the all-features scenario too), so a values PR that turns a feature on still syncs. ``namespaces``: per
    cluster, the other namespaces it may sync into (its tenants'; a glob such as ``tenant-*`` admits tenants added
    later, argo-cd docs, projects.md "destinations": glob patterns), as Argo CD refuses any other."""
    namespaced, cluster_scoped = kinds_of(objects)
    cluster_scoped.add(("", "Namespace"))  # CreateNamespace=true
    destinations = sorted(
        {tuple(sorted(destination(c).items())) for c in clusters}
        | {
            tuple(sorted({**destination(c), "namespace": ns}.items()))
            for c in clusters
            for ns in (namespaces or {}).get(c.name, set())
        }
    )
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
# sync-options.md "Respect ignore difference configs"; controller/sync.go normalizeTargetResources), so a sync keeps
# the replica count KEDA set on an autoscaled group, and only there.
SYNC_POLICY: dict[str, Any] = {
    "automated": {"prune": True, "selfHeal": True},
    "syncOptions": ["CreateNamespace=true", "ServerSideApply=true", "PruneLast=true", "RespectIgnoreDifferences=true"],
    "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
}
# The in-cluster API server as Argo CD names it: the cluster Argo CD itself runs in (argo-cd docs, declarative-setup.md
# "Clusters": the in-cluster cluster).
IN_CLUSTER = "https://kubernetes.default.svc"


def in_cluster(cluster: Cluster) -> bool:
    """Whether ``cluster`` runs its own Argo CD (the bootstrap route) rather than the fleet's."""
    return cluster.settings["argocd"].get("server") == IN_CLUSTER


def autoscaled_deployments(objects: Iterable[dict[str, Any]]) -> list[str]:
    """Names of the Deployments a rendered ScaledObject scales: KEDA's HPA owns their replica count."""
    return sorted(
        o["spec"]["scaleTargetRef"]["name"]
        for o in objects
        if o["kind"] == "ScaledObject" and o["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    )


def build_ignore_differences(cluster: Cluster, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """/spec/replicas of exactly the Deployments an autoscaler owns, each by name (argo-cd docs, diffing.md
    "Application Level Configuration": name and namespace select one resource); every other Deployment's count is the
    values' and a sync applies it (argo-cd docs, best_practices.md "Leaving Room For Imperativeness")."""
    return [
        {
            "group": "apps",
            "kind": "Deployment",
            "name": name,
            "namespace": cluster.namespace,
            "jsonPointers": ["/spec/replicas"],
        }
        for name in autoscaled_deployments(objects)
    ]


# Names: the Application `dask-platform bootstrap` applies (a cluster's own Argo CD) and the ones the ApplicationSet
# generates (one Argo CD for the fleet) differ, so the two routes never overwrite each other's Application.
FLEET_PREFIX = "dask-platform-fleet-"


def build_application(settings: ArgoSettings, cluster: Cluster, objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The Application that syncs one cluster's rendered manifests (``objects``) into it."""
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
            "ignoreDifferences": build_ignore_differences(cluster, objects),
            "syncPolicy": SYNC_POLICY,
        },
    }


def build_applicationset(
    settings: ArgoSettings, name: str, files: list[dict[str, Any]], application_name: str
) -> dict[str, Any]:
    """An ApplicationSet whose git files generator reads committed clusters/<name>/application*.yaml files and makes
    each one's Application named ``application_name``: destination, ignore rules, sync policy and source path from the
    file (Go templates, argo-cd docs Template.md and GoTemplate.md; templatePatch for the maps and lists, as JSON,
    which is YAML), so a values PR that changes a cluster's Application (its ignore rules follow its autoscaled
    groups) reaches Argo CD from git. The project, repository and revision are this ApplicationSet's own: a file in
    git cannot move its Application out of the AppProject (argo-cd docs Generators-Git.md, the security note)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": settings.namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"git": {"repoURL": settings.repo_url, "revision": settings.revision, "files": files}}],
            "template": {
                "metadata": {
                    "name": application_name,
                    "labels": {
                        "app.kubernetes.io/part-of": "dask-platform",
                        "dask-platform/cluster": '{{ index .metadata.labels "dask-platform/cluster" }}',
                    },
                },
                "spec": {
                    "project": settings.project,
                    "source": {
                        "repoURL": settings.repo_url,
                        "targetRevision": settings.revision,
                        "path": "{{ .spec.source.path }}",
                    },
                    "destination": {"namespace": "{{ .spec.destination.namespace }}"},
                },
            },
            "templatePatch": TEMPLATE_PATCH,
        },
    }


# Maps and lists of the cluster's application.yaml: the destination (name or server, whichever the file gives),
# the source's directory settings, the ignore rules and the sync policy.
TEMPLATE_PATCH = """spec:
  source:
    directory: {{ toJson .spec.source.directory }}
  destination: {{ toJson .spec.destination }}
  ignoreDifferences: {{ toJson .spec.ignoreDifferences }}
  syncPolicy: {{ toJson .spec.syncPolicy }}
"""


def build_fleet_applicationset(settings: ArgoSettings) -> dict[str, Any]:
    """The fleet's root (argocd/applicationset.yaml, applied to the management cluster's Argo CD): one Application
    per clusters/*/application.yaml. A cluster with its own Argo CD writes application-in-cluster.yaml instead, so
    the fleet selects its clusters by the file's name: a new in-cluster cluster is never matched, whatever version
    of this ApplicationSet the management cluster runs (an exclude list would have to be re-applied first)."""
    files = [{"path": f"clusters/*/{FLEET_APPLICATION}"}]
    return build_applicationset(settings, "dask-platform", files, FLEET_PREFIX + "{{ .path.basename }}")


def build_bootstrap_applicationset(settings: ArgoSettings, cluster: Cluster) -> dict[str, Any]:
    """What `dask-platform bootstrap` applies in a cluster that runs its own Argo CD: its one application.yaml, as
    an Application of the file's own name, kept up to date from git like the fleet's."""
    files = [{"path": application_path(cluster)}]
    return build_applicationset(settings, f"dask-platform-{cluster.name}", files, "{{ .metadata.name }}")


# The file a cluster's Application is written to names its route (in_cluster), which is how the fleet's
# ApplicationSet tells its clusters from those that run their own Argo CD.
FLEET_APPLICATION = "application.yaml"
IN_CLUSTER_APPLICATION = "application-in-cluster.yaml"


def application_path(cluster: Cluster) -> str:
    """clusters/<name>/application.yaml (the fleet's) or clusters/<name>/application-in-cluster.yaml."""
    return f"clusters/{cluster.name}/{IN_CLUSTER_APPLICATION if in_cluster(cluster) else FLEET_APPLICATION}"


SOURCES = "pyproject.toml [tool.dask-platform.argocd] and clusters/"


def dump(obj: dict[str, Any]) -> str:
    return header("render --all", SOURCES) + yaml.safe_dump(obj, sort_keys=False, width=120)


def argocd_outputs(
    tree: RepoTree,
    clusters: list[Cluster],
    objects_by_cluster: dict[str, list[dict[str, Any]]],
    possible: Iterable[dict[str, Any]],
) -> list[Output]:
    """The Argo CD manifests for ``clusters`` (all of them) whose rendered objects are ``objects_by_cluster``;
    ``possible``: objects a values change could add (their kinds are allowed too)."""
    settings = load_settings(tree)
    allowed = [o for c in clusters for o in objects_by_cluster[c.name]] + list(possible)
    # Tenants live in namespaces of their own: each cluster's, and the default prefix's glob for tenants to come.
    prefix = tree.load_mapping(tree.chart / "values.yaml")["tenancy"]["namespacePrefix"]
    namespaces = {
        c.name: {f"{prefix}*"}
        | {
            ns
            for o in objects_by_cluster[c.name]
            if (ns := o["metadata"].get("namespace")) and ns != c.namespace and not ns.startswith(prefix)
        }
        for c in clusters
    }
    project = build_appproject(settings, clusters, allowed, namespaces)
    outputs = [
        Output(tree.argocd_dir / "appproject.yaml", dump(project)),
        Output(tree.argocd_dir / "applicationset.yaml", dump(build_fleet_applicationset(settings))),
    ]
    outputs += [
        Output(tree.root / application_path(c), dump(build_application(settings, c, objects_by_cluster[c.name])))
        for c in clusters
    ]
    return outputs
