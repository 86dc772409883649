"""The CrossGuard policies, run over every resource the program declares, and shown to catch violations."""

from __future__ import annotations

import json
import runpy

import pulumi_policy
import pytest
import yaml
from mlflow_platform import policies
from mock_harness import REPO, Deployment, Recorded, run_policies

CONFIGS = {
    "default": {},
    "irsa-kms-external-auth-lb": {
        "s3Identity": "irsa",
        "irsaRoleArn": "arn:aws:iam::123456789012:role/mlflow",
        "s3Encryption": "aws-kms",
        "postgres": "external",
        "postgresExternalUri": "postgresql+psycopg2://u:p@rds.example.com:5432/mlflow",
        "basicAuth": "true",
        "serviceType": "LoadBalancer",
        "tlsCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-0000-4000-8000-000000000001",
        "gpuDevicePlugin": "false",
    },
    "serving-auth-gpu": {
        "serving": "true",
        "servingImageTag": "0a1b2c3",
        "servingGpus": "1",
        "servingReplicas": "2",
        "basicAuth": "true",
    },
}


@pytest.mark.parametrize("name", CONFIGS)
def test_every_policy_passes_on_every_declared_resource(deploy, name: str) -> None:
    d = deploy(CONFIGS[name], secret_keys=("postgresExternalUri",))
    assert run_policies(d) == []


def test_policy_names_are_unique_and_cover_the_promised_properties() -> None:
    names = [p.name for p in policies.ALL_POLICIES]
    assert len(names) == len(set(names))
    for promised in (
        "s3-public-access-blocked",
        "s3-tls-only",
        "s3-encrypted-at-rest",
        "iam-least-privilege",
        "secret-outputs-marked",
        "k8s-pods-hardened",
    ):
        assert promised in names


def _mutated(d: Deployment, type_: str, mutate, name_part: str = "") -> Deployment:
    """A copy of the deployment where one resource's wire inputs were changed by `mutate`."""
    resources = []
    for r in d.resources:
        if r.type == type_ and name_part in r.name:
            wire = json.loads(json.dumps(r.wire_inputs))
            mutate(wire)
            r = Recorded(**{**r.__dict__, "wire_inputs": wire})
        resources.append(r)
    return Deployment(resources=resources)


def _violated(d: Deployment) -> set[str]:
    return {v.policy for v in run_policies(d)}


def _container(wire: dict) -> dict:
    return wire["spec"]["template"]["spec"]["containers"][0]


BROKEN = [
    ("s3-public-access-blocked", policies.PUBLIC_ACCESS_BLOCK, lambda w: w.update(restrictPublicBuckets=False), ""),
    ("s3-bucket-owner-enforced", policies.OWNERSHIP, lambda w: w["rule"].update(objectOwnership="ObjectWriter"), ""),
    (
        "s3-encrypted-at-rest",
        policies.ENCRYPTION,
        lambda w: w["rules"][0]["applyServerSideEncryptionByDefault"].update(sseAlgorithm="none"),
        "",
    ),
    (
        "s3-versioning-enabled",
        policies.VERSIONING,
        lambda w: w["versioningConfiguration"].update(status="Suspended"),
        "",
    ),
    (
        "s3-noncurrent-versions-expire",
        policies.LIFECYCLE,
        lambda w: w["rules"][0].pop("noncurrentVersionExpiration"),
        "",
    ),
    ("s3-tls-only", policies.BUCKET_POLICY, lambda w: w.update(policy=json.dumps({"Statement": []})), ""),
    (
        "iam-least-privilege",
        "aws:iam/userPolicy:UserPolicy",
        lambda w: w.update(policy=json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})),
        "",
    ),
    (
        "k8s-recommended-labels",
        "kubernetes:core/v1:Service",
        lambda w: w["metadata"]["labels"].pop("app.kubernetes.io/part-of"),
        "tracking",
    ),
    (
        "k8s-pods-hardened",
        "kubernetes:apps/v1:Deployment",
        lambda w: _container(w)["securityContext"].update(allowPrivilegeEscalation=True),
        "",
    ),
    ("k8s-pods-hardened", "kubernetes:apps/v1:StatefulSet", lambda w: _container(w)["resources"].pop("limits"), ""),
    (
        "k8s-no-inline-secrets",
        "kubernetes:apps/v1:Deployment",
        lambda w: _container(w)["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "plain"}),
        "",
    ),
    (
        "k8s-no-inline-secrets",
        "kubernetes:apps/v1:Deployment",
        lambda w: _container(w)["command"].append("--backend-store-uri=postgresql://u:pw@db/mlflow"),
        "",
    ),
    (
        "k8s-no-inline-secrets",
        "kubernetes:apps/v1:StatefulSet",
        lambda w: _container(w)["env"].append({"name": "POSTGRES_PASSWORD_FILE", "value": "hunter2"}),  # not a path
        "",
    ),
    (
        "k8s-pods-hardened",
        "kubernetes:apps/v1:StatefulSet",
        lambda w: _container(w)["resources"]["requests"].update(memory="2Gi"),  # above its 1Gi limit
        "",
    ),
    ("images-pinned", "kubernetes:apps/v1:StatefulSet", lambda w: _container(w).update(image="postgres:latest"), ""),
    ("helm-chart-pinned", policies.HELM_RELEASE, lambda w: w.pop("version"), ""),
]


@pytest.mark.parametrize(
    ("policy", "type_", "mutate", "name_part"), BROKEN, ids=[b[0] + "-" + b[1].split(":")[-1] for b in BROKEN]
)
def test_each_policy_catches_its_violation(default_deployment: Deployment, policy, type_, mutate, name_part) -> None:
    assert policy in _violated(_mutated(default_deployment, type_, mutate, name_part))


def test_secret_outputs_policy_catches_an_unmarked_secret(default_deployment: Deployment) -> None:
    resources = [
        Recorded(**{**r.__dict__, "additional_secret_outputs": []}) if r.type == policies.K8S_SECRET else r
        for r in default_deployment.resources
    ]
    assert "secret-outputs-marked" in _violated(Deployment(resources=resources))


def test_stack_policy_catches_a_bucket_without_guards(default_deployment: Deployment) -> None:
    without_block = [r for r in default_deployment.resources if r.type != policies.PUBLIC_ACCESS_BLOCK]
    violations = run_policies(Deployment(resources=without_block), policies.STACK_POLICIES)
    bucket = default_deployment.exports["bucket_name"]
    assert [v.message for v in violations] == [f"Bucket {bucket} lacks a public access block."]


def test_the_policy_pack_users_run_is_built_from_the_same_policies(monkeypatch) -> None:
    """`pulumi preview --policy-pack infra/policy_pack` runs infra/policy_pack/__main__.py; building the real
    PolicyPack would start the analyzer server, so record what it is built with instead."""
    built: dict = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.update(kwargs))
    runpy.run_path(str(REPO / "infra" / "policy_pack" / "__main__.py"), run_name="__main__")
    assert built["policies"] is policies.ALL_POLICIES
    assert built["enforcement_level"] == policies.EnforcementLevel.MANDATORY
    pack = yaml.safe_load((REPO / "infra" / "policy_pack" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    assert (REPO / "infra" / "policy_pack" / pack["runtime"]["options"]["virtualenv"]).resolve() == REPO / ".venv"
