"""The deploy gate: which images the rendered clusters pull and how (anonymously, or with global.imagePullSecrets),
and the check that tells a missing image from a private one, asked of a real registry with the docker CLI."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dask_platform.cli import main
from dask_platform.environment import load_environment
from dask_platform.images import ImagePull, docker_probe, image_pulls, pod_spec, pull_problems, rendered_pulls
from dask_platform.render import committed_objects
from testbed.registry import running_registry
from tests.support.repo import REPO

ENV = load_environment(REPO)
PLATFORM_IMAGE = f"{ENV.image_repository}:{ENV.image_tag}"


def test_rendered_pulls_are_every_image_of_the_committed_manifests():
    """The gate checks what Argo CD applies: every `image:` in clusters/*/rendered, found independently by text."""
    by_text = {
        m.group(1)
        for path in REPO.clusters_dir.glob("*/rendered/*.yaml")
        for m in re.finditer(r"^\s+image: (\S+)$", path.read_text(), flags=re.MULTILINE)
    }
    pulls = rendered_pulls(REPO)
    assert {p.image for p in pulls} == by_text
    assert PLATFORM_IMAGE in by_text and len(by_text) >= 2  # the platform image and cluster-autoscaler's
    assert all(p.anonymous for p in pulls), "no committed cluster sets imagePullSecrets: every pull is anonymous"


def test_image_pulls_cover_every_container_of_every_workload_kind():
    template = {"spec": {"imagePullSecrets": [{"name": "pull"}], "initContainers": [{"image": "a:1"}]}}
    template["spec"]["containers"] = [{"image": "b:1"}]
    objects = [
        {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": template}},
        {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": template}}}},
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": "c:1"}]}},
        {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": []}},
    ]
    assert pod_spec(objects[3]) is None
    assert image_pulls("x", objects) == [
        ImagePull("a:1", False, "x: Deployment/d"),
        ImagePull("b:1", False, "x: Deployment/d"),
        ImagePull("a:1", False, "x: CronJob/c"),
        ImagePull("b:1", False, "x: CronJob/c"),
        ImagePull("c:1", True, "x: Pod/p"),
    ]


def test_pull_problems_tell_a_missing_image_from_a_private_one():
    anonymous_ok, with_login_ok = {"own/app:public"}, {"own/app:public", "own/app:private", "own/app:secret"}

    def probe(image: str, anonymous: bool) -> str | None:
        return None if image in (anonymous_ok if anonymous else with_login_ok) else "manifest unknown"

    pulls = [
        ImagePull("own/app:public", True, "c: Deployment/a"),
        ImagePull("own/app:private", True, "c: Deployment/b"),
        ImagePull("own/app:missing", True, "c: Deployment/c"),
        ImagePull("own/app:secret", False, "c: Deployment/d"),
        ImagePull("own/app:missing-too", False, "c: Deployment/e"),
        ImagePull("other/autoscaler:v9", True, "c: Deployment/f"),
    ]
    problems = pull_problems(pulls, probe, "own/app")
    assert [p.split(" ")[0] for p in problems] == [
        "own/app:private",
        "own/app:missing",
        "own/app:missing-too",
        "other/autoscaler:v9",
    ]
    private, *not_built, not_found = problems
    assert "private" in private and "Change visibility" in private and "global.imagePullSecrets" in private
    assert all("build failed" in p and "re-run the image workflow" in p and "manifest unknown" in p for p in not_built)
    assert "wrong tag" in not_found and "build" not in not_found


def docker_and_openssl() -> None:
    missing = [tool for tool in ("docker", "openssl") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing in CI")
        pytest.skip(f"needs {missing}")


def test_docker_probe_asks_anonymously_without_the_stored_login(tmp_path: Path, monkeypatch):
    """The anonymous probe must not send the workflow's login (a kubelet has none), yet must follow the registry's
    anonymous token flow (how a public package on GitHub's registry is pulled); the logged-in probe uses the login."""
    docker_and_openssl()
    with running_registry(tmp_path, {"public/app:1", "private/app:1"}) as registry:
        monkeypatch.setenv("SSL_CERT_FILE", str(registry.cert))
        monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config(tmp_path / "docker")))
        public, private, missing = (
            f"{registry.host}/{name}" for name in ("public/app:1", "private/app:1", "public/app:2")
        )
        assert [docker_probe(public, True), docker_probe(public, False)] == [None, None]
        assert docker_probe(private, True) is not None and docker_probe(private, False) is None
        assert "manifest unknown" in docker_probe(missing, True) and "manifest unknown" in docker_probe(missing, False)
        pulls = [ImagePull(image, True, "c: Deployment/x") for image in (public, private, missing)]
        problems = pull_problems(pulls, docker_probe, f"{registry.host}/public/app")
        assert [p.split(" ")[0] for p in problems] == [private, missing]
        assert "private" in problems[0] and "build failed" in problems[1]


@pytest.mark.helm
def test_image_pull_secrets_reach_every_pod_that_pulls_the_platform_image(scratch):
    """For a private registry, the command docs/environments.md gives: a cluster with global.imagePullSecrets gives
    every pod running the platform image the Secret, and the gate then checks that image with the workflow's login
    instead of anonymously."""
    result = CliRunner().invoke(
        main, ["--repo", str(scratch.root), "values", "set", "aws-example", "global.imagePullSecrets=[ghcr-pull]"]
    )
    assert result.exit_code == 0, result.output
    objects = committed_objects(scratch, "aws-example")
    platform_pods = 0
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        images = [c["image"] for field in ("initContainers", "containers") for c in spec.get(field) or []]
        if any(image.startswith(f"{ENV.image_repository}:") for image in images):
            platform_pods += 1
            assert spec.get("imagePullSecrets") == [{"name": "ghcr-pull"}], obj["metadata"]["name"]
    assert platform_pods >= 3  # scheduler, a worker group, Jupyter
    platform = [p for p in rendered_pulls(scratch) if p.image.startswith(f"{ENV.image_repository}:")]
    assert platform and {p.anonymous for p in platform if p.source.startswith("aws-example:")} == {False}
    assert {p.anonymous for p in platform if not p.source.startswith("aws-example:")} == {True}  # the others
