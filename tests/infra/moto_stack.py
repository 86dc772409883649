"""Apply the AWS resources the program declares (as recorded under Pulumi's mocks) to a moto server.

This is the AWS half of `pulumi up`, done with boto3 calls that mirror what the Pulumi AWS provider sends for
each resource type, so that moto, with IAM enforcement on, can then judge real requests made with the
identity the stack created. A resource type without a mapping fails loudly: a new AWS resource in the program
must be added here, or it would silently go untested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository
from mock_harness import Deployment, Recorded, run_program
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@dataclass
class Applied:
    """What the applied stack gave us: the bucket, and each identity's credentials (created in moto)."""

    bucket: str = ""
    bucket_policy: str | None = None
    user_keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    role_credentials: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    ecr_repositories: list[str] = field(default_factory=list)
    #: Resource types moto does not emulate, with why each is left out.
    skipped: dict[str, str] = field(default_factory=dict)


def client(service: str, endpoint: str, key: tuple[str, str], token: str | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        aws_session_token=token,
    )


def _bucket_of(resource: Recorded) -> str:
    # Bucket-scoped resources reference the bucket by `id`, which the mocks set to the bucket's name.
    return resource.inputs["bucket"]


def apply(d: Deployment, endpoint: str, admin: tuple[str, str]) -> Applied:
    """Create every AWS resource of `d` in the moto server at `endpoint`, in declaration order."""
    s3 = client("s3", endpoint, admin)
    iam = client("iam", endpoint, admin)
    applied = Applied()

    def bucket(r: Recorded) -> None:
        applied.bucket = r.outputs["bucket"]
        s3.create_bucket(Bucket=applied.bucket)
        if r.inputs.get("tags"):
            tags = [{"Key": k, "Value": v} for k, v in r.inputs["tags"].items()]
            s3.put_bucket_tagging(Bucket=applied.bucket, Tagging={"TagSet": tags})

    def public_access(r: Recorded) -> None:
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        config = {f[0].upper() + f[1:]: r.inputs[f] for f in flags}
        s3.put_public_access_block(Bucket=_bucket_of(r), PublicAccessBlockConfiguration=config)

    def ownership(r: Recorded) -> None:
        s3.put_bucket_ownership_controls(
            Bucket=_bucket_of(r),
            OwnershipControls={"Rules": [{"ObjectOwnership": r.inputs["rule"]["objectOwnership"]}]},
        )

    def encryption(r: Recorded) -> None:
        rules = []
        for rule in r.inputs["rules"]:
            default = rule["applyServerSideEncryptionByDefault"]
            by_default = {"SSEAlgorithm": default["sseAlgorithm"]}
            if default.get("kmsMasterKeyId"):
                by_default["KMSMasterKeyID"] = default["kmsMasterKeyId"]
            rules.append(
                {"ApplyServerSideEncryptionByDefault": by_default, "BucketKeyEnabled": rule["bucketKeyEnabled"]}
            )
        s3.put_bucket_encryption(Bucket=_bucket_of(r), ServerSideEncryptionConfiguration={"Rules": rules})

    def versioning(r: Recorded) -> None:
        status = r.inputs["versioningConfiguration"]["status"]
        s3.put_bucket_versioning(Bucket=_bucket_of(r), VersioningConfiguration={"Status": status})

    def lifecycle(r: Recorded) -> None:
        rules = []
        for rule in r.inputs["rules"]:
            applied = {"ID": rule["id"], "Status": rule["status"], "Filter": {"Prefix": rule["filter"]["prefix"]}}
            if "noncurrentVersionExpiration" in rule:
                days = int(rule["noncurrentVersionExpiration"]["noncurrentDays"])
                applied["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
            if "abortIncompleteMultipartUpload" in rule:
                days = int(rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"])
                applied["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
            if "expiration" in rule:
                applied["Expiration"] = {"Days": int(rule["expiration"]["days"])}
            rules.append(applied)
        s3.put_bucket_lifecycle_configuration(Bucket=_bucket_of(r), LifecycleConfiguration={"Rules": rules})

    def bucket_policy(r: Recorded) -> None:
        # Kept aside, not applied: see `tls_only_policy_applied` in the tests for why.
        applied.bucket_policy = r.inputs["policy"]

    def user(r: Recorded) -> None:
        iam.create_user(UserName=r.inputs["name"], Path=r.inputs.get("path", "/"))

    def user_policy(r: Recorded) -> None:
        iam.put_user_policy(UserName=r.inputs["user"], PolicyName=r.inputs["name"], PolicyDocument=r.inputs["policy"])

    def access_key(r: Recorded) -> None:
        key = iam.create_access_key(UserName=r.inputs["user"])["AccessKey"]
        applied.user_keys[r.inputs["user"]] = (key["AccessKeyId"], key["SecretAccessKey"])

    def role(r: Recorded) -> None:
        created = iam.create_role(
            RoleName=r.inputs["name"],
            AssumeRolePolicyDocument=r.inputs["assumeRolePolicy"],
            MaxSessionDuration=int(r.inputs.get("maxSessionDuration", 3600)),
        )
        # CreateRole in moto skips the trust-policy validator that UpdateAssumeRolePolicy runs; run it.
        iam.update_assume_role_policy(RoleName=r.inputs["name"], PolicyDocument=r.inputs["assumeRolePolicy"])
        applied.roles[r.inputs["name"]] = created["Role"]["Arn"]

    def role_policy(r: Recorded) -> None:
        iam.put_role_policy(RoleName=r.inputs["role"], PolicyName=r.inputs["name"], PolicyDocument=r.inputs["policy"])

    def ecr_repository(r: Recorded) -> None:
        client("ecr", endpoint, admin).create_repository(repositoryName=r.inputs["name"])
        applied.ecr_repositories.append(r.inputs["name"])

    handlers: dict[str, Callable[[Recorded], None]] = {
        "aws:s3/bucket:Bucket": bucket,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": public_access,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ownership,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": encryption,
        "aws:s3/bucketVersioning:BucketVersioning": versioning,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": lifecycle,
        "aws:s3/bucketPolicy:BucketPolicy": bucket_policy,
        "aws:iam/user:User": user,
        "aws:iam/userPolicy:UserPolicy": user_policy,
        "aws:iam/accessKey:AccessKey": access_key,
        "aws:iam/role:Role": role,
        "aws:iam/rolePolicy:RolePolicy": role_policy,
        "aws:ecr/repository:Repository": ecr_repository,
    }
    not_emulated = {
        "aws:eks/podIdentityAssociation:PodIdentityAssociation": "moto 5.2 has no EKS Pod Identity API",
    }
    for resource in d.resources:
        if not resource.type.startswith("aws:"):
            continue
        if resource.type in not_emulated:
            applied.skipped[resource.type] = not_emulated[resource.type]
            continue
        assert resource.type in handlers, f"no moto mapping for {resource.type}: add one to moto_stack.py"
        handlers[resource.type](resource)
    return applied


# --- A running moto server with the stack applied ----------------------------------------------------------

ADMIN_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
DATASET_KEY = "datasets/airline/flights.parquet"
OTHER_BUCKET = "another-teams-bucket"


class MotoStack:
    """The applied stack in a running moto server, and how to act as each of its identities."""

    def __init__(self, endpoint: str, applied: Applied, admin: tuple[str, str], deployment: Deployment) -> None:
        self.endpoint = endpoint
        self.applied = applied
        self.admin = admin
        self.deployment = deployment

    @property
    def identity(self) -> tuple[str, str]:
        """The IAM user's access key (s3Identity iam-user)."""
        (key,) = self.applied.user_keys.values()
        return key

    def role_credentials(self, role_name: str) -> tuple[str, str, str]:
        """Credentials of the stack's role, as STS hands them to a pod."""
        return self.applied.role_credentials[role_name]

    def repo(self, uri: str, key: tuple[str, ...] | None = None) -> S3ArtifactRepository:
        """MLflow's own S3 artifact repository, signing as `key` (default: the IAM user)."""
        key = key or self.identity
        token = key[2] if len(key) > 2 else None
        return S3ArtifactRepository(uri, access_key_id=key[0], secret_access_key=key[1], session_token=token)


def _reset_auth(endpoint: str, count: str) -> None:
    requests.post(f"{endpoint}/moto-api/reset-auth", data=count.encode(), timeout=10).raise_for_status()


@contextmanager
def running_stack(config: dict[str, str]) -> Iterator[MotoStack]:
    """A moto server on 127.0.0.1 with the program's AWS resources for `config`, IAM enforcement on.

    Enforcement (moto's `INITIAL_NO_AUTH_ACTION_COUNT`, set over `/moto-api/reset-auth`) is off while the
    stack is applied and a dataset and a foreign bucket are seeded, then on for everything the test does.
    MLflow finds the server through `MLFLOW_S3_ENDPOINT_URL`, as it would find any S3-compatible endpoint.
    """
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.delenv(var, raising=False)
        try:
            _reset_auth(endpoint, "inf")
            iam = client("iam", endpoint, ("bootstrap-not-a-key", "bootstrap"))
            iam.create_user(UserName="test-admin")
            iam.put_user_policy(UserName="test-admin", PolicyName="all", PolicyDocument=ADMIN_POLICY)
            key = iam.create_access_key(UserName="test-admin")["AccessKey"]
            admin = (key["AccessKeyId"], key["SecretAccessKey"])
            deployment = run_program(config)
            applied = apply(deployment, endpoint, admin)
            s3 = client("s3", endpoint, admin)
            s3.put_object(Bucket=applied.bucket, Key=DATASET_KEY, Body=b"PAR1 flights")
            s3.create_bucket(Bucket=OTHER_BUCKET)
            for role_name, role_arn in applied.roles.items():
                # moto's STS neither checks the token nor the trust, and fails unsigned calls once
                # enforcement is on, so each role's session is opened here.
                sts = client("sts", endpoint, admin)
                creds = sts.assume_role_with_web_identity(
                    RoleArn=role_arn, RoleSessionName="pod", WebIdentityToken="a-projected-token"
                )["Credentials"]
                applied.role_credentials[role_name] = (
                    creds["AccessKeyId"],
                    creds["SecretAccessKey"],
                    creds["SessionToken"],
                )
            _reset_auth(endpoint, "0")
            yield MotoStack(endpoint, applied, admin, deployment)
        finally:
            _reset_auth(endpoint, "inf")
            requests.post(f"{endpoint}/moto-api/reset", timeout=10)
            server.stop()
