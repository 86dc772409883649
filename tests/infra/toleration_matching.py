"""Kubernetes' toleration matching, for tests: does a pod's toleration list let it onto a tainted node?

Transcribed from `Toleration.ToleratesTaint` (k8s.io/api/core/v1/toleration.go): an empty effect matches every
effect, an empty key (only valid with `Exists`) matches every key, `Exists` ignores the value, and an empty
operator means `Equal`, which compares values exactly (a missing value is the empty string).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """True when this one toleration tolerates this one taint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint["effect"]:
        return False
    key = toleration.get("key") or ""
    if key and key != taint["key"]:
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated_by(tolerations: Iterable[Mapping[str, Any]] | None, taint: Mapping[str, Any]) -> bool:
    """True when any toleration of a pod tolerates the taint (what the scheduler asks per taint)."""
    return any(tolerates(t, taint) for t in tolerations or [])
