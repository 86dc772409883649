"""Names of everything the stack creates, computed in one place.

Every object name the stack creates is derived here from the configured prefix, because other parts depend
on knowing a name before the object exists: the job template references Secrets and the ServiceAccount by
name, `--allowed-hosts` lists the tracking Service's DNS name, and the database URI embeds the PostgreSQL
Service's name. Computing names (instead of reading them back from provider outputs) keeps those links plain
strings that tests and the `mlflow run` bridge can read without a deployed stack.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Component resource type tokens share one package/module prefix so `pulumi stack` groups them.
TYPE_PREFIX = "rapids-mlflow:platform"

# AWS limits on the names below. IAM and ECR limits are those of the AWS API models (botocore's
# `userNameType`, `roleNameType`, `policyNameType`, `RepositoryName`); the bucket prefix limit is the
# provider's: it appends a 26-character unique suffix to `bucketPrefix` and S3 allows 63 characters.
BUCKET_PREFIX_MAX = 37
IAM_NAME_MAX = 64
IAM_POLICY_NAME_MAX = 128
ECR_REPOSITORY_MAX = 256
_HASH_LEN = 8


def fit(name: str, limit: int, keep_suffix: str = "") -> str:
    """`name + keep_suffix` if it fits in `limit`, else `name` cut short plus a hash of the whole name.

    Why a hash: plain truncation maps two long stack names that differ only at the end (`...-eu-central-1`
    and `...-eu-central-2`) to the same AWS name, and the second `pulumi up` then fails on a name clash or,
    worse for IAM, shares an identity. Hashing the untruncated name keeps names unique and deterministic (a
    re-run computes the same name, so nothing is replaced).
    """
    if len(name) + len(keep_suffix) <= limit:
        return name + keep_suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LEN]
    head = name[: limit - len(keep_suffix) - _HASH_LEN - 1].rstrip("-._")
    return f"{head}-{digest}{keep_suffix}"


#: Bucket name beginnings and endings S3 reserves (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """What makes `name` an invalid general purpose bucket name, or None; checked at preview, not at `up`."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name):
        return "3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in name:
        return "no two adjacent dots"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        return "not formatted as an IP address"
    reserved = [p for p in BUCKET_RESERVED_PREFIXES if name.startswith(p)]
    reserved += [x for x in BUCKET_RESERVED_SUFFIXES if name.endswith(x)]
    return f"'{reserved[0]}' is reserved by S3" if reserved else None


def _lower_dashed(text: str) -> str:
    """Lowercase letters and digits separated by single dashes: valid in bucket and ECR names alike."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class AwsNames:
    """Names of the AWS resources, derived from the name prefix and the stack, each within AWS's limits.

    Stack names are free-form (`team-recommendations-staging-eu-central-1`, `Prod_US.East`), so every name is
    normalised to the characters its service accepts and shortened with `fit` when it would be too long.
    """

    prefix: str
    stack: str

    @property
    def _base(self) -> str:
        return f"{self.prefix}-{self.stack}"

    @property
    def bucket_prefix(self) -> str:
        """`bucketPrefix` of the artifact bucket; AWS completes it with a unique suffix."""
        return fit(_lower_dashed(self._base), BUCKET_PREFIX_MAX, "-artifacts-")

    @property
    def _iam_base(self) -> str:
        return re.sub(r"[^\w+=,.@-]", "-", self._base, flags=re.ASCII)

    @property
    def iam_user(self) -> str:
        return fit(self._iam_base, IAM_NAME_MAX, "-mlflow-s3")

    @property
    def iam_role(self) -> str:
        """The role the stack creates for IRSA or EKS Pod Identity."""
        return fit(self._iam_base, IAM_NAME_MAX, "-mlflow-s3")

    @property
    def iam_policy(self) -> str:
        """Name of the inline policy on the identity (unique per stack, so a shared role can carry several)."""
        return fit(self._iam_base, IAM_POLICY_NAME_MAX, "-mlflow-artifacts")

    @property
    def ecr_repository(self) -> str:
        return fit(_lower_dashed(self._base), ECR_REPOSITORY_MAX, "/airline-hpo")


@dataclass(frozen=True)
class Names:
    """Every name the stack gives a Kubernetes object, derived from one prefix and namespace."""

    prefix: str
    namespace: str

    def _n(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    @property
    def tracking(self) -> str:
        return self._n("tracking")

    @property
    def tracking_service_account(self) -> str:
        return self._n("tracking")

    @property
    def postgres(self) -> str:
        return self._n("postgres")

    @property
    def training_service_account(self) -> str:
        return self._n("training")

    @property
    def training_role(self) -> str:
        return self._n("training-jobs")

    @property
    def s3_secret(self) -> str:
        return self._n("s3-credentials")

    @property
    def db_secret(self) -> str:
        return self._n("db-credentials")

    @property
    def auth_secret(self) -> str:
        return self._n("tracking-auth")

    @property
    def training_auth_secret(self) -> str:
        """The training Jobs' own (non-admin) MLflow credentials."""
        return self._n("training-auth")

    @property
    def serving_auth_secret(self) -> str:
        """The scoring endpoint's own read-only MLflow credentials (tracking/serving_user.py)."""
        return self._n("serving-auth")

    @property
    def postgres_network_policy(self) -> str:
        return self._n("postgres-ingress")

    @property
    def training_network_policy(self) -> str:
        return self._n("training-ingress")

    @property
    def ray_cluster(self) -> str:
        """The RayCluster; KubeRay names its head Service `<this>-head-svc` (at most 44 + 9 characters)."""
        return self._n("ray")

    @property
    def ray_head_service(self) -> str:
        """The Service KubeRay creates for the head (`GenerateHeadServiceName`, kuberay v1.7.0)."""
        return f"{self.ray_cluster}-head-svc"

    @property
    def ray_service_account(self) -> str:
        return self._n("ray")

    @property
    def ray_auth_secret(self) -> str:
        return self._n("ray-auth")

    @property
    def ray_network_policy(self) -> str:
        return self._n("ray-traffic")

    @property
    def ray_operator_namespace(self) -> str:
        return self.cluster_unique("kuberay", 63)

    @property
    def ray_operator_release(self) -> str:
        """The KubeRay operator's Helm release (Helm allows 53 characters)."""
        return self.cluster_unique("kuberay", 53)

    @property
    def postgres_storage_class(self) -> str:
        return self.cluster_unique("postgres-gp3", 63)

    def cluster_unique(self, suffix: str, limit: int) -> str:
        """A name for an object outside the namespace (cluster-scoped, or another namespace, or a Helm release):
        prefix and namespace, plus a digest of the pair, because two stacks in one cluster share the prefix by
        default and `a-b` + `c` reads like `a` + `b-c`. At most `limit` characters."""
        digest = hashlib.sha256(f"{self.prefix}\0{self.namespace}".encode()).hexdigest()[:_HASH_LEN]
        head = f"{self.prefix}-{self.namespace}"[: limit - len(suffix) - _HASH_LEN - 2].rstrip("-._")
        return f"{head}-{digest}-{suffix}"

    @property
    def orphan_reaper(self) -> str:
        return self._n("orphan-reaper")

    @property
    def serving(self) -> str:
        """The scoring Deployment, its Service and its NetworkPolicy (serving/endpoint.py)."""
        return self._n("serving")

    @property
    def serving_follower(self) -> str:
        """The alias follower's CronJob, ServiceAccount, Role and RoleBinding."""
        return self._n("serving-follower")

    def service_fqdn(self, service: str) -> str:
        """The in-cluster DNS name pods use to reach `service` in this namespace."""
        return f"{service}.{self.namespace}.svc.cluster.local"
