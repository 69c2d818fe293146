"""Tenants on the real single-node cluster: the chart with two tenants installed with helm, the dask-kubernetes
operator running from the platform image, and `submit --tenant` creating, using and deleting a tenant's own
DaskCluster (issue 28, item 4). The node's CNI (bridge) enforces no NetworkPolicy: the tenants' policies are
checked offline and against the API server, not here.
"""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dask_platform import daskoperator
from dask_platform.render import render_clusters
from dask_platform.repo import RepoTree
from dask_platform.submit.tenant import build_tenant_cluster, create_cluster, delete_cluster
from dask_platform.tenants import tenant_settings
from tests.support.node import SCENARIO, Node, node_cluster, wait_until
from tests.support.node import start_submit as submit_process
from tests.support.scratch import scratch_copy

pytestmark = [pytest.mark.node, pytest.mark.slow]

NAMESPACE = "dask-tenants"
CLUSTER = "tenants"
# Each tenant pod is sized as the scenario's worker group (250m / 1 GiB requested, 1 CPU / 1.5 GiB limit): alice may
# run one cluster of a scheduler and two workers, bob one of a scheduler and one worker.
TENANTS = {
    "alice": {"group": "alice-team", "quota": {"cpu": "3", "memory": "4608Mi", "pods": 3, "clusters": 1}},
    "bob": {"group": "bob-team", "quota": {"cpu": "2", "memory": "3Gi", "pods": 2, "clusters": 1}, "maxWorkers": 1},
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> RepoTree:
    tree = scratch_copy(tmp_path_factory.mktemp("tenants-repo") / "repo")
    values = yaml.safe_load((tree.chart / "ci" / SCENARIO).read_text())
    values["jupyter"] = {"enabled": False}
    values["dask"]["workerGroups"]["default"]["replicas"] = 1
    values["tenants"] = TENANTS
    values["tenancy"] = {"maxWorkers": 2}
    values["operator"] = {
        "resources": {"requests": {"cpu": "50m", "memory": "192Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    }
    node_cluster(tree, CLUSTER, NAMESPACE, values)
    return tree


@pytest.fixture(scope="module")
def release(node: Node, tree: RepoTree, helm: Path) -> dict[str, Any]:
    """The chart with the two tenants, installed with helm --wait (the operator Ready); uninstalled at the end."""
    import pyhelm3

    from dask_platform import generated

    [rendered] = render_clusters(tree, [CLUSTER], helm)
    generated.sync([rendered.output], False, lambda _: None, "render --all")  # what submit --tenant reads
    client = pyhelm3.Client(executable=str(helm), kubeconfig=node.kubeconfig)

    async def install() -> Any:
        chart = await client.get_chart(tree.chart)
        return await client.install_or_upgrade_release(
            "dask", chart, rendered.values.user, namespace=NAMESPACE, create_namespace=True, wait=True, timeout="5m"
        )

    started = time.time()
    asyncio.run(install())
    ready_s = time.time() - started
    settings = tenant_settings(rendered.objects)
    # The quota controller counts DaskClusters once it has discovered their resource (every 30 s) and resynced the
    # quotas, which were created with the CRDs (every 5 min: dask_platform/submit/tenant.py QUOTA_PENDING).
    wait_until(lambda: all(counting(node, s.namespace) for s in settings.values()), 400, "quotas counting DaskClusters")
    counting_s = time.time() - started - ready_s
    print(f"tenants release: Ready after {ready_s:.0f} s, quotas counting DaskClusters {counting_s:.0f} s later")
    yield {"ready_s": ready_s, "counting_s": counting_s, "settings": settings}

    async def uninstall() -> None:
        [current] = [r for r in await client.list_releases(namespace=NAMESPACE) if r.name == "dask"]
        await current.uninstall(wait=True)

    asyncio.run(uninstall())


def counting(node: Node, namespace: str) -> bool:
    from kubernetes import client

    quota = client.CoreV1Api(node.api()).read_namespaced_resource_quota("dask-quota", namespace)
    return "count/daskclusters.kubernetes.dask.org" in (quota.status.used or {})


def custom(node: Node):
    from kubernetes import client

    return client.CustomObjectsApi(node.api())


def daskclusters(node: Node, namespace: str) -> list[str]:
    items = custom(node).list_namespaced_custom_object(
        daskoperator.GROUP, daskoperator.VERSION, namespace, daskoperator.KINDS["DaskCluster"]
    )["items"]
    return [i["metadata"]["name"] for i in items if not i["metadata"].get("deletionTimestamp")]


def tenant_pods(node: Node, namespace: str) -> list[Any]:
    from kubernetes import client

    return client.CoreV1Api(node.api()).list_namespaced_pod(namespace).items


def start_submit(node: Node, tree: RepoTree, tmp: Path, tenant: str, *extra: str) -> subprocess.Popen:
    return submit_process(node, tree, tmp, "--cluster", CLUSTER, "--tenant", tenant, *extra)


def operator_pods(node: Node) -> list[Any]:
    pods = tenant_pods(node, NAMESPACE)
    return [p for p in pods if p.metadata.labels.get("app.kubernetes.io/component") == "operator"]


def test_the_operator_runs_from_the_platform_image(node: Node, release):
    [pod] = operator_pods(node)
    assert pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses)
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
    assert pod.status.container_statuses[0].restart_count == 0


def test_a_tenants_run_matches_the_embedded_run_and_leaves_no_cluster(node: Node, release, tree, embedded, tmp_path):
    proc = start_submit(node, tree, tmp_path, "alice", "--workers", "2")
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, (out + err)[-3000:]
    summary = json.loads(next((tmp_path / "results").glob("*/summary.json")).read_text())
    assert summary["best_params"] == embedded["best_params"]
    assert summary["cv_rmspe"] == pytest.approx(embedded["cv_rmspe"], rel=1e-6)
    assert "DaskCluster tenant-alice/dask-" in out and "deleted" in out
    assert daskclusters(node, "tenant-alice") == []
    wait_until(lambda: not tenant_pods(node, "tenant-alice"), 180, "the tenant's pods garbage-collected")


def test_a_second_cluster_beyond_the_quota_is_refused(node: Node, release, tree, tmp_path):
    bob = release["settings"]["bob"]
    create_cluster(node.api(), bob.namespace, build_tenant_cluster(bob, "dask-held", 1))
    try:
        proc = start_submit(node, tree, tmp_path, "bob", "--workers", "1")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, out + err
        assert "exceeded quota: dask-quota" in err and "count/daskclusters.kubernetes.dask.org" in err
    finally:
        delete_cluster(node.api(), bob.namespace, "dask-held")


def test_ctrl_c_leaves_no_daskcluster_behind(node: Node, release, tree, tmp_path):
    proc = start_submit(node, tree, tmp_path, "alice", "--workers", "1")
    for line in proc.stdout:
        if line.startswith("running rossmann"):
            break
    else:
        raise AssertionError(f"the job never ran: {proc.stderr.read()[-2000:]}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert daskclusters(node, "tenant-alice") == []


def test_an_idle_cluster_is_deleted_by_the_operator(node: Node, release):
    alice = release["settings"]["alice"]
    body = build_tenant_cluster(alice, "dask-idle", 1)
    body["spec"]["idleTimeout"] = 20  # below the platform's minimum on purpose: the operator's own check
    create_cluster(node.api(), alice.namespace, body)
    wait_until(lambda: any(p.status.phase == "Running" for p in tenant_pods(node, alice.namespace)), 180, "it runs")
    wait_until(lambda: daskclusters(node, alice.namespace) == [], 180, "the idle cluster deleted by the operator")
    wait_until(lambda: not tenant_pods(node, alice.namespace), 180, "its pods garbage-collected")


def read_lines(proc: subprocess.Popen) -> queue.Queue:
    """The process's stdout lines, as they come, from a reader thread (None at the end)."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def until_line(lines: queue.Queue, start: str, timeout: float) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.time()))
        except queue.Empty:
            break
        if line is None:
            raise AssertionError(f"the run ended before a line starting {start!r}")
        if line.startswith(start):
            return line
    raise AssertionError(f"no line starting {start!r} within {timeout:.0f} s")


def test_workers_scaled_past_the_quota_are_refused_and_submit_says_so(node: Node, release, tree, tmp_path):
    proc = start_submit(node, tree, tmp_path, "alice", "--workers", "2")
    lines = read_lines(proc)
    name = until_line(lines, "DaskCluster tenant-alice/", 120).split()[1].split("/")[1]
    until_line(lines, "running rossmann", 600)
    # A person scales the cluster to 3 workers (kubectl scale): 4 pods where alice's quota admits 3.
    custom(node).patch_namespaced_custom_object(
        daskoperator.GROUP, daskoperator.VERSION, "tenant-alice", "daskclusters", name,
        {"spec": {"worker": {"replicas": 3}}},
    )  # fmt: skip
    scaled = time.time()
    refused = until_line(lines, "the tenant's quota refused a pod", 120)
    print(f"submit reported the quota's refusal {time.time() - scaled:.1f} s after the scale-up")
    assert "exceeded quota: dask-quota" in refused
    assert proc.wait(timeout=900) == 0, proc.stderr.read()[-3000:]  # the run goes on with the workers it has
    assert daskclusters(node, "tenant-alice") == []
    # its pods still count against the quota until they are gone (the next run needs them gone)
    wait_until(lambda: not tenant_pods(node, "tenant-alice"), 180, "its pods garbage-collected")


def test_killing_the_operator_during_a_job_disturbs_nothing_and_the_new_one_adopts(
    node: Node, release, tree, embedded, tmp_path
):
    from kubernetes import client

    proc = start_submit(node, tree, tmp_path, "alice", "--workers", "2")
    lines = read_lines(proc)
    until_line(lines, "running rossmann", 600)
    core = client.CoreV1Api(node.api())
    [old] = operator_pods(node)
    core.delete_namespaced_pod(old.metadata.name, NAMESPACE, grace_period_seconds=0)

    def new_operator_ready() -> bool:
        pods = operator_pods(node)
        return any(p.metadata.name != old.metadata.name and p.status.container_statuses
                   and all(c.ready for c in p.status.container_statuses) for p in pods)  # fmt: skip

    wait_until(new_operator_ready, 180, "a new operator pod Ready")
    assert proc.wait(timeout=900) == 0, proc.stderr.read()[-3000:]
    summary = json.loads(next((tmp_path / "results").glob("*/summary.json")).read_text())
    assert summary["best_params"] == embedded["best_params"]
    # submit deleted the cluster at the end: only the new operator could lift its finalizer (it adopted the cluster)
    wait_until(lambda: daskclusters(node, "tenant-alice") == [], 120, "the DaskCluster gone")
    wait_until(lambda: not tenant_pods(node, "tenant-alice"), 180, "its pods garbage-collected")
