"""The object policy (dask_platform/policy.py): each rule catches its problem on an otherwise good object."""

from __future__ import annotations

import pytest
import yaml

from dask_platform.policy import check_objects
from tests.support.repo import REPO


def good_deployment() -> dict:
    return yaml.safe_load((REPO.rendered_dir("minikube") / "deployment-dask-scheduler.yaml").read_text())


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (lambda c, p: p["securityContext"].pop("runAsNonRoot"), "non-root"),
        (lambda c, p: p["securityContext"].update(runAsUser=0), "non-root"),
        (lambda c, p: p["securityContext"].pop("seccompProfile"), "seccomp"),
        (lambda c, p: c["securityContext"].update(allowPrivilegeEscalation=True), "no-privilege-escalation"),
        (lambda c, p: c["securityContext"].update(privileged=True), "no-privilege-escalation"),
        (lambda c, p: c["securityContext"]["capabilities"].update(drop=[]), "capabilities"),
        (lambda c, p: c["securityContext"]["capabilities"].update(add=["NET_ADMIN"]), "capabilities"),
        (lambda c, p: c["securityContext"].update(readOnlyRootFilesystem=False), "read-only-root"),
        (lambda c, p: c["resources"]["limits"].pop("memory"), "resources"),
        (lambda c, p: c["resources"].pop("requests"), "resources"),
        (lambda c, p: c.update(image="ghcr.io/x/y:latest"), "pinned-image"),
        (lambda c, p: c.update(image="ghcr.io/x/y"), "pinned-image"),
        (lambda c, p: p.update(hostNetwork=True), "host-namespaces"),
    ],
)
def test_each_pod_rule_catches_its_problem(edit, rule: str):
    dep = good_deployment()
    assert check_objects([dep]) == []
    pod = dep["spec"]["template"]["spec"]
    edit(pod["containers"][0], pod)
    assert rule in {v.rule for v in check_objects([dep])}


def test_rbac_and_secret_rules():
    role = {
        "kind": "Role",
        "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}],
    }
    cluster_role = {
        "kind": "ClusterRole",
        "metadata": {"name": "c", "labels": {"app.kubernetes.io/component": "jupyter"}},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    secret = {"kind": "Secret", "metadata": {"name": "s"}}
    rules = {v.rule for v in check_objects([role, cluster_role, secret])}
    assert rules == {"rbac-no-wildcards", "no-cluster-role", "no-generated-secrets"}
