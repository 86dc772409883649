"""GPU device plugin and the database NetworkPolicy (the training Role is in `test_rbac.py`)."""

from __future__ import annotations

from mock_harness import Deployment

HELM = "kubernetes:helm.sh/v3:Release"


def test_device_plugin_is_a_pinned_helm_release_tolerating_gpu_taint(default_deployment: Deployment) -> None:
    release = default_deployment.one(HELM).inputs
    assert release["chart"] == "nvidia-device-plugin"
    assert release["version"] == "0.20.0"
    assert release["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in release["values"]["tolerations"]
    assert release["values"]["gfd"] == {"enabled": False}


def test_device_plugin_can_be_left_to_microk8s_or_gpu_operator(deploy) -> None:
    d = deploy({"gpuDevicePlugin": "false"})
    assert HELM not in d.types
    assert "rapids-mlflow:platform:GpuDevicePlugin" not in d.types


def test_runtime_class_reaches_plugin_and_job_template(deploy) -> None:
    d = deploy({"gpuRuntimeClass": "nvidia", "gpuFeatureDiscovery": "true"})
    values = d.one(HELM).inputs["values"]
    assert values["runtimeClassName"] == "nvidia" and values["gfd"] == {"enabled": True}
    assert d.exports["kube_job_template"]["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_namespace_enforces_restricted_pod_security(default_deployment: Deployment) -> None:
    labels = default_deployment.one("kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
