"""What the journey tests share: the program's manifests by kind, and pods as NetworkPolicy endpoints."""

from __future__ import annotations

from typing import Any

from mock_harness import Deployment, manifests
from network_policy_semantics import Endpoint


def of_kind(deployment: Deployment, kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests(deployment) if m["kind"] == kind]


def named(deployment: Deployment, kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in of_kind(deployment, kind) if m["metadata"]["name"] == name]
    return found


def pod(namespace: str, labels: dict[str, str]) -> Endpoint:
    """A pod of `namespace` (which carries the label Kubernetes gives every namespace) with `labels`."""
    return Endpoint(namespace, labels, {"kubernetes.io/metadata.name": namespace})


def pod_template_labels(manifest: dict[str, Any]) -> dict[str, str]:
    """The labels of the pods a Deployment, StatefulSet, Job or CronJob makes."""
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["metadata"]["labels"]
