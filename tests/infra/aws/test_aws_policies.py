"""Every IAM and bucket policy document the program can declare, linted with parliament.

Documents are taken from the program under Pulumi's mocks for each identity and encryption choice. No
finding at MEDIUM or above is allowed unless it is listed in `JUSTIFIED` with the reason it is parliament's
limit, not our policy's fault; each justification is itself tested where AWS's rules can be run (moto's IAM
policy validator).
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import parliament
import pytest
from mock_harness import run_program
from moto import mock_aws
from parliament import analyze_policy_string, enhance_finding

parliament.override_config(str(Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"))

PROVIDER = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-central-1.amazonaws.com/id/EXAMPLED539D4633E5"
CONFIGS = {
    "iam-user": {},
    "iam-user-kms-created": {"s3Encryption": "aws-kms"},
    "irsa-existing-kms": {
        "s3Identity": "irsa",
        "irsaRoleArn": "arn:aws:iam::111122223333:role/team/mlflow",
        "s3Encryption": "aws-kms",
        "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-0000-4000-8000-00000000abcd",
    },
    "irsa-created": {"s3Identity": "irsa", "eksOidcProviderArn": PROVIDER},
    "pod-identity": {"s3Identity": "pod-identity", "eksClusterName": "ml-gpu"},
}
BLOCKING = {"MEDIUM", "HIGH", "CRITICAL"}

#: (issue, text in the finding's detail) -> why it is parliament's limit and not a fault of the document.
JUSTIFIED = {
    (
        "MALFORMED",
        "neither Resource nor NotResource",
    ): "parliament 1.6 lints every document as an identity policy; IAM forbids Resource in a role trust policy",
    (
        "UNKNOWN_FEDERATION_SOURCE",
        ":oidc-provider/",
    ): "parliament knows SAML providers and four web IdPs only; an IAM OIDC provider ARN is IRSA's documented "
    "principal (https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts.html)",
}


def _documents() -> list[tuple[str, str, str]]:
    """Sorted by id: the mocks register resources in the order their inputs resolve, which varies from run to run,
    and every pytest-xdist worker must collect the same ids in the same order."""
    found = []
    for label, config in CONFIGS.items():
        for resource in run_program(config).resources:
            for field in ("policy", "assumeRolePolicy"):
                if resource.type.startswith("aws:") and field in resource.inputs:
                    found.append((f"{label}:{resource.type.rsplit(':', 1)[-1]}.{field}", field, resource.inputs[field]))
    return sorted(found, key=lambda document: document[0])


DOCUMENTS = _documents()


def _blocking_findings(document: str) -> list[tuple[str, str, str]]:
    policy = analyze_policy_string(document, include_community_auditors=True)
    findings = [enhance_finding(f) for f in policy.findings]
    return [(f.issue, f.severity, str(f.detail)) for f in findings if f.severity in BLOCKING]


def _justification(issue: str, detail: str) -> str | None:
    return next((why for (i, text), why in JUSTIFIED.items() if i == issue and text in detail), None)


def test_every_kind_of_document_is_linted() -> None:
    kinds = {label.split(":", 1)[1] for label, _, _ in DOCUMENTS}
    assert kinds == {"UserPolicy.policy", "RolePolicy.policy", "BucketPolicy.policy", "Role.assumeRolePolicy"}


@pytest.mark.parametrize(("label", "field", "document"), DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_policy_documents_have_no_unjustified_findings(label: str, field: str, document: str) -> None:
    unjustified = [f for f in _blocking_findings(document) if not _justification(f[0], f[2])]
    assert unjustified == []
    if field == "policy":  # justifications are for trust policies only
        assert _blocking_findings(document) == []


def test_parliament_does_flag_a_broken_policy() -> None:
    # The lint is not vacuous: an object action on the bucket's ARN matches no resource.
    broken = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b"}]}'
    )
    assert [f[0] for f in _blocking_findings(broken)] == ["RESOURCE_MISMATCH"]


@mock_aws
@pytest.mark.parametrize("trust", [d for _, field, d in DOCUMENTS if field == "assumeRolePolicy"])
def test_the_resource_justification_holds_iam_refuses_resource_in_a_trust_policy(trust: str) -> None:
    # moto runs its IAM trust-policy validator on UpdateAssumeRolePolicy (not on CreateRole).
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=trust)
    iam.update_assume_role_policy(RoleName="r", PolicyDocument=trust)
    with_resource = json.loads(trust)
    with_resource["Statement"][0]["Resource"] = "*"
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException, match="prohibited field Resource"):
        iam.update_assume_role_policy(RoleName="r", PolicyDocument=json.dumps(with_resource))
