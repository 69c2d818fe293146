"""First deploy on EKS, GKE and AKS: each cloud fact the rendered objects and the plans rely on, pinned with its
primary source (we cannot reach a cloud, so the source is the proof)."""

from __future__ import annotations

import pytest
import yaml

from dask_platform import render
from dask_platform.repo import RepoTree
from tests.conftest import objects_of

pytestmark = pytest.mark.helm

# cloud -> the annotation its default load-balancer controller reads to make a LoadBalancer Service internal.
INTERNAL_LOAD_BALANCER = {
    # kubernetes/cloud-provider-aws pkg/providers/v1/aws.go: ServiceAnnotationLoadBalancerInternal. The
    # `aws-load-balancer-scheme` annotation is read only by the AWS Load Balancer Controller (not installed).
    "aws": ("service.beta.kubernetes.io/aws-load-balancer-internal", "true"),
    # cloud.google.com/kubernetes-engine/docs/concepts/service-load-balancer-parameters
    "gcp": ("networking.gke.io/load-balancer-type", "Internal"),
    # learn.microsoft.com/azure/aks/internal-lb; cloud-provider-azure pkg/consts/consts.go
    "azure": ("service.beta.kubernetes.io/azure-load-balancer-internal", "true"),
}


def jupyter_service(r) -> dict:
    [svc] = [s for name, s in objects_of(r, "Service").items() if name.endswith("-jupyter")]
    return svc


def test_jupyter_load_balancer_is_internal_with_the_annotation_each_default_controller_reads(rendered, clouds_by_cluster):
    for name, r in rendered.items():
        cloud = clouds_by_cluster[name]
        svc = jupyter_service(r)
        if cloud == "minikube":
            assert svc["spec"]["type"] == "NodePort"
            continue
        assert svc["spec"]["type"] == "LoadBalancer", name
        key, value = INTERNAL_LOAD_BALANCER[cloud]
        annotations = svc["metadata"].get("annotations", {})
        assert annotations.get(key) == value, (name, annotations)
        assert "service.beta.kubernetes.io/aws-load-balancer-scheme" not in annotations, name


def test_load_balancer_source_ranges_are_a_value(scratch: RepoTree, helm):
    path = scratch.cluster_file("aws-example")
    settings = yaml.safe_load(path.read_text())
    settings["values"]["jupyter"] = {"service": {"loadBalancerSourceRanges": ["10.20.0.0/16", "192.0.2.7/32"]}}
    path.write_text(yaml.safe_dump(settings))
    [r] = render.render_clusters(scratch, ["aws-example"], helm)
    assert jupyter_service(r)["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16", "192.0.2.7/32"]
    # a ClusterIP Service (the scheduler's) gets none, whatever is set
    [sched] = [s for n, s in objects_of(r, "Service").items() if n.endswith("-scheduler")]
    assert "loadBalancerSourceRanges" not in sched["spec"]


def test_a_source_range_that_is_not_a_cidr_is_refused(scratch: RepoTree, helm):
    from dask_platform.errors import UserError

    path = scratch.cluster_file("aws-example")
    settings = yaml.safe_load(path.read_text())
    settings["values"]["jupyter"] = {"service": {"loadBalancerSourceRanges": ["office"]}}
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(UserError, match=r"key values\.jupyter\.service\.loadBalancerSourceRanges\[0\]"):
        render.render_clusters(scratch, ["aws-example"], helm)
