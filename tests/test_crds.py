"""The custom resources on the test servers: a CRD for every custom kind the platform renders (tests/support/crds.py),
agreeing with the offline validator's groups, and an apiserver build whose cache key names the fix that lets it
serve them (scripts/kube-build.sh)."""

from __future__ import annotations

import fnmatch
import re

import pytest
import yaml

from dask_platform.bootstrap import bootstrap_objects
from dask_platform.crdschema import CUSTOM_GROUPS, is_custom
from dask_platform.render import all_feature_objects
from tests.support import crds
from tests.support.repo import REPO

KUBE_BUILD = (REPO.root / "scripts/kube-build.sh").read_text()


def _custom_kinds(objects: list[dict]) -> set[tuple[str, str]]:
    return {(o["apiVersion"], o["kind"]) for o in objects if is_custom(o)}


@pytest.mark.helm
def test_a_crd_for_every_custom_kind_the_platform_renders(helm):
    """The chart with every feature on, the committed Argo CD manifests and what bootstrap applies: each custom kind
    has exactly one CRD, under the same group and version."""
    argo = [
        yaml.safe_load(p.read_text())
        for p in sorted(REPO.argocd_dir.glob("*.yaml")) + sorted(REPO.clusters_dir.glob("*/application*.yaml"))
    ]
    rendered = (
        _custom_kinds(all_feature_objects(REPO, helm))
        | _custom_kinds(argo)
        | _custom_kinds(bootstrap_objects(REPO, "minikube"))
    )
    defined = [(c.api_version, c.kind) for c in crds.ALL]
    assert len(defined) == len(set(defined))
    assert set(defined) == rendered


def test_crd_groups_are_the_groups_validated_offline():
    """What the server now stores is what dask_platform/crdschema.py validates offline: the same groups."""
    assert {f"{c.group}/" for c in crds.ALL} == set(CUSTOM_GROUPS)


def test_each_crd_keeps_its_upstream_identity():
    for c in crds.ALL:
        crd = crds.build_crd(c)
        names = crd["spec"]["names"]
        assert crd["metadata"]["name"] == f"{names['plural']}.{crd['spec']['group']}"
        assert (names["kind"], names["singular"], names["listKind"]) == (c.kind, c.kind.lower(), f"{c.kind}List")
        [version] = crd["spec"]["versions"]
        schema = version["schema"]["openAPIV3Schema"]
        assert set(schema["required"]) <= set(schema["properties"]) and "spec" in schema["required"]
        assert ("subresources" in version) is c.status_subresource
        assert crd["metadata"]["annotations"]["dask-platform/source"] == c.source


def _cache_key_template() -> str:
    [line] = re.findall(r'^CACHE="\$CACHE_ROOT/(.+)"$', KUBE_BUILD, flags=re.M)
    return line


def test_the_build_cache_key_names_every_debian_input():
    """Every Debian version kube-build.sh builds from is part of the cache folder's name, so a build from other
    inputs (an older one without the reflect2 / json-iterator fix) is never taken for this one."""
    inputs = set(re.findall(r"^([A-Z0-9]+_VERSION)=", KUBE_BUILD, flags=re.M))
    assert inputs == {"K8S_VERSION", "ETCD_VERSION", "REFLECT2_VERSION", "JSONITER_VERSION"}
    template = _cache_key_template()
    assert {v for v in inputs if f"${{{v}}}" in template} == inputs, template


def test_the_build_reuses_only_folders_with_the_fix():
    """The shortcut that skips apt (a complete cached folder) matches the folders this script writes now, and not
    the folders of builds before the fix (k8s-<ver>-etcd-<ver>), which stay on the machine for older checkouts."""
    [pattern] = re.findall(r'^for cached in "\$CACHE_ROOT"/(\S+); do$', KUBE_BUILD, flags=re.M)
    now = re.sub(
        r"\$\{(\w+)\}",
        lambda m: {"K8S_VERSION": "1.20.5+really1.20.2-1.1+deb12u1"}.get(m[1], "1.0-1"),
        _cache_key_template(),
    )
    assert fnmatch.fnmatch(now, pattern), (now, pattern)
    assert not fnmatch.fnmatch("k8s-1.20.5+really1.20.2-1.1+deb12u1-etcd-3.4.23-4+b4", pattern)
