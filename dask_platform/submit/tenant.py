"""A tenant's own Dask cluster: a DaskCluster in the tenant's namespace, run by the dask-kubernetes operator, for the
time of one job (``submit ... --cluster NAME --tenant TENANT``).

``build_tenant_cluster`` is pure: upstream's ``make_cluster_spec`` (dask_kubernetes.operator, the pinned wheel) with
the tenant's settings as the chart rendered them (templates/tenants/configmap.yaml): the platform image, the tenant's
ServiceAccount (its object-storage identity), the worker group's size, node selector and tolerations, the idle
timeout, and the platform's pod hardening (the same rules as every pod of the chart: dask_platform/policy.py).
``TenantCluster`` creates it, waits for its scheduler, port-forwards to it, and deletes it at the end, also on an
error or Ctrl-C (``keep`` leaves it and says how to delete it).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from dask_platform import daskoperator
from dask_platform.errors import UserError
from dask_platform.render import rendered_objects
from dask_platform.repo import RepoTree
from dask_platform.submit.target import Echo, Target
from dask_platform.tenants import TenantSettings, find_tenant

# The labels the operator puts on a DaskCluster's pods (dask_kubernetes operator/controller/controller.py,
# build_scheduler_deployment_spec): the scheduler Service selects by them.
CLUSTER_LABEL = "dask.org/cluster-name"
COMPONENT_LABEL = "dask.org/component"
COMM_PORT = "tcp-comm"
DASHBOARD_PORT = "http-dashboard"
SCRATCH = "/tmp"  # the only writable path (an emptyDir): Dask's temporary directory and HOME


def cluster_name(prefix: str = "dask") -> str:
    """A new DaskCluster name: ``<prefix>-<6 hex digits>`` (unique per run; the operator derives its objects')."""
    return f"{prefix}-{secrets.token_hex(3)}"


def _harden(pod: dict[str, Any], settings: TenantSettings) -> None:
    context = settings.security_context
    pod["serviceAccountName"] = settings.service_account
    pod["automountServiceAccountToken"] = False
    pod["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": context["runAsUser"],
        "runAsGroup": context["runAsGroup"],
        "fsGroup": context["fsGroup"],
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if settings.node_selector:
        pod["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod["tolerations"] = list(settings.tolerations)
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": n} for n in settings.image_pull_secrets]
    pod["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    for container in pod["containers"]:
        container["imagePullPolicy"] = settings.image_pull_policy
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        container["volumeMounts"] = [{"name": "scratch", "mountPath": SCRATCH}]


def build_tenant_cluster(settings: TenantSettings, name: str, workers: int) -> dict[str, Any]:
    """The DaskCluster of a tenant's run: ``workers`` workers (at most the tenant's maxWorkers)."""
    from dask_kubernetes.operator import make_cluster_spec

    if workers < 1 or workers > settings.max_workers:
        raise UserError(
            f"{workers} workers for tenant {settings.tenant!r}: expected 1 to {settings.max_workers} "
            "(tenants.<name>.maxWorkers, else tenancy.maxWorkers)"
        )
    env = {"DASK_TEMPORARY_DIRECTORY": SCRATCH, "HOME": SCRATCH}
    # distributed 2026.8.0 installs one program, `dask`, with scheduler and worker subcommands (its entry points:
    # no dask-scheduler or dask-worker, which upstream's make_cluster_spec still names); the image has no entrypoint.
    spec = make_cluster_spec(
        name,
        image=settings.image,
        n_workers=workers,
        resources=settings.resources,
        env=env,
        worker_command="dask worker",
        idle_timeout=settings.idle_timeout,
    )
    spec["metadata"]["labels"] = {"app.kubernetes.io/part-of": "dask-platform", "dask-platform/tenant": settings.tenant}
    pod_metadata = {"labels": dict(settings.pod_labels), "annotations": dict(settings.pod_annotations)}
    scheduler = spec["spec"]["scheduler"]
    scheduler["metadata"] = json_copy(pod_metadata)
    spec["spec"]["worker"]["metadata"] = json_copy(pod_metadata)
    [container] = scheduler["spec"]["containers"]
    # A GPU worker group's size gives the workers their GPUs; the scheduler needs none.
    container["resources"] = {
        part: {k: v for k, v in values.items() if k in ("cpu", "memory")} for part, values in settings.resources.items()
    }
    # The platform's ports (global.ports), so the tenant's NetworkPolicy admits the operator on the same numbers.
    container["args"] = [
        "dask",
        "scheduler",
        "--host",
        "0.0.0.0",
        "--port",
        str(settings.scheduler_port),
        "--dashboard-address",
        f":{settings.dashboard_port}",
    ]
    ports = {COMM_PORT: settings.scheduler_port, DASHBOARD_PORT: settings.dashboard_port}
    for port in container["ports"]:
        port["containerPort"] = ports[port["name"]]
    for port in scheduler["service"]["ports"]:
        port["port"] = ports[port["name"]]
    _harden(scheduler["spec"], settings)
    worker = spec["spec"]["worker"]["spec"]
    _harden(worker, settings)
    # The operator gives workers tcp://<cluster>-scheduler.<ns>.svc.cluster.local:8786 unless they name an address
    # (controller.py build_worker_deployment_spec): name it, with the platform's port and no cluster domain.
    address = f"tcp://{name}-scheduler:{settings.scheduler_port}"
    worker["containers"][0]["env"].append({"name": "DASK_SCHEDULER_ADDRESS", "value": address})
    return spec


def json_copy(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def quota_message(body: str) -> str:
    """The API server's refusal, reduced to its message (it names the quota and what was used)."""
    import json

    try:
        return json.loads(body).get("message", body)
    except (ValueError, AttributeError):
        return str(body)


@dataclass(frozen=True)
class TenantCluster(Target):
    """A DaskCluster in ``tenant``'s namespace of clusters/<cluster>/, for the time of the run."""

    tree: RepoTree
    cluster: str
    tenant: str
    workers: int | None = None
    keep: bool = False
    kube_context: str | None = None
    kubeconfig: str | None = None
    name: str = ""
    source: str = "--tenant"
    connect_attempts: ClassVar[int] = 3
    start_timeout: float = 300.0

    @property
    def where(self) -> str:
        return f"tenant {self.tenant} of cluster {self.cluster}"

    def settings(self) -> TenantSettings:
        objects = rendered_objects(self.tree, self.cluster)
        return find_tenant(objects, self.tenant, f"clusters/{self.cluster}/rendered")

    @contextlib.contextmanager
    def open(self, echo: Echo) -> Iterator[str]:
        from dask_platform.submit.kube import ServiceRef, api_client, port_forward

        settings = self.settings()
        name = self.name or cluster_name()
        body = build_tenant_cluster(settings, name, self.workers or settings.max_workers)
        api = api_client(self.kube_context, self.kubeconfig)
        create_cluster(api, settings.namespace, body, echo)
        echo(f"DaskCluster {settings.namespace}/{name} created (idle timeout {settings.idle_timeout} s)")
        try:
            wait_for_scheduler(api, settings.namespace, name, self.start_timeout, echo)
            ref = ServiceRef(
                namespace=settings.namespace,
                name=f"{name}-scheduler",
                port=settings.scheduler_port,
                selector={CLUSTER_LABEL: name, COMPONENT_LABEL: "scheduler"},
            )
            with (
                port_forward(ref, self.kube_context, self.kubeconfig) as address,
                quota_watch(api, settings.namespace, name, echo),
            ):
                echo(f"port-forward {address} -> {ref.namespace}/svc/{ref.name}:{ref.port}")
                yield address
        finally:
            if self.keep:
                echo(
                    f"kept DaskCluster {name}: delete it with kubectl delete daskcluster {name} -n {settings.namespace}"
                )
            else:
                delete_cluster(api, settings.namespace, name)
                echo(f"DaskCluster {settings.namespace}/{name} deleted")


def _custom(api: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api)


# The API server refuses a quota-counted object while the quota controller has not computed its usage yet
# (kubernetes plugin/pkg/admission/resourcequota: "status unknown for quota"). A quota created before the controller
# discovered the CRD's resource (discovery every 30 s) is recounted only at the next full resync, every
# --resource-quota-sync-period (5 min by default): kubernetes/kubernetes#72384 (review), #64201. So a tenant synced
# together with the operator's CRDs may wait up to ~5 min for its first cluster: a wait, not a refusal.
QUOTA_PENDING = "status unknown for quota"
QUOTA_PENDING_TIMEOUT_S = 360.0


def create_cluster(
    api: Any,
    namespace: str,
    body: dict[str, Any],
    echo: Callable[[str], None] | None = None,
    pending_timeout: float = QUOTA_PENDING_TIMEOUT_S,
) -> None:
    """Create the DaskCluster; a refusal by the tenant's quota (or RBAC) is one line naming it."""
    from kubernetes.client.exceptions import ApiException

    plural = daskoperator.KINDS["DaskCluster"]
    deadline, said = time.monotonic() + pending_timeout, False
    while True:
        try:
            _custom(api).create_namespaced_custom_object(
                daskoperator.GROUP, daskoperator.VERSION, namespace, plural, body
            )
            return
        except ApiException as exc:
            message = quota_message(exc.body)
            if exc.status == 403 and QUOTA_PENDING in message and time.monotonic() < deadline:
                if echo and not said:
                    echo(
                        f"the quota of {namespace} does not count DaskClusters yet (a new tenant: the quota "
                        "controller recounts within 5 min); waiting"
                    )
                    said = True
                time.sleep(2)
                continue
            if exc.status in (403, 404, 422):
                name = body["metadata"]["name"]
                raise UserError(f"cannot create DaskCluster {name} in {namespace}: {message}") from None
            raise


def delete_cluster(api: Any, namespace: str, name: str) -> None:
    """Delete the DaskCluster (its scheduler and workers follow: the operator's objects are owned by it)."""
    from kubernetes.client.exceptions import ApiException

    try:
        _custom(api).delete_namespaced_custom_object(
            daskoperator.GROUP, daskoperator.VERSION, namespace, daskoperator.KINDS["DaskCluster"], name
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def _ready(pod: Any) -> bool:
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
    )


def wait_for_scheduler(
    api: Any, namespace: str, name: str, timeout: float, echo: Callable[[str], None], poll: float = 1.0
) -> None:
    """Wait until the cluster's scheduler pod is Ready (its readiness probe asks the scheduler's /health: a Running
    pod may not listen yet); say what it waits for when that changes, and stop at a quota's refusal."""
    from kubernetes import client

    from dask_platform.submit.connect import Unreachable

    core = client.CoreV1Api(api)
    selector = f"{CLUSTER_LABEL}={name},{COMPONENT_LABEL}=scheduler"
    deadline, said = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        if any(_ready(p) for p in pods):
            refused = quota_refusals(api, namespace, name)
            if refused:
                echo(f"some pods of {name} were refused by the tenant's quota: {refused[0]}")
            return
        refused = [r for r in quota_refusals(api, namespace, name) if "-scheduler" in r.split(":", 1)[0]]
        if refused:
            raise UserError(f"the scheduler of DaskCluster {namespace}/{name} cannot start: {refused[0]}")
        phases = ", ".join(p.status.phase for p in pods) or "no pod yet"
        state = f"waiting for the scheduler of {name} ({phases})"
        if state != said:
            echo(state)
            said = state
        time.sleep(poll)
    raise Unreachable(f"the scheduler of DaskCluster {namespace}/{name} was not Ready within {timeout:.0f} s")


def quota_refusals(api: Any, namespace: str, name: str) -> list[str]:
    """The quota's refusals of the cluster's pods ("<ReplicaSet>: <message>"): the ReplicaSets of its Deployments
    record a FailedCreate event naming the quota when the API server refuses a pod (kube-controller-manager's
    replica set controller)."""
    from kubernetes import client

    out = []
    for event in client.CoreV1Api(api).list_namespaced_event(namespace).items:
        owner = event.involved_object
        if (
            event.reason == "FailedCreate"
            and owner.kind == "ReplicaSet"
            and owner.name.startswith(f"{name}-")
            and "exceeded quota" in (event.message or "")
        ):
            out.append(f"{owner.name}: {' '.join(event.message.split())}")
    return out


@contextlib.contextmanager
def quota_watch(api: Any, namespace: str, name: str, echo: Echo, every: float = 3.0) -> Iterator[None]:
    """While the run goes on, say (once each) when the tenant's quota refuses pods of the cluster: workers scaled past
    it are never created, so without this a run would only see fewer workers than it asked for."""
    import threading

    stop = threading.Event()
    seen = set(quota_refusals(api, namespace, name))  # said before the run, by wait_for_scheduler

    def watch() -> None:
        while not stop.wait(every):
            try:
                refused = quota_refusals(api, namespace, name)
            except Exception:  # the API unreachable for a moment: the run itself will say so if it matters
                continue
            for line in refused:
                if line not in seen:
                    seen.add(line)
                    echo(f"the tenant's quota refused a pod of {name}: {line}")

    thread = threading.Thread(target=watch, name="quota-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)


# --- what runs: `dask-platform tenants CLUSTER` ----------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRow:
    """One tenant's DaskCluster as `dask-platform tenants` shows it."""

    tenant: str
    name: str
    age_s: float
    phase: str
    workers: int
    idle_s: float | None  # None: busy or not known
    hourly: float | None  # USD per hour of its pods (scheduler + workers), None without a price


def build_rows(
    items: list[tuple[str, dict[str, Any]]],
    now: float,
    pod_hourly: dict[str, float],
    idle_since: dict[str, float | None],
) -> list[ClusterRow]:
    """Rows from (tenant, DaskCluster object) pairs, the tenants' pod prices and each cluster's idle-since time."""
    import datetime

    rows = []
    for tenant, obj in items:
        meta = obj["metadata"]
        created = datetime.datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00")).timestamp()
        workers = int(obj.get("spec", {}).get("worker", {}).get("replicas", 0))
        since = idle_since.get(f"{meta['namespace']}/{meta['name']}")
        price = pod_hourly.get(tenant)
        rows.append(
            ClusterRow(
                tenant=tenant,
                name=meta["name"],
                age_s=now - created,
                phase=(obj.get("status") or {}).get("phase", "-"),
                workers=workers,
                idle_s=None if since is None else max(0.0, now - since),
                hourly=None if price is None else price * (workers + 1),
            )
        )
    return sorted(rows, key=lambda r: (r.tenant, r.name))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def format_rows(rows: list[ClusterRow]) -> list[str]:
    lines = [f"{'TENANT':<14}{'CLUSTER':<18}{'AGE':>8}  {'PHASE':<10}{'WORKERS':>8}{'IDLE':>8}{'$/HOUR':>9}"]
    for r in rows:
        cost = "-" if r.hourly is None else f"{r.hourly:.2f}"
        lines.append(
            f"{r.tenant:<14}{r.name:<18}{_duration(r.age_s):>8}  {r.phase:<10}{r.workers:>8}"
            f"{_duration(r.idle_s):>8}{cost:>9}"
        )
    return lines if rows else [*lines, "(no tenant clusters)"]


def list_tenant_clusters(
    api: Any, settings: dict[str, TenantSettings]
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """(tenant, DaskCluster) for every cluster in the tenants' namespaces the caller may list, and the tenants it may
    not (a tenant's people see their own only)."""
    from kubernetes.client.exceptions import ApiException

    items, forbidden = [], []
    for tenant, s in sorted(settings.items()):
        try:
            listed = _custom(api).list_namespaced_custom_object(
                daskoperator.GROUP, daskoperator.VERSION, s.namespace, daskoperator.KINDS["DaskCluster"]
            )
        except ApiException as exc:
            if exc.status != 403:
                raise
            forbidden.append(tenant)
            continue
        items += [(tenant, obj) for obj in listed.get("items", [])]
    return items, forbidden


def scheduler_idle_since(
    ref: Any, kube_context: str | None, kubeconfig: str | None, timeout: float = 5.0
) -> float | None:
    """When the scheduler became idle (its HTTP API's /api/v1/check_idle, what the operator's idle check reads), or
    None when busy or not reachable."""
    import json
    import urllib.request

    from dask_platform.submit.kube import port_forward

    try:
        with port_forward(ref, kube_context, kubeconfig) as address:
            url = address.replace("tcp://", "http://") + "/api/v1/check_idle"
            with urllib.request.urlopen(url, timeout=timeout) as response:
                since = json.loads(response.read()).get("idle_since")
    except Exception:  # an unreachable scheduler shows "-": the listing is still useful
        return None
    return float(since) if since else None
