"""S3 identity without long-lived keys on EKS: the IRSA role and the Pod Identity role the program creates.

Each role is applied to moto like the rest of the stack; its credentials (from moto's STS) then drive MLflow's
own S3 artifact code, which must get exactly the access the IAM user gets. Who may assume the role is judged
from the trust policy: for IRSA by moto's policy evaluator (it implements `StringEquals`, the operator the
trust uses), with the token claims a pod of each ServiceAccount would present. moto's STS itself checks
neither the web-identity token nor the trust, and has no Pod Identity API; only EKS shows those.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from boto3.exceptions import S3UploadFailedError
from mlflow_platform.core.config import ConfigError
from mock_harness import Deployment, s3_accounts
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto_stack import MotoStack, running_stack

ACCOUNT = "111122223333"
ISSUER = "oidc.eks.eu-central-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
IRSA = {"s3Identity": "irsa", "eksOidcProviderArn": PROVIDER}
POD_IDENTITY = {"s3Identity": "pod-identity", "eksClusterName": "ml-gpu"}


def _service_account_subjects(d: Deployment) -> set[str]:
    accounts = s3_accounts(d)
    return {
        f"system:serviceaccount:{a.inputs['metadata']['namespace']}:{a.inputs['metadata']['name']}" for a in accounts
    }


def _trust_allows(trust: str, sub: str, aud: str = "sts.amazonaws.com") -> bool:
    claims = {f"{ISSUER}:sub": sub, f"{ISSUER}:aud": aud}
    result = IAMPolicy(trust).is_action_permitted("sts:AssumeRoleWithWebIdentity", incoming_condition_values=claims)
    return result == PermissionResult.PERMITTED


@pytest.fixture(scope="module")
def stack(request) -> Iterator[MotoStack]:
    """The stack applied to moto with the identity named by the test's indirect parameter.

    One at a time: moto's backends are process-wide, so two applied stacks would share state."""
    with running_stack({"irsa": IRSA, "pod-identity": POD_IDENTITY}[request.param]) as applied:
        yield applied


@pytest.mark.parametrize("stack", ["irsa"], indirect=True)
def test_irsa_role_trusts_exactly_the_platforms_service_accounts(stack: MotoStack) -> None:
    d = stack.deployment
    role = d.one("aws:iam/role:Role")
    trust = role.inputs["assumeRolePolicy"]
    subjects = _service_account_subjects(d)
    assert len(subjects) == 2  # the tracking server's and the training Jobs'
    assert all(_trust_allows(trust, sub) for sub in subjects)
    for stranger in ("system:serviceaccount:mlflow:default", "system:serviceaccount:kube-system:aws-node"):
        assert not _trust_allows(trust, stranger)
    some_sub = next(iter(subjects))
    assert not _trust_allows(trust, some_sub, aud="https://kubernetes.default.svc")
    assert json.loads(trust)["Statement"][0]["Principal"] == {"Federated": PROVIDER}


@pytest.mark.parametrize("stack", ["irsa"], indirect=True)
def test_irsa_service_accounts_carry_the_created_roles_arn(stack: MotoStack) -> None:
    d = stack.deployment
    role = d.one("aws:iam/role:Role")
    annotations = {a.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] for a in s3_accounts(d)}
    # The annotation is computed before the role exists, from the provider's account and the role's path and
    # name; it must be the ARN IAM gives the role (moto builds it from the same parts, in its own account).
    (annotation,) = annotations
    # The export is the role's ARN as the provider reports it (the mocks use their own account).
    assert d.exports["s3_role_arn"].split(":", 5)[5] == annotation.split(":", 5)[5]
    assert annotation.startswith(f"arn:aws:iam::{ACCOUNT}:role/")
    assert annotation.split(":", 5)[5] == stack.applied.roles[role.inputs["name"]].split(":", 5)[5]
    assert not d.of_type("aws:iam/user:User") and not d.of_type("aws:iam/accessKey:AccessKey")
    env = d.exports["kube_job_template"]["spec"]["template"]["spec"]["containers"][0].get("env", [])
    assert "AWS_SECRET_ACCESS_KEY" not in {e["name"] for e in env}


@pytest.mark.parametrize("stack", ["irsa", "pod-identity"], indirect=True)
def test_the_roles_s3_access_matches_the_users(stack: MotoStack, tmp_path: Path, model_file: Path) -> None:
    (role_name,) = stack.applied.roles
    creds = stack.role_credentials(role_name)
    bucket = stack.applied.bucket
    repo = stack.repo(f"s3://{bucket}/mlflow/2/abc/artifacts", creds)
    repo.log_artifact(str(model_file))
    assert [f.path for f in repo.list_artifacts()] == ["model.pkl"]
    datasets = stack.repo(f"s3://{bucket}/datasets/airline", creds)
    assert Path(datasets.download_artifacts("flights.parquet", str(tmp_path))).read_bytes() == b"PAR1 flights"
    for refused in (f"s3://{bucket}/datasets/airline", f"s3://{bucket}/elsewhere", "s3://another-teams-bucket/mlflow"):
        with pytest.raises(S3UploadFailedError, match="AccessDenied"):
            stack.repo(refused, creds).log_artifact(str(model_file))


@pytest.mark.parametrize("stack", ["pod-identity"], indirect=True)
def test_pod_identity_associates_the_role_with_both_service_accounts(stack: MotoStack) -> None:
    d = stack.deployment
    role = d.one("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust == [
        {
            "Sid": "EksPodIdentity",
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ]
    associations = d.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    associated = {f"system:serviceaccount:{a.inputs['namespace']}:{a.inputs['serviceAccount']}" for a in associations}
    assert associated == _service_account_subjects(d)
    assert {(a.inputs["clusterName"], a.inputs["roleArn"]) for a in associations} == {("ml-gpu", role.outputs["arn"])}
    assert d.exports["s3_role_arn"] == role.outputs["arn"]
    # No annotation and no key: EKS finds the role through the association.
    for account in s3_accounts(d):
        assert not account.inputs["metadata"].get("annotations")
    assert not d.of_type("aws:iam/accessKey:AccessKey")
    assert stack.applied.skipped  # moto has no Pod Identity API: the associations are not applied


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"s3Identity": "irsa"}, "irsaRoleArn: is required when s3Identity is 'irsa' (or set eksOidcProviderArn"),
        (
            {**IRSA, "irsaRoleArn": f"arn:aws:iam::{ACCOUNT}:role/x"},
            "eksOidcProviderArn: creates a role, so it cannot be combined with irsaRoleArn. "
            "Remove it with: pulumi config rm eksOidcProviderArn",
        ),
        ({**IRSA, "eksOidcProviderArn": f"arn:aws:eks:eu-central-1:{ACCOUNT}:cluster/ml"}, "eksOidcProviderArn: must"),
        (
            {"eksOidcProviderArn": PROVIDER},
            "s3Identity: must be 'irsa' when eksOidcProviderArn is set. Set it with: pulumi config set s3Identity irsa",
        ),
        ({"s3Identity": "pod-identity"}, "eksClusterName: is required when s3Identity is 'pod-identity'"),
        ({"eksClusterName": "ml"}, "Set it with: pulumi config set s3Identity pod-identity"),
        ({**POD_IDENTITY, "eksClusterName": "ml gpu"}, "eksClusterName: must be an EKS cluster name"),
    ],
)
def test_identity_config_mistakes_name_the_fix(deploy, config: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        deploy(config)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"a trained forest")
    return path
