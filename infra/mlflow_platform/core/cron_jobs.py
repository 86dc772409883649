"""The CronJob shape shared by the maintenance jobs (database backup, `mlflow gc`).

Why these settings:
- `concurrencyPolicy: Forbid`: two dumps or two collectors at once only compete for the same rows;
- `timeZone: Etc/UTC`: the schedule in config means the same hour on every cluster, whatever the
  controller manager's local time;
- `startingDeadlineSeconds`: a run missed by more than an hour (controller down, cluster upgrade) is skipped,
  not started at a busy time of day; a missed backup shows as a missing object, not as a surprise load;
- a few finished Jobs are kept (with their pods' logs) for `kubectl logs`, failed ones longer than needed to
  read why; `backoffLimit` retries a transient failure twice, `activeDeadlineSeconds` stops a hung run;
- `restartPolicy: Never`: a failed container fails its pod, so the Job's retry starts from a clean emptyDir.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.job_pods import job_spec

CRON_TIME_ZONE = "Etc/UTC"


def cron_job(
    resource_name: str,
    *,
    name: str,
    namespace: pulumi.Input[str],
    object_labels: dict[str, str],
    schedule: str,
    pod_spec: k8s.core.v1.PodSpecArgs,
    active_deadline_seconds: int,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.CronJob:
    """A CronJob running `pod_spec` on `schedule` (UTC), one run at a time."""
    return k8s.batch.v1.CronJob(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=object_labels),
        spec=k8s.batch.v1.CronJobSpecArgs(
            schedule=schedule,
            time_zone=CRON_TIME_ZONE,
            concurrency_policy="Forbid",
            starting_deadline_seconds=3600,
            successful_jobs_history_limit=3,
            failed_jobs_history_limit=3,
            job_template=k8s.batch.v1.JobTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                spec=job_spec(
                    object_labels, pod_spec, backoff_limit=2, active_deadline_seconds=active_deadline_seconds
                ),
            ),
        ),
        opts=opts,
    )
