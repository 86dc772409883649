"""NVIDIA's Kubernetes device plugin, so pods can request `nvidia.com/gpu`.

Installed from NVIDIA's own Helm chart at a pinned version (a `helm.v3.Release`, which Pulumi tracks as one
resource with its values as inputs). On by default; turn it off (`gpuDevicePlugin: false`) where the
cluster already runs one: MicroK8s' `gpu`/`nvidia` addon and the NVIDIA GPU Operator both install the
plugin, and two plugins on a node fight over the same devices.

The chart's default node affinity only schedules the plugin on nodes labelled by Node Feature Discovery
(`feature.node.kubernetes.io/pci-10de.present`) or by hand (`nvidia.com/gpu.present=true`). With
`gpuFeatureDiscovery: true` the chart's GPU Feature Discovery and NFD subchart add those labels themselves.

Every pod of the chart that must run on a GPU node tolerates the configured `gpuTaint` (see `gpu_taint`). Value
paths, read from the chart at tag v0.20.0 (github.com/NVIDIA/k8s-device-plugin,
deployments/helm/nvidia-device-plugin): `tolerations` (values.yaml; used by both
templates/daemonset-device-plugin.yml and templates/daemonset-gfd.yml, default: `CriticalAddonsOnly` Exists and
`nvidia.com/gpu` Exists NoSchedule) and `nfd.worker.tolerations` (values.yaml, passed to the
node-feature-discovery 0.19.0 subchart; default: `node-role.kubernetes.io/master=:NoSchedule` and
`nvidia.com/gpu=present:NoSchedule` only). Setting a list replaces the chart's default, so both defaults are
repeated here and the configured taint's toleration added.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.gpu_taint import gpu_tolerations, parse_taint
from mlflow_platform.core.naming import TYPE_PREFIX

CHART = "nvidia-device-plugin"
CHART_REPO = "https://nvidia.github.io/k8s-device-plugin"
NAMESPACE = "nvidia-device-plugin"
# The chart's own defaults (values.yaml at v0.20.0), kept because a list value replaces them.
CHART_TOLERATIONS = [
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
]
NFD_WORKER_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/master", "operator": "Equal", "value": "", "effect": "NoSchedule"},
    {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
]


def _with(defaults: list[dict[str, str]], extra: list[dict[str, str]]) -> list[dict[str, str]]:
    return [*defaults, *(t for t in extra if t not in defaults)]


def chart_values(cfg: StackConfig) -> dict[str, Any]:
    """Helm values: tolerate the GPU taint, fail loudly when no driver is found, optional runtime class."""
    gpu = gpu_tolerations(parse_taint(cfg.gpu_taint))
    values: dict[str, Any] = {
        "failOnInitError": True,
        "tolerations": _with(CHART_TOLERATIONS, gpu),
        "gfd": {"enabled": cfg.gpu_feature_discovery},
        "nfd": {"enabled": cfg.gpu_feature_discovery},
    }
    if cfg.gpu_feature_discovery:
        values["nfd"]["worker"] = {"tolerations": _with(NFD_WORKER_TOLERATIONS, gpu)}
    if cfg.gpu_runtime_class:
        values["runtimeClassName"] = cfg.gpu_runtime_class
    return values


class GpuDevicePlugin(pulumi.ComponentResource):
    """The device plugin's Helm release, in its own namespace (Helm creates it)."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:GpuDevicePlugin", name, None, opts)
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name=f"{cfg.name_prefix}-nvdp",
            chart=CHART,
            version=cfg.device_plugin_chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=NAMESPACE,
            create_namespace=True,
            atomic=True,
            cleanup_on_fail=True,
            values=chart_values(cfg),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release_name = release.name
        self.register_outputs({"release_name": self.release_name})
