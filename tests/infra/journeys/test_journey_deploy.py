"""Journey: deploy (`pulumi up`), as far as the pods' network goes, for each way of reaching S3.

Chained: the program's workloads and its NetworkPolicies, judged with the API's semantics
(`network_policy_semantics`): every pod the program runs is selected by some policy, and every pod that reaches
S3 can reach its credentials. Under EKS Pod Identity those come from the node-local agent at 169.254.170.23:80
(EKS user guide, "How EKS Pod Identity works"); an enforcing CNI drops that connection unless a policy admits it
(Cilium issue 34387 shows the symptom).
"""

from __future__ import annotations

import pytest
from journey_helpers import of_kind, pod, pod_template_labels
from mlflow_platform.core.config import ConfigError
from network_policy_semantics import Endpoint, allowed

POD_IDENTITY = {"s3Identity": "pod-identity", "eksClusterName": "ml-gpu"}
AGENT = Endpoint(ip="169.254.170.23")
WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob")


def _pods(d) -> dict[str, dict[str, str]]:
    return {m["metadata"]["name"]: pod_template_labels(m) for kind in WORKLOADS for m in of_kind(d, kind)}


def _selected(policies: list[dict], labels: dict[str, str]) -> bool:
    return any(
        all(labels.get(k) == v for k, v in (p["spec"]["podSelector"].get("matchLabels") or {}).items())
        for p in policies
    )


@pytest.mark.parametrize("config", [{}, POD_IDENTITY], ids=["iam-user", "pod-identity"])
def test_every_pod_the_stack_runs_is_under_a_network_policy(deploy, config: dict) -> None:
    d = deploy(config)
    policies = of_kind(d, "NetworkPolicy")
    unselected = [name for name, labels in _pods(d).items() if not _selected(policies, labels)]
    assert unselected == []


def test_under_pod_identity_the_tracking_server_reaches_the_agent(deploy) -> None:
    d = deploy(POD_IDENTITY)
    policies = of_kind(d, "NetworkPolicy")
    tracking = pod("mlflow", _pods(d)["rapids-mlflow-tracking"])
    assert allowed(policies, tracking, AGENT, 80)
    # Only the agent's port: the node's other link-local services (instance metadata) stay closed.
    assert not allowed(policies, tracking, Endpoint(ip="169.254.169.254"), 80)


OTHER_CLUSTER = {"postgresStorageClass": "gp3", "clusterKind": "other"}


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"backupSchedule": "0 0 31 2 *"}, "backupSchedule"),
        ({"gcSchedule": "0 0 30 2 *"}, "gcSchedule"),
        ({"trainingMemory": "99999Ti"}, "trainingMemory"),
        (
            {"postgresStorageSize": "99999Ti", "postgresStorageClass": "fast", "clusterKind": "other"},
            "postgresStorageSize",
        ),
        ({"trainingCpu": "100000"}, "trainingCpu"),
        ({"rayStatePrefix": "mlflow/ray"}, "rayStatePrefix"),
    ],
)
def test_what_could_never_run_is_refused_at_preview_in_one_line(deploy, config: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config rapids-mlflow-stack:{key}: ") as raised:
        deploy(config)
    assert "\n" not in str(raised.value)
