"""An idle platform costs next to nothing: worker groups that sleep at zero, nodes that follow, kernels culled, and
a client that wakes the workers and says what it waits for."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dask_platform.clouds import cloud
from dask_platform.clouds.aws import NODE_TEMPLATE_LABEL, build_eksctl_config
from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.provision import node_groups
from dask_platform.render import committed_objects
from dask_platform.repo import RepoTree
from tests.support.repo import REPO, objects_of
from tests.support.scratch import render_with


@pytest.mark.helm
def test_a_group_may_sleep_at_zero_and_wakes_on_any_target(scratch: RepoTree, helm):
    """KEDA's metrics-api scaler activates a group at zero when the value exceeds activationTargetValue (KEDA
    docs); the scheduler's adaptive target is at least 1 as soon as work waits and no worker exists."""
    scaling = {"enabled": True, "minReplicas": 0, "maxReplicas": 6}
    r = render_with(scratch, helm, "minikube", {"dask": {"workerGroups": {"default": {"autoscaling": scaling}}}})
    [scaled] = objects_of(r, "ScaledObject").values()
    assert scaled["spec"]["minReplicaCount"] == 0 and scaled["spec"]["maxReplicaCount"] == 6
    assert scaled["spec"]["triggers"][0]["metadata"]["activationTargetValue"] == "0"
    scheduler = objects_of(r, "Deployment")["dask-scheduler"]
    assert scheduler["spec"]["replicas"] == 1  # the scheduler stays up


@pytest.mark.helm
def test_idle_kernels_are_culled_by_jupyter_server_settings(scratch: RepoTree, helm, rendered):
    for r in rendered.values():
        args = objects_of(r, "Deployment")["dask-jupyter"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--MappingKernelManager.cull_idle_timeout=3600" in args
        assert "--MappingKernelManager.cull_connected=True" in args
    values = {"jupyter": {"culling": {"kernelIdleSeconds": 900, "culledWhenConnected": False}}}
    r = render_with(scratch, helm, "minikube", values)
    args = objects_of(r, "Deployment")["dask-jupyter"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--MappingKernelManager.cull_idle_timeout=900" in args
    assert "--MappingKernelManager.cull_connected=False" in args
    r = render_with(scratch, helm, "minikube", {"jupyter": {"culling": {"enabled": False}}})
    args = objects_of(r, "Deployment")["dask-jupyter"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if "cull" in a]


@pytest.mark.parametrize("name", ["aws-example", "gcp-example", "azure-example"])
def test_worker_node_groups_may_shrink_to_no_node(name: str):
    groups = {g.name: g for g in node_groups(load_cluster(REPO, name))}
    assert groups["workers"].min_size == 0 and groups["core"].min_size >= 1  # the scheduler's node stays


def test_eks_groups_carry_the_node_template_tags_that_let_the_autoscaler_wake_them():
    """To scale an empty group up, cluster-autoscaler reads the labels its nodes would have from
    k8s.io/cluster-autoscaler/node-template/label/<label> ASG tags (autoscaler cloudprovider/aws/README.md): every
    label a rendered pod selects on that group must be there."""
    cluster = load_cluster(REPO, "aws-example")
    config = build_eksctl_config(cluster, committed_objects(REPO, cluster.name))
    tags = {g["name"]: g["tags"] for g in config["managedNodeGroups"]}
    label = cloud("aws").node_group_label
    checked = 0
    for obj in committed_objects(REPO, cluster.name):
        if obj["kind"] != "Deployment":
            continue
        selector = obj["spec"]["template"]["spec"].get("nodeSelector", {})
        for key, value in selector.items():
            assert tags[selector[label]][NODE_TEMPLATE_LABEL + key] == value, (obj["metadata"]["name"], key)
            checked += 1
    assert checked >= 4


# --- the client on a cluster at zero workers ----------------------------------------------------------------------


@pytest.mark.dask
@pytest.mark.slow
def test_a_client_wakes_a_sleeping_cluster_and_says_so(tmp_path: Path):
    """A scheduler with no worker: the job queues a wake-up task (adaptive target 1), says what it waits for on one
    line, and runs once a worker joins (started here as KEDA would scale the group up)."""
    from dask_platform.submit.run import submit
    from dask_platform.submit.target import Connection
    from testbed.daskproc import local_dask
    from tests.test_submit_run import small_options

    lines: list[str] = []
    with local_dask(tmp_path, n_workers=0) as cluster:

        def scale_up_when_asked() -> None:
            deadline = time.time() + 60
            while time.time() < deadline and not any(line.startswith("waiting for workers") for line in lines):
                time.sleep(0.2)
            cluster.start_worker()

        threading.Thread(target=scale_up_when_asked, daemon=True).start()
        conn = Connection(scheduler=cluster.address, worker_timeout=120)
        summary = submit(REPO, "rossmann", small_options(tmp_path), conn, lines.append, environ={})
    waiting = [line for line in lines if line.startswith("waiting for workers")]
    assert waiting == ["waiting for workers: 0 of 1 (the worker group scales up from zero; up to 120 s)"], lines
    assert summary["best_params"]


@pytest.mark.dask
@pytest.mark.slow
def test_no_worker_arriving_is_a_clear_error_after_the_timeout(tmp_path: Path):
    from dask_platform.submit.run import submit
    from dask_platform.submit.target import Connection
    from testbed.daskproc import local_dask
    from tests.test_submit_run import small_options

    lines: list[str] = []
    with local_dask(tmp_path, n_workers=0) as cluster:
        conn = Connection(scheduler=cluster.address, worker_timeout=3)
        start = time.perf_counter()
        with pytest.raises(UserError, match=r"no worker joined the cluster within 3 s: a group at 0 replicas"):
            submit(REPO, "rossmann", small_options(tmp_path), conn, lines.append, environ={})
        assert time.perf_counter() - start < 30
        from distributed import Client

        with Client(cluster.address, timeout="10s") as client:  # the wake-up task was released
            assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
    assert not list((tmp_path / "results").glob("*/summary.json"))
