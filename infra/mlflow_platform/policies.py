"""The stack's security properties, written once as CrossGuard (pulumi-policy) policies.

The same policy objects gate two things: `pulumi preview --policy-pack infra/policy_pack` for users (the pack
in `infra/policy_pack/__main__.py` wraps them in a `PolicyPack`), and the test suite, which calls each
policy's `validate` on every resource the program declares under Pulumi's mocks. No `PolicyPack` is built
here: constructing one starts the analyzer's gRPC server and blocks, which a test (or this import) must not.

Policies read a resource's inputs in the wire form the engine sends (camelCase keys, secrets already
unwrapped by pulumi-policy), so they depend on this module and `pulumi_policy` only, never on the cloud SDKs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from mlflow_platform.core.quantities import QuantityError, parse_quantity

RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
S3 = "aws:s3/"
BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
IAM_POLICY_TYPES = ("aws:iam/userPolicy:UserPolicy", "aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
RAY_CLUSTER = "kubernetes:ray.io/v1:RayCluster"
_IMAGE_OF_HEAD = "imageOfHead"  # marks the RayCluster autoscaler's stand-in container, whose image is the head's
K8S_SECRET = "kubernetes:core/v1:Secret"
WORKLOAD_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
_SECRETISH_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL|PRIVATE_KEY", re.IGNORECASE)
_CREDENTIALS_IN_URI = re.compile(r"[a-z0-9+.-]+://[^/\s:@]+:[^@\s/]+@", re.IGNORECASE)
_SSE_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        return [value]
    return list(value)


def _is_k8s_object(resource_type: str) -> bool:
    return (
        resource_type.startswith("kubernetes:") and resource_type != HELM_RELEASE and ":providers:" not in resource_type
    )


def _pod_templates(args_type: str, props: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(template metadata, pod spec) of every pod the resource makes: one for a workload, one per group of a
    RayCluster (KubeRay builds the head's and each worker group's pods from their templates)."""
    if args_type == RAY_CLUSTER:
        spec = props.get("spec") or {}
        templates = [_get(spec, "headGroupSpec", "template")]
        templates += [_get(g, "template") for g in _as_list(spec.get("workerGroupSpecs"))]
        found = [((t.get("metadata") or {}), t.get("spec") or {}) for t in templates if isinstance(t, Mapping)]
        if found and spec.get("enableInTreeAutoscaling"):
            # KubeRay adds the autoscaler as a second container of the head pod, built from autoscalerOptions.
            head_meta, head_spec = found[0]
            found[0] = (
                head_meta,
                {**head_spec, "containers": [*_as_list(head_spec.get("containers")), _autoscaler(spec)]},
            )
        return found
    path = WORKLOAD_POD_SPEC_PATHS.get(args_type)
    if not path:
        return []
    pod_spec = _get(props, *path)
    if pod_spec is None:
        return []
    metadata = _get(props, *path[:-1], "metadata") if len(path) > 1 else props.get("metadata")
    return [(metadata or {}, pod_spec)]


def _autoscaler(ray_cluster_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The autoscaler sidecar as KubeRay v1.7.0 builds it (`BuildAutoscalerContainer` + `mergeAutoscalerOverrides`):
    its image is the head's, its resources 500m/512Mi unless overridden, its security context only what we give."""
    options = ray_cluster_spec.get("autoscalerOptions") or {}
    default = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    container: dict[str, Any] = {
        "name": "autoscaler",
        "env": list(_as_list(options.get("env"))),
        "securityContext": options.get("securityContext") or {},
        "resources": options.get("resources") or default,
    }
    if options.get("image"):
        container["image"] = options["image"]
    else:
        container[_IMAGE_OF_HEAD] = True  # the head's image, checked with the head's container
    return container


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from _as_list(pod_spec.get("initContainers"))
    yield from _as_list(pod_spec.get("containers"))


# --- S3 -------------------------------------------------------------------------------------------------


def _public_access_blocked(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != PUBLIC_ACCESS_BLOCK:
        return
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        if args.props.get(flag) is not True:
            report(f"{flag} must be true: the artifact bucket holds models and data and must never be public.", None)


def _owner_enforced(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == OWNERSHIP and _get(args.props, "rule", "objectOwnership") != "BucketOwnerEnforced":
        report("Object ownership must be BucketOwnerEnforced, so ACLs cannot grant access around the policy.", None)


def _encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != ENCRYPTION:
        return
    rules = _as_list(args.props.get("rules"))
    algorithms = [_get(r, "applyServerSideEncryptionByDefault", "sseAlgorithm") for r in rules]
    if not algorithms or any(a not in _SSE_ALGORITHMS for a in algorithms):
        report(f"Default encryption must be SSE-S3 (AES256) or SSE-KMS; found {algorithms}.", None)


def _versioned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == VERSIONING and _get(args.props, "versioningConfiguration", "status") != "Enabled":
        report("Versioning must be Enabled so an overwritten or deleted model can be recovered.", None)


def _noncurrent_versions_expire(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != LIFECYCLE:
        return
    rules = _as_list(args.props.get("rules"))
    if not any(
        r.get("status") == "Enabled" and _get(r, "noncurrentVersionExpiration", "noncurrentDays") for r in rules
    ):
        report("A lifecycle rule must expire noncurrent versions, or versioning grows storage cost forever.", None)


def _denies_insecure_transport(document: Mapping[str, Any]) -> bool:
    for statement in _as_list(document.get("Statement")):
        condition = _get(statement, "Condition", "Bool", "aws:SecureTransport")
        actions = _as_list(statement.get("Action"))
        if (
            statement.get("Effect") == "Deny"
            and statement.get("Principal") in ("*", {"AWS": "*"})
            and ("s3:*" in actions or "*" in actions)
            and str(condition).lower() == "false"
        ):
            return True
    return False


def _tls_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != BUCKET_POLICY:
        return
    try:
        document = json.loads(args.props.get("policy") or "{}")
    except (TypeError, ValueError):
        report("The bucket policy is not valid JSON.", None)
        return
    if not _denies_insecure_transport(document):
        report("The bucket policy must deny all s3:* requests where aws:SecureTransport is false.", None)


# --- IAM ------------------------------------------------------------------------------------------------


def _iam_least_privilege(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in IAM_POLICY_TYPES:
        return
    try:
        document = json.loads(args.props.get("policy") or "{}")
    except (TypeError, ValueError):
        report("The IAM policy is not valid JSON.", None)
        return
    for statement in _as_list(document.get("Statement")):
        if statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid", "?")
        actions = _as_list(statement.get("Action"))
        resources = _as_list(statement.get("Resource"))
        if statement.get("NotAction") or statement.get("NotResource"):
            report(f"Statement {sid}: NotAction/NotResource grant more than they appear to.", None)
        for action in actions:
            if action == "*" or action.endswith(":*"):
                report(f"Statement {sid}: wildcard action {action!r}; list the actions MLflow needs.", None)
        for resource in resources:
            if resource == "*" or resource.startswith("arn:aws:s3:::*"):
                report(f"Statement {sid}: resource {resource!r} is not limited to the artifact bucket.", None)
            elif resource.startswith("arn:aws:s3:::") and "/" in resource:
                key_part = resource.split("/", 1)[1]
                if key_part in ("*", ""):
                    report(f"Statement {sid}: {resource!r} covers the whole bucket; limit it to a prefix.", None)
        if "s3:ListBucket" in actions and not _get(statement, "Condition", "StringLike", "s3:prefix"):
            report(f"Statement {sid}: s3:ListBucket must be limited by an s3:prefix condition.", None)


# --- Kubernetes -----------------------------------------------------------------------------------------


def _recommended_labels(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_k8s_object(args.resource_type):
        return
    found = _get(args.props, "metadata", "labels") or {}
    missing = [label for label in RECOMMENDED_LABELS if label not in found]
    if missing:
        report(f"metadata.labels lacks {missing}.", None)
    path = WORKLOAD_POD_SPEC_PATHS.get(args.resource_type)
    if args.resource_type == RAY_CLUSTER or (path and len(path) > 1):
        for metadata, _ in _pod_templates(args.resource_type, args.props):
            template_labels = metadata.get("labels") or {}
            missing = [label for label in RECOMMENDED_LABELS if label not in template_labels]
            if missing:
                report(f"The pod template's labels lack {missing}.", None)


def check_pod_spec(pod_spec: Mapping[str, Any]) -> list[str]:
    """Why a pod spec falls short of the restricted Pod Security Standard plus resource limits (empty: fine).

    Public so the tests can apply the same rules to the training Job template, which is not a resource.
    """
    problems: list[str] = []
    pod_ctx = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(f"{flag} must not be set")
    if any(v.get("hostPath") for v in _as_list(pod_spec.get("volumes"))):
        problems.append("hostPath volumes are not allowed")
    for container in _containers(pod_spec):
        name = container.get("name", "?")
        ctx = container.get("securityContext") or {}
        if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
            problems.append(f"container {name}: runAsNonRoot must be true")
        if (ctx.get("runAsUser") if ctx.get("runAsUser") is not None else pod_ctx.get("runAsUser")) == 0:
            problems.append(f"container {name}: must not run as uid 0")
        seccomp = _get(ctx, "seccompProfile", "type") or _get(pod_ctx, "seccompProfile", "type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"container {name}: seccompProfile must be RuntimeDefault")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name}: allowPrivilegeEscalation must be false")
        if ctx.get("privileged"):
            problems.append(f"container {name}: must not be privileged")
        if "ALL" not in _as_list(_get(ctx, "capabilities", "drop")):
            problems.append(f"container {name}: capabilities must drop ALL")
        resources = container.get("resources") or {}
        if not _get(resources, "limits", "memory"):
            problems.append(f"container {name}: needs a memory limit")
        for kind in ("cpu", "memory"):
            if not _get(resources, "requests", kind):
                problems.append(f"container {name}: needs a {kind} request")
        problems.extend(_request_within_limit(name, resources))
    return problems


def _request_within_limit(container: str, resources: Mapping[str, Any]) -> Iterator[str]:
    """A request above its limit is refused by the API server; an unparsable amount by the scheduler."""
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for kind in sorted(set(requests) & set(limits)):
        try:
            request, limit = parse_quantity(str(requests[kind])), parse_quantity(str(limits[kind]))
        except QuantityError:
            yield f"container {container}: {kind} request {requests[kind]!r} or limit {limits[kind]!r} is no quantity"
            continue
        if request > limit:
            yield f"container {container}: {kind} request {requests[kind]} exceeds its limit {limits[kind]}"


def _pods_hardened(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for _, pod_spec in _pod_templates(args.resource_type, args.props):
        for problem in check_pod_spec(pod_spec):
            report(problem, None)


def _known(value: Any, undecided: list[UnknownValueError]) -> list[Any]:
    """The known items of a list (or one value), noting each unknown one instead of stopping at it."""
    items: list[Any] = []
    if isinstance(value, Sequence) and not isinstance(value, str):
        for i in range(len(value)):
            try:
                items.append(value[i])
            except UnknownValueError as e:
                undecided.append(e)
    elif value is not None:
        items.append(value)
    return items


def _inline_secret_problems(pod_spec: Mapping[str, Any], undecided: list[UnknownValueError]) -> Iterator[str]:
    """Literal secrets in env values and command lines; values not known yet (preview) go to `undecided`."""
    for container in _containers(pod_spec):
        name = container.get("name", "?")
        for var in _known(container.get("env"), undecided):
            var_name = var.get("name", "")
            if "value" not in list(var.keys()):  # valueFrom: a reference, fine
                continue
            try:
                value = var.get("value")
            except UnknownValueError as e:
                # A secret-looking name with a literal value is wrong whatever the value turns out to be.
                if _SECRETISH_NAME.search(var_name) and not var_name.endswith("_FILE"):
                    yield f"container {name}: env {var_name} carries a literal value; use secretKeyRef"
                else:
                    undecided.append(e)
                continue
            if value is None:
                continue
            if _SECRETISH_NAME.search(var_name) and not _is_file_reference(var_name, value):
                yield f"container {name}: env {var_name} carries a literal value; use secretKeyRef"
            elif _CREDENTIALS_IN_URI.search(str(value)):
                yield f"container {name}: env {var_name} embeds credentials in a URI; use secretKeyRef"
        for field in ("command", "args"):
            try:
                line = container.get(field)
            except UnknownValueError as e:
                undecided.append(e)
                continue
            for arg in _known(line, undecided):
                if _CREDENTIALS_IN_URI.search(str(arg)):
                    yield f"container {name}: command line embeds credentials in a URI"


def _is_file_reference(name: str, value: Any) -> bool:
    """`POSTGRES_PASSWORD_FILE=/run/secrets/...`: the convention of images that read a secret from a file."""
    return name.endswith("_FILE") and str(value).startswith("/")


def _no_inline_secrets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    undecided: list[UnknownValueError] = []
    for _, pod_spec in _pod_templates(args.resource_type, args.props):
        for problem in _inline_secret_problems(pod_spec, undecided):
            report(problem, None)
    if args.resource_type == "kubernetes:core/v1:ConfigMap":
        for key, value in (args.props.get("data") or {}).items():
            if _SECRETISH_NAME.search(key) or _CREDENTIALS_IN_URI.search(str(value)):
                report(f"ConfigMap key {key!r} looks secret; put it in a Secret.", None)
    if undecided:
        # Everything known has been checked (and reported); the analyzer turns this into its advisory
        # "can't run policy during preview" note for what is left, and decides it again during `pulumi up`.
        raise undecided[0]


def _secret_outputs_marked(args: ResourceValidationArgs, report: ReportViolation) -> None:
    expected = {K8S_SECRET: {"data", "stringData"}, "aws:iam/accessKey:AccessKey": {"secret"}}.get(args.resource_type)
    if expected and not expected <= set(args.opts.additional_secret_outputs or []):
        report(
            f"{sorted(expected)} must be marked as secret outputs so the state never holds them in plain text.", None
        )


def _images_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for container in (c for _, spec in _pod_templates(args.resource_type, args.props) for c in _containers(spec)):
        if container.get(_IMAGE_OF_HEAD):
            continue
        image = container.get("image") or ""
        tag = image.rsplit("/", 1)[-1]
        if "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
            report(f"container {container.get('name')}: image {image!r} must pin a version tag or digest.", None)


def _helm_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != HELM_RELEASE:
        return
    if not re.match(r"^v?\d+\.\d+\.\d+$", str(args.props.get("version") or "")):
        report("Helm releases must pin an exact chart version.", None)
    repo = _get(args.props, "repositoryOpts", "repo") or ""
    if not str(repo).startswith("https://"):
        report("Helm charts must come from an https repository.", None)


RESOURCE_POLICIES: list[ResourceValidationPolicy] = [
    ResourceValidationPolicy(
        name="s3-public-access-blocked",
        description="S3 public access blocks set all four flags.",
        validate=_public_access_blocked,
    ),
    ResourceValidationPolicy(
        name="s3-bucket-owner-enforced",
        description="S3 buckets use BucketOwnerEnforced object ownership (ACLs disabled).",
        validate=_owner_enforced,
    ),
    ResourceValidationPolicy(
        name="s3-encrypted-at-rest",
        description="S3 buckets encrypt by default with SSE-S3 or SSE-KMS.",
        validate=_encrypted,
    ),
    ResourceValidationPolicy(
        name="s3-versioning-enabled", description="S3 bucket versioning is enabled.", validate=_versioned
    ),
    ResourceValidationPolicy(
        name="s3-noncurrent-versions-expire",
        description="S3 lifecycle rules expire noncurrent object versions.",
        validate=_noncurrent_versions_expire,
    ),
    ResourceValidationPolicy(
        name="s3-tls-only", description="S3 bucket policies deny requests made without TLS.", validate=_tls_only
    ),
    ResourceValidationPolicy(
        name="iam-least-privilege",
        description="IAM policies name their actions and limit S3 access to a bucket prefix.",
        validate=_iam_least_privilege,
    ),
    ResourceValidationPolicy(
        name="k8s-recommended-labels",
        description="Kubernetes objects and pod templates carry the app.kubernetes.io/* labels.",
        validate=_recommended_labels,
    ),
    ResourceValidationPolicy(
        name="k8s-pods-hardened",
        description="Pods run non-root under the restricted profile, with requests and memory limits.",
        validate=_pods_hardened,
    ),
    ResourceValidationPolicy(
        name="k8s-no-inline-secrets",
        description="No secret in an env value, a command line or a ConfigMap; Secrets are referenced.",
        validate=_no_inline_secrets,
    ),
    ResourceValidationPolicy(
        name="secret-outputs-marked",
        description="Kubernetes Secret data and IAM secret keys are secret outputs in the Pulumi state.",
        validate=_secret_outputs_marked,
    ),
    ResourceValidationPolicy(
        name="images-pinned", description="Container images pin a version tag or digest.", validate=_images_pinned
    ),
    ResourceValidationPolicy(
        name="helm-chart-pinned",
        description="Helm releases pin an exact chart version from an https repository.",
        validate=_helm_pinned,
    ),
]


def _buckets_fully_guarded(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every bucket has each guard attached: a per-resource check alone passes when a guard is missing."""
    guards = {
        PUBLIC_ACCESS_BLOCK: "a public access block",
        OWNERSHIP: "ownership controls",
        ENCRYPTION: "default encryption",
        VERSIONING: "versioning",
        LIFECYCLE: "a lifecycle configuration",
        BUCKET_POLICY: "a TLS-only bucket policy",
    }
    attached: dict[str, set[str]] = {}
    for resource in args.resources:
        if resource.resource_type in guards:
            attached.setdefault(str(resource.props.get("bucket")), set()).add(resource.resource_type)
    for resource in args.resources:
        if resource.resource_type != BUCKET:
            continue
        bucket = str(resource.props.get("bucket") or resource.props.get("id"))
        for guard_type, what in guards.items():
            if guard_type not in attached.get(bucket, set()):
                report(f"Bucket {bucket} lacks {what}.", resource.urn)


STACK_POLICIES: list[StackValidationPolicy] = [
    StackValidationPolicy(
        name="s3-bucket-fully-guarded",
        description="Every S3 bucket has public access blocked, ownership enforced, encryption, versioning, "
        "a lifecycle rule and a TLS-only policy.",
        validate=_buckets_fully_guarded,
    )
]

ALL_POLICIES = [*RESOURCE_POLICIES, *STACK_POLICIES]
DEFAULT_ENFORCEMENT = EnforcementLevel.MANDATORY
