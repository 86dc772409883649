"""What training Jobs run as, and what the Job submitter may do in the namespace.

The ServiceAccount is what every Job from the job template runs as (with IRSA, it carries the role
annotation, so the Job's AWS SDK calls use the role instead of a key pair). The Role grants exactly what
`mlflow run --backend kubernetes` does from the submitting side: create Jobs, watch them until they finish,
delete them, and read their pods and logs. No Secrets, no exec, nothing cluster-wide. It is bound to the
training ServiceAccount, for a submitter that runs inside the cluster (a CI runner, a notebook pod); people
who submit from their laptops get the same Role through a RoleBinding of their own (see the README).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from .config import StackConfig
from .labels import labels
from .naming import TYPE_PREFIX, Names
from .service_accounts import s3_service_account

COMPONENT = "training"

RULES = [
    {"api_groups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"api_groups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"api_groups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


class TrainingAccess(pulumi.ComponentResource):
    """ServiceAccount for training Jobs, plus the namespaced Role and RoleBinding for submitting them."""

    service_account_name: str
    role_name: str

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:TrainingAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_labels = labels(cfg.name_prefix, COMPONENT)
        account = s3_service_account(
            f"{name}-service-account", cfg, names.training_service_account, namespace, object_labels, child
        )
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.training_role, namespace=namespace, labels=object_labels),
            rules=[k8s.rbac.v1.PolicyRuleArgs(**rule) for rule in RULES],
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-role-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.training_role, namespace=namespace, labels=object_labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=names.training_role
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=names.training_service_account, namespace=namespace)
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, role]),
        )
        self.service_account_name = names.training_service_account
        self.role_name = names.training_role
        self.register_outputs({"service_account_name": self.service_account_name, "role_name": self.role_name})
