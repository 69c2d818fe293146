"""Each cloud in one place (dask_platform/clouds/): the registry agrees with values/, the node group data files with
the shared taints, and the files ship with the package."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from dask_platform.clouds import CLOUDS, cloud
from dask_platform.clouds.base import GPU_TAINT, WORKER_TAINT, Taint, load_node_groups
from tests.support.repo import REPO


def test_every_values_file_has_a_cloud_module_and_every_cloud_a_values_file():
    """Adding a cloud is one module plus values/<cloud>.yaml (docs/clouds.md): neither without the other."""
    assert sorted(CLOUDS) == sorted(REPO.clouds())


def test_an_unknown_cloud_names_the_known_ones():
    with pytest.raises(KeyError, match="expected one of aws, gcp, azure, minikube"):
        cloud("ibm")


@pytest.mark.parametrize("name", sorted(CLOUDS))
def test_node_groups_are_read_from_the_clouds_data_file(name):
    """The defaults are the data file's, field for field (no node group is built in code)."""
    assert CLOUDS[name].node_groups == load_node_groups(name)
    assert (resources.files("dask_platform.clouds") / f"{name}.yaml").is_file()


@pytest.mark.parametrize("name", [n for n, c in CLOUDS.items() if c.node_groups])
def test_workers_carry_the_worker_taint_and_gpu_nodes_a_gpu_taint(name):
    """The data files spell the shared taints out: they must stay the ones the chart's tolerations name."""
    groups = {g.name: g for g in CLOUDS[name].node_groups}
    assert list(groups) == ["core", "workers", "gpu"]
    assert groups["workers"].taints == (WORKER_TAINT,)
    assert groups["core"].all_taints == ()
    # AKS's own convention (sku=gpu), the others NVIDIA's (clouds/azure.yaml, base.py GPU_TAINT).
    assert groups["gpu"].all_taints in ((GPU_TAINT,), (Taint("sku", "gpu"),))
    assert CLOUDS[name].node_group_label and CLOUDS[name].zone and CLOUDS[name].identity_annotation


def test_taints_read_as_they_print():
    assert Taint.parse(str(WORKER_TAINT)) == WORKER_TAINT
    assert Taint.parse("a.b/c=d:NoExecute") == Taint("a.b/c", "d", "NoExecute")


def test_the_node_group_data_ships_with_the_package():
    config = tomllib.loads((REPO.root / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-data"]["dask_platform.clouds"] == ["*.yaml"]


@pytest.mark.parametrize("name", sorted(CLOUDS))
def test_each_priced_cloud_names_its_dated_price_table(name):
    """Cloud.prices is the file costs.py reads; only a cloud that runs on this machine has none (and no nodes)."""
    path = CLOUDS[name].prices
    if not path:
        assert CLOUDS[name].node_groups == () and CLOUDS[name].machines == {}
        return
    assert path == f"prices/{name}.yaml" and (resources.files("dask_platform") / path).is_file()


def test_a_node_group_data_file_with_an_unknown_key_is_refused_with_its_key_path():
    from dask_platform.clouds.base import parse_node_groups
    from dask_platform.errors import UserError

    data = {"nodeGroups": [{"name": "core", "instanceType": "m6i.large", "minSize": 1, "maxSize": 3, "desired": 2},
                           {"name": "workers", "instancetype": "m6i.xlarge"}]}  # fmt: skip
    with pytest.raises(UserError) as error:
        parse_node_groups(data, "dask_platform/clouds/x.yaml")
    assert (error.value.key_path, str(error.value.file)) == ("nodeGroups.1.instancetype", "dask_platform/clouds/x.yaml")
