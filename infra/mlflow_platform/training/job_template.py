"""The Kubernetes Job template that `mlflow run --backend kubernetes` fills in for each training run.

MLflow replaces only the Job's name, container 0's name, image and command, and appends `MLFLOW_RUN_ID`,
`MLFLOW_TRACKING_URI` (from `KUBE_MLFLOW_TRACKING_URI` when set) and `MLFLOW_EXPERIMENT_ID` to its env.
It does NOT pass the MLproject's `docker_env` environment or volumes to the Job, so everything else the Job
needs is here: the GPU limit and the toleration for the GPU nodes' taint (`gpuTaint`), S3 credentials by
`secretKeyRef` (never by value), with basic-auth the non-admin `training` user's credentials, the ServiceAccount,
`backoffLimit: 0` (a failed search must fail the run, not silently repeat it), a TTL so finished Jobs are
cleaned up, a deadline, a memory-backed `/dev/shm` (RAPIDS and its data loaders need more than the
container default of 64 MiB), and `PYTHONUNBUFFERED` so logs appear as they are written.

This is a plain dict built from config alone, so the bridge and the tests can use it without a deployment.
"""

from __future__ import annotations

from typing import Any

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.gpu_taint import gpu_tolerations, parse_taint
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import Names

# The training image's user: `rapidsai/base` images run as `rapids`, uid 1001.
TRAINING_UID = 1001
PLACEHOLDER = "{replaced by MLflow}"
JOB_COMPONENT = "training-job"
JOB_NAME = "airline-hpo"


def job_selector(cfg: StackConfig) -> dict[str, str]:
    """Labels every training pod carries (MLflow keeps the template's labels), for selecting them."""
    return selector_labels(cfg.name_prefix, JOB_COMPONENT, name=JOB_NAME)


def _secret_env(var: str, secret: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}}


def build_job_template(cfg: StackConfig, names: Names) -> dict[str, Any]:
    """The Job template as a Kubernetes manifest (camelCase field names, ready to dump as YAML)."""
    job_labels = labels(cfg.name_prefix, JOB_COMPONENT, name=JOB_NAME)
    env: list[dict[str, Any]] = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "AWS_DEFAULT_REGION", "value": cfg.aws_region},
    ]
    if cfg.uses_access_key:
        env += [
            _secret_env("AWS_ACCESS_KEY_ID", names.s3_secret),
            _secret_env("AWS_SECRET_ACCESS_KEY", names.s3_secret),
        ]
    if cfg.basic_auth:
        env += [
            _secret_env("MLFLOW_TRACKING_USERNAME", names.training_auth_secret),
            _secret_env("MLFLOW_TRACKING_PASSWORD", names.training_auth_secret),
        ]

    limits: dict[str, Any] = {"memory": cfg.training_memory}
    if cfg.training_gpus:
        limits["nvidia.com/gpu"] = cfg.training_gpus
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.training_service_account,
        # The training code never calls the Kubernetes API, so its pods get no API token: the account's
        # Job-submitting Role is for submitters running in the cluster, not for the trials themselves.
        # (With IRSA the EKS webhook still mounts the AWS web-identity token, which is separate.)
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINING_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": PLACEHOLDER,
                "image": PLACEHOLDER,
                "command": [PLACEHOLDER],
                "env": env,
                "resources": {"requests": {"cpu": cfg.training_cpu, "memory": cfg.training_memory}, "limits": limits},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
            }
        ],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": cfg.training_shm_size}}],
    }
    if cfg.training_gpus and (tolerations := gpu_tolerations(parse_taint(cfg.gpu_taint))):
        pod_spec["tolerations"] = tolerations
    if cfg.gpu_runtime_class:
        pod_spec["runtimeClassName"] = cfg.gpu_runtime_class

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": PLACEHOLDER, "namespace": cfg.namespace, "labels": job_labels},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": cfg.job_ttl_seconds,
            "activeDeadlineSeconds": cfg.job_active_deadline_seconds,
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }
