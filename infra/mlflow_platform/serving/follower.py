"""What the alias follower may do in the cluster: get and patch the one serving Deployment, nothing else.

The follower (``python -m airline_hpo.serving.follow``, a CronJob's command) reads the Deployment's pod template
annotation and patches it to roll the pods when the alias has moved: ``kubectl rollout restart``'s two calls
(``GET``, ``PATCH`` on ``apps/v1 deployments/<name>``). ``resourceNames`` pins the Role to that Deployment: the
RBAC authorizer matches a named request against it (``get``, ``patch``); ``list``/``watch``/``create`` could
not be limited by name, and the follower needs none of them.
"""

from __future__ import annotations

from typing import Any


def follower_rules(deployment: str) -> list[dict[str, Any]]:
    """The Role's rules in the Kubernetes wire form (what the Role resource declares and the RBAC tests check)."""
    return [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": [deployment],
            "verbs": ["get", "patch"],
        }
    ]
