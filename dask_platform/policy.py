"""The platform's object policy, expressed once and applied to every rendered object (validate.py and tests).

Pods: non-root, RuntimeDefault seccomp, no privilege escalation, all capabilities dropped, read-only root
filesystem, requests and memory limits on every container, images pinned by tag (never "latest") or digest.
RBAC: explicit verbs, resources and API groups (no "*"); ClusterRoles only for components that need one.
Secrets: never rendered (the chart references Secrets the user creates).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
# Components allowed a ClusterRole (by app.kubernetes.io/component), with the reason.
CLUSTER_ROLE_COMPONENTS = {
    "cluster-autoscaler": "simulates scheduling and scales nodes cluster-wide",
    "operator": "sees CRDs come and go (list and watch customresourcedefinitions, nothing else)",
}


@dataclass(frozen=True)
class Violation:
    kind: str
    name: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.rule}: {self.detail}"


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") == "Pod":
        return obj.get("spec", {})
    if obj.get("kind") in POD_KINDS:
        return obj.get("spec", {}).get("template", {}).get("spec", {})
    return None


def image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def check_pod(kind: str, name: str, spec: dict[str, Any]) -> Iterator[Violation]:
    pod_sc = spec.get("securityContext", {}) or {}
    for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        where = f"container {c['name']}"
        sc = c.get("securityContext", {}) or {}
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            yield Violation(kind, name, "non-root", f"{where}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            yield Violation(kind, name, "non-root", f"{where}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield Violation(kind, name, "seccomp", f"{where}: seccompProfile is {seccomp or 'unset'}")
        if sc.get("allowPrivilegeEscalation") is not False:
            yield Violation(kind, name, "no-privilege-escalation", f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            yield Violation(kind, name, "no-privilege-escalation", f"{where}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            yield Violation(kind, name, "capabilities", f"{where}: capabilities.drop lacks ALL")
        if (sc.get("capabilities") or {}).get("add"):
            yield Violation(kind, name, "capabilities", f"{where}: adds {sc['capabilities']['add']}")
        if sc.get("readOnlyRootFilesystem") is not True:
            yield Violation(kind, name, "read-only-root", f"{where}: readOnlyRootFilesystem is not true")
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        missing = [f"requests.{k}" for k in ("cpu", "memory") if k not in requests]
        missing += ["limits.memory"] if "memory" not in limits else []
        if missing:
            yield Violation(kind, name, "resources", f"{where}: missing {', '.join(missing)}")
        if not image_pinned(c.get("image", "")):
            yield Violation(kind, name, "pinned-image", f"{where}: image {c.get('image')!r} is not pinned")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        yield Violation(kind, name, "host-namespaces", "uses the host's network, PID or IPC namespace")


def check_rbac(obj: dict[str, Any]) -> Iterator[Violation]:
    kind, name = obj["kind"], obj["metadata"]["name"]
    for i, rule in enumerate(obj.get("rules", []) or []):
        for field in ("verbs", "resources", "apiGroups"):
            if "*" in (rule.get(field) or []):
                yield Violation(kind, name, "rbac-no-wildcards", f"rules[{i}].{field} contains '*'")
        if not rule.get("verbs"):
            yield Violation(kind, name, "rbac-no-wildcards", f"rules[{i}] has no verbs")
    if kind == "ClusterRole":
        component = (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component", "")
        if component not in CLUSTER_ROLE_COMPONENTS:
            yield Violation(kind, name, "no-cluster-role", f"component {component!r} may not have a ClusterRole")


def check_objects(objects: Iterable[dict[str, Any]]) -> list[Violation]:
    """Every policy violation among ``objects`` (empty: all good)."""
    out: list[Violation] = []
    for obj in objects:
        kind, name = obj.get("kind", "?"), obj.get("metadata", {}).get("name", "?")
        spec = pod_spec(obj)
        if spec is not None:
            out += check_pod(kind, name, spec)
        if kind in ("Role", "ClusterRole"):
            out += check_rbac(obj)
        if kind == "Secret":
            out.append(Violation(kind, name, "no-generated-secrets", "the chart must not render Secrets"))
    return out
