"""The S3 artifact store and the one AWS identity allowed to use it.

The bucket is private by construction (public access block, bucket-owner-enforced ownership so ACLs are
inert), encrypted at rest (SSE-S3, or KMS on request), versioned so an overwritten or deleted model can be
recovered, with old versions expiring so versioning does not grow cost forever, and a bucket policy that
refuses plain-HTTP access. The identity the tracking server and the training Jobs share gets only the object
actions they need under the artifact prefix, read-only access under the data prefix, and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from mlflow_platform.aws.identity import s3_role
from mlflow_platform.aws.tags import aws_tags
from mlflow_platform.core.config import BACKUP_PREFIX, StackConfig
from mlflow_platform.core.naming import TYPE_PREFIX, AwsNames


def identity_policy(
    bucket_arn: str,
    artifact_prefix: str,
    data_prefix: str,
    kms_key_arn: str | None,
    backup_prefix: str | None = None,
    ray_state_prefix: str | None = None,
) -> str:
    """The IAM policy document for the MLflow/training identity, limited to this bucket and its prefixes.

    ListBucket is conditioned on `s3:prefix` because it is a bucket-level action: without the condition the
    identity could enumerate every key in the bucket. Under `backup_prefix` (database dumps) the identity may
    only write: the training Jobs share it and must not read the database; operators restore with their own
    credentials, and the lifecycle rule, not the identity, removes old dumps. Under `ray_state_prefix` Ray Tune
    keeps a search's experiment state (`executor=ray`): it writes, reads back (resume), lists and deletes there.
    """
    listed = [artifact_prefix, f"{artifact_prefix}/*", data_prefix, f"{data_prefix}/*"]
    if ray_state_prefix:
        listed += [ray_state_prefix, f"{ray_state_prefix}/*"]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListOwnPrefixes",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket_arn],
            "Condition": {"StringLike": {"s3:prefix": listed}},
        },
        {"Sid": "LocateBucket", "Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": [bucket_arn]},
        {
            "Sid": "ReadWriteArtifacts",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": [f"{bucket_arn}/{artifact_prefix}/*"],
        },
        {
            "Sid": "ReadDatasets",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{bucket_arn}/{data_prefix}/*"],
        },
    ]
    if ray_state_prefix:
        statements.append(
            {
                "Sid": "RayTuneState",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": [f"{bucket_arn}/{ray_state_prefix}/*"],
            }
        )
    if backup_prefix:
        statements.append(
            {
                "Sid": "WriteDatabaseBackups",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [f"{bucket_arn}/{backup_prefix}/*"],
            }
        )
    if kms_key_arn:
        statements.append(
            {
                "Sid": "UseBucketKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": [kms_key_arn],
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def backup_retention_rules(
    cfg: StackConfig, backup_prefix: str | None
) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Expire database dumps `backupRetentionDays` after upload.

    The bucket is versioned, so expiry turns a dump into a noncurrent version, which the rule above removes
    `noncurrentVersionDays` later: a dump deleted by mistake can still be recovered in that window.
    """
    if not backup_prefix:
        return []
    return [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-database-backups",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=f"{backup_prefix}/"),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=cfg.backup_retention_days),
        )
    ]


def tls_only_policy(bucket_arn: str) -> str:
    """A bucket policy that denies every request not made over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


class ArtifactStore(pulumi.ComponentResource):
    """S3 bucket for MLflow artifacts plus the least-privilege identity that reads and writes it."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    artifact_root: pulumi.Output[str]
    data_root: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str] | None
    access_key_id: pulumi.Output[str] | None
    secret_access_key: pulumi.Output[str] | None
    #: The role pods assume for S3 (IRSA or Pod Identity); None with an IAM user's key.
    role_arn: pulumi.Output[str] | None

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:ArtifactStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = aws_tags(cfg.name_prefix, cfg.stack, "artifact-store")
        aws_names = AwsNames(cfg.name_prefix, cfg.stack)

        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=cfg.bucket_name,
            bucket_prefix=None if cfg.bucket_name else aws_names.bucket_prefix,
            force_destroy=cfg.bucket_force_destroy,
            tags=tags,
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )

        self.kms_key_arn = None
        if cfg.s3_encryption == "aws-kms":
            if cfg.kms_key_arn:
                self.kms_key_arn = pulumi.Output.from_input(cfg.kms_key_arn)
            else:
                key = aws.kms.Key(
                    f"{name}-key",
                    description=f"MLflow artifacts of {cfg.name_prefix} ({cfg.stack})",
                    enable_key_rotation=True,
                    deletion_window_in_days=30,
                    tags=tags,
                    opts=child,
                )
                self.kms_key_arn = key.arn
            default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="aws:kms", kms_master_key_id=self.kms_key_arn
            )
        else:
            default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"
            )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=default,
                    bucket_key_enabled=cfg.s3_encryption == "aws-kms",
                )
            ],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        backup_prefix = BACKUP_PREFIX if cfg.declares_backups else None
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=cfg.noncurrent_version_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                ),
                *backup_retention_rules(cfg, backup_prefix),
            ],
            # Lifecycle rules on noncurrent versions need versioning in place first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(tls_only_policy),
            # S3 rejects bucket policies while the public access block is still being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )

        policy_document = pulumi.Output.all(bucket.arn, self.kms_key_arn).apply(
            lambda args: identity_policy(
                args[0], cfg.artifact_prefix, cfg.data_prefix, args[1], backup_prefix, cfg.ray_state_prefix
            )
        )
        self.access_key_id = None
        self.secret_access_key = None
        self.role_arn = None
        if cfg.uses_access_key:
            user = aws.iam.User(
                f"{name}-user",
                name=aws_names.iam_user,
                path="/rapids-mlflow/",
                tags=tags,
                opts=child,
            )
            aws.iam.UserPolicy(
                f"{name}-user-policy", user=user.name, name="mlflow-artifacts", policy=policy_document, opts=child
            )
            key = aws.iam.AccessKey(f"{name}-access-key", user=user.name, opts=child)
            self.access_key_id = key.id
            # The provider already marks `secret` as secret; wrapping again keeps it secret in our own outputs
            # whatever a future provider version does.
            self.secret_access_key = pulumi.Output.secret(key.secret)
        else:
            role_name, role_arn = s3_role(name, cfg, tags, child)
            self.role_arn = pulumi.Output.from_input(role_arn)
            aws.iam.RolePolicy(
                f"{name}-role-policy",
                role=role_name,
                name=aws_names.iam_policy,
                policy=policy_document,
                opts=child,
            )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.artifact_root = bucket.bucket.apply(lambda b: f"s3://{b}/{cfg.artifact_prefix}")
        self.data_root = bucket.bucket.apply(lambda b: f"s3://{b}/{cfg.data_prefix}")
        #: Where `executor=ray` keeps Tune's state (`-P ray_storage=...`, which the bridge passes).
        self.ray_storage = bucket.bucket.apply(lambda b: f"s3://{b}/{cfg.ray_state_prefix}")
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "artifact_root": self.artifact_root,
                "data_root": self.data_root,
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
            }
        )
