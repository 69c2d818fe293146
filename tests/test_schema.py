"""The values schema rejects bad values with the file and key path that caused it; shipped files are valid."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from scripts.common import REPO_ROOT, UserError
from scripts.layers import chart_defaults, cluster_names, load_cluster
from scripts.render import build_values
from scripts.schema import SOURCE, TARGET, build_schema_json, load_schema


def make_tree(tmp_path: Path, cluster: dict, cloud_values: dict | None = None, cloud: str = "minikube") -> Path:
    """A clusters/ + values/ tree with one cluster "c1"; returns the clusters folder."""
    shutil.copytree(REPO_ROOT / "values", tmp_path / "values")
    if cloud_values is not None:
        (tmp_path / "values" / f"{cloud}.yaml").write_text(yaml.safe_dump(cloud_values))
    folder = tmp_path / "clusters" / "c1"
    folder.mkdir(parents=True)
    doc = {"cloud": cloud, "namespace": "dask", "kubernetesVersion": "1.32", **cluster}
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path / "clusters"


def effective_for(tmp_path: Path, values: dict, **kw) -> dict:
    clusters_dir = make_tree(tmp_path, {"values": values}, **kw)
    return build_values(load_cluster("c1", clusters_dir))[1]


# (values under cluster.yaml `values:`, the key path the error must name)
BAD_VALUES = [
    ({"dask": {"workerGroups": {"default": {"replicas": -1}}}}, "values.dask.workerGroups.default.replicas"),
    ({"dask": {"workerGroups": {"default": {"replicas": "3"}}}}, "values.dask.workerGroups.default.replicas"),
    ({"dsak": {}}, "key values.dsak: unknown key 'dsak'; expected one of: cluster-autoscaler, dask,"),
    ({"dask": {"scheduler": {"resoures": {}}}}, "key values.dask.scheduler.resoures: unknown key"),
    ({"global": {"image": {"tag": "latest"}}}, "values.global.image.tag"),
    ({"global": {"image": {"tag": ""}}}, "values.global.image.tag"),
    ({"global": {"image": {"pullPolicy": "Sometimes"}}}, "values.global.image.pullPolicy"),
    ({"global": {"ports": {"scheduler": 80}}}, "values.global.ports.scheduler"),
    ({"global": {"ports": {"dashboard": 70000}}}, "values.global.ports.dashboard"),
    (
        {"dask": {"workerGroups": {"default": {"resources": {"limits": {"memory": None}}}}}},
        "values.dask.workerGroups.default.resources.limits",
    ),
    (
        {"dask": {"workerGroups": {"default": {"resources": {"limits": {"cpu": "two"}}}}}},
        "values.dask.workerGroups.default.resources.limits.cpu",
    ),
    (
        {
            "dask": {
                "workerGroups": {
                    "Bad_Name": {
                        "replicas": 1,
                        "resources": {
                            "requests": {"cpu": "1", "memory": "1Gi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                    }
                }
            }
        },
        "'Bad_Name' does not match",
    ),
    ({"dask": {"workerGroups": {"default": {"nthreads": 0}}}}, "values.dask.workerGroups.default.nthreads"),
    (
        {"dask": {"workerGroups": {"default": {"tolerations": [{"operator": "Maybe"}]}}}},
        "values.dask.workerGroups.default.tolerations[0].operator",
    ),
    ({"dask": {"scheduler": {"service": {"type": "Ingress"}}}}, "values.dask.scheduler.service.type"),
    ({"jupyter": {"tokenSecret": {"name": ""}}}, "values.jupyter.tokenSecret.name"),
    ({"jupyter": {"persistence": {"size": "lots"}}}, "values.jupyter.persistence.size"),
    ({"cluster-autoscaler": {"enabled": True}}, "cluster-autoscaler"),
    (
        {"cluster-autoscaler": {"image": {"tagByKubernetesMinor": {"1.31": "latest"}}}},
        "values.cluster-autoscaler.image.tagByKubernetesMinor.1.31",
    ),
    ({"serviceAccounts": {"dask": {"annotations": {"a": 1}}}}, "values.serviceAccounts.dask.annotations.a"),
    ({"global": {"podLabels": ["a"]}}, "values.global.podLabels"),
    ({"global": {"securityContext": {"runAsUser": 0}}}, "values.global.securityContext.runAsUser"),
    ({"serviceAccounts": {"scheduler": {}}}, "key values.serviceAccounts.scheduler: unknown key"),
    ({"dask": {"workerGroups": {"default": None}}}, "values.dask.workerGroups"),
    ({"global": {"imagePullSecrets": [""]}}, "values.global.imagePullSecrets[0]"),
    (
        {"dask": {"workerGroups": {"default": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}}}},
        "values.dask.workerGroups.default.autoscaling.minReplicas: minReplicas 5 is greater than maxReplicas 2",
    ),
    (
        {
            "dask": {
                "workerGroups": {
                    "gpu": {
                        "gpu": True,
                        "replicas": 1,
                        "resources": {
                            "requests": {"cpu": "1", "memory": "1Gi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                    }
                }
            }
        },
        "'nvidia.com/gpu' is a required property",
    ),
    (
        {"dask": {"workerGroups": {"default": {"imageTagSuffix": "-cuda"}}}},
        "values.dask.workerGroups.default.imageTagSuffix",
    ),
    ({"networkPolicy": {"apiServerPorts": [0]}}, "values.networkPolicy.apiServerPorts[0]"),
    ({"dask": {"retire": {"gracePeriodSeconds": 5}}}, "values.dask.retire.gracePeriodSeconds"),
    ({"dask": {"scheduler": {"resources": {"requests": {"cpu": None}}}}}, "values.dask.scheduler.resources.requests"),
]


@pytest.mark.parametrize(("values", "expected"), BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))])
def test_bad_values_are_rejected_naming_file_and_key(tmp_path: Path, values: dict, expected: str):
    with pytest.raises(UserError) as info:
        effective_for(tmp_path, values)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "clusters/c1/cluster.yaml")), message
    assert expected in message, message


def test_error_in_a_cloud_file_is_blamed_on_that_file(tmp_path: Path):
    cloud = yaml.safe_load((REPO_ROOT / "values/minikube.yaml").read_text())
    cloud["dask"]["workerGroups"]["default"]["replicas"] = -2
    with pytest.raises(UserError) as info:
        effective_for(tmp_path, {}, cloud_values=cloud)
    assert str(info.value).startswith(str(tmp_path / "values/minikube.yaml"))
    assert "key dask.workerGroups.default.replicas" in str(info.value)


def test_at_least_twenty_bad_cases():
    assert len(BAD_VALUES) >= 20


BAD_CLUSTERS = [
    ({"cloud": "openstack"}, "key cloud: unknown cloud 'openstack'"),
    ({"kubernetesVersion": "1.20"}, "key kubernetesVersion: Kubernetes 1.20 is not supported"),
    ({"kubernetesVersion": 1.3}, "key kubernetesVersion"),
    ({"namespace": "Dask_NS"}, "key namespace"),
    ({"clsuter": "x"}, "key clsuter: unknown key 'clsuter'"),
    ({"values": ["a"]}, "key values"),
]


@pytest.mark.parametrize(("cluster", "expected"), BAD_CLUSTERS)
def test_bad_cluster_files_are_rejected(tmp_path: Path, cluster: dict, expected: str):
    clusters_dir = make_tree(tmp_path, cluster)
    with pytest.raises(UserError) as info:
        load_cluster("c1", clusters_dir)
    assert expected in str(info.value)
    assert "clusters/c1/cluster.yaml" in str(info.value)


def test_missing_namespace_is_named(tmp_path: Path):
    clusters_dir = make_tree(tmp_path, {})
    path = clusters_dir / "c1/cluster.yaml"
    doc = yaml.safe_load(path.read_text())
    del doc["namespace"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match="'namespace' is a required property"):
        load_cluster("c1", clusters_dir)


def test_yaml_syntax_error_names_line(tmp_path: Path):
    clusters_dir = make_tree(tmp_path, {})
    (clusters_dir / "c1/cluster.yaml").write_text("cloud: aws\nnamespace: [dask\n")
    with pytest.raises(UserError, match=r"cluster.yaml: YAML syntax error: line \d+, column \d+"):
        load_cluster("c1", clusters_dir)


def test_duplicate_keys_are_an_error(tmp_path: Path):
    clusters_dir = make_tree(tmp_path, {})
    (clusters_dir / "c1/cluster.yaml").write_text("cloud: aws\ncloud: gcp\nnamespace: d\nkubernetesVersion: '1.31'\n")
    with pytest.raises(UserError, match="duplicate key 'cloud'"):
        load_cluster("c1", clusters_dir)


def test_missing_cloud_values_file(tmp_path: Path):
    clusters_dir = make_tree(tmp_path, {})
    (tmp_path / "values/minikube.yaml").unlink()
    with pytest.raises(UserError, match="unknown cloud 'minikube'"):
        load_cluster("c1", clusters_dir)


def test_unknown_cluster(tmp_path: Path):
    with pytest.raises(UserError, match="no cluster named 'nope'"):
        load_cluster("nope", make_tree(tmp_path, {}))


@pytest.mark.parametrize("name", cluster_names())
def test_every_shipped_cluster_is_valid(name: str):
    build_values(load_cluster(name))


def test_chart_defaults_are_valid():
    jsonschema.Draft7Validator(load_schema()).validate(chart_defaults())


def test_schema_json_is_generated_from_yaml():
    assert TARGET.read_text() == build_schema_json(SOURCE), "run python scripts/schema.py"


def _keys_without_description(schema: dict, path: str = "") -> list[str]:
    missing = []
    for key, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{key}" if path else key
        if "description" not in sub and "$ref" not in sub:
            missing.append(here)
        if "$ref" in sub and "description" not in sub:
            ref = schema_defs()[sub["$ref"].split("/")[-1]]
            if "description" not in ref:
                missing.append(here)
        missing += _keys_without_description(sub, here)
    return missing


def schema_defs() -> dict:
    return load_schema()["definitions"]


def test_every_key_is_documented():
    assert _keys_without_description(load_schema()) == []
