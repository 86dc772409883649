"""What training Jobs run as, and what the Job submitter may do in the namespace.

The ServiceAccount is what every Job from the job template runs as (with IRSA, it carries the role
annotation, so the Job's AWS SDK calls use the role instead of a key pair).

The Role grants what the two callers of the submitting side send, and nothing else: MLflow's Kubernetes
backend (create a Job, read its status until it ends, delete it on cancel) and `kubectl logs -f job/<name>`,
which the README gives for following a run because MLflow does not stream logs. Each rule names its caller;
`tests/infra/training/test_rbac.py` runs both callers for real against a stand-in API server and checks, with the RBAC
authorizer's semantics, that every request is allowed and every granted verb is used. No Secrets, no exec,
nothing cluster-wide. It is bound to the training ServiceAccount, for a submitter that runs inside the cluster
(a CI runner, a notebook pod); people who submit from their laptops get the same Role through a RoleBinding of
their own (see the README).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.aws.service_accounts import s3_service_account
from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names

COMPONENT = "training"

RULES = [
    # MLflow's Kubernetes backend (`mlflow.projects.kubernetes`, run by `mlflow run --backend kubernetes`):
    # `create_namespaced_job` submits the run, `delete_namespaced_job` cancels it.
    {"api_groups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete"]},
    # MLflow's Kubernetes backend, while it waits: `read_namespaced_job_status` every 5 s. RBAC grants a
    # subresource only when it is named: `jobs` alone gives 403 on the first poll.
    {"api_groups": ["batch"], "resources": ["jobs/status"], "verbs": ["get"]},
    # `kubectl logs -f job/<name>`: reads the Job for its pod selector...
    {"api_groups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
    # ...lists the Job's pods (and watches for the first one when the Job has none yet)...
    {"api_groups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    # ...and streams the pod's log.
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
