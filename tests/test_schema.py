"""The values schema rejects bad values with the file and key path that caused it; shipped files are valid."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from dask_platform import generated
from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from dask_platform.schema import load_schema, schema_outputs
from dask_platform.values import build_values
from tests.support.repo import REPO


def add_cluster(tree: RepoTree, cluster: dict, cloud_values: dict | None = None, cloud: str = "minikube") -> RepoTree:
    """``tree`` with one more cluster "c1" (and, optionally, other values for its cloud)."""
    if cloud_values is not None:
        tree.values_file(cloud).write_text(yaml.safe_dump(cloud_values))
    path = tree.cluster_file("c1")
    path.parent.mkdir(parents=True)
    doc = {"cloud": cloud, "namespace": "dask", "kubernetesVersion": "1.36", "argocd": {"name": "c1"}, **cluster}
    path.write_text(yaml.safe_dump(doc))
    return tree


def effective_for(tree: RepoTree, values: dict, **kw) -> dict:
    add_cluster(tree, {"values": values}, **kw)
    return build_values(tree, load_cluster(tree, "c1")).effective


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
        {"cluster-autoscaler": {"image": {"tagByKubernetesMinor": {"1.36": "latest"}}}},
        "values.cluster-autoscaler.image.tagByKubernetesMinor.1.36",
    ),
    ({"dask": {"serviceAccount": {"annotations": {"a": 1}}}}, "values.dask.serviceAccount.annotations.a"),
    ({"global": {"podLabels": ["a"]}}, "values.global.podLabels"),
    ({"global": {"securityContext": {"runAsUser": 0}}}, "values.global.securityContext.runAsUser"),
    ({"jupyter": {"serviceAccount": {"name": "x"}}}, "key values.jupyter.serviceAccount.name: unknown key"),
    ({"serviceAccounts": {"dask": {}}}, "key values.serviceAccounts: unknown key 'serviceAccounts': it moved to dask."),
    (
        {"networkPolicy": {"enabled": False}},
        "key values.networkPolicy: unknown key 'networkPolicy': it moved to global.",
    ),
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
    ({"global": {"networkPolicy": {"apiServerPorts": [0]}}}, "values.global.networkPolicy.apiServerPorts[0]"),
    ({"dask": {"retire": {"gracePeriodSeconds": 5}}}, "values.dask.retire.gracePeriodSeconds"),
    ({"dask": {"scheduler": {"resources": {"requests": {"cpu": None}}}}}, "values.dask.scheduler.resources.requests"),
    # A request above its limit renders fine and is refused by the API server at sync time: refused here.
    (
        {"dask": {"workerGroups": {"default": {"resources": {"requests": {"cpu": "5"}, "limits": {"cpu": "4"}}}}}},
        "values.dask.workerGroups.default.resources.requests.cpu: request 5 is above the limit 4 (limits.cpu)",
    ),
    (
        {"jupyter": {"resources": {"requests": {"memory": "5Gi"}}}},
        "values.jupyter.resources.requests.memory: request 5Gi is above the limit 2Gi (limits.memory)",
    ),
    (
        {"cluster-autoscaler": {"resources": {"limits": {"memory": "200Mi"}}}},
        "values.cluster-autoscaler.resources.requests.memory: request 300Mi is above the limit 200Mi",
    ),
]


@pytest.mark.parametrize(("values", "expected"), BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))])
def test_bad_values_are_rejected_naming_file_and_key(scratch: RepoTree, values: dict, expected: str):
    with pytest.raises(UserError) as info:
        effective_for(scratch, values)
    message = str(info.value)
    assert message.startswith(str(scratch.cluster_file("c1")) + ": key "), message
    assert expected in message, message


def test_error_in_a_cloud_file_is_blamed_on_that_file(scratch: RepoTree):
    cloud = yaml.safe_load(REPO.values_file("minikube").read_text())
    cloud["dask"]["workerGroups"]["default"]["replicas"] = -2
    with pytest.raises(UserError) as info:
        effective_for(scratch, {}, cloud_values=cloud)
    assert str(info.value).startswith(str(scratch.values_file("minikube")))
    assert "key dask.workerGroups.default.replicas" in str(info.value)


def test_at_least_twenty_bad_cases():
    assert len(BAD_VALUES) >= 20


BAD_CLUSTERS = [
    ({"cloud": "openstack"}, "key cloud: unknown cloud 'openstack'"),
    ({"kubernetesVersion": "1.20"}, "key kubernetesVersion: Kubernetes 1.20 is not supported"),
    (
        {"kubernetesVersion": "1.34"},
        "key kubernetesVersion: Kubernetes 1.34 is not supported: expected one of 1.35, 1.36",
    ),
    ({"kubernetesVersion": 1.3}, "key kubernetesVersion"),
    ({"namespace": "Dask_NS"}, "key namespace"),
    ({"clsuter": "x"}, "key clsuter: unknown key 'clsuter'"),
    ({"values": ["a"]}, "key values"),
]


@pytest.mark.parametrize(("cluster", "expected"), BAD_CLUSTERS)
def test_bad_cluster_files_are_rejected(scratch: RepoTree, cluster: dict, expected: str):
    add_cluster(scratch, cluster)
    with pytest.raises(UserError) as info:
        load_cluster(scratch, "c1")
    assert expected in str(info.value)
    assert "clusters/c1/cluster.yaml" in str(info.value)


def test_missing_namespace_is_named(scratch: RepoTree):
    path = add_cluster(scratch, {}).cluster_file("c1")
    doc = yaml.safe_load(path.read_text())
    del doc["namespace"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match="'namespace' is a required property"):
        load_cluster(scratch, "c1")


def test_yaml_syntax_error_names_line(scratch: RepoTree):
    add_cluster(scratch, {}).cluster_file("c1").write_text("cloud: aws\nnamespace: [dask\n")
    with pytest.raises(UserError, match=r"cluster.yaml: YAML syntax error: line \d+, column \d+"):
        load_cluster(scratch, "c1")


def test_duplicate_keys_are_an_error(scratch: RepoTree):
    add_cluster(scratch, {}).cluster_file("c1").write_text(
        "cloud: aws\ncloud: gcp\nnamespace: d\nkubernetesVersion: '1.31'\n"
    )
    with pytest.raises(UserError, match="duplicate key 'cloud'"):
        load_cluster(scratch, "c1")


def test_missing_cloud_values_file(scratch: RepoTree):
    add_cluster(scratch, {}).values_file("minikube").unlink()
    with pytest.raises(UserError, match="unknown cloud 'minikube'"):
        load_cluster(scratch, "c1")


def test_unknown_cluster(scratch: RepoTree):
    with pytest.raises(UserError, match="no cluster named 'nope'"):
        load_cluster(scratch, "nope")


@pytest.mark.parametrize("name", REPO.cluster_names())
def test_every_shipped_cluster_is_valid(name: str):
    build_values(REPO, load_cluster(REPO, name))


def test_chart_defaults_are_valid():
    jsonschema.Draft7Validator(load_schema(REPO)).validate(REPO.load_mapping(REPO.chart / "values.yaml"))


def test_schema_json_is_generated_from_yaml():
    [output] = schema_outputs(REPO)
    assert generated.diff(output) == "", "run dask-platform schema"
    assert output.text.startswith('{\n  "$comment": "Generated by `dask-platform schema` from values.schema.yaml')


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
    return load_schema(REPO)["definitions"]


def test_every_key_is_documented():
    assert _keys_without_description(load_schema(REPO)) == []
