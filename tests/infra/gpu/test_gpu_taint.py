"""Item: one GPU taint, tolerated by every GPU-side workload (device plugin, GFD, NFD worker, training Jobs).

The chart side is checked against NVIDIA's own values file (tests/infra/fixtures, copied from
github.com/NVIDIA/k8s-device-plugin at tag v0.20.0, deployments/helm/nvidia-device-plugin/values.yaml), merged
with our values the way Helm merges them (maps merge, lists replace), so a toleration the chart would keep by
default counts, and one our values replace does not.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from mlflow_platform.core.config import ConfigError, parse
from mlflow_platform.core.gpu_taint import parse_taint
from mock_harness import KUBERNETES_VERSION, REPO, Deployment
from toleration_matching import tolerated_by, tolerates

CHART_VALUES = yaml.safe_load(
    (REPO / "tests" / "infra" / "fixtures" / "nvidia-device-plugin-0.20.0-values.yaml").read_text()
)
RELEASE = "kubernetes:helm.sh/v3:Release"


def helm_merge(base: Any, override: Any) -> Any:
    """Helm's value coalescing: maps merge key by key, anything else (lists too) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: helm_merge(base.get(k), v) for k, v in override.items()}}
    return override


# --- the matching helper, on known cases from the Kubernetes documentation --------------------------------


GPU_TRUE = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, GPU_TRUE, True),
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}, GPU_TRUE, True),
        ({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}, GPU_TRUE, True),  # "" means Equal
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}, GPU_TRUE, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, GPU_TRUE, True),  # empty effect matches all
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, GPU_TRUE, False),
        ({"operator": "Exists"}, GPU_TRUE, True),  # empty key with Exists tolerates everything
        ({"key": "CriticalAddonsOnly", "operator": "Exists"}, GPU_TRUE, False),
        ({"key": "k", "operator": "Equal", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}, True),
        ({"key": "k", "operator": "Equal", "value": "v"}, {"key": "k", "effect": "NoSchedule"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Lt", "value": "1"}, GPU_TRUE, False),
    ],
)
def test_toleration_matching_follows_kubernetes(toleration: dict, taint: dict, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


# --- every GPU-side workload tolerates the configured taint -----------------------------------------------


def _effective_chart_values(d: Deployment) -> dict[str, Any]:
    return helm_merge(CHART_VALUES, d.one(RELEASE).inputs["values"])


def _gpu_side_tolerations(d: Deployment) -> dict[str, list | None]:
    values = _effective_chart_values(d)
    workloads: dict[str, list | None] = {
        "device plugin": values.get("tolerations"),
        "training Job": d.exports["kube_job_template"]["spec"]["template"]["spec"].get("tolerations"),
    }
    if values["gfd"]["enabled"]:
        workloads["GPU Feature Discovery"] = values.get("tolerations")  # templates/daemonset-gfd.yml
        workloads["NFD worker"] = values["nfd"]["worker"]["tolerations"]  # subchart templates/worker.yaml
    return workloads


TAINTS = [
    "nvidia.com/gpu=present:NoSchedule",
    "nvidia.com/gpu=true:NoSchedule",  # what the README used to document: NFD's chart does not tolerate it
    "nvidia.com/gpu:NoExecute",
    "dedicated=gpu:PreferNoSchedule",
]


@pytest.mark.parametrize("taint_text", TAINTS)
def test_every_gpu_side_workload_tolerates_the_configured_taint(deploy, taint_text: str) -> None:
    d = deploy({"gpuTaint": taint_text, "gpuFeatureDiscovery": "true"})
    taint = parse_taint(taint_text)
    assert taint is not None
    workloads = _gpu_side_tolerations(d)
    assert set(workloads) == {"device plugin", "training Job", "GPU Feature Discovery", "NFD worker"}
    for workload, tolerations in workloads.items():
        assert tolerated_by(tolerations, vars(taint)), f"{workload} does not tolerate {taint_text}"


def test_the_chart_defaults_are_kept_when_tolerations_are_replaced(deploy) -> None:
    values = _effective_chart_values(deploy({"gpuTaint": "dedicated=gpu:NoSchedule", "gpuFeatureDiscovery": "true"}))
    for default in CHART_VALUES["tolerations"]:
        assert default in values["tolerations"]
    for default in CHART_VALUES["nfd"]["worker"]["tolerations"]:
        assert default in values["nfd"]["worker"]["tolerations"]


def test_the_default_taint_is_the_one_nfd_tolerates_out_of_the_box(default_deployment: Deployment) -> None:
    taint = parse_taint(parse({"aws:region": "us-east-1"}).gpu_taint)
    assert taint is not None and tolerated_by(CHART_VALUES["nfd"]["worker"]["tolerations"], vars(taint))
    assert tolerated_by(_gpu_side_tolerations(default_deployment)["training Job"], vars(taint))


def test_untainted_gpu_nodes_need_no_toleration_in_the_job(deploy) -> None:
    pod = deploy({"gpuTaint": "none"}).exports["kube_job_template"]["spec"]["template"]["spec"]
    assert "tolerations" not in pod and pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


@pytest.mark.parametrize("bad", ["nvidia.com/gpu=true", "nvidia.com/gpu=true:Never", "=x:NoSchedule", "a b:NoSchedule"])
def test_a_malformed_taint_is_refused_with_the_fix(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^config rapids-mlflow-stack:gpuTaint: .*pulumi config set gpuTaint"):
        parse({"aws:region": "us-east-1", "gpuTaint": bad})


@pytest.mark.parametrize("taint_text", TAINTS)
def test_every_toleration_list_is_valid_kubernetes(deploy, taint_text: str) -> None:
    """What Helm renders into each DaemonSet's pod spec must pass the API server's schema."""
    workloads = _gpu_side_tolerations(deploy({"gpuTaint": taint_text, "gpuFeatureDiscovery": "true"}))
    for workload, tolerations in workloads.items():
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "gpu-side"},
            "spec": {"containers": [{"name": "c", "image": "i:1"}], "tolerations": tolerations},
        }
        try:
            kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{workload}: {e.message}")
