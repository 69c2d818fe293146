"""The GitHub workflows agree with the tooling they stand for: the image workflow builds whenever the image tag can
change and is the only thing that moves the branch Argo CD syncs, after `dask-platform images check`; a piped step
fails when its command fails. (Syntax, actionlint and pinning: tests/test_ci_scenarios.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dask_platform.argocd import load_settings
from dask_platform.environment import IMAGE_INPUT_PATTERNS
from dask_platform.images import deploy_branch
from tests.support.repo import REPO

WORKFLOWS_DIR = REPO.root / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
IMAGE_WORKFLOW = WORKFLOWS_DIR / "image.yml"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """The `on:` mapping (YAML 1.1 reads the key `on` as True)."""
    on = workflow[True] if True in workflow else workflow["on"]
    return {event: {} for event in on} if isinstance(on, list) else {k: v or {} for k, v in on.items()}


def run_steps(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job.get("steps", []) if "run" in step]


def test_every_image_input_reaches_the_image_build():
    """A change to any file the tag hashes must build the image (docker/dask.yaml alone once did not): the image
    workflow runs on every push to main, or its paths filter is IMAGE_INPUT_PATTERNS itself. The build decides by
    the tag: it is skipped only when the tag is already in the registry."""
    push = triggers(load(IMAGE_WORKFLOW))["push"]
    assert push.get("branches") == ["main"]
    assert "paths-ignore" not in push
    assert push.get("paths") in (None, list(IMAGE_INPUT_PATTERNS)), "derive the paths from IMAGE_INPUT_PATTERNS"
    build = load(IMAGE_WORKFLOW)["jobs"]["build"]
    skip = next(s for s in build["steps"] if s.get("id") == "pushed")
    assert 'docker manifest inspect "$IMAGE"' in skip["run"]
    push_step = next(s for s in build["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert push_step["if"] == "steps.pushed.outputs.exists != 'true'"


def test_argo_cd_syncs_a_branch_only_the_image_workflow_moves():
    """Argo CD must not track main: main holds a new image tag before the image is built. It tracks the deploy
    branch, which the image workflow fast-forwards after building and checking every rendered image."""
    branch = deploy_branch(REPO)
    assert branch == load_settings(REPO).revision
    assert branch != "main" and re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", branch), "a branch name, not a SHA or tag"
    for path in WORKFLOWS:
        for event in triggers(load(path)).values():
            assert branch not in (event.get("branches") or []), f"{path.name} runs on the deploy branch"
    others = [p.name for p in WORKFLOWS if p != IMAGE_WORKFLOW and f"refs/heads/{branch}" in p.read_text()]
    assert others == [], "only the image workflow moves the deploy branch"


def test_the_image_workflow_promotes_only_checked_commits_of_main():
    """The check (validate and every rendered image pullable) runs in a job without write access; the push runs in a
    job that only runs git, so no installed package ever sees the token that may push."""
    workflow = load(IMAGE_WORKFLOW)
    jobs = workflow["jobs"]
    check, promote = jobs["check"], jobs["promote"]
    assert jobs["build"]["if"] == "github.ref == 'refs/heads/main'"
    assert check["needs"] == "build" and check["if"] == "${{ !cancelled() && github.ref == 'refs/heads/main' }}"
    assert promote["needs"] == "check" and "if" not in promote  # runs only when the check succeeded
    assert workflow["concurrency"]["cancel-in-progress"] is False  # queued in push order, never cut mid-push
    assert promote["permissions"] == {"contents": "write"}
    assert check["permissions"] == {"contents": "read", "packages": "read"}
    assert [job["permissions"].get("contents") for name, job in jobs.items() if name != "promote"] == ["read", "read"]
    checks = run_steps(check)
    assert any(r.startswith(".venv/bin/dask-platform validate") for r in checks), "promote only valid commits"
    assert any("dask-platform images check" in r for r in checks), "check every rendered image before promoting"
    assert "dask-platform images show | jq -r .deploy_branch" in "".join(checks), "the branch from pyproject.toml"
    assert check["outputs"]["branch"] == "${{ steps.branch.outputs.branch }}"
    installs = [s for s in promote["steps"] if "run" in s and ("scripts/dev" in s["run"] or ".venv" in s["run"])]
    assert installs == [] and not [s for s in promote["steps"] if "setup-python" in s.get("uses", "")]
    [push] = [r for r in run_steps(promote) if "git " in r and " push " in r]
    [push_line] = [line for line in push.splitlines() if line.strip().startswith("git ") and " push " in line]
    assert not re.search(r"\s(--force\S*|-f)\s", push_line) and "+$GITHUB_SHA" not in push_line, "fast-forward only"
    assert '"$GITHUB_SHA:refs/heads/$BRANCH"' in push
    assert workflow["defaults"]["run"]["shell"] == "bash"
    logins = [s for s in check["steps"] if s.get("uses", "").startswith("docker/login-action@")]
    assert logins, "log in to the registry so a private image is told from a missing one"


def test_piped_steps_fail_when_their_command_fails():
    """`cmd | tee` under the default shell (`bash -e {0}`, no pipefail) succeeds when cmd fails: every workflow
    with a pipe in a run step runs bash, which GitHub starts with `-eo pipefail`."""
    for path in WORKFLOWS:
        workflow = load(path)
        default = (workflow.get("defaults") or {}).get("run", {}).get("shell")
        for name, job in workflow["jobs"].items():
            job_default = (job.get("defaults") or {}).get("run", {}).get("shell", default)
            for step in job.get("steps", []):
                piped = "run" in step and re.search(r"(?<!\|)\|(?!\|)", step["run"])
                if piped:
                    assert step.get("shell", job_default) == "bash", f"{path.name}: {name}: {step['run'][:60]}"


def test_workflows_set_up_the_pinned_python_and_helm():
    """Two places each: [tool.dask-platform] python and the bundled helm version are the pins; the workflows'
    setup steps must name the same versions (CI would otherwise test on another Python or helm than the image and
    scripts/dev use)."""
    from dask_platform.environment import load_environment
    from dask_platform.helmbin import BUNDLED

    python, helm = load_environment(REPO).python, BUNDLED.helm_version
    seen = {"python": 0, "helm": 0}
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses.startswith("actions/setup-python@"):
                    assert step["with"]["python-version"] == python, path.name
                    seen["python"] += 1
                if uses.startswith("azure/setup-helm@"):
                    assert step["with"]["version"] == f"v{helm}", path.name
                    seen["helm"] += 1
    assert seen["python"] >= 3 and seen["helm"] >= 2
