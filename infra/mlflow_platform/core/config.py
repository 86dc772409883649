"""The stack's configuration: read once, typed, validated, with secure defaults in code.

Why defaults live here and not only in `Pulumi.yaml`: the Pulumi language SDK never reads the `default:` of a
project config key (the CLI does, for `pulumi config`), so a program that relied on them would behave
differently under tests and under the engine. `Pulumi.yaml` documents the same keys and defaults for humans;
`tests/infra/core/test_config.py` checks that the two agree.

A missing or invalid key raises `ConfigError` naming the key and the exact `pulumi config set` command that
fixes it, so `pulumi preview` fails before any resource is planned.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

import pulumi
import pulumi_aws
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from mlflow_platform.core.gpu_taint import DEFAULT_GPU_TAINT, parse_taint
from mlflow_platform.core.naming import AwsNames, bucket_name_problem
from mlflow_platform.core.quantities import GIBIBYTE, QuantityError, format_bytes, parse_bytes, parse_cpu
from mlflow_platform.core.schedules import age_seconds, cron_problem

PROJECT = "rapids-mlflow-stack"
# MLflow 3.16.1 removed basic-auth's built-in default admin password (CVE-2026-2635); older servers must
# not be deployed by this stack.
MIN_MLFLOW_VERSION = (3, 16, 1)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")
# The regions the installed pulumi-aws provider knows; an unknown one fails only at `pulumi up` otherwise.
AWS_REGIONS = frozenset(region.value for region in pulumi_aws.Region)
# gp3 EBS volumes are 1 GiB to 16 TiB; outside that the EBS CSI driver never provisions and the PVC stays Pending.
EBS_GP3_MAX = 16 * 1024 * GIBIBYTE
# Above these no machine or volume exists: the largest EC2 instances have 32 TiB of memory and under 1024 vCPUs;
# a database volume of a pebibyte is beyond any provisioner we know (the largest EBS volume is 64 TiB). A pod or
# claim asking for more stays Pending forever, so `99999Ti` is a typo to name at preview.
MAX_MEMORY = 32 * 1024 * GIBIBYTE
MAX_VOLUME = 1024 * 1024 * GIBIBYTE
MAX_CPU = 1024
# Below this a Ray node's own processes leave nothing for trials (about 1.6 GB measured for a 2-CPU node).
RAY_MIN_MEMORY = 2 * GIBIBYTE
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$")
_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/[A-Za-z0-9.-]+(/[A-Za-z0-9._-]+)*$")
_EKS_CLUSTER = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
_KMS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$")
_IMAGE_TAG = re.compile(r"^[^\s:@]+(:[0-9]+)?/?[^\s:@]*:[\w][\w.-]{0,127}(@sha256:[0-9a-f]{64})?$")
_MLFLOW_TAG = re.compile(r":v?(\d+)\.(\d+)\.(\d+)")
_URL = re.compile(r"^(https?)://([A-Za-z0-9.-]+)(:[0-9]{1,5})?/?$")
# A Docker tag: what `mlflow run --build-image` gives the image (the project's git commit, 7 characters).
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$")

# Example values shown in error messages, so the printed command can be pasted with minimal editing.
_EXAMPLES: dict[str, str] = {
    "aws:region": "us-east-1",
    "irsaRoleArn": "arn:aws:iam::123456789012:role/mlflow-s3",
    "eksOidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/<ID>",
    "eksClusterName": "<cluster-name>",
    "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/<key-id>",
    "postgresExternalUri": "'postgresql+psycopg2://USER:PASSWORD@HOST:5432/mlflow'",
    "externalUrl": "https://mlflow.example.com",
    "trackingImage": "ghcr.io/mlflow/mlflow:v3.17.2-full",
    "postgresStorageSize": "20Gi",
    "serviceType": "ClusterIP",
    "trainingCpu": "4",
    "trainingMemory": "24Gi",
    "trainingShmSize": "8Gi",
    "postgresStorageClass": "microk8s-hostpath",
    "gpuTaint": DEFAULT_GPU_TAINT,
    "tlsCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/<id>",
    "loadBalancerSourceRanges": "203.0.113.0/24,198.51.100.7/32",
    "allowInsecureExposure": "true",
    "backupSchedule": "'17 3 * * *'",
    "gcSchedule": "'47 3 * * *'",
    "gcOlderThan": "30d",
    "rayStatePrefix": "ray-tune",
    "rayImageTag": "$(git rev-parse --short=7 HEAD)",
    "rayHeadCpu": "2",
    "rayHeadMemory": "8Gi",
    "rayWorkerCpu": "8",
    "rayWorkerMemory": "32Gi",
    "rayWorkerGpus": "1",
    "rayMaxWorkers": "4",
    "servingImageTag": "$(git rev-parse --short=7 HEAD)",
    "servingModel": "airline-delay",
    "servingAlias": "champion",
    "servingCpu": "1",
    "servingCpuLimit": "2",
    "servingMemory": "4Gi",
    "servingMemoryLimit": "4Gi",
    "servingFollowSchedule": "'*/2 * * * *'",
    "servingExposure": "loadBalancer",
    "servingSourceRanges": "203.0.113.0/24",
    "servingAllowAnywhere": "true",
    "servingTlsCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/<id>",
    "serving": "true",
}
SECRET_KEYS = frozenset({"postgresExternalUri"})
#: Key prefix of the database dumps in the bucket (backups.py); the other prefixes must stay clear of it.
BACKUP_PREFIX = "backups"


class ConfigError(ValueError):
    """A configuration problem, phrased for the person running `pulumi preview`."""

    def __init__(self, key: str, problem: str, command: str | None = None) -> None:
        self.key = key
        self.command = command or set_command(key)
        qualified = key if ":" in key else f"{PROJECT}:{key}"
        verb = "Remove it with" if self.command.startswith("pulumi config rm") else "Set it with"
        super().__init__(f"config {qualified}: {problem}. {verb}: {self.command}")


def set_command(key: str) -> str:
    """The exact CLI line that sets `key` (`--secret` for keys that must never be stored in plain text)."""
    secret = " --secret" if key in SECRET_KEYS else ""
    return f"pulumi config set{secret} {key} {_EXAMPLES.get(key, '<value>')}"


class StackConfig(BaseModel):
    """Everything the program reads from `pulumi config`, with the secure choice as each default."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid", arbitrary_types_allowed=True
    )

    # Set by the engine from the stack name and `aws:region`, not from the project namespace.
    stack: str = Field("dev", exclude=True)
    aws_region: str = Field(..., alias="aws:region")
    kube_context: str | None = Field(None, alias="kubernetes:context")

    name_prefix: str = "rapids-mlflow"
    namespace: str = "mlflow"

    # Artifact store (S3) and the identity that reaches it.
    bucket_name: str | None = None
    artifact_prefix: str = "mlflow"
    data_prefix: str = "datasets"
    # Where Ray Tune keeps a search's state (`executor=ray`); the identity may read, write and delete only there.
    ray_state_prefix: str = "ray-tune"
    bucket_force_destroy: bool = False
    noncurrent_version_days: int = Field(30, ge=1, le=3650)
    s3_encryption: Literal["sse-s3", "aws-kms"] = "sse-s3"
    kms_key_arn: str | None = None
    s3_identity: Literal["iam-user", "irsa", "pod-identity"] = "iam-user"
    irsa_role_arn: str | None = None
    eks_oidc_provider_arn: str | None = None
    eks_cluster_name: str | None = None

    # PostgreSQL backend store.
    postgres: Literal["in-cluster", "external"] = "in-cluster"
    postgres_image: str = "postgres:17.6-bookworm"
    postgres_storage_size: str = "10Gi"
    postgres_storage_class: str | None = None
    # Which cluster the program may assume: "eks" lets it declare its own EBS CSI StorageClass when
    # postgresStorageClass is unset; elsewhere no StorageClass is known to exist, so one must be named.
    cluster_kind: Literal["eks", "other"] = "eks"
    # Keep the PostgreSQL volume (and the namespace that holds its claim) on `pulumi destroy`.
    keep_data_on_destroy: bool = True
    # The EBS CSI driver that provisions the stack's gp3 class: the EBS CSI add-on's, or EKS Auto Mode's.
    ebs_csi_provisioner: Literal["ebs.csi.aws.com", "ebs.csi.eks.amazonaws.com"] = "ebs.csi.aws.com"
    # Secret: read with get_secret() and carried as an Output; never validated in plain text.
    postgres_external_uri: Any = Field(None, exclude=True)

    # MLflow tracking server.
    tracking_image: str = "ghcr.io/mlflow/mlflow:v3.17.2-full"
    tracking_replicas: int = Field(1, ge=1, le=10)
    tracking_workers: int = Field(2, ge=1, le=16)
    tracking_port: int = Field(5000, ge=1024, le=65535)
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    external_url: str | None = None
    basic_auth: bool = False
    # Exposure of the tracking server outside the cluster (serviceType LoadBalancer/NodePort).
    tls_certificate_arn: str | None = None
    load_balancer_source_ranges: tuple[str, ...] | None = None
    # Stated on the Service for both AWS controllers: the AWS Load Balancer Controller defaults to internal, the
    # in-tree one to internet-facing; unstated, the same program gives a private or a public server.
    load_balancer_scheme: Literal["internal", "internet-facing"] = "internal"
    allow_insecure_exposure: bool = False

    # GPUs.
    gpu_device_plugin: bool = True
    device_plugin_chart_version: str = "0.20.0"
    gpu_feature_discovery: bool = False
    gpu_runtime_class: str | None = None
    gpu_taint: str = DEFAULT_GPU_TAINT

    # Training Jobs launched by `mlflow run --backend kubernetes`.
    training_repository_uri: str | None = None
    training_gpus: int = Field(1, ge=0, le=16)
    training_cpu: str = "4"
    training_memory: str = "24Gi"
    training_shm_size: str = "8Gi"
    job_ttl_seconds: int = Field(86400, ge=0)
    job_active_deadline_seconds: int = Field(43200, ge=60)

    # Day-two operations on the cluster (backups, garbage collection, metrics); see `backups.py` and friends.
    backups: bool = True
    backup_schedule: str = "17 3 * * *"
    backup_retention_days: int = Field(30, ge=1, le=3650)
    gc: bool = True
    gc_schedule: str = "47 3 * * *"
    gc_older_than: str = "30d"
    service_monitor: bool = False
    # The namespace Prometheus scrapes from; the tracking pods admit it on their port when serviceMonitor is on.
    prometheus_namespace: str = "monitoring"
    # Scale-out: Ray Tune on a KubeRay RayCluster (see `ray_cluster`). Off by default.
    ray: bool = False
    # Tag of the training image in the training repository that the Ray head and workers run (required with ray).
    ray_image_tag: str | None = None
    ray_head_cpu: str = "2"
    ray_head_memory: str = "8Gi"
    ray_worker_cpu: str = "8"
    ray_worker_memory: str = "32Gi"
    ray_worker_gpus: int = Field(1, ge=0, le=16)
    ray_max_workers: int = Field(4, ge=1, le=256)
    # Online serving of a registered model by alias (`serving/endpoint.py`). Off by default.
    serving: bool = False
    # Tag of the training image in the training repository that the scoring server runs (required with serving).
    serving_image_tag: str | None = None
    serving_model: str = "airline-delay"
    serving_alias: str = "champion"
    serving_replicas: int = Field(1, ge=1, le=20)
    serving_gpus: int = Field(0, ge=0, le=16)
    serving_cpu: str = "1"
    serving_cpu_limit: str = "2"
    serving_memory: str = "4Gi"
    serving_memory_limit: str = "4Gi"
    serving_follow_schedule: str = "*/2 * * * *"
    # Outside the cluster (`serving/endpoint.py`, `public_service`): a load balancer of `loadBalancerScheme`
    # admitting only `servingSourceRanges` (MLflow's scoring server has no authentication of its own).
    serving_exposure: Literal["cluster", "loadBalancer"] = "cluster"
    serving_source_ranges: tuple[str, ...] | None = None
    serving_allow_anywhere: bool = False
    serving_tls_certificate_arn: str | None = None

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        # The longest derived name is "<prefix>-tracking-auth"; Services must stay valid DNS-1035 labels.
        if not _DNS_LABEL.match(v) or not v[0].isalpha() or len(v) > 40:
            raise ValueError("must be a lowercase DNS label starting with a letter, at most 40 characters")
        # The bucket's name starts with the prefix; S3 reserves these beginnings.
        problem = bucket_name_problem(AwsNames(v, "stack").bucket_prefix + "0" * 26)
        if problem:
            raise ValueError(f"gives bucket names S3 refuses: {problem}")
        return v

    @field_validator("prometheus_namespace")
    @classmethod
    def _other_namespace(cls, v: str) -> str:
        if not _DNS_LABEL.match(v) or len(v) > 63:
            raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-'), at most 63 characters")
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if not _DNS_LABEL.match(v) or len(v) > 63:
            raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-'), at most 63 characters")
        if v in {"default", "kube-system", "kube-public", "kube-node-lease"}:
            raise ValueError(f"'{v}' is a system namespace; give the platform its own namespace")
        return v

    @field_validator("bucket_name")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        problem = bucket_name_problem(v) if v is not None else None
        if problem:
            raise ValueError(f"must be a valid S3 bucket name ({problem})")
        return v

    @field_validator("artifact_prefix", "data_prefix", "ray_state_prefix")
    @classmethod
    def _key_prefix(cls, v: str) -> str:
        if not _PREFIX.match(v):
            raise ValueError("must be a non-empty S3 key prefix without leading or trailing '/'")
        return v

    @field_validator("aws_region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v not in AWS_REGIONS:
            raise ValueError("is not an AWS region the installed pulumi-aws provider knows, such as us-east-1")
        return v

    @field_validator("training_cpu", "ray_head_cpu", "ray_worker_cpu", "serving_cpu", "serving_cpu_limit")
    @classmethod
    def _cpu(cls, v: str) -> str:
        try:
            cores = parse_cpu(v)
        except QuantityError as e:
            raise ValueError(f"must be a CPU amount such as 4, 0.5 or 500m, and is {e}") from None
        if cores > MAX_CPU:
            raise ValueError(f"asks for more than {MAX_CPU} cores, more than any node has")
        return v

    @field_validator(
        "training_memory",
        "training_shm_size",
        "ray_head_memory",
        "ray_worker_memory",
        "serving_memory",
        "serving_memory_limit",
    )
    @classmethod
    def _memory(cls, v: str) -> str:
        try:
            size = parse_bytes(v)
        except QuantityError as e:
            raise ValueError(f"must be a memory size such as 24Gi or 512Mi, and is {e}") from None
        if size > MAX_MEMORY:
            raise ValueError(f"exceeds {format_bytes(MAX_MEMORY)}, more memory than any node has")
        return v

    @field_validator("postgres_storage_size")
    @classmethod
    def _storage(cls, v: str) -> str:
        try:
            size = parse_bytes(v, minimum=GIBIBYTE)
        except QuantityError as e:
            raise ValueError(f"must be a volume size such as 10Gi, and is {e}") from None
        if size > MAX_VOLUME:
            raise ValueError(f"exceeds {format_bytes(MAX_VOLUME)}, more than any provisioner makes one volume")
        return v

    @field_validator("gpu_taint")
    @classmethod
    def _taint(cls, v: str) -> str:
        parse_taint(v)
        return v

    @field_validator("postgres_image", "tracking_image")
    @classmethod
    def _pinned_image(cls, v: str) -> str:
        if not _IMAGE_TAG.match(v) or v.endswith(":latest"):
            raise ValueError("must be an image with an explicit version tag (not 'latest')")
        return v

    @field_validator("tracking_image")
    @classmethod
    def _mlflow_version(cls, v: str) -> str:
        match = _MLFLOW_TAG.search(v)
        if match and tuple(int(p) for p in match.groups()) < MIN_MLFLOW_VERSION:
            raise ValueError("MLflow before 3.16.1 ships a default basic-auth admin password (CVE-2026-2635)")
        return v

    @field_validator("external_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not _URL.match(v):
            raise ValueError("must be a URL such as https://mlflow.example.com (scheme, host, optional port)")
        return v.rstrip("/") if v else v

    @field_validator("tls_certificate_arn", "serving_tls_certificate_arn")
    @classmethod
    def _acm_arn(cls, v: str | None) -> str | None:
        if v is not None and not _ACM_ARN.match(v):
            raise ValueError("must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)")
        return v

    @field_validator("load_balancer_source_ranges", "serving_source_ranges", mode="before")
    @classmethod
    def _cidrs(cls, v: Any) -> tuple[str, ...] | None:
        # The CLI stores a string: CIDRs separated by commas (a JSON list is accepted too).
        if v is None or v == "" or v == []:
            return None
        items = v if isinstance(v, list | tuple) else str(v).strip("[]").replace('"', "").split(",")
        cidrs = []
        for item in (str(i).strip() for i in items):
            try:
                cidrs.append(str(ipaddress.ip_network(item, strict=True)))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not a CIDR block such as 203.0.113.0/24 (host bits must be zero)"
                ) from None
        return tuple(cidrs)

    @field_validator("training_repository_uri")
    @classmethod
    def _repository(cls, v: str | None) -> str | None:
        # MLflow appends ":<tag>" itself; a tag or digest here would produce an invalid image reference.
        if v is not None and (":" in v.rsplit("/", 1)[-1] or "@" in v or "/" not in v):
            raise ValueError("must be a registry repository without tag, such as localhost:32000/airline-hpo")
        return v

    @field_validator("serving_model")
    @classmethod
    def _model_name(cls, v: str) -> str:
        # Part of a models:/ URI and of a command line: MLflow refuses '/' and ':' in registered model names.
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$", v):
            raise ValueError("must be a registered model name (letters, digits, '_', '.', '-'), such as airline-delay")
        return v

    @field_validator("serving_alias")
    @classmethod
    def _model_alias(cls, v: str) -> str:
        # MLflow's alias rule (`_validate_model_alias_name`): no '/', ':' or '.', and not a reserved 'v<digits>'.
        if not re.match(r"^[A-Za-z0-9_-]{1,255}$", v) or re.match(r"^[vV]\d+$", v) or v.lower() == "latest":
            raise ValueError("must be a model alias such as champion (letters, digits, '_', '-'; not latest or v<N>)")
        return v

    @field_validator("ray_image_tag", "serving_image_tag")
    @classmethod
    def _ray_tag(cls, v: str | None) -> str | None:
        if v is not None and (not _TAG.match(v) or v == "latest"):
            raise ValueError(
                "must be an image tag (letters, digits, '_', '.', '-'; not 'latest'), such as a git commit"
            )
        return v

    @field_validator("device_plugin_chart_version")
    @classmethod
    def _chart_version(cls, v: str) -> str:
        if not re.match(r"^\d+\.\d+\.\d+$", v):
            raise ValueError("must pin an exact chart version such as 0.20.0")
        return v

    @field_validator("backup_schedule", "gc_schedule", "serving_follow_schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        problem = cron_problem(v)
        if problem:
            raise ValueError(f"is not a CronJob schedule: {problem}")
        return v.strip()

    @field_validator("gc_older_than")
    @classmethod
    def _age(cls, v: str) -> str:
        if not age_seconds(v):
            raise ValueError("must be an age in MLflow's #d#h#m#s form, such as 30d or 12h, and above zero")
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> StackConfig:
        self._check_s3_identity()
        if self.kms_key_arn and self.s3_encryption != "aws-kms":
            raise _KeyProblem("s3Encryption", "must be 'aws-kms' when kmsKeyArn is set")
        if self.kms_key_arn and not _KMS_ARN.match(self.kms_key_arn):
            raise _KeyProblem("kmsKeyArn", "must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")
        if self.postgres == "external" and self.postgres_external_uri is None:
            raise _KeyProblem("postgresExternalUri", "is required when postgres is 'external'")
        self._check_sizes()
        self._check_exposure()
        self._check_serving_exposure()
        prefixes = (
            ("artifactPrefix", self.artifact_prefix),
            ("dataPrefix", self.data_prefix),
            ("rayStatePrefix", self.ray_state_prefix),
        )
        for key, prefix in prefixes:
            if self.declares_backups and (prefix + "/").startswith(BACKUP_PREFIX + "/"):
                raise _KeyProblem(key, f"must not be '{BACKUP_PREFIX}' or below it: database backups live there")
        for key, other in (("artifactPrefix", self.artifact_prefix), ("dataPrefix", self.data_prefix)):
            ray, theirs = self.ray_state_prefix + "/", other + "/"
            if ray.startswith(theirs) or theirs.startswith(ray):
                # Tune deletes under its prefix: overlapping would let it (and grant it to) delete artifacts or data.
                raise _KeyProblem("rayStatePrefix", f"must not overlap {key} ({other!r}): Ray Tune deletes under it")
        if self.ray and not self.ray_image_tag:
            raise _KeyProblem(
                "rayImageTag",
                "is required when ray is true: the tag of the training image (in the training repository) that the "
                "Ray head and workers run, e.g. the commit `mlflow run --build-image` pushed",
            )
        if self.serving and not self.serving_image_tag:
            raise _KeyProblem(
                "servingImageTag",
                "is required when serving is true: the tag of the training image (in the training repository) that "
                "the scoring server runs, e.g. the commit `mlflow run --build-image` pushed",
            )
        return self

    def _check_sizes(self) -> None:
        """Values that are each valid but together leave a pod or a volume claim pending forever."""
        memory, shm = parse_bytes(self.training_memory), parse_bytes(self.training_shm_size)
        if shm > memory:
            # /dev/shm is memory-backed and counts against the container's memory limit.
            raise _KeyProblem(
                "trainingShmSize",
                f"must not exceed trainingMemory ({self.training_memory}): /dev/shm is memory inside the same "
                f"limit (got {self.training_shm_size!r})",
            )
        for key, value in (("rayHeadMemory", self.ray_head_memory), ("rayWorkerMemory", self.ray_worker_memory)):
            if self.ray and parse_bytes(value) < RAY_MIN_MEMORY:
                # A Ray node's own processes (raylet, GCS, dashboard agent, a worker) take about 1.6 GB.
                raise _KeyProblem(
                    key, f"must be at least {format_bytes(RAY_MIN_MEMORY)} for a Ray node (got {value!r})"
                )
        for key, request, limit, parse in (
            ("servingCpuLimit", self.serving_cpu, self.serving_cpu_limit, parse_cpu),
            ("servingMemoryLimit", self.serving_memory, self.serving_memory_limit, parse_bytes),
        ):
            if parse(limit) < parse(request):
                # The API server refuses a container whose request exceeds its limit.
                raise _KeyProblem(key, f"must be at least its request ({request!r}); got {limit!r}")
        if self.in_cluster_postgres and not self.postgres_storage_class and self.cluster_kind != "eks":
            raise _KeyProblem(
                "postgresStorageClass",
                "is required when clusterKind is 'other' (a claim without a class stays Pending where no class is "
                "the default); name one from `kubectl get storageclass`",
            )
        if self.declares_storage_class and parse_bytes(self.postgres_storage_size, GIBIBYTE) > EBS_GP3_MAX:
            raise _KeyProblem("postgresStorageSize", f"exceeds {format_bytes(EBS_GP3_MAX)}, the largest gp3 EBS volume")

    @property
    def declares_storage_class(self) -> bool:
        """True when the stack creates the EBS CSI StorageClass for PostgreSQL itself."""
        return self.in_cluster_postgres and not self.postgres_storage_class and self.cluster_kind == "eks"

    def _check_s3_identity(self) -> None:
        """Each identity's keys present and well-formed, and no key left over from another identity."""
        irsa, pod = self.s3_identity == "irsa", self.s3_identity == "pod-identity"
        if irsa and not self.irsa_role_arn and not self.eks_oidc_provider_arn:
            raise _KeyProblem(
                "irsaRoleArn", "is required when s3Identity is 'irsa' (or set eksOidcProviderArn to create the role)"
            )
        if irsa and self.irsa_role_arn and self.eks_oidc_provider_arn:
            raise _KeyProblem(
                "eksOidcProviderArn",
                "creates a role, so it cannot be combined with irsaRoleArn",
                "pulumi config rm eksOidcProviderArn",
            )
        if self.irsa_role_arn and not irsa:
            raise _KeyProblem(
                "s3Identity", "must be 'irsa' when irsaRoleArn is set", "pulumi config set s3Identity irsa"
            )
        if self.irsa_role_arn and not _ROLE_ARN.match(self.irsa_role_arn):
            raise _KeyProblem("irsaRoleArn", "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        if self.eks_oidc_provider_arn and not irsa:
            raise _KeyProblem(
                "s3Identity", "must be 'irsa' when eksOidcProviderArn is set", "pulumi config set s3Identity irsa"
            )
        if self.eks_oidc_provider_arn and not _OIDC_PROVIDER_ARN.match(self.eks_oidc_provider_arn):
            raise _KeyProblem(
                "eksOidcProviderArn",
                "must be the cluster's IAM OIDC provider ARN "
                "(aws iam list-open-id-connect-providers; arn:aws:iam::<account>:oidc-provider/<issuer>)",
            )
        if pod and not self.eks_cluster_name:
            raise _KeyProblem("eksClusterName", "is required when s3Identity is 'pod-identity'")
        if self.eks_cluster_name and not pod:
            raise _KeyProblem(
                "s3Identity",
                "must be 'pod-identity' when eksClusterName is set",
                "pulumi config set s3Identity pod-identity",
            )
        if self.eks_cluster_name and not _EKS_CLUSTER.match(self.eks_cluster_name):
            raise _KeyProblem("eksClusterName", "must be an EKS cluster name (letters, digits, '-', '_')")

    def _check_exposure(self) -> None:
        """Basic-auth passwords must not cross a network in clear text: an exposed server needs TLS."""
        if self.tls_certificate_arn and self.service_type != "LoadBalancer":
            raise _KeyProblem("serviceType", "must be LoadBalancer when tlsCertificateArn is set (TLS ends at the NLB)")
        if self.load_balancer_source_ranges and self.service_type != "LoadBalancer":
            raise _KeyProblem("serviceType", "must be LoadBalancer when loadBalancerSourceRanges is set")
        if self.exposed and self.basic_auth and not self.tls_certificate_arn and not self.allow_insecure_exposure:
            key = "tlsCertificateArn" if self.service_type == "LoadBalancer" else "allowInsecureExposure"
            raise _KeyProblem(
                key,
                f"is needed: serviceType {self.service_type} with basicAuth would send passwords without TLS "
                "(set an ACM certificate for a LoadBalancer, or allowInsecureExposure true to accept the risk)",
            )
        if self.service_type == "NodePort" and not self.external_url:
            # MLflow refuses UI POSTs whose Origin is not listed (`--cors-allowed-origins`), and a node's address is
            # known only to the user: without it the UI loads and then every change gets 403.
            raise _KeyProblem(
                "externalUrl",
                "is needed with serviceType NodePort: the address users open the UI at, such as "
                "http://<node-address>:30500 (its port, when in 30000-32767, becomes the Service's nodePort)",
            )

    def _check_serving_exposure(self) -> None:
        """The scoring server answers anyone who reaches it: exposed, it admits only the ranges the user names."""
        exposed = self.serving_exposure == "loadBalancer"
        if exposed and not self.serving:
            raise _KeyProblem("serving", "must be true when servingExposure is loadBalancer")
        for key, value in (
            ("servingSourceRanges", self.serving_source_ranges),
            ("servingTlsCertificateArn", self.serving_tls_certificate_arn),
        ):
            if value and not exposed:
                raise _KeyProblem("servingExposure", f"must be loadBalancer when {key} is set")
        if exposed and not self.serving_source_ranges:
            raise _KeyProblem(
                "servingSourceRanges",
                "is required with servingExposure loadBalancer: the CIDR blocks of the endpoint's clients (MLflow's "
                "scoring server has no authentication)",
            )
        anywhere = [c for c in self.serving_source_ranges or () if c.endswith("/0")]
        if anywhere and not self.serving_allow_anywhere:
            raise _KeyProblem(
                "servingSourceRanges",
                f"must not contain {anywhere[0]}: it opens an endpoint without authentication to every address "
                "(list your clients' CIDR blocks, or set servingAllowAnywhere true to accept that)",
            )

    @property
    def serves_outside(self) -> bool:
        """True when the scoring endpoint has a load balancer of its own (`servingExposure: loadBalancer`)."""
        return self.serving and self.serving_exposure == "loadBalancer"

    @property
    def exposed(self) -> bool:
        """True when the tracking server is reachable from outside the cluster through its own Service."""
        return self.service_type != "ClusterIP"

    @property
    def in_cluster_postgres(self) -> bool:
        return self.postgres == "in-cluster"

    @property
    def declares_backups(self) -> bool:
        """Backups of the in-cluster database; an external one (RDS) is backed up by its provider's snapshots."""
        return self.backups and self.in_cluster_postgres

    @property
    def uses_access_key(self) -> bool:
        """True when S3 is reached with an IAM user's key pair (stored in a Secret) rather than IRSA."""
        return self.s3_identity == "iam-user"


class _KeyProblem(ValueError):
    """Raised inside validation to name the offending key precisely (pydantic would blame the model)."""

    def __init__(self, key: str, problem: str, command: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.command = command
        super().__init__(problem)


def _alias(field_name: str) -> str:
    field = StackConfig.model_fields[field_name]
    return field.alias or to_camel(field_name)


def parse(raw: dict[str, Any], stack: str = "dev") -> StackConfig:
    """Validate raw config values (strings as `pulumi config` stores them) into a `StackConfig`."""
    try:
        return StackConfig.model_validate({**raw, "stack": stack})
    except ValidationError as e:
        err = e.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _KeyProblem):
            raise ConfigError(ctx_error.key, ctx_error.problem, ctx_error.command) from None
        loc = str(err["loc"][0]) if err["loc"] else "?"
        key = _alias(loc) if loc in StackConfig.model_fields else loc
        if err["type"] == "missing":
            raise ConfigError(key, "is required") from None
        if err["type"] == "extra_forbidden":
            raise ConfigError(
                key, "is not a known setting of this stack (see Pulumi.yaml)", f"pulumi config rm {key}"
            ) from None
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(key, f"{message} (got {err.get('input')!r})") from None


def load(stack: str | None = None) -> StackConfig:
    """Read the stack's config from Pulumi (engine or mocks) and validate it.

    An empty string counts as unset: `Pulumi.yaml` gives optional keys an empty default, because the CLI
    treats a declared key without a default as required.
    """
    project = pulumi.Config()
    raw: dict[str, Any] = {}
    for name, field in StackConfig.model_fields.items():
        if name in {"stack", "aws_region", "kube_context", "postgres_external_uri"}:
            continue
        key = field.alias or to_camel(name)
        value = project.get(key)
        if value not in (None, ""):
            raw[key] = value
    region = pulumi.Config("aws").get("region")
    if region:
        raw["aws:region"] = region
    context = pulumi.Config("kubernetes").get("context")
    if context:
        raw["kubernetes:context"] = context
    # Checked for presence in plain text, then carried only as a secret Output.
    if project.get("postgresExternalUri"):
        raw["postgresExternalUri"] = project.get_secret("postgresExternalUri")
    return parse(raw, stack or pulumi.get_stack())
