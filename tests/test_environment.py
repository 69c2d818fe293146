"""One environment for laptop, image and cluster: pins, derived files, the Dockerfile and the notebook."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from dask_platform import generated
from dask_platform.environment import image_inputs, load_environment, read_lock, version_outputs
from tests.support.repo import REPO

REPO_ROOT, CHART_DIR, DOCKERFILE, ENVIRONMENT_YML = REPO.root, REPO.chart, REPO.dockerfile, REPO.conda_environment
ENV = load_environment(REPO)
LOCK = read_lock(REPO_ROOT / "requirements/lock.txt")
IMAGE = read_lock(REPO_ROOT / "requirements/image.txt")
IMAGE_GPU = read_lock(REPO_ROOT / "requirements/image-gpu.txt")


def test_derived_files_are_up_to_date():
    stale = [str(o.path) for o in version_outputs(REPO) if generated.diff(o)]
    assert stale == [], "run dask-platform versions sync"


def test_every_direct_pin_is_in_the_locks():
    for name, version in ENV.pins.items():
        assert IMAGE[name] == version, name
        if name in LOCK:
            assert LOCK[name] == version, name


def test_image_and_laptop_share_every_common_version():
    for lock in (IMAGE, IMAGE_GPU):
        differing = {n: (v, LOCK[n]) for n, v in lock.items() if n in LOCK and LOCK[n] != v}
        assert differing == {}


def test_chart_deploys_the_tag_the_environment_pins():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert values["global"]["image"]["tag"] == ENV.image_tag == f"{LOCK['dask']}-py{ENV.python}-{ENV.build}"
    assert values["global"]["image"]["repository"] == ENV.image_repository
    assert chart["appVersion"] == LOCK["dask"] == LOCK["distributed"]
    for sub in CHART_DIR.glob("charts/*/Chart.yaml"):  # the version label every object carries
        assert yaml.safe_load(sub.read_text())["appVersion"] == LOCK["dask"], sub


def test_every_image_build_has_its_own_tag(scratch):
    """An image lock, the Dockerfile or its Dask configuration changed: a new tag, so nodes never run two builds
    under one tag and the Deployments roll. Anything else (docs, tooling, values, job code): the same tag."""
    base = load_environment(scratch).image_tag
    for path in (scratch.root / "README.md", scratch.jobs_dir / "rossmann" / "model.py"):
        path.write_text(path.read_text() + "\n# more\n")
        assert load_environment(scratch).image_tag == base, path
    for path in (scratch.image_lock, scratch.dockerfile, scratch.dask_config):
        before = load_environment(scratch).image_tag
        path.write_text(path.read_text() + "\n# changed\n")
        after = load_environment(scratch).image_tag
        assert after != before and after.startswith(f"{ENV.dask}-py{ENV.python}-"), path


def test_a_job_edit_changes_no_generated_file(scratch, helm):
    """Job code is not part of the platform: editing a job (or adding one) leaves every generated file as committed
    (the rendered clusters, the Argo CD manifests, the schema, the files derived from the pins), so nothing is
    redeployed and no scheduler or JupyterLab restarts. The submitter ships the code (jobs/shipping.py)."""
    from dask_platform.validate import check_drift, render_each

    model = scratch.jobs_dir / "rossmann" / "model.py"
    model.write_text(model.read_text().replace("hidden_layer_sizes=(64, 32),", "hidden_layer_sizes=(64, 16),", 1))
    (scratch.jobs_dir / "rossmann" / "extra.py").write_text('"""A new module of a job."""\n')
    assert scratch.jobs_dir / "rossmann" / "model.py" not in image_inputs(scratch)
    rendered, problems = render_each(scratch, helm)
    assert problems == []
    assert check_drift(scratch, rendered, helm) == [], "a job edit changed a generated file"


def test_the_image_hashes_every_file_the_dockerfile_copies():
    """IMAGE_INPUT_PATTERNS is the one list of what the image is built from: every file a COPY of docker/Dockerfile
    takes from the build context (tracked files under a copied folder) is an input, so no change reaches an image
    under an old tag. The job code is none of them (the image carries none)."""
    from tests.support.scratch import tracked_files

    tracked = tracked_files(REPO_ROOT)
    copied = {"docker/Dockerfile"}
    for keyword, rest in dockerfile_instructions():
        if keyword in ("COPY", "ADD"):
            sources = [a for a in rest.split() if not a.startswith("--")][:-1]
            assert sources, rest
            copied |= {f for src in sources for f in tracked if f == src or f.startswith(src.rstrip("/") + "/")}
    assert copied - {REPO.rel(p) for p in image_inputs(REPO)} == set()
    assert [f for f in copied if f.startswith("jobs/")] == []


def test_an_image_input_pattern_that_matches_nothing_is_an_error(scratch):
    """A renamed input would silently drop out of the tag's hash."""
    from dask_platform.errors import UserError

    scratch.dask_config.unlink()
    with pytest.raises(UserError, match=r"docker/dask\.yaml"):
        image_inputs(scratch)


def test_rendered_clusters_run_the_pinned_image():
    for path in (REPO_ROOT / "clusters").glob("*/rendered/deployment-*.yaml"):
        doc = yaml.safe_load(path.read_text())
        for container in doc["spec"]["template"]["spec"]["containers"]:
            if container["image"].startswith(ENV.image_repository):
                assert container["image"] == f"{ENV.image_repository}:{ENV.image_tag}", path


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_installs_exactly_the_locked_versions():
    instructions = dockerfile_instructions()
    copies = [rest for kw, rest in instructions if kw == "COPY"]
    assert any("requirements/image.txt" in c and "requirements/image-gpu.txt" in c for c in copies)
    runs = " ".join(rest for kw, rest in instructions if kw == "RUN")
    installs = re.findall(r"pip install ([^;&]*)", runs)
    assert installs, "no pip install in the Dockerfile"
    for args in installs:
        assert "--no-deps" in args and '-r "$lock"' in args, args  # only the lock, nothing resolved at build time
    assert "pip check" in runs
    assert not re.search(r"pip install [^;&]*==", runs), "versions come from the lock, not the Dockerfile"
    assert "EXTRA_PIP_PACKAGES" not in DOCKERFILE.read_text()


def test_dockerfile_runs_as_the_charts_non_root_user():
    instructions = dockerfile_instructions()
    user = [rest for kw, rest in instructions if kw == "USER"]
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["global"]["securityContext"]
    assert user and user[-1] == f"{values['runAsUser']}:{values['runAsGroup']}"
    assert user[-1].split(":")[0] != "0"


def test_dockerfile_python_and_labels():
    instructions = dockerfile_instructions()
    args = dict(rest.split("=", 1) for kw, rest in instructions if kw == "ARG" and "=" in rest)
    assert args["PLATFORM_PYTHON"] == ENV.python
    # the base is a build argument whose default is the official image of that Python
    assert args["BASE_IMAGE"] == "python:${PLATFORM_PYTHON}-slim-bookworm"
    assert [rest for kw, rest in instructions if kw == "FROM"] == ["${BASE_IMAGE}"]
    # the label reads our argument, not the base image's PYTHON_VERSION environment variable
    assert 'io.dask-platform.python-version="${PLATFORM_PYTHON}"' in DOCKERFILE.read_text()
    assert "PYTHON_VERSION" not in DOCKERFILE.read_text()
    labels = " ".join(rest for kw, rest in instructions if kw == "LABEL")
    for label in (
        "org.opencontainers.image.version",
        "org.opencontainers.image.source",
        "io.dask-platform.dask-version",
        "io.dask-platform.python-version",
    ):
        assert label in labels
    # the environment only: no job code, and no PYTHONPATH pointing at a copy of it
    assert not any(kw in ("COPY", "ADD") and rest.split()[0].startswith("jobs") for kw, rest in instructions)
    assert not any(kw == "ENV" and "PYTHONPATH" in rest for kw, rest in instructions)


def test_gpu_variant_adds_cuda_packages_only():
    extra = set(IMAGE_GPU) - set(IMAGE)
    assert "cupy-cuda12x" in extra
    assert all(IMAGE_GPU[n] == v for n, v in IMAGE.items() if n in IMAGE_GPU)


def test_environment_yml_is_a_conda_env_with_the_image_pins():
    env = yaml.safe_load(ENVIRONMENT_YML.read_text())
    assert env["name"] == "dask-platform"
    assert f"python={ENV.python}" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {line.split("==")[0]: line.split("==")[1] for line in pip} == IMAGE


def run_notebook(tmp_path: Path, scheduler_address: str | None) -> str:
    """notebooks/rossmann.ipynb on small data, executed in its folder; returns the text it printed."""
    nb = nbformat.read(REPO_ROOT / "notebooks/rossmann.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = (
        f'stores = 40\nsearch = "small"\nrefit_rows = 0\nout = "{tmp_path}/results"\n'
        f"scheduler_address = {scheduler_address!r}"
    )
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}
    ).execute()
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert list((tmp_path / "results").glob("*/summary.json"))
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.dask
@pytest.mark.slow
def test_notebook_runs_on_small_data(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    text = run_notebook(tmp_path, None)
    assert "holdout RMSPE model" in text
    assert "already importable on the scheduler" in text  # a LocalCluster's workers share the kernel's path


@pytest.mark.dask
@pytest.mark.slow
def test_notebook_ships_its_checkouts_jobs_to_a_cluster(tmp_path: Path):
    """As in the platform's JupyterLab: the scheduler and workers run other job code than the notebook's checkout
    (the image carries none; here another release of it), and the notebook sends its own before running."""
    import json

    from jobs.shipping import fingerprint
    from testbed.daskproc import local_dask

    with local_dask(tmp_path / "cluster") as cluster:
        text = run_notebook(tmp_path, cluster.address)
    assert f"code: jobs {fingerprint()}: uploaded jobs-{fingerprint()}.zip to the scheduler and 2 workers" in text
    assert "holdout RMSPE model" in text
    summary = json.loads(next((tmp_path / "results").glob("*/summary.json")).read_text())
    assert summary["scheduler_address"] == cluster.address and "uploaded" in summary["code_shipping"]
