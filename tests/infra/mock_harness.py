"""Run the real Pulumi program (`infra/__main__.py`) under Pulumi's mocks and record what it declares.

Each test gets a fresh runtime: mocks and config are set first, then the program runs inside
`pulumi.runtime.test`, which waits for every registration and `apply` to finish. `preview=False`, because
under preview unknown outputs silently skip `apply` callbacks.

What is recorded per resource is what the Pulumi engine would send a CrossGuard analyzer: the type, name,
URN, parent, `additionalSecretOutputs`, and the inputs in their wire form (secrets still wrapped in Pulumi's
secret signature), so policy tests can deserialize them exactly as `pulumi_policy` does.
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.sync_await import _sync_await

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "infra" / "__main__.py"
PROJECT = "rapids-mlflow-stack"
STACK = "dev"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
ACCOUNT = "123456789012"

BASE_CONFIG: dict[str, str] = {"aws:region": "us-east-1"}


@dataclass
class Recorded:
    """One resource registration, as the engine would have seen it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    wire_inputs: dict[str, Any]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    additional_secret_outputs: list[str]
    # Resource options the engine acts on at `pulumi destroy` (what `pulumi destroy` would leave behind).
    retain_on_delete: bool = False
    protect: bool = False
    dependencies: list[str] = field(default_factory=list)
    # Property paths the engine keeps from the state on update (`ignoreChanges`).
    ignore_changes: list[str] = field(default_factory=list)


@dataclass
class Deployment:
    """The outcome of one program run: every resource and every stack export (with its secretness)."""

    resources: list[Recorded]
    exports: dict[str, Any] = field(default_factory=dict)
    secret_exports: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_part: str = "") -> Recorded:
        found = [r for r in self.of_type(type_) if name_part in r.name]
        assert len(found) == 1, f"expected one {type_} matching {name_part!r}, found {[r.name for r in found]}"
        return found[0]

    def k8s_named(self, kind_type: str, name: str) -> Recorded:
        found = [r for r in self.of_type(kind_type) if r.inputs.get("metadata", {}).get("name") == name]
        assert len(found) == 1, f"expected one {kind_type} named {name}, found {len(found)}"
        return found[0]

    @property
    def types(self) -> set[str]:
        return {r.type for r in self.resources}


def s3_accounts(deployment: Deployment) -> list[Recorded]:
    """The ServiceAccounts whose pods reach S3 (all but the orphan reaper's, which only calls the Kubernetes API)."""
    return [
        r
        for r in deployment.of_type("kubernetes:core/v1:ServiceAccount")
        if not r.inputs["metadata"]["name"].endswith("orphan-reaper")
    ]


def unwrap_secrets(value: Any) -> Any:
    """Replace Pulumi's wire-format secret wrappers by their plain values."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return unwrap_secrets(value.get("value"))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def is_wire_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


class ProviderMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs, adding what a provider would compute and the program reads back."""

    #: What AWS returns as the IAM access key's secret; a test rotates the key by changing it.
    access_key_secret = "mock-secret-access-key-value"

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        rid = f"{args.name}-id"
        if args.typ == "aws:s3/bucket:Bucket":
            bucket = state.get("bucket") or f"{state.get('bucketPrefix', 'bucket-')}20261129abc"
            state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}")
            rid = bucket
        elif args.typ == "aws:iam/user:User":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:user{state.get('path', '/')}{state['name']}"
        elif args.typ == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:role{state.get('path', '/')}{state['name']}"
        elif args.typ == "aws:iam/accessKey:AccessKey":
            rid = "AKIDEXAMPLEMOCKKEY"
            state["secret"] = self.access_key_secret
        elif args.typ == "aws:kms/key:Key":
            state["arn"] = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0f0e0d0c-0000-4000-8000-000000000001"
        elif args.typ == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{state['name']}"
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = "p" * int(state.get("length", 16))
        elif args.typ == "kubernetes:core/v1:Service" and state.get("spec", {}).get("type") == "LoadBalancer":
            state["status"] = {"loadBalancer": {"ingress": [{"hostname": "mlflow-lb.elb.example.com"}]}}
        return rid, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps each registration's wire-form request."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Recorded] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        wire = json_format.MessageToDict(request.object)
        registration = self.resources.get(response.urn)
        self.recorded.append(
            Recorded(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=request.custom,
                wire_inputs=wire,
                inputs=unwrap_secrets(wire),
                outputs=unwrap_secrets(json_format.MessageToDict(response.object)) if registration else {},
                additional_secret_outputs=list(request.additionalSecretOutputs),
                retain_on_delete=bool(request.retainOnDelete),
                protect=bool(request.protect),
                dependencies=list(request.dependencies),
                ignore_changes=list(request.ignoreChanges),
            )
        )
        return response


def run_program(
    config: dict[str, str],
    secret_keys: tuple[str, ...] = (),
    preview: bool = False,
    mocks: pulumi.runtime.Mocks | None = None,
    stack: str = STACK,
) -> Deployment:
    """Run `infra/__main__.py` under mocks with `config` (short keys get the project namespace) as `stack`.

    `preview=True` with mocks that return unknowns models a first `pulumi preview` (see test_first_preview.py).
    """
    full = {k if ":" in k else f"{PROJECT}:{k}": v for k, v in {**BASE_CONFIG, **config}.items()}
    secrets = [k if ":" in k else f"{PROJECT}:{k}" for k in secret_keys]
    pulumi.runtime.set_all_config(full, secret_keys=secrets)
    pulumi_settings.ROOT.set(None)
    mocks = mocks or ProviderMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)

    exported: dict[str, pulumi.Output] = {}

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        root = pulumi_settings.get_root_resource()
        exported.update(root.outputs)  # type: ignore[union-attr]

    program()
    deployment = Deployment(resources=monitor.recorded)
    for key, value in exported.items():
        output = pulumi.Output.from_input(value)
        deployment.exports[key] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            deployment.secret_exports.add(key)
    return deployment


# --- CrossGuard without the engine ------------------------------------------------------------------------


@dataclass
class Violation:
    policy: str
    resource: str
    message: str


def policy_args(resource: Recorded) -> Any:
    """Build the `ResourceValidationArgs` the analyzer would: props deserialized from the wire form."""
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
    from pulumi_policy.proxy import unknown_checking_proxy

    props = unknown_checking_proxy(deserialize_properties(resource.wire_inputs))
    opts = PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=resource.additional_secret_outputs,
        parent=resource.parent or None,
    )
    return ResourceValidationArgs(resource.type, props, resource.urn, resource.name, opts, None)


def run_policies(deployment: Deployment, policies: list | None = None) -> list[Violation]:
    """Apply every resource policy to every custom resource, and every stack policy to the whole stack."""
    from mlflow_platform.policies import ALL_POLICIES
    from pulumi_policy import ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy
    from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions

    violations: list[Violation] = []
    for policy in policies if policies is not None else ALL_POLICIES:
        if isinstance(policy, ResourceValidationPolicy):
            for resource in deployment.resources:
                if not resource.custom:
                    continue

                def report(message: str, urn: str | None = None, _r: Recorded = resource, _p=policy) -> None:
                    violations.append(Violation(_p.name, _r.name, message))

                policy.validate(policy_args(resource), report)
        elif isinstance(policy, StackValidationPolicy):
            resources = [
                PolicyResource(
                    r.type,
                    r.outputs,
                    r.urn,
                    r.name,
                    PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
                    None,
                    None,
                    [],
                    {},
                )
                for r in deployment.resources
                if r.custom
            ]

            def stack_report(message: str, urn: str | None = None, _p=policy) -> None:
                violations.append(Violation(_p.name, urn or "<stack>", message))

            policy.validate(StackValidationArgs(resources), stack_report)
    return violations


# --- Manifests ------------------------------------------------------------------------------------------

KUBERNETES_VERSION = "1.34"


def _normalize(value: Any) -> Any:
    """Protobuf carries every number as a double; Kubernetes integers must be written as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def manifests(deployment: Deployment) -> list[dict[str, Any]]:
    """Every Kubernetes object the program declares, rendered as the manifest the provider would apply."""
    rendered = []
    for resource in deployment.resources:
        if resource.type.startswith("kubernetes:") and "apiVersion" in resource.inputs:
            rendered.append(_normalize(resource.inputs))
    return rendered
