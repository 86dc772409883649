"""The first `pulumi preview --policy-pack infra/policy_pack`: which policies can run while values are unknown.

On a stack's first preview nothing exists yet, so every value a provider computes is unknown: the bucket's
name and ARN (AWS completes the prefix), IAM ARNs, generated passwords, a load balancer's address. A
CrossGuard policy that reads an unknown value raises `UnknownValueError`, and pulumi-policy's analyzer turns
that into an *advisory* "can't run policy ... during preview" note instead of a verdict (pulumi_policy/policy.py,
`analyze`/`analyze_stack`). This test runs the program the way a first preview sees it and every policy the way
the analyzer does, and pins down exactly which policy/resource pairs are advisory, so the README's statement
stays true. During `pulumi up` the same policies run again on each resource with its inputs resolved, and a
mandatory violation stops that resource before it is created.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from mlflow_platform.policies import RESOURCE_POLICIES, STACK_POLICIES
from mock_harness import Deployment, ProviderMocks, Recorded, policy_args, run_program
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import StackValidationArgs
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy


class FirstPreviewMocks(ProviderMocks):
    """Known: every input the program sets. Unknown: every value a provider computes, and every ID."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        _, state = super().new_resource(args)
        return "", {k: (v if k in args.inputs else UNKNOWN) for k, v in state.items()}


def _first_preview(config: dict[str, str] | None = None) -> Deployment:
    return run_program(config or {}, preview=True, mocks=FirstPreviewMocks())


def _advisory(deployment: Deployment) -> set[tuple[str, str]]:
    """(policy, resource type) pairs the analyzer could not decide; violations found are returned too."""
    advisory: set[tuple[str, str]] = set()
    for policy in RESOURCE_POLICIES:
        for resource in deployment.resources:
            if not resource.custom:
                continue
            try:
                policy.validate(policy_args(resource), lambda *_: None)
            except UnknownValueError:
                advisory.add((policy.name, resource.type))
    resources = [_stack_resource(r) for r in deployment.resources if r.custom]
    for policy in STACK_POLICIES:
        try:
            policy.validate(StackValidationArgs(resources), lambda *_: None)
        except UnknownValueError:
            advisory.add((policy.name, "<stack>"))
    return advisory


def _stack_resource(r: Recorded) -> Any:
    props = unknown_checking_proxy(deserialize_properties(r.outputs))
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return PolicyResource(r.type, props, r.urn, r.name, opts, None, None, [], {})


def test_the_model_has_unknowns_where_a_first_preview_has_them() -> None:
    d = _first_preview()
    assert d.one("aws:s3/bucketPolicy:BucketPolicy").wire_inputs["policy"] == UNKNOWN
    assert d.one("aws:s3/bucketVersioning:BucketVersioning").wire_inputs["bucket"] == UNKNOWN


# What the README's "First preview" note says, pinned: only the policies that read a value derived from the
# bucket's ARN or name (a JSON document built from it, or the bucket a guard is attached to) are advisory.
# k8s-no-inline-secrets on the tracking Deployment stays partly undecided: its artifact destination
# (s3://<bucket>/...) is unknown; every known env value and argument is still checked (next test). The same
# holds for the maintenance CronJobs: the backup's bucket and `mlflow gc`'s artifact destination are unknown.
ADVISORY_ON_FIRST_PREVIEW = {
    ("k8s-no-inline-secrets", "kubernetes:batch/v1:CronJob"),
    ("s3-tls-only", "aws:s3/bucketPolicy:BucketPolicy"),
    ("iam-least-privilege", "aws:iam/userPolicy:UserPolicy"),
    ("s3-bucket-fully-guarded", "<stack>"),
    ("k8s-no-inline-secrets", "kubernetes:apps/v1:Deployment"),
}


def test_exactly_these_policies_are_advisory_on_a_first_preview() -> None:
    assert _advisory(_first_preview()) == ADVISORY_ON_FIRST_PREVIEW


def test_the_other_kubernetes_and_s3_policies_decide_on_a_first_preview() -> None:
    """They read only values the program sets (names, labels, pod specs, flags), so they block at preview."""
    decided = {p.name for p in RESOURCE_POLICIES} - {name for name, _ in ADVISORY_ON_FIRST_PREVIEW}
    assert {"k8s-pods-hardened", "s3-public-access-blocked", "s3-encrypted-at-rest", "images-pinned"} <= decided


def test_a_literal_secret_is_caught_at_preview_beside_unknown_values() -> None:
    """Partial evaluation: the known parts of the Deployment are judged, then the rest is left advisory."""
    d = _first_preview()
    tracking = d.one("kubernetes:apps/v1:Deployment")
    wire = copy.deepcopy(tracking.wire_inputs)
    container = wire["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": UNKNOWN})  # literal, value not known yet
    container["env"].append({"name": "DB_URI", "value": "postgresql://mlflow:hunter2@db/mlflow"})
    reported: list[str] = []
    policy = next(p for p in RESOURCE_POLICIES if p.name == "k8s-no-inline-secrets")
    broken = Recorded(**{**tracking.__dict__, "wire_inputs": wire})
    with pytest.raises(UnknownValueError):  # the analyzer's advisory note for the artifact destination
        policy.validate(policy_args(broken), lambda message, urn=None: reported.append(message))
    assert any("AWS_SECRET_ACCESS_KEY carries a literal value" in m for m in reported)
    assert any("DB_URI embeds credentials" in m for m in reported)
