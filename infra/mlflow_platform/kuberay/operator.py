"""The KubeRay operator, which turns a RayCluster object into head and worker pods and scales the workers.

Installed from KubeRay's own Helm chart at a pinned version (a `helm.v3.Release`, as `gpu_plugin` installs
NVIDIA's), only when `ray: true`. The chart also installs the CRDs (RayCluster, RayJob, RayService, RayCronJob)
from its `crds/` folder. Values, read from the chart at tag v1.7.0 (github.com/ray-project/kuberay,
helm-chart/kuberay-operator/values.yaml):
- `singleNamespaceInstall` + `watchNamespace`: the operator gets a namespaced Role in the platform namespace
  only (templates/multiple_namespaces_role.yaml), not a ClusterRole over every namespace, and watches only it.
- `podSecurityContext` / `securityContext`: the chart's container default is already restricted (non-root,
  read-only root, drop ALL, RuntimeDefault seccomp); the pod-level context is empty by default and set here, so
  the operator's own namespace can enforce the restricted Pod Security Standard too.
- `resources`: the chart sets limits only; requests are added so the scheduler reserves what the operator uses.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.core.pod_security import RESTRICTED_PSA_LABELS

CHART = "kuberay-operator"
CHART_VERSION = "1.7.0"
CHART_REPO = "https://ray-project.github.io/kuberay-helm/"
COMPONENT = "ray-operator"
# The chart's own limits (values.yaml at v1.7.0: "managing 500 Ray pods requires roughly 500MB memory").
OPERATOR_RESOURCES = {"cpu": "100m", "memory": "512Mi"}


def chart_values(cfg: StackConfig) -> dict[str, Any]:
    """Helm values: watch only the platform namespace, with namespaced RBAC, under the restricted profile."""
    return {
        "singleNamespaceInstall": True,
        "crNamespacedRbacEnable": True,
        "watchNamespace": [cfg.namespace],
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": dict(OPERATOR_RESOURCES), "limits": dict(OPERATOR_RESOURCES)},
    }


class RayOperator(pulumi.ComponentResource):
    """The operator's namespace (restricted Pod Security) and its Helm release."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, cfg: StackConfig, names: Names, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:RayOperator", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=names.ray_operator_namespace,
                labels={**labels(cfg.name_prefix, COMPONENT), **RESTRICTED_PSA_LABELS},
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=names.ray_operator_release,
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=namespace.metadata.name,
            atomic=True,
            cleanup_on_fail=True,
            values=chart_values(cfg),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
        )
        self.register_outputs({"release_name": self.release.name})
