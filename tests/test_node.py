"""The platform as Kubernetes runs it: the ci/ scenario sized for 2 cores, installed with helm (pyhelm3, --wait) on
the real single-node cluster (tests/support/node.py), with the platform image built from docker/Dockerfile.

Every test checks what only a kubelet shows: readiness, securityContext in force, the job through a real
port-forward, Jupyter and its proxied dashboard, preStop on deletion, probes under a paused scheduler, helm's
upgrade and rollback, the committed render applied as Argo CD applies it, and that nothing left the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from dask_platform.bootstrap import ensure_jupyter_token, server_side_apply
from dask_platform.render import RenderedCluster, render_clusters
from dask_platform.repo import RepoTree
from dask_platform.submit.embedded import worker_spawn_environ
from dask_platform.submit.kube import ServiceRef, port_forward
from tests.support.node import NAMESPACE, RELEASE, Node, node_cluster, wait_until
from tests.support.node import start_submit as submit_process
from tests.support.scratch import scratch_copy

pytestmark = [pytest.mark.node, pytest.mark.slow]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> RepoTree:
    tree = scratch_copy(tmp_path_factory.mktemp("node-repo") / "repo")
    node_cluster(tree)
    return tree


@pytest.fixture(scope="module")
def rendered(tree: RepoTree, helm: Path) -> RenderedCluster:
    [r] = render_clusters(tree, ["node"], helm)
    from dask_platform import generated

    generated.sync([r.output], False, lambda _: None, "render --all")  # the scheduler Service --cluster reads
    return r


@pytest.fixture(scope="module")
def release(node: Node, rendered: RenderedCluster, helm: Path, tree: RepoTree) -> dict[str, Any]:
    """The node cluster's values installed with helm --wait; Jupyter's token Secret made by our tooling first."""
    import pyhelm3

    api = node.api()
    secret = rendered.values.effective["jupyter"]["tokenSecret"]
    token = ensure_jupyter_token(api, NAMESPACE, secret["name"], secret["key"])
    client = pyhelm3.Client(executable=str(helm), kubeconfig=node.kubeconfig)

    async def install() -> Any:
        chart = await client.get_chart(tree.chart)
        return await client.install_or_upgrade_release(
            RELEASE, chart, rendered.values.user, namespace=NAMESPACE, wait=True, timeout="5m"
        )

    started = time.time()
    revision = asyncio.run(install())
    return {"token": token, "revision": revision.revision, "ready_s": time.time() - started, "helm": client}


def core(node: Node):
    from kubernetes import client

    return client.CoreV1Api(node.api())


def pods(node: Node, component: str | None = None) -> list[Any]:
    """The live pods of the release; component "worker" means every worker group's."""
    selector = f"app.kubernetes.io/component={component}" if component else ""
    if component == "worker":
        selector = "dask-platform/role=worker"
    items = core(node).list_namespaced_pod(NAMESPACE, label_selector=selector).items
    return [p for p in items if not p.metadata.deletion_timestamp]


def warnings(node: Node, since: float = 0, pod: str | None = None) -> list[str]:
    """Warning events (of ``pod``, since ``since``). A readiness probe failing before a pod's first Ready is its
    start-up, not a problem, and is left out."""
    ready_at = {}
    for p in core(node).list_namespaced_pod(NAMESPACE).items:
        for condition in p.status.conditions or []:
            if condition.type == "Ready" and condition.status == "True":
                ready_at[p.metadata.name] = condition.last_transition_time.timestamp()
    out = []
    for e in core(node).list_namespaced_event(NAMESPACE).items:
        when = (e.last_timestamp or e.event_time or e.metadata.creation_timestamp).timestamp()
        name = e.involved_object.name
        if e.type != "Warning" or when < since or (pod and name != pod):
            continue
        if "Readiness probe failed" in e.message and when <= ready_at.get(name, float("inf")):
            continue
        out.append(f"{e.reason} {name}: {e.message[:200]}")
    return out


def exec_in(node: Node, pod: str, command: list[str]) -> tuple[int, str]:
    """Run ``command`` in the pod's first container; (exit code, output)."""
    from kubernetes.stream import stream

    resp = stream(
        core(node).connect_get_namespaced_pod_exec,
        pod,
        NAMESPACE,
        command=command,
        stderr=True,
        stdout=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=60)
    output = resp.read_stdout() + resp.read_stderr()
    return resp.returncode, output


def all_ready(node: Node, n: int = 4) -> bool:
    ready = [p for p in pods(node) if p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses)]
    return len(ready) == n


def start_submit(node: Node, tree: RepoTree, tmp: Path, *extra: str) -> subprocess.Popen:
    """`dask-platform submit rossmann --cluster node` (a port-forward to the node's scheduler) as a process."""
    return submit_process(node, tree, tmp, "--cluster", "node", *extra)


def wait_running(proc: subprocess.Popen) -> list[str]:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("running rossmann"):
            return lines
    raise AssertionError(f"the job never ran: {''.join(lines)}{proc.stderr.read()[-2000:]}")


# --- the release -------------------------------------------------------------------------------------------


def test_every_pod_ready_without_restarts_or_warnings(node: Node, release):
    assert all_ready(node), [(p.metadata.name, p.status.phase) for p in pods(node)]
    restarts = {p.metadata.name: sum(c.restart_count for c in p.status.container_statuses) for p in pods(node)}
    assert set(restarts.values()) == {0}, restarts
    assert warnings(node) == []


def test_containers_run_as_uid_1000_read_only_without_capabilities(node: Node, release):
    for pod in pods(node):
        name = pod.metadata.name
        code, out = exec_in(node, name, ["python", "-c", "import os; print(os.getuid(), os.getgid())"])
        assert (code, out.split()) == (0, ["1000", "1000"]), (name, out)
        code, out = exec_in(node, name, ["python", "-c", "open('/usr/local/probe', 'w')"])
        assert code != 0 and "Read-only file system" in out, (name, out)
        code, out = exec_in(node, name, ["grep", "^CapEff", "/proc/self/status"])
        assert code == 0 and out.split()[-1] == "0000000000000000", (name, out)


WORKER_ENVIRON = """
import os
for pid in set(filter(str.isdigit, os.listdir("/proc"))) - {str(os.getpid())}:  # this code names spawn_main too
    try:  # a probe's process may end while this reads
        with open(f"/proc/{pid}/cmdline", "rb") as cmd, open(f"/proc/{pid}/environ", "rb") as env:
            if b"spawn_main" in cmd.read():  # the worker process the nanny started
                print(sorted(e.decode() for e in env.read().split(b"\\0") if e.startswith(b"MALLOC_")))
    except OSError:
        pass
"""


def test_worker_processes_start_with_the_image_dask_config(node: Node, release, tree):
    """The image carries docker/dask.yaml as /etc/dask/dask.yaml: each worker pod's nanny starts its worker with
    that malloc environment (the embedded cluster's workers get the same, tests/test_submit_access.py)."""
    wanted = sorted(
        f"{name}={value}" for name, value in worker_spawn_environ(tree).items() if name.startswith("MALLOC_")
    )
    assert wanted
    for pod in pods(node, "worker"):
        code, out = exec_in(node, pod.metadata.name, ["python", "-c", WORKER_ENVIRON])
        assert (code, out.strip()) == (0, repr(wanted)), (pod.metadata.name, out)


def test_job_through_a_port_forward_matches_the_embedded_run(node: Node, release, tree, embedded, tmp_path):
    proc = start_submit(node, tree, tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(next((tmp_path / "results").glob("*/summary.json")).read_text())
    assert summary["best_params"] == embedded["best_params"]
    assert summary["cv_rmspe"] == pytest.approx(embedded["cv_rmspe"], rel=1e-6)
    # the image carries no job code: the client uploaded its own jobs package to the scheduler and both workers
    assert "uploaded jobs-" in summary["code_shipping"] and "scheduler and 2 workers" in summary["code_shipping"]
    assert "port-forward tcp://127.0.0.1:" in out


def test_jupyter_token_api_and_proxied_dashboard(node: Node, release):
    token = release["token"]
    assert token, "the token Secret was created by ensure_jupyter_token for this release"
    selector = {"app.kubernetes.io/component": "jupyter", "app.kubernetes.io/instance": RELEASE}
    with port_forward(
        ServiceRef(NAMESPACE, "dask-jupyter", 8888, selector), kubeconfig=str(node.kubeconfig)
    ) as address:
        base = address.replace("tcp://", "http://")
        with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=30) as response:
            assert response.status == 200 and "started" in json.loads(response.read())
        status = f"{base}/proxy/dask-scheduler:8787/status?token={token}"
        with urllib.request.urlopen(status, timeout=60) as response:
            page = response.read().decode()
        assert response.status == 200 and "Dask" in page
        request = urllib.request.Request(f"{base}/api/status")  # no token: refused
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 403


def test_helm_says_when_the_jupyter_token_secret_is_missing(node: Node, release, rendered, helm, tree, tmp_path):
    """helm's notes name the missing Secret and the command that creates it (the pod alone would wait silently)."""
    values = tmp_path / "values.json"
    values.write_text(json.dumps(rendered.values.user))
    env = {**os.environ, "KUBECONFIG": str(node.kubeconfig)}

    def notes(namespace: str) -> str:
        cmd = [str(helm), "install", "notes", str(tree.chart), "-n", namespace, "-f", str(values), "--dry-run=server"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split("NOTES:", 1)[1]

    missing = notes("no-token-here")
    assert "WARNING: JupyterLab will not start: its token Secret no-token-here/jupyter-token does not exist" in missing
    assert "dask-platform jupyter-token" in missing
    assert "WARNING" not in notes(NAMESPACE)


# --- disruptions -------------------------------------------------------------------------------------------


def test_deleted_worker_retires_and_the_search_survives(node: Node, release, tree, embedded, tmp_path):
    proc = start_submit(node, tree, tmp_path)
    try:
        wait_running(proc)
        time.sleep(4)
        victim = pods(node, "worker")[0].metadata.name
        started = time.time()
        core(node).delete_namespaced_pod(victim, NAMESPACE)
        wait_until(lambda: victim not in {p.metadata.name for p in pods(node, "worker")}, 120, f"{victim} gone")
        deleted_in = time.time() - started
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(next((tmp_path / "results").glob("*/summary.json")).read_text())
    assert summary["best_params"] == embedded["best_params"]
    # the preStop retired it: seconds, not the 300 s grace period, and the kubelet reported no failed hook
    assert deleted_in < 60, deleted_in
    assert not [w for w in warnings(node, since=started) if "PreStop" in w]
    wait_until(lambda: all_ready(node), 120, "the replaced worker Ready")


def test_deleted_scheduler_stops_the_job_clearly_then_a_new_one_serves(node: Node, release, tree, tmp_path):
    # The default search on 200 stores (about 30 s of search here) outlasts the scheduler's preStop drain (up to
    # 10 s), so the run is always cut off and the one-line error path is what is tested.
    proc = start_submit(node, tree, tmp_path, "--stores", "200", "--search", "default")
    try:
        wait_running(proc)
        time.sleep(3)
        core(node).delete_namespaced_pod(pods(node, "scheduler")[0].metadata.name, NAMESPACE)
        started = time.time()
        _, err = proc.communicate(timeout=120)
        stopped_in = time.time() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    assert stopped_in < 60, stopped_in
    assert not list((tmp_path / "results").glob("*/summary.json"))  # nothing half written
    wait_until(lambda: all_ready(node), 180, "a new scheduler and reconnected workers")
    (tmp_path / "again").mkdir()
    again = start_submit(node, tree, tmp_path / "again")
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]


def container_pid(node: Node, pod: Any) -> int:
    """The host PID of the pod's first container (the node runs on this machine)."""
    cid = pod.status.container_statuses[0].container_id.split("://")[1]
    ctr = ["ctr", "--address", str(node.layout.containerd_socket), "-n", "k8s.io", "tasks", "ls"]
    for line in subprocess.run(ctr, capture_output=True, text=True, check=True).stdout.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == cid:
            return int(pid)
    raise AssertionError(f"no task for container {cid}")


def test_a_group_at_zero_wakes_when_a_job_arrives(node: Node, release, tree, tmp_path):
    """Workers scaled to zero (as KEDA does with minReplicas 0 and no work): the job says what it waits for on one
    line; the test then scales the group up as KEDA would on the adaptive target the job raised, and the job runs."""
    from kubernetes import client

    apps = client.AppsV1Api(node.api())

    def scale(n: int) -> None:
        apps.patch_namespaced_deployment_scale("dask-worker-default", NAMESPACE, {"spec": {"replicas": n}})

    scale(0)
    try:
        wait_until(lambda: not pods(node, "worker"), 120, "the workers gone")
        proc = start_submit(node, tree, tmp_path)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("waiting for workers"):
                break
        assert lines and lines[-1].startswith("waiting for workers: 0 of 1 "), "".join(lines) + proc.stderr.read()
        scale(2)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "best params" in out.lower(), out[-2000:]
    finally:
        scale(2)
        wait_until(lambda: all_ready(node), 180, "two workers Ready again")


def test_switching_to_autoscaling_keeps_the_running_workers(node: Node, release, tree, helm):
    """KEDA's HPA has 3 workers running; a values PR turns autoscaling on and Argo CD syncs the new Deployment:
    the 3 keep running (the chart renders no count for the group, and the new Application ignores its
    /spec/replicas by name and respects that at sync: tests/support/argo.py models it)."""
    from kubernetes import client

    from dask_platform.argocd import build_application, load_settings
    from dask_platform.clusters import load_cluster
    from tests.support.argo import ARGO_MANAGER, apply_as, get_live, named, render_with_workers, respect_ignored

    apps = client.AppsV1Api(node.api())
    path = tree.cluster_file("node")
    original = path.read_text()
    try:
        objects = render_with_workers(tree, helm, "node", {"autoscaling": {"enabled": True, "maxReplicas": 4}})
        application = build_application(load_settings(tree), load_cluster(tree, "node"), objects)
    finally:
        path.write_text(original)
    scaled = named(objects, "Deployment", "dask-worker-default")
    assert "replicas" not in scaled["spec"]
    patch = {"spec": {"replicas": 3}}
    try:
        apps.patch_namespaced_deployment_scale(
            "dask-worker-default", NAMESPACE, patch, field_manager="kube-controller-manager"
        )
        wait_until(lambda: all_ready(node, 5), 180, "three workers Ready")
        running = {p.metadata.name for p in pods(node, "worker")}
        rules = application["spec"]["ignoreDifferences"]
        apply_as(node.api(), respect_ignored(scaled, get_live(node.api(), scaled), rules), ARGO_MANAGER)
        time.sleep(10)
        assert apps.read_namespaced_deployment("dask-worker-default", NAMESPACE).spec.replicas == 3
        assert {p.metadata.name for p in pods(node, "worker")} == running  # nothing restarted or removed
    finally:
        apps.patch_namespaced_deployment_scale("dask-worker-default", NAMESPACE, {"spec": {"replicas": 2}})
        wait_until(lambda: all_ready(node), 180, "two workers Ready again")


def test_a_paused_scheduler_is_not_restarted(node: Node, release):
    """SIGSTOP for 20 s, as a long GIL-holding graph would: liveness (TCP on the comm port) keeps passing."""
    pod = pods(node, "scheduler")[0]
    pid = container_pid(node, pod)
    paused = time.time() - 1
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(20)
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(5)
    after = core(node).read_namespaced_pod(pod.metadata.name, NAMESPACE)
    assert after.status.container_statuses[0].restart_count == pod.status.container_statuses[0].restart_count
    assert not [w for w in warnings(node, since=paused, pod=pod.metadata.name) if "Liveness" in w]


# --- helm lifecycle, the committed render, the network -------------------------------------------------------


def worker_replicas(node: Node) -> int:
    from kubernetes import client

    apps = client.AppsV1Api(node.api())
    return apps.read_namespaced_deployment("dask-worker-default", NAMESPACE).status.ready_replicas or 0


def test_helm_upgrade_and_rollback_roll_out(node: Node, release, rendered, tree):
    client = release["helm"]
    changed = json.loads(json.dumps(rendered.values.user))
    changed["dask"]["workerGroups"]["default"]["replicas"] = 3

    async def lifecycle() -> tuple[int, int]:
        chart = await client.get_chart(tree.chart)
        upgraded = await client.install_or_upgrade_release(
            RELEASE, chart, changed, namespace=NAMESPACE, wait=True, timeout="5m"
        )
        three = worker_replicas(node)
        await upgraded.release.rollback(release["revision"], wait=True, timeout="5m")
        return three, upgraded.revision

    three, revision = asyncio.run(lifecycle())
    assert three == 3 and revision == release["revision"] + 1
    wait_until(lambda: all_ready(node), 120, "the rolled-back release Ready")
    assert worker_replicas(node) == 2


def test_uninstall_leaves_nothing_and_no_failed_hooks(node: Node, release):
    async def uninstall() -> None:
        [current] = [r for r in await release["helm"].list_releases(namespace=NAMESPACE) if r.name == RELEASE]
        await current.uninstall(wait=True)

    asyncio.run(uninstall())
    every_pod = lambda: core(node).list_namespaced_pod(NAMESPACE).items  # noqa: E731 - terminating ones too
    wait_until(lambda: not every_pod(), 180, "every pod gone (preStop hooks run)")
    assert not [w for w in warnings(node) if "PreStop" in w], warnings(node)


def test_the_committed_render_applied_as_argo_cd_applies_it(node: Node, release, rendered):
    """Server-side apply of exactly the files Argo CD syncs; the pods come up as with helm, without warnings.
    (The Endpoints and EndpointSlice controllers may report an optimistic-lock conflict while they reconcile a
    Service re-created under the same name; they retry by themselves: no problem of the platform's.)"""
    objects = [o for o in rendered.objects if o["apiVersion"] != "policy/v1"]  # PDBs: no policy/v1 on 1.20
    started = time.time() - 1
    lines = server_side_apply(objects, node.api())
    assert len(lines) == len(objects)
    wait_until(lambda: all_ready(node), 240, "every pod of the applied render Ready")
    assert [w for w in warnings(node, since=started) if not w.startswith("FailedToUpdateEndpoint")] == []


def test_nothing_left_the_machine(node: Node):
    """Every packet of the node's ranges that tried to leave through the default route was dropped and counted."""
    assert node.guard_drops() == 0


def test_rendered_scenario_is_what_was_tested(rendered):
    assert yaml.safe_load(rendered.files["service-dask-scheduler.yaml"])["metadata"]["namespace"] == NAMESPACE
