"""The platform's namespace, labelled to enforce the "restricted" Pod Security Standard.

Every pod the stack declares (and the training Jobs from the job template) meets that standard, so the
namespace can refuse anything that does not: a mistyped manifest cannot bring a root container in.

With the in-cluster database and `keepDataOnDestroy` (the default), `pulumi destroy` leaves the namespace in the
cluster: deleting it would delete the PostgreSQL volume claim with it, which the StatefulSet itself retains.
Everything else in it that the stack declared is still deleted one by one.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX
from mlflow_platform.core.pod_security import RESTRICTED_PSA_LABELS


class PlatformNamespace(pulumi.ComponentResource):
    """The namespace, with an explicit name: Secrets, the job template and DNS names all refer to it."""

    name: pulumi.Output[str]

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:PlatformNamespace", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=cfg.namespace, labels={**labels(cfg.name_prefix, "platform"), **RESTRICTED_PSA_LABELS}
            ),
            opts=pulumi.ResourceOptions(
                parent=self, retain_on_delete=cfg.keep_data_on_destroy and cfg.in_cluster_postgres
            ),
        )
        self.name = namespace.metadata.name
        self.register_outputs({"name": self.name})
