"""The images the rendered clusters pull, and whether each can be pulled the way its pods pull it: the deploy gate.

Argo CD syncs the branch that ``[tool.dask-platform.argocd] revision`` in pyproject.toml names (``deploy``), not
main, and only the image workflow (.github/workflows/image.yml) moves it: on every push to main it builds the image
tags that are not in the registry yet, then runs ``dask-platform images check`` on that commit and fast-forwards the
deploy branch to it when the check passes. A values-only change is promoted as soon as the check has run; an image
change only once its tags are pushed; a failed build leaves the clusters on the last commit whose images all exist
(docs/environments.md says how a team recovers).

A pod that names no imagePullSecrets is pulled by the kubelet without credentials, so its image must be public.
Whether a package on GitHub's container registry is public depends on how it was first pushed: "When you first
publish a package, the default visibility is private" (https://docs.github.com/en/packages/working-with-a-github-
packages-registry/working-with-the-container-registry), while a package a workflow creates with its GITHUB_TOKEN
"inherits the visibility and permissions model of the repository where the workflow is run"
(https://docs.github.com/en/packages/managing-github-packages-using-github-actions-workflows/publishing-and-
installing-a-package-with-github-actions): private for a private repository, or for a package first pushed by
hand. GitHub's REST API for packages lists, deletes and restores packages but has no endpoint that changes their
visibility (https://docs.github.com/en/rest/packages/packages), so the workflow cannot make the image public; the
check finds a private image and says what the package's owner does.

    dask-platform images show     # the deploy branch and every image the rendered clusters pull, as JSON
    dask-platform images check    # exit 1 naming each image that cannot be pulled as its pods pull it
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dask_platform.errors import UserError
from dask_platform.repo import RepoTree

# Where each workload kind keeps its pod spec (Kubernetes API reference: PodTemplateSpec under spec.template;
# a CronJob's under spec.jobTemplate.spec.template).
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True, order=True)
class ImagePull:
    image: str  # repository:tag as the pod names it
    anonymous: bool  # the pod names no imagePullSecrets: the kubelet pulls without credentials
    source: str  # "<cluster>: <Kind>/<name>", the first object that pulls the image this way


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload object, or None for an object that runs no pods."""
    path = POD_SPEC_PATHS.get(obj.get("kind", ""))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def image_pulls(cluster: str, objects: Iterable[dict[str, Any]]) -> list[ImagePull]:
    """Every container image of ``objects`` (init, app and ephemeral containers), with how its pod pulls it."""
    pulls = []
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        anonymous = not spec.get("imagePullSecrets")
        source = f"{cluster}: {obj['kind']}/{obj['metadata']['name']}"
        for field in CONTAINER_FIELDS:
            pulls += [ImagePull(c["image"], anonymous, source) for c in spec.get(field) or []]
    return pulls


def distinct(pulls: Iterable[ImagePull]) -> list[ImagePull]:
    """One pull per (image, anonymous), the first source kept, sorted by image."""
    first: dict[tuple[str, bool], ImagePull] = {}
    for pull in pulls:
        first.setdefault((pull.image, pull.anonymous), pull)
    return sorted(first.values())


def rendered_pulls(tree: RepoTree) -> list[ImagePull]:
    """What every cluster's committed rendered/ folder (what Argo CD applies) makes the kubelets pull."""
    from dask_platform.render import rendered_objects

    return distinct(p for name in tree.cluster_names() for p in image_pulls(name, rendered_objects(tree, name)))


def deploy_branch(tree: RepoTree) -> str:
    """The branch Argo CD syncs and the image workflow advances: [tool.dask-platform.argocd] revision."""
    from dask_platform.argocd import load_settings

    return load_settings(tree).revision


# --- asking the registries ------------------------------------------------------------------------------------

Probe = Callable[[str, bool], str | None]  # (image, anonymous) -> None when the registry serves it so, else why not


def docker_probe(image: str, anonymous: bool) -> str | None:
    """``docker manifest inspect IMAGE``: anonymous with an empty Docker configuration (no stored login is sent, as
    the kubelet sends none; the registry's anonymous token flow still runs), else with the caller's logins (the
    workflow's ``docker login``). None when the manifest is served, else docker's last line of error."""
    docker = shutil.which("docker")
    if docker is None:
        raise UserError("docker not found on PATH: `images check` asks the registries with `docker manifest inspect`")
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "DOCKER_CONFIG": empty} if anonymous else None
        try:
            proc = subprocess.run(
                [docker, "manifest", "inspect", image], env=env, capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            return "no answer within 120 s"
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"docker exited with {proc.returncode}"


PRIVATE = (
    "{image} ({source}): exists, but not for a pull without credentials ({error}), and its pods name no "
    "imagePullSecrets: the package is private. An owner of the package (an organization owner) makes it public in "
    "the package's settings (Danger Zone, Change visibility; no API token can), or the clusters get a pull Secret "
    "and global.imagePullSecrets (docs/environments.md); then re-run the image workflow."
)
NOT_BUILT = (
    "{image} ({source}): cannot be pulled ({error}): its build failed or has not finished (or the registry was "
    "unreachable). The deploy branch stays at the last commit whose images all exist; fix forward on main, or re-run "
    "the image workflow (docs/environments.md)."
)
NOT_FOUND = (
    "{image} ({source}): its registry does not serve it ({error}): a wrong tag in the values, or the registry was "
    "unreachable. The deploy branch stays where it was; correct the tag on main, or re-run the image workflow."
)


def pull_problems(pulls: Iterable[ImagePull], probe: Probe, built_repository: str) -> list[str]:
    """One line per image that cannot be pulled the way its pods pull it: private (served with the workflow's login,
    not anonymously), not built (an image of ``built_repository``, which the workflow builds) or not found."""
    problems = []
    for pull in pulls:
        error = probe(pull.image, pull.anonymous)
        if error is None:
            continue
        if pull.anonymous and probe(pull.image, False) is None:
            template = PRIVATE
        else:
            template = NOT_BUILT if pull.image.startswith(f"{built_repository}:") else NOT_FOUND
        problems.append(template.format(image=pull.image, source=pull.source, error=error))
    return problems
