"""A deployed cluster's scheduler Service comes from its rendered manifests (what Argo CD applies)."""

from __future__ import annotations

import pytest

from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from dask_platform.submit.access import scheduler_service
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["minikube", "aws-example", "gcp-example", "azure-example"])
def test_cluster_scheduler_service_comes_from_the_rendered_manifests(name: str):
    ref = scheduler_service(REPO, name)
    cluster = load_cluster(REPO, name)
    assert ref.namespace == cluster.namespace
    assert ref.name == f"{cluster.release}-scheduler"
    assert ref.port == 8786
    assert ref.selector["app.kubernetes.io/component"] == "scheduler"


def test_unrendered_cluster_is_a_clear_error(scratch: RepoTree):
    scratch.cluster_file("c").parent.mkdir()
    scratch.cluster_file("c").write_text("cloud: minikube\nnamespace: d\nkubernetesVersion: '1.32'\n")
    with pytest.raises(UserError, match=r"no rendered scheduler Service: run `dask-platform render c`"):
        scheduler_service(scratch, "c")
