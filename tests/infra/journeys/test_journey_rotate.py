"""Journey: rotate a secret (a new IAM access key) and every long-lived pod that reads it rolls.

Chained: the program run twice under mocks, the provider answering a new key the second time (as replacing the
AccessKey resource does), then the pod templates of every workload that reads the S3 Secret compared. A template
whose annotation does not change keeps its old pods (Kubernetes restarts nothing when a Secret read as env
changes), and KubeRay replaces RayCluster pods only with `upgradeStrategy: Recreate` (kuberay v1.7.0 CRD).
"""

from __future__ import annotations

from typing import Any

from journey_helpers import of_kind
from mock_harness import ProviderMocks, run_program

RAY = {"ray": "true", "rayImageTag": "0a1b2c3"}


class RotatedKey(ProviderMocks):
    access_key_secret = "rotated-secret-access-key-value"


def _templates(d) -> dict[str, dict[str, Any]]:
    out = {}
    for deployment in of_kind(d, "Deployment"):
        out[deployment["metadata"]["name"]] = deployment["spec"]["template"]["metadata"]
    for cluster in of_kind(d, "RayCluster"):
        out["ray-head"] = cluster["spec"]["headGroupSpec"]["template"]["metadata"]
        for group in cluster["spec"]["workerGroupSpecs"]:
            out[f"ray-{group['groupName']}"] = group["template"]["metadata"]
    return out


def test_a_rotated_key_rolls_the_tracking_server_and_the_ray_pods() -> None:
    before = _templates(run_program(RAY))
    after_deployment = run_program(RAY, mocks=RotatedKey())
    after = _templates(after_deployment)
    assert {"rapids-mlflow-tracking", "ray-head", "ray-gpu-workers"} <= set(before)
    for name in ("rapids-mlflow-tracking", "ray-head", "ray-gpu-workers"):
        old = (before[name].get("annotations") or {}).get("checksum/secrets")
        new = (after[name].get("annotations") or {}).get("checksum/secrets")
        assert old and new and old != new, f"{name} keeps running with the old key"
    (cluster,) = of_kind(after_deployment, "RayCluster")
    assert cluster["spec"]["upgradeStrategy"] == {"type": "Recreate"}
