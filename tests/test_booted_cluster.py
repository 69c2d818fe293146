"""The Dask cluster the rendered manifests describe, booted as local processes (testbed/boot.py), runs the
Rossmann job; Jupyter's DASK_SCHEDULER_ADDRESS reaches it; every cloud's rendering gives the same results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from testbed.boot import boot
from testbed.daskproc import run_cli
from tests.support.repo import REPO

pytestmark = [pytest.mark.dask, pytest.mark.slow]


def run_job(address: str, tmp: Path) -> dict:
    proc = run_cli(["--scheduler", address, "--no-progress"], tmp)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(next((tmp / "results").glob("*/summary.json")).read_text())


@pytest.fixture(scope="module")
def summaries(tmp_path_factory) -> dict[str, dict]:
    """The job on the booted cluster of every cluster's rendering (4 clouds)."""
    out = {}
    for name in REPO.cluster_names():
        tmp = tmp_path_factory.mktemp(name)
        with boot(REPO.rendered_dir(name), tmp / "pods") as booted:
            out[name] = {
                "summary": run_job(booted.scheduler_address, tmp),
                "workers": booted.workers,
                "address": booted.scheduler_address,
            }
    return out


def test_minikube_manifests_form_a_working_cluster_that_runs_the_job(summaries):
    s = summaries["minikube"]["summary"]
    assert summaries["minikube"]["workers"] == 2  # the Deployment's replicas
    assert s["holdout_rmspe"]["model"] < s["holdout_rmspe"]["baseline"]
    assert "uploaded jobs-" in s["code_shipping"]  # the pods' processes did not have the checkout
    assert s["cluster_threads"] == 2  # --nthreads from limits.cpu = 1, x 2 workers


def test_jupyters_scheduler_address_connects(tmp_path: Path):
    from distributed import Client

    rendered = REPO.rendered_dir("minikube")
    jupyter = yaml.safe_load((rendered / "deployment-dask-jupyter.yaml").read_text())
    env = {e["name"]: e.get("value") for e in jupyter["spec"]["template"]["spec"]["containers"][0]["env"]}
    with (
        boot(rendered, tmp_path) as booted,
        Client(booted.resolve(env["DASK_SCHEDULER_ADDRESS"]), timeout="10s") as client,
    ):
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        assert len(workers) == 2
        assert {w["name"] for w in workers} == {"dask-worker-default-0", "dask-worker-default-1"}
        # --memory-limit: dask.memoryLimitFraction (0.9) of limits.memory, the rest headroom for nanny and preStop
        assert all(w["memory_limit"] == int(2 * 2**30 * 0.9) for w in workers)
        assert client.submit(sum, [1, 2, 3]).result() == 6
        # The URL a KEDA ScaledObject polls (rendered in charts/dask-platform/scenarios/all-features-values.yaml)
        # answers with the scheduler's adaptive target, because the rendered scheduler env enables the API route.
        import json as _json
        import urllib.request

        target = booted.resolve("http://dask-scheduler:8787/api/v1/adaptive_target")
        with urllib.request.urlopen(target, timeout=10) as response:
            assert isinstance(_json.loads(response.read())["workers"], int)


def test_every_cloud_gives_the_same_results(summaries):
    reference = summaries["minikube"]["summary"]
    for name, entry in summaries.items():
        s = entry["summary"]
        assert s["best_params"] == reference["best_params"], name
        assert s["cv_rmspe"] == pytest.approx(reference["cv_rmspe"], rel=1e-6), name
        assert s["holdout_rmspe"]["model"] == pytest.approx(reference["holdout_rmspe"]["model"], rel=1e-6), name
        assert s["scheduler_address"] == entry["address"]
    assert len({e["address"] for e in summaries.values()}) == len(summaries)


# --- NetworkPolicies against the traffic of a real run --------------------------------------------------------


def _matches(selector: dict, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_ok(peers: list[dict] | None, labels: dict[str, str]) -> bool:
    if not peers:  # no from/to: any peer
        return True
    return any(
        "podSelector" in p and "namespaceSelector" not in p and _matches(p["podSelector"], labels) for p in peers
    )


def _port_ok(ports: list[dict] | None, port: int) -> bool:
    return not ports or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports)


def allowed(policies: list[dict], src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    """Kubernetes NetworkPolicy semantics for same-namespace pod-to-pod TCP: a direction is allowed if no policy
    of that type selects the pod, or some selecting policy has a matching rule."""

    def direction(kind: str, pod: dict[str, str], peer: dict[str, str]) -> bool:
        selecting = [
            p for p in policies if _matches(p["spec"]["podSelector"], pod) and kind in p["spec"].get("policyTypes", [])
        ]
        if not selecting:
            return True
        key, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
        return any(
            _peer_ok(rule.get(peers_key), peer) and _port_ok(rule.get("ports"), port)
            for p in selecting
            for rule in p["spec"].get(key, []) or []
        )

    return direction("Egress", src, dst) and direction("Ingress", dst, src)


def observed_flows(booted, client_labels: dict[str, str]) -> set[tuple[str, str, int]]:
    """(source component, destination component, destination container port) of every TCP connection between
    the booted pods (and this test process, standing in for Jupyter), read from the kernel's socket table."""
    import psutil

    owner: dict[int, str] = {os.getpid(): "jupyter"}
    listening: dict[int, tuple[str, int]] = {}
    for pod in booted.pods.values():
        component = pod.labels["app.kubernetes.io/component"]
        try:
            root = psutil.Process(pod.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                owner[proc.pid] = component
        except psutil.Error:  # a process that just exited
            continue
        for local, container_port in pod.ports.items():
            listening[local] = (component, container_port)
    flows = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_ESTABLISHED or not conn.raddr or conn.pid not in owner:
            continue
        if conn.raddr.port in listening and conn.laddr.port not in listening:
            dst, port = listening[conn.raddr.port]
            flows.add((owner[conn.pid], dst, port))
    return flows


def test_network_policies_allow_every_flow_of_a_real_run(tmp_path: Path):
    import threading
    import time
    import urllib.request

    from distributed import Client

    rendered = REPO.rendered_dir("minikube")
    objects = [yaml.safe_load(p.read_text()) for p in rendered.glob("*.yaml")]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    labels = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] == "Deployment"
    }
    component_labels = {v["app.kubernetes.io/component"]: v for v in labels.values()}
    assert policies, "no NetworkPolicies rendered"

    flows: set[tuple[str, str, int]] = set()
    with boot(rendered, tmp_path) as booted, Client(booted.scheduler_address, direct_to_workers=True) as client:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                flows.update(observed_flows(booted, component_labels["jupyter"]))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            # A shuffle-like computation: data made on both workers, each sum needing a part from the other.
            a, b = sorted(client.scheduler_info(n_workers=-1)["workers"])
            parts = [
                client.submit(
                    lambda i: list(range(i * 100_000, (i + 1) * 100_000)), i, workers=[a if i < 4 else b], pure=False
                )
                for i in range(8)
            ]
            sums = [
                client.submit(lambda x, y: sum(x) + sum(y), parts[i], parts[-1 - i], workers=[a], pure=False)
                for i in range(4)
            ]
            assert sum(client.gather(sums, direct=False)) == sum(range(800_000))  # through the scheduler
            client.gather(parts[:2], direct=True)  # straight from the workers
            dashboard = booted.resolve("http://dask-scheduler:8787/status")
            urllib.request.urlopen(dashboard, timeout=10).read()  # the dashboard link, as Jupyter proxies it
            time.sleep(0.5)
        finally:
            stop.set()
            sampler.join()
        flows.update(observed_flows(booted, component_labels["jupyter"]))

    kinds = {(src, dst) for src, dst, _ in flows}
    assert {
        ("worker-default", "scheduler"),
        ("scheduler", "worker-default"),
        ("jupyter", "scheduler"),
        ("worker-default", "worker-default"),
    } <= kinds, flows
    denied = [f for f in flows if not allowed(policies, component_labels[f[0]], component_labels[f[1]], f[2])]
    assert denied == [], f"traffic of a real run the NetworkPolicies would block: {denied}"
    # and the policies are not wide open: a worker may not reach Jupyter, Jupyter may not reach a nanny
    assert not allowed(policies, component_labels["worker-default"], component_labels["jupyter"], 8888)
    assert not allowed(policies, component_labels["jupyter"], component_labels["worker-default"], 8790)


def test_dashboard_link_works_through_jupyter_server_proxy(tmp_path: Path):
    """JupyterLab started as the rendered Deployment says (command, args, env), next to the booted cluster: the
    dashboard link a Client prints there goes through jupyter-server-proxy to the scheduler's dashboard."""
    import subprocess
    import sys
    import time
    import urllib.request

    from testbed.boot import container_env
    from testbed.daskproc import free_port, wait_for_port

    rendered = REPO.rendered_dir("minikube")
    jupyter = yaml.safe_load((rendered / "deployment-dask-jupyter.yaml").read_text())
    container = jupyter["spec"]["template"]["spec"]["containers"][0]
    with boot(rendered, tmp_path / "pods") as booted:
        home = tmp_path / "home"
        home.mkdir()
        env = container_env(container, "dask-jupyter-0", {"/home/dask": str(home)})
        link = env["DASK_DISTRIBUTED__DASHBOARD__LINK"]  # /proxy/<scheduler Service>:<port>/status
        service, port = link.split("/")[2].split(":")
        local_dashboard = booted.resolve(f"tcp://{service}:{port}").removeprefix("tcp://")
        jupyter_port = free_port()
        args = []
        for arg in container["args"]:
            arg = arg.replace(
                f"--ServerApp.port={container['ports'][0]['containerPort']}", f"--ServerApp.port={jupyter_port}"
            )
            arg = arg.replace("--ServerApp.ip=0.0.0.0", "--ServerApp.ip=127.0.0.1")
            arg = arg.replace("=/home/dask", f"={home}")
            arg = arg.replace(f'host_allowlist=["{service}"]', 'host_allowlist=["127.0.0.1"]')  # the Service, here
            args.append(arg)
        if os.geteuid() == 0:  # the pod runs as uid 1000; this test machine may run as root
            args.append("--allow-root")
        token = "test-token"
        proc_env = {
            **os.environ,
            **env,
            "JUPYTER_TOKEN": token,
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        log = tmp_path / "jupyter.log"
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / container["command"][0]), *container["command"][1:], *args],
            env=proc_env,
            cwd=home,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(jupyter_port, proc, log, timeout=60)
            proxied = link.replace(f"{service}:{port}", local_dashboard)
            url = f"http://127.0.0.1:{jupyter_port}{proxied}?token={token}"
            deadline = time.time() + 30
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=10) as response:
                        body = response.read().decode(errors="replace")
                        assert response.status == 200
                        break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.5)
            assert "Dask" in body and "bokeh" in body.lower()
        finally:
            proc.terminate()
            proc.wait(30)
