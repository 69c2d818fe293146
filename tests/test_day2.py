"""Day-2 behaviour a live cluster shows (Argo CD syncs, KEDA, drains, upgrades), pinned on the rendered objects;
each fact's source is named beside it."""

from __future__ import annotations

import pytest

from dask_platform.repo import RepoTree
from tests.support.repo import REPO, objects_of
from tests.support.scratch import render_with

pytestmark = pytest.mark.helm


def dashboard_peers(r) -> list[dict]:
    policy = objects_of(r, "NetworkPolicy")["dask-scheduler"]
    dashboard = r.values.effective["global"]["ports"]["dashboard"]
    return [
        peer for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == dashboard for peer in rule["from"]
    ]


KEDA_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}


def test_keda_reads_the_adaptive_target_by_the_fully_qualified_name_and_may_reach_it(scratch: RepoTree, helm):
    """The keda-operator pod polls the URL from KEDA's namespace (KEDA docs, operate/cluster): the short Service
    name does not resolve there, and the default-deny policy must let that namespace in."""
    autoscaled = {"dask": {"workerGroups": {"default": {"autoscaling": {"enabled": True}}}}}
    r = render_with(scratch, helm, "minikube", autoscaled)
    [scaled] = objects_of(r, "ScaledObject").values()
    url = scaled["spec"]["triggers"][0]["metadata"]["url"]
    assert url == "http://dask-scheduler.dask.svc.cluster.local:8787/api/v1/adaptive_target"
    assert KEDA_PEER in dashboard_peers(r)


def test_without_autoscaling_keda_gets_no_way_in(rendered):
    for r in rendered.values():
        assert KEDA_PEER not in dashboard_peers(r)


def test_the_scheduler_may_reach_the_worker_dashboards_it_proxies(rendered):
    """distributed/http/proxy.py: the scheduler dashboard's worker links go through the scheduler to each worker's
    dashboard port."""
    for r in rendered.values():
        policy = objects_of(r, "NetworkPolicy")["dask-scheduler"]
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert r.values.effective["global"]["ports"]["workerDashboard"] in ports


def test_jupyter_home_claim_syncs_with_its_pod_not_before_it(scratch: RepoTree, helm):
    """A WaitForFirstConsumer claim stays Pending (Argo CD: Progressing) until a pod mounts it; in an earlier sync
    wave it would wait forever (argo-cd docs sync-waves.md; argo-cd issue #12840)."""
    r = render_with(scratch, helm, "gcp-example", {"jupyter": {"persistence": {"enabled": True}}})
    [claim] = objects_of(r, "PersistentVolumeClaim").values()
    deployment = objects_of(r, "Deployment")["dask-jupyter"]
    wave = "argocd.argoproj.io/sync-wave"
    assert claim["metadata"].get("annotations", {}).get(wave) == deployment["metadata"].get("annotations", {}).get(wave)


def test_jupyter_on_emptydir_is_not_evicted_by_node_scale_down(scratch: RepoTree, helm, rendered):
    """autoscaler FAQ: safe-to-evict "false" blocks scale-down; our autoscaler runs with
    --skip-nodes-with-local-storage=false, so an emptyDir home alone would not."""
    key = "cluster-autoscaler.kubernetes.io/safe-to-evict"
    for r in rendered.values():
        pod = objects_of(r, "Deployment")["dask-jupyter"]["spec"]["template"]["metadata"]
        on_disk = bool(objects_of(r, "PersistentVolumeClaim"))  # the cloud examples: the home survives a move
        assert (key in pod["annotations"]) != on_disk
    r = render_with(scratch, helm, "aws-example", {"jupyter": {"persistence": {"enabled": False}}})
    pod = objects_of(r, "Deployment")["dask-jupyter"]["spec"]["template"]["metadata"]
    assert pod["annotations"][key] == "false"


def test_the_scheduler_has_no_pdb_by_default_so_managed_upgrades_do_not_stall(scratch: RepoTree, helm, rendered):
    """EKS fails a node-group update after 15 min of PodEvictionFailure, AKS after drainTimeoutInMinutes: the
    scheduler is kept from the autoscaler by its annotation instead, and a PDB is an opt-in."""
    for r in rendered.values():
        assert "dask-scheduler" not in objects_of(r, "PodDisruptionBudget")
        pod = objects_of(r, "Deployment")["dask-scheduler"]["spec"]["template"]["metadata"]
        assert pod["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    r = render_with(scratch, helm, "aws-example", {"dask": {"scheduler": {"disruptionBudget": True}}})
    assert objects_of(r, "PodDisruptionBudget")["dask-scheduler"]["spec"]["minAvailable"] == 1


def test_no_probe_kills_or_unroutes_a_busy_pod_after_one_second(scratch: RepoTree, helm):
    """A busy event loop answers late: every probe allows at least 5 s, and the scheduler's liveness is TCP on its
    comm port (the listener answers while the loop is busy; the node test SIGSTOPs a scheduler for 20 s)."""
    r = render_with(scratch, helm, "aws-example", {"dask": {"workerGroups": {"default": {"replicas": 1}}}})
    probes = 0
    for name, dep in objects_of(r, "Deployment").items():
        for container in dep["spec"]["template"]["spec"]["containers"]:
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(kind)
                if probe:
                    probes += 1
                    assert probe.get("timeoutSeconds", 1) >= 5, (name, kind)
                    assert probe.get("timeoutSeconds", 1) * probe.get("failureThreshold", 3) >= 15, (name, kind)
    assert probes >= 6
    scheduler = objects_of(r, "Deployment")["dask-scheduler"]["spec"]["template"]["spec"]["containers"][0]
    assert scheduler["livenessProbe"]["tcpSocket"]["port"] == "tcp-comm"


def test_object_storage_egress_narrows_to_the_given_cidrs_without_internet_egress(scratch, helm):
    """The narrow form of the workers' and Jupyter's way to object storage: port 443 to listed CIDRs only (GCP's
    restricted.googleapis.com range here, VPC Service Controls docs, private-connectivity)."""
    narrow = {"allowInternetEgress": False, "objectStorageCidrs": ["199.36.153.4/30"], "apiServerPorts": [443]}
    api = {"apiServerCidrs": ["172.16.0.2/32"]}  # the control plane's endpoint: Jupyter reads pods there, only there
    r = render_with(scratch, helm, "gcp-example", {"global": {"networkPolicy": narrow | api}})
    seen = set()
    for policy in objects_of(r, "NetworkPolicy").values():
        to_443 = [
            rule.get("to")
            for rule in policy["spec"].get("egress", [])
            if rule["ports"][0]["port"] == 443 and rule.get("to") != [{"ipBlock": {"cidr": "172.16.0.2/32"}}]
        ]
        component = policy["metadata"]["name"].rsplit("-", 1)[-1]
        if component in ("workers", "jupyter"):
            assert to_443 == [[{"ipBlock": {"cidr": "199.36.153.4/30"}}]], policy["metadata"]["name"]
            seen.add(component)
        else:
            assert None not in to_443, policy["metadata"]["name"]  # nobody else reaches 443 anywhere
    assert seen == {"workers", "jupyter"}


def disruption_table() -> dict[str, list[str]]:
    """docs/autoscaling-and-security.md's table of what each component carries against disruption."""
    lines = (REPO.root / "docs/autoscaling-and-security.md").read_text().splitlines()
    start = lines.index("| component | PodDisruptionBudget | `cluster-autoscaler.kubernetes.io/safe-to-evict` |")
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        name, *cells = [c.strip() for c in line.strip("|").split("|")]
        rows[name] = cells
    return rows


def test_the_docs_say_what_each_component_carries_against_disruption(rendered):
    """The docs' table against every rendered cluster: the scheduler has no budget (the docs once described one the
    chart no longer rendered), each worker group's lets NotReady workers go, the annotations are as stated."""
    rows = disruption_table()
    assert set(rows) == {"scheduler", "worker group", "Jupyter"}
    key = "cluster-autoscaler.kubernetes.io/safe-to-evict"
    for r in rendered.values():
        budgets = objects_of(r, "PodDisruptionBudget")
        deployments = objects_of(r, "Deployment")
        annotations = {n: d["spec"]["template"]["metadata"].get("annotations", {}) for n, d in deployments.items()}
        assert rows["scheduler"][0].startswith("none") and "dask-scheduler" not in budgets
        assert f'`"{annotations["dask-scheduler"][key]}"`' == rows["scheduler"][1]
        workers = [n for n in deployments if n.startswith("dask-worker-")]
        assert workers
        for name in workers:
            spec = budgets[name]["spec"]
            policy = spec["unhealthyPodEvictionPolicy"]
            stated = f"`maxUnavailable: {spec['maxUnavailable']}`, `unhealthyPodEvictionPolicy: {policy}`"
            assert rows["worker group"][0] == stated
            assert f'`"{annotations[name][key]}"`' == rows["worker group"][1]
        assert rows["Jupyter"][0] == "none" and "dask-jupyter" not in budgets
        on_disk = bool(objects_of(r, "PersistentVolumeClaim"))
        expected = "none on a disk" if on_disk else f'`"{annotations["dask-jupyter"][key]}"` on emptyDir'
        assert (key in annotations["dask-jupyter"]) != on_disk and expected in rows["Jupyter"][1]
