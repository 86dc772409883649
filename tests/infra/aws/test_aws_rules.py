"""The AWS names the program declares are names AWS accepts, for short and long stack names.

Names are taken from what the program declares under Pulumi's mocks, checked against AWS's own rules
(`aws_rules`: botocore's API models, S3's documented bucket rules), and created in moto, which additionally
applies its own checks where it has them (bucket name length; moto does not check IAM or ECR names).
"""

from __future__ import annotations

import boto3
import pytest
from aws_rules import (
    PROVIDER_UNIQUE_SUFFIX,
    ecr_repository_name,
    iam_policy_name,
    iam_role_name,
    iam_user_name,
    s3_bucket_name,
    s3_bucket_prefix,
)
from mlflow_platform.core.config import ConfigError
from mock_harness import Deployment, run_program
from moto import mock_aws

# The two stack names from issue 10 that AWS rejected, the default, one with characters S3 and ECR refuse,
# and one at Pulumi's 100-character stack name limit.
STACKS = [
    "dev",
    "prod-us-east-1-analytics",
    "team-recommendations-staging-eu-central-1",
    "Team_Recs..Staging.EU",
    "x" * 60 + "-staging-eu-central-1-" + "y" * 18,
]


@pytest.mark.parametrize(
    ("checker", "good", "bad"),
    [
        (
            s3_bucket_name,
            ["abc", "my-bucket.v2", "a" * 63],
            ["ab", "a" * 64, "My-Bucket", "-abc", "abc.", "a..b", "192.168.5.4", "xn--abc", "sthree-a", "a-s3alias"],
        ),
        (iam_user_name, ["a", "deploy+ci=,.@-_1", "u" * 64], ["", "u" * 65, "has space", "path/name", "ünïcode"]),
        (iam_role_name, ["mlflow-s3", "r" * 64], ["r" * 65, "a:b"]),
        (iam_policy_name, ["p" * 128], ["p" * 129, "a*b"]),
        (ecr_repository_name, ["ns/repo", "a-b_c.d/e", "ab"], ["a", "Repo", "a..b", "-a", "a/", "ns//repo"]),
    ],
)
def test_rule_checker_knows_good_from_bad(checker, good: list[str], bad: list[str]) -> None:
    assert {name: checker(name) for name in good} == {name: [] for name in good}
    assert [name for name in bad if not checker(name)] == []


@pytest.fixture(scope="module", params=STACKS)
def stack_deployment(request) -> tuple[str, Deployment]:
    stack = request.param
    return stack, run_program({}, stack=stack)


def _names(d: Deployment) -> dict[str, str]:
    return {
        "bucket_prefix": d.one("aws:s3/bucket:Bucket").inputs["bucketPrefix"],
        "iam_user": d.one("aws:iam/user:User").inputs["name"],
        "user_policy": d.one("aws:iam/userPolicy:UserPolicy").inputs["name"],
        "ecr_repository": d.one("aws:ecr/repository:Repository").inputs["name"],
    }


def test_generated_names_follow_aws_rules(stack_deployment: tuple[str, Deployment]) -> None:
    stack, d = stack_deployment
    names = _names(d)
    if len(stack) <= 40:  # names that fit stay readable: the IAM user shows the stack it belongs to
        assert stack in names["iam_user"]
    broken = {
        "bucket_prefix": s3_bucket_prefix(names["bucket_prefix"]),
        "iam_user": iam_user_name(names["iam_user"]),
        "user_policy": iam_policy_name(names["user_policy"]),
        "ecr_repository": ecr_repository_name(names["ecr_repository"]),
    }
    assert broken == {key: [] for key in broken}, names


@mock_aws
def test_moto_creates_the_generated_resources(stack_deployment: tuple[str, Deployment]) -> None:
    _, d = stack_deployment
    names = _names(d)
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = names["bucket_prefix"] + PROVIDER_UNIQUE_SUFFIX
    s3.create_bucket(Bucket=bucket)
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName=names["iam_user"], Path="/rapids-mlflow/")
    iam.put_user_policy(
        UserName=names["iam_user"],
        PolicyName=names["user_policy"],
        PolicyDocument=d.one("aws:iam/userPolicy:UserPolicy").inputs["policy"],
    )
    ecr = boto3.client("ecr", region_name="us-east-1")
    ecr.create_repository(repositoryName=names["ecr_repository"])
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
    assert iam.list_user_policies(UserName=names["iam_user"])["PolicyNames"] == [names["user_policy"]]


def test_long_stack_names_stay_distinct_and_stable() -> None:
    # Two stacks that differ only after the cut must not share a bucket prefix, IAM user or repository.
    a = _names(run_program({}, stack="team-recommendations-staging-eu-central-1"))
    b = _names(run_program({}, stack="team-recommendations-staging-eu-central-2"))
    again = _names(run_program({}, stack="team-recommendations-staging-eu-central-1"))
    assert a == again
    assert all(a[k] != b[k] for k in ("bucket_prefix", "iam_user"))


@pytest.mark.parametrize(
    ("config", "key"),
    [({"bucketName": name}, "bucketName") for name in ("192.168.5.4", "a..b", "xn--abc", "team-s3alias", "ab")]
    + [({"namePrefix": prefix}, "namePrefix") for prefix in ("sthree", "amzn-s3-demo")],
)
def test_bucket_names_s3_refuses_are_refused_at_preview(deploy, config: dict[str, str], key: str) -> None:
    # Each name is one AWS's rules refuse (checked here with the independent checker), so preview must too.
    name = config.get("bucketName") or f"{config['namePrefix']}-dev-artifacts-{PROVIDER_UNIQUE_SUFFIX}"
    assert s3_bucket_name(name)
    with pytest.raises(ConfigError, match=rf"config rapids-mlflow-stack:{key}: .*Set it with: pulumi config set {key}"):
        deploy(config)
