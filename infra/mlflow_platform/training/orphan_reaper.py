"""The orphan reaper: a CronJob that stops training pods whose Job was deleted without propagation.

Why it exists: Ctrl-C on `mlflow run --backend kubernetes` makes MLflow's `KubernetesSubmittedRun.cancel()`
delete the Job with an empty `V1DeleteOptions`. For `batch/v1` Jobs the API server's default is then to ORPHAN
the Job's pods (kubernetes/kubernetes `pkg/registry/batch/job/strategy.go`, `DefaultGarbageCollectionPolicy`;
the server even warns "child pods are preserved by default when jobs are deleted"). The orphaned pod keeps its
GPU and runs on with no Job, so neither the Job's `activeDeadlineSeconds` nor its TTL ever applies to it.
MLflow cannot be changed, and the submitter's Role may not delete pods, so the cluster cleans up instead.

What it deletes, and only that: Pending or Running pods carrying the training Job labels (`job_selector`, the
labels both the GPU Job template and the Ray driver template give their pods) that no Job owns. A pod of a live
Job always has its Job as controller owner (the Job controller sets it), so a running search is never touched.
It runs every minute: an orphan holds its GPU at most about a minute longer than its Job.

How: `python -c` in the MLflow `-full` image the tracking server already pulls (it ships the `kubernetes`
client: `mlflow[extras]`), with its own ServiceAccount and a Role that may list and delete pods in this
namespace only; its NetworkPolicy admits no ingress and egress only to the API server's ports.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.cron_jobs import cron_job
from mlflow_platform.core.job_pods import home_env, job_container, job_pod_spec
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names
from mlflow_platform.core.pod_env import plain_env
from mlflow_platform.core.pod_security import MLFLOW_UID
from mlflow_platform.core.workload_identity import api_server_egress, bound_service_account
from mlflow_platform.training.job_template import job_selector

COMPONENT = "orphan-reaper"
SCHEDULE = "* * * * *"
#: The API server's ports: 443 on EKS (and behind the `kubernetes` Service), 6443 on kubeadm and MicroK8s
#: (NetworkPolicies see the endpoint's port after the Service's DNAT).

#: What the reaper runs. In the pod the in-cluster config applies; elsewhere (a test) the kubeconfig does.
REAPER_SCRIPT = """\
import os
import kubernetes as k
try:
    k.config.load_incluster_config()
except k.config.ConfigException:
    k.config.load_kube_config()
api = k.client.CoreV1Api()
namespace, selector = os.environ["REAP_NAMESPACE"], os.environ["REAP_SELECTOR"]
for pod in api.list_namespaced_pod(namespace, label_selector=selector).items:
    owners = pod.metadata.owner_references or []
    if pod.status.phase in ("Pending", "Running") and not any(o.kind == "Job" for o in owners):
        api.delete_namespaced_pod(pod.metadata.name, namespace)
        print(f"deleted pod {pod.metadata.name}: its Job was deleted and left it running (a cancelled run)")
"""

#: What the reaper's calls need (`list_namespaced_pod`, `delete_namespaced_pod`), and nothing more.
RULES = [{"api_groups": [""], "resources": ["pods"], "verbs": ["list", "delete"]}]


def reaper_selector(cfg: StackConfig) -> dict[str, str]:
    return selector_labels(cfg.name_prefix, COMPONENT)


def label_selector(cfg: StackConfig) -> str:
    """The training pods' labels as a label selector string (equality terms)."""
    return ",".join(f"{k}={v}" for k, v in sorted(job_selector(cfg).items()))


def reaper_env(cfg: StackConfig) -> dict[str, str]:
    return {"REAP_NAMESPACE": cfg.namespace, "REAP_SELECTOR": label_selector(cfg), "PYTHONUNBUFFERED": "1"}


class OrphanReaper(pulumi.ComponentResource):
    """ServiceAccount, Role, RoleBinding, NetworkPolicy and the every-minute CronJob."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:OrphanReaper", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_labels = labels(cfg.name_prefix, COMPONENT, version=cfg.tracking_image.rsplit(":", 1)[-1])
        meta = k8s.meta.v1.ObjectMetaArgs(name=names.orphan_reaper, namespace=namespace, labels=object_labels)
        rules = [k8s.rbac.v1.PolicyRuleArgs(**r) for r in RULES]
        binding = bound_service_account(name, meta, names.orphan_reaper, namespace, rules, self)
        _np = k8s.networking.v1
        _np.NetworkPolicy(
            f"{name}-network-policy",
            metadata=meta,
            spec=_np.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=reaper_selector(cfg)),
                policy_types=["Ingress", "Egress"],
                ingress=[],
                egress=[api_server_egress()],
            ),
            opts=child,
        )
        container = job_container(
            "orphan-reaper",
            cfg.tracking_image,
            ["python", "-c", REAPER_SCRIPT],
            [home_env(), *(plain_env(k, v) for k, v in reaper_env(cfg).items())],
            requests={"cpu": "50m", "memory": "128Mi"},
            limits={"cpu": "500m", "memory": "256Mi"},
        )
        cron_job(
            f"{name}-cronjob",
            name=names.orphan_reaper,
            namespace=namespace,
            object_labels=object_labels,
            schedule=SCHEDULE,
            pod_spec=job_pod_spec(
                MLFLOW_UID, [container], scratch_size="64Mi", service_account=names.orphan_reaper, api_token=True
            ),
            active_deadline_seconds=300,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[binding]),
        )
        self.register_outputs({})
