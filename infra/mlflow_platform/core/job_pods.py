"""The pod shape of the stack's run-to-completion workloads: the one-shot Jobs (schema migration, training
user) and the maintenance CronJobs' pods (database backup, `mlflow gc`).

Why one shape: these pods differ only in what they run; what keeps them safe and predictable is the same, so
it is built once here:
- the namespace's "restricted" Pod Security Standard (`pod_security`), with a read-only root filesystem and
  size-limited emptyDirs as the only writable places (`/tmp`, where `home_env` points `HOME`: Python, boto3
  and MLflow write under it);
- `restartPolicy: Never`: a failed container fails its pod, so the Job's retry starts from clean scratch
  volumes and the failure stays visible in the Job's status;
- no ServiceAccount token: none of them talks to the Kubernetes API; a ServiceAccount is named only where its
  cloud identity (IRSA / Pod Identity) reaches S3;
- requests and limits on every container, so a runaway dump or collector cannot starve the tracking server.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core import pod_security
from mlflow_platform.core.pod_env import plain_env

SCRATCH = "tmp"
SCRATCH_PATH = "/tmp"


def home_env() -> k8s.core.v1.EnvVarArgs:
    """`HOME` on the scratch volume: the images' users have no writable home under a read-only root."""
    return plain_env("HOME", SCRATCH_PATH)


def scratch_mount() -> k8s.core.v1.VolumeMountArgs:
    return k8s.core.v1.VolumeMountArgs(name=SCRATCH, mount_path=SCRATCH_PATH)


def job_container(
    name: str,
    image: str,
    command: pulumi.Input[list[str]],
    env: list[k8s.core.v1.EnvVarArgs],
    requests: dict[str, str],
    limits: dict[str, str],
    volume_mounts: list[k8s.core.v1.VolumeMountArgs] | None = None,
) -> k8s.core.v1.ContainerArgs:
    """A hardened container with a read-only root; `volume_mounts` defaults to the scratch volume on `/tmp`."""
    return k8s.core.v1.ContainerArgs(
        name=name,
        image=image,
        command=command,
        env=env,
        resources=k8s.core.v1.ResourceRequirementsArgs(requests=requests, limits=limits),
        security_context=pod_security.container_context(read_only_root=True),
        volume_mounts=[scratch_mount()] if volume_mounts is None else volume_mounts,
    )


def job_pod_spec(
    uid: int,
    containers: list[k8s.core.v1.ContainerArgs],
    scratch_size: str,
    *,
    init_containers: list[k8s.core.v1.ContainerArgs] | None = None,
    volumes: list[k8s.core.v1.VolumeArgs] | None = None,
    service_account: str | None = None,
    api_token: bool = False,
) -> k8s.core.v1.PodSpecArgs:
    """A run-to-completion pod running as `uid`, with `volumes` and then the `/tmp` scratch volume."""
    return k8s.core.v1.PodSpecArgs(
        service_account_name=service_account,
        # Only a pod that calls the Kubernetes API itself (the orphan reaper) gets its ServiceAccount's token.
        automount_service_account_token=api_token,
        restart_policy="Never",
        security_context=pod_security.pod_context(uid),
        init_containers=init_containers,
        containers=containers,
        volumes=[*(volumes or []), pod_security.scratch_volume(SCRATCH, scratch_size)],
    )


def job_spec(
    object_labels: dict[str, str],
    pod_spec: k8s.core.v1.PodSpecArgs,
    *,
    backoff_limit: int,
    active_deadline_seconds: int,
) -> k8s.batch.v1.JobSpecArgs:
    """A Job's spec: `backoff_limit` retries, stopped after `active_deadline_seconds`, pods labelled as the Job."""
    return k8s.batch.v1.JobSpecArgs(
        backoff_limit=backoff_limit,
        active_deadline_seconds=active_deadline_seconds,
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels), spec=pod_spec
        ),
    )


def one_shot_job(
    resource_name: str,
    *,
    name: pulumi.Input[str],
    namespace: pulumi.Input[str],
    object_labels: dict[str, str],
    pod_spec: k8s.core.v1.PodSpecArgs,
    active_deadline_seconds: int,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """A Job that Pulumi creates and waits on; a few retries cover a server or database still starting."""
    return k8s.batch.v1.Job(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=object_labels),
        spec=job_spec(object_labels, pod_spec, backoff_limit=3, active_deadline_seconds=active_deadline_seconds),
        opts=opts,
    )
