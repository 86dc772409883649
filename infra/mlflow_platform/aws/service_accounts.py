"""ServiceAccounts of the pods that reach S3, and how they get AWS credentials without a key in the pod.

On EKS with IRSA the account carries the role's ARN as an annotation and EKS injects short-lived credentials;
with EKS Pod Identity the association (made by `aws_identity`) names the account, so no annotation is needed;
otherwise the pods read the access key from the S3 Secret. One helper, so the tracking server and the training
Jobs get the same identity the same way.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.aws.identity import irsa_role_arn
from mlflow_platform.core.config import StackConfig

#: The annotation by which EKS (IRSA) gives a ServiceAccount's pods the role's AWS credentials.
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


def s3_service_account(
    resource_name: str,
    cfg: StackConfig,
    account_name: str,
    namespace: pulumi.Input[str],
    object_labels: dict[str, str],
    opts: pulumi.ResourceOptions,
    automount_token: bool | None = None,
) -> k8s.core.v1.ServiceAccount:
    """The identity of pods that reach S3: annotated with the IRSA role when the stack uses one, so the tracking
    server and the training Jobs get the same credentials the same way."""
    role_arn = irsa_role_arn(cfg)
    annotations = {IRSA_ANNOTATION: role_arn} if role_arn else None
    return k8s.core.v1.ServiceAccount(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=account_name, namespace=namespace, labels=object_labels, annotations=annotations
        ),
        automount_service_account_token=automount_token,
        opts=opts,
    )
