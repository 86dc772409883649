"""The AWS identity MLflow and the training Jobs use for S3, in one of three forms.

- `iam-user`: an IAM user with an access key, stored in a Kubernetes Secret. Works on any cluster, but the
  key is long-lived: rotate it by replacing the AccessKey resource.
- `irsa` (IAM roles for service accounts, EKS): pods get short-lived credentials for a role by presenting
  their ServiceAccount token to STS. Either an existing role (`irsaRoleArn`; the stack only adds the S3
  policy to it) or a role this stack creates from the cluster's OIDC provider (`eksOidcProviderArn`),
  trusting exactly the tracking server's and the training Jobs' ServiceAccounts (`sub`) and tokens minted for
  STS (`aud`).
- `pod-identity` (EKS Pod Identity): the stack creates a role trusted by `pods.eks.amazonaws.com` and
  associates it with both ServiceAccounts; needs the Pod Identity Agent add-on on the cluster.

For IRSA the ServiceAccount annotation's role ARN is computed, not read back from the provider, so the
manifests stay plain strings; the OIDC provider's ARN already carries the account and partition, and the
role's path and name are ours (`naming.AwsNames.iam_role`).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.naming import AwsNames, Names

#: The service principal EKS Pod Identity assumes roles as, and the actions its trust must allow.
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ["sts:AssumeRole", "sts:TagSession"]
#: The audience EKS writes into projected ServiceAccount tokens meant for STS.
STS_AUDIENCE = "sts.amazonaws.com"
ROLE_PATH = "/"


def oidc_issuer(provider_arn: str) -> str:
    """`arn:aws:iam::1:oidc-provider/oidc.eks.R.amazonaws.com/id/X` -> `oidc.eks.R.amazonaws.com/id/X`.

    IAM names the condition keys of a web-identity trust after the issuer without its scheme."""
    return provider_arn.split(":oidc-provider/", 1)[1]


def _arn_parts(arn: str) -> tuple[str, str]:
    """(partition, account) of an IAM ARN."""
    parts = arn.split(":")
    return parts[1], parts[4]


def service_accounts(cfg: StackConfig) -> list[str]:
    """The ServiceAccounts whose pods reach S3: the tracking server's and the training Jobs' (and, with `ray`, the
    Ray head's and workers', which run the trials and store Tune's experiment state)."""
    names = Names(cfg.name_prefix, cfg.namespace)
    accounts = [names.tracking_service_account, names.training_service_account]
    return [*accounts, names.ray_service_account] if cfg.ray else accounts


def irsa_trust_policy(provider_arn: str, namespace: str, accounts: list[str]) -> str:
    """Trust for IRSA: only these ServiceAccounts' tokens, only tokens issued for STS."""
    issuer = oidc_issuer(provider_arn)
    subjects = [f"system:serviceaccount:{namespace}:{account}" for account in accounts]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "MlflowServiceAccounts",
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{issuer}:sub": subjects, f"{issuer}:aud": STS_AUDIENCE}},
                }
            ],
        }
    )


def pod_identity_trust_policy() -> str:
    """Trust for EKS Pod Identity; which pods may use the role is decided by the associations."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "EksPodIdentity",
                    "Effect": "Allow",
                    "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
                    "Action": POD_IDENTITY_ACTIONS,
                }
            ],
        }
    )


def creates_role(cfg: StackConfig) -> bool:
    return cfg.s3_identity == "pod-identity" or (cfg.s3_identity == "irsa" and cfg.irsa_role_arn is None)


def irsa_role_arn(cfg: StackConfig) -> str | None:
    """The role ARN to annotate ServiceAccounts with under IRSA (existing or created), else None."""
    if cfg.s3_identity != "irsa":
        return None
    if cfg.irsa_role_arn:
        return cfg.irsa_role_arn
    assert cfg.eks_oidc_provider_arn is not None  # guaranteed by config validation
    partition, account = _arn_parts(cfg.eks_oidc_provider_arn)
    return f"arn:{partition}:iam::{account}:role{ROLE_PATH}{AwsNames(cfg.name_prefix, cfg.stack).iam_role}"


def role_name_from_arn(arn: str) -> str:
    """`arn:aws:iam::123:role/path/name` -> `name` (RolePolicy takes the name, not the ARN)."""
    return arn.rsplit("/", 1)[-1]


def s3_role(
    name: str, cfg: StackConfig, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> tuple[pulumi.Input[str], pulumi.Input[str]]:
    """The role that carries the S3 policy: created here for `pod-identity` and for `irsa` without a role ARN.

    Returns the role's name and ARN (plain strings for an existing role)."""
    aws_names = AwsNames(cfg.name_prefix, cfg.stack)
    if not creates_role(cfg):
        assert cfg.irsa_role_arn is not None  # guaranteed by config validation
        return role_name_from_arn(cfg.irsa_role_arn), cfg.irsa_role_arn
    if cfg.s3_identity == "irsa":
        assert cfg.eks_oidc_provider_arn is not None
        trust = irsa_trust_policy(cfg.eks_oidc_provider_arn, cfg.namespace, service_accounts(cfg))
    else:
        trust = pod_identity_trust_policy()
    role = aws.iam.Role(
        f"{name}-role",
        name=aws_names.iam_role,
        path=ROLE_PATH,
        assume_role_policy=trust,
        max_session_duration=3600,
        tags=tags,
        opts=opts,
    )
    if cfg.s3_identity == "pod-identity":
        assert cfg.eks_cluster_name is not None  # guaranteed by config validation
        for account in service_accounts(cfg):
            aws.eks.PodIdentityAssociation(
                f"{name}-{account}",
                cluster_name=cfg.eks_cluster_name,
                namespace=cfg.namespace,
                service_account=account,
                role_arn=role.arn,
                tags=tags,
                opts=opts,
            )
    return role.name, role.arn
