"""What the renderer produces per cloud, and how it behaves: deterministic, atomic, clear on bad input."""

from __future__ import annotations

import re

import pytest
import yaml
from click.testing import CliRunner

from dask_platform import generated, render
from dask_platform.cli import main as cli
from dask_platform.clusters import load_cluster
from dask_platform.quantity import parse_quantity
from dask_platform.repo import RepoTree
from tests.support.repo import REPO, container_args, objects_of

pytestmark = pytest.mark.helm


def to_bytes(quantity: str) -> int:
    return int(parse_quantity(quantity))


def to_cpus(quantity: str) -> float:
    return float(parse_quantity(quantity))


def test_every_cluster_renders_the_core_components(rendered):
    assert set(rendered) == set(REPO.cluster_names()) and len(rendered) >= 4
    for name, r in rendered.items():
        deployments = objects_of(r, "Deployment")
        assert "dask-scheduler" in deployments, name
        assert any(n.startswith("dask-worker-") for n in deployments), name
        assert "dask-scheduler" in objects_of(r, "Service"), name


def test_one_example_cluster_per_cloud(clouds_by_cluster):
    assert sorted(set(clouds_by_cluster.values())) == ["aws", "azure", "gcp", "minikube"]


def test_aws_service_accounts_carry_the_irsa_role_arns(rendered):
    cluster = load_cluster(REPO, "aws-example")
    sas = objects_of(rendered["aws-example"], "ServiceAccount")
    want = cluster.overrides["dask"]["serviceAccount"]
    assert (
        sas["dask-dask"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == want["annotations"]["eks.amazonaws.com/role-arn"]
    )
    assert sas["dask-cluster-autoscaler"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        "role/aws-example-cluster-autoscaler"
    )
    # the workers run as that identity
    worker = objects_of(rendered["aws-example"], "Deployment")["dask-worker-default"]
    assert worker["spec"]["template"]["spec"]["serviceAccountName"] == "dask-dask"


def test_gcp_and_azure_identity(rendered):
    gcp = objects_of(rendered["gcp-example"], "ServiceAccount")["dask-dask"]
    assert gcp["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    azure = rendered["azure-example"]
    assert (
        "azure.workload.identity/client-id"
        in objects_of(azure, "ServiceAccount")["dask-dask"]["metadata"]["annotations"]
    )
    for dep in objects_of(azure, "Deployment").values():
        assert dep["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"


def test_cluster_autoscaler_only_on_aws_with_the_right_args(rendered, clouds_by_cluster):
    for name, r in rendered.items():
        deployments = objects_of(r, "Deployment")
        has_ca = "dask-cluster-autoscaler" in deployments
        assert has_ca == (clouds_by_cluster[name] == "aws"), name
        assert bool(objects_of(r, "ClusterRole")) == has_ca, "no ClusterRole unless cluster-autoscaler needs one"
    ca = objects_of(rendered["aws-example"], "Deployment")["dask-cluster-autoscaler"]
    args = container_args(ca)
    assert "--cloud-provider=aws" in args
    assert (
        "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/aws-example"
    ) in args
    # image minor follows the cluster's Kubernetes minor
    minor = load_cluster(REPO, "aws-example").kubernetes_version
    image = ca["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.split(":")[1].startswith(f"v{minor}."), image


def test_cluster_autoscaler_image_follows_kubernetes_version(scratch: RepoTree, helm):
    path = scratch.cluster_file("aws-example")
    path.write_text(path.read_text().replace('kubernetesVersion: "1.35"', 'kubernetesVersion: "1.36"'))
    [r] = render.render_clusters(scratch, ["aws-example"], helm)
    image = objects_of(r, "Deployment")["dask-cluster-autoscaler"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert ":v1.36." in image


def test_worker_threads_and_memory_limit_follow_resources(rendered):
    for name, r in rendered.items():
        for dep_name, dep in objects_of(r, "Deployment").items():
            if not dep_name.startswith("dask-worker-"):
                continue
            container = dep["spec"]["template"]["spec"]["containers"][0]
            args = dict(a.split("=", 1) for a in container["args"][1:] if "=" in a)
            limits = container["resources"]["limits"]
            expected = int(to_bytes(limits["memory"]) * r.values.effective["dask"]["memoryLimitFraction"])
            assert int(args["--memory-limit"]) == expected < to_bytes(limits["memory"]), (name, dep_name)
            assert int(args["--nthreads"]) == max(1, int(to_cpus(limits["cpu"]))), (name, dep_name)


def test_scheduler_address_points_at_the_real_scheduler_service(rendered):
    for name, r in rendered.items():
        service = objects_of(r, "Service")["dask-scheduler"]
        comm = next(p for p in service["spec"]["ports"] if p["name"] == "tcp-comm")
        expected = f"tcp://{service['metadata']['name']}:{comm['port']}"
        jupyter = objects_of(r, "Deployment")["dask-jupyter"]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in jupyter["env"]}
        assert env["DASK_SCHEDULER_ADDRESS"] == expected, name
        for dep_name, dep in objects_of(r, "Deployment").items():
            if dep_name.startswith("dask-worker-"):
                assert container_args(dep)[0] == expected, (name, dep_name)
        # the Service selects exactly the scheduler pods
        scheduler = objects_of(r, "Deployment")["dask-scheduler"]
        pod_labels = scheduler["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        target = {p["name"] for p in scheduler["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= target


def test_minikube_fits_a_4_cpu_8_gib_minikube(rendered):
    cpu = memory = 0.0
    for dep in objects_of(rendered["minikube"], "Deployment").values():
        replicas = dep["spec"]["replicas"]
        for c in dep["spec"]["template"]["spec"]["containers"]:
            cpu += replicas * to_cpus(c["resources"]["requests"]["cpu"])
            memory += replicas * to_bytes(c["resources"]["requests"]["memory"])
    assert cpu <= 3.0, cpu  # 1 CPU left for minikube's own pods
    assert memory <= 6 * 2**30, memory / 2**30


def test_images_are_pinned(rendered):
    for r in rendered.values():
        for dep in objects_of(r, "Deployment").values():
            for c in dep["spec"]["template"]["spec"]["containers"]:
                repo, _, tag = c["image"].rpartition(":")
                assert repo and tag and tag != "latest", c["image"]


def test_labels_from_helpers_on_every_object(rendered):
    for r in rendered.values():
        for obj in r.objects:
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/part-of"] == "dask-platform"
            assert labels["app.kubernetes.io/instance"] == r.cluster.release
            assert "app.kubernetes.io/component" in labels


def test_rendering_twice_is_byte_identical(rendered, helm):
    again = render.render_clusters(REPO, None, helm)
    assert {r.cluster.name: r.files for r in again} == {n: r.files for n, r in rendered.items()}


def test_committed_output_is_up_to_date(rendered):
    for name, r in rendered.items():
        assert generated.diff(r.output) == "", f"clusters/{name}/rendered is stale: run dask-platform render --all"


def test_generated_files_carry_the_header(rendered):
    for r in rendered.values():
        for name, text in r.files.items():
            assert text.startswith("# Generated by `dask-platform render --all` from charts/dask-platform, "), name
            assert "Do not edit" in text.splitlines()[1]


def test_check_cli_passes_on_committed_tree():
    result = CliRunner().invoke(cli, ["render", "--all", "--check"])
    assert result.exit_code == 0, result.output


# --- writing, and bad input through the CLI -------------------------------------------------------------------


def run_render(tree: RepoTree, *args: str):
    return CliRunner().invoke(cli, ["--repo", str(tree.root), "render", *args])


def test_write_then_check_then_detect_drift(scratch: RepoTree):
    rendered = scratch.rendered_dir("minikube")
    (rendered / "stray.yaml").write_text("kind: Stray\n")
    assert run_render(scratch, "minikube").exit_code == 0
    files = sorted(p.name for p in rendered.iterdir())
    assert "deployment-dask-scheduler.yaml" in files and "stray.yaml" not in files
    assert run_render(scratch, "minikube", "--check").exit_code == 0
    # a hand edit is drift
    target = rendered / "deployment-dask-scheduler.yaml"
    target.write_text(target.read_text().replace("replicas: 1", "replicas: 2"))
    result = run_render(scratch, "minikube", "--check")
    assert result.exit_code == 1
    assert "-  replicas: 2" in result.output and "+  replicas: 1" in result.output
    # a value change is drift too, until re-rendered
    cluster_file = scratch.cluster_file("minikube")
    cluster_file.write_text(
        cluster_file.read_text() + "values:\n  dask:\n    workerGroups:\n      default:\n        replicas: 5\n"
    )
    assert run_render(scratch, "minikube", "--check").exit_code == 1
    assert run_render(scratch, "minikube").exit_code == 0
    worker = yaml.safe_load((rendered / "deployment-dask-worker-default.yaml").read_text())
    assert worker["spec"]["replicas"] == 5


def test_failed_render_leaves_old_files_intact(scratch: RepoTree):
    rendered = scratch.rendered_dir("minikube")
    before = {p.name: p.read_text() for p in rendered.iterdir()}
    cluster_file = scratch.cluster_file("minikube")
    cluster_file.write_text(
        cluster_file.read_text() + "values:\n  dask:\n    workerGroups:\n      default:\n        replicas: -1\n"
    )
    result = run_render(scratch, "minikube")
    assert result.exit_code == 2
    after = {p.name: p.read_text() for p in rendered.iterdir()}
    assert after == before
    assert not list(rendered.parent.glob(".rendered.*"))


def test_interrupted_write_keeps_the_old_folder(scratch: RepoTree, helm):
    [r] = render.render_clusters(scratch, ["minikube"], helm)
    folder = r.output.path
    before = {p.name: p.read_text() for p in folder.iterdir()}
    broken = generated.FolderOutput(folder, {**r.files, "a/b.yaml": "x"})  # an unwritable name, after the others
    with pytest.raises(FileNotFoundError):
        broken.write()
    assert {p.name: p.read_text() for p in folder.iterdir()} == before
    assert not list(folder.parent.glob(".rendered.*"))


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c.replace("cloud: minikube", "cloud: openstack"),
            r"minikube/cluster.yaml: key cloud: unknown cloud",
        ),
        (lambda c: c + "values: [\n", r"minikube/cluster.yaml: YAML syntax error: line \d+"),
        (
            lambda c: c + "values:\n  global:\n    image:\n      tag: latest\n",
            r"minikube/cluster.yaml: key values.global.image.tag: ",
        ),
        (lambda c: None, r"minikube/cluster.yaml: file not found"),
    ],
    ids=["unknown-cloud", "yaml-syntax", "schema", "missing-file"],
)
def test_bad_input_is_one_clear_line_and_exit_2(scratch: RepoTree, edit, expected):
    path = scratch.cluster_file("minikube")
    new = edit(path.read_text())
    if new is None:
        path.unlink()
    else:
        path.write_text(new)
    result = run_render(scratch, "minikube")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in result.output


def test_no_cluster_named_is_a_usage_error():
    result = CliRunner().invoke(cli, ["render"])
    assert result.exit_code == 2 and "--all" in result.output


def readme_cells(label: str) -> dict[str, str]:
    """One row of the README's per-cloud table, by cloud (the header's column order)."""
    lines = (REPO.root / "README.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| | AWS (EKS) |"))
    clouds = [cell.split()[0].lower() for cell in header.strip("|").split("|")[1:]]  # aws, gcp, azure, minikube
    row = next(line for line in lines if line.startswith(f"| {label} |"))
    return dict(zip(clouds, [c.strip() for c in row.strip("|").split("|")[1:]], strict=True))


def test_jupyters_home_is_a_kept_disk_on_every_cloud_example_as_the_readme_says(rendered, clouds_by_cluster):
    """Notebooks outlive image changes, reimages and drains on the cloud examples: a claim that Argo CD neither prunes
    nor deletes, in the class the README's table names (its first `code` word; emptyDir where there is none)."""
    cells = readme_cells("Jupyter home (a disk Argo CD keeps)")
    for name, r in rendered.items():
        cloud = clouds_by_cluster[name]
        claims = objects_of(r, "PersistentVolumeClaim")
        volume = next(
            v for v in objects_of(r, "Deployment")["dask-jupyter"]["spec"]["template"]["spec"]["volumes"]
            if v["name"].startswith("home")
        )  # fmt: skip
        named = re.search(r"`([^`]+)`", cells[cloud]).group(1)
        if cloud == "minikube":
            assert not claims and "emptyDir" in volume and named == "emptyDir"
            continue
        claim = claims["dask-jupyter"]
        assert volume["persistentVolumeClaim"]["claimName"] == "dask-jupyter"
        assert claim["spec"]["storageClassName"] == named, (name, cells[cloud])
        options = claim["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].split(",")
        assert set(options) == {"Prune=false", "Delete=false"}
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# kubernetes/minikube pkg/minikube/constants/constants.go: APIServerPort = 8443.
MINIKUBE_API_SERVER_PORT = 8443


def test_jupyter_reaches_the_api_server_where_it_listens(rendered, clouds_by_cluster):
    """Jupyter may read pods (its Role): its NetworkPolicy lets it reach the API server on the port the server listens
    on, which Calico and the other enforcers match after the `kubernetes` Service's DNAT; on minikube that is 8443."""
    for name, r in rendered.items():
        assert "dask-jupyter" in objects_of(r, "Role")
        egress = objects_of(r, "NetworkPolicy")["dask-jupyter"]["spec"]["egress"]
        open_ports = {p["port"] for rule in egress if "to" not in rule for p in rule["ports"]}
        wanted = set(r.values.effective["global"]["networkPolicy"]["apiServerPorts"])
        assert wanted <= open_ports, (name, wanted, open_ports)
        if clouds_by_cluster[name] == "minikube":
            assert MINIKUBE_API_SERVER_PORT in wanted


def test_a_new_identity_rolls_the_pods_that_use_it(scratch: RepoTree, helm):
    """The IRSA and Azure Workload Identity webhooks inject at pod admission only: a changed ServiceAccount
    annotation must change the pod templates that use that account (and only those), or running pods keep the old
    identity. The all-zero client id (a placeholder) is refused with the file and key path."""

    def checksums(r) -> dict[str, str]:
        return {
            name: d["spec"]["template"]["metadata"]["annotations"]["dask-platform/identity-checksum"]
            for name, d in objects_of(r, "Deployment").items()
        }

    [before] = render.render_clusters(scratch, ["azure-example"], helm)
    path = scratch.cluster_file("azure-example")
    text = path.read_text()
    path.write_text(text.replace("6f1c2a34-5b7d-4e8f-9a01-23456789abcd", "0b7e3c8a-1d2f-4a5b-8c6d-7e8f90a1b2c3"))
    [after] = render.render_clusters(scratch, ["azure-example"], helm)
    old, new = checksums(before), checksums(after)
    changed = {name for name in old if old[name] != new[name]}
    assert changed == {"dask-scheduler", "dask-worker-default"}  # the dask identity; Jupyter's is its own
    path.write_text(text.replace("6f1c2a34-5b7d-4e8f-9a01-23456789abcd", "00000000-0000-0000-0000-000000000000"))
    result = CliRunner().invoke(cli, ["--repo", str(scratch.root), "render", "azure-example"])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}: key values.dask.serviceAccount.annotations.azure.workload.")
    assert "'00000000-0000-0000-0000-000000000000' is refused: The managed identity's client id" in result.output
