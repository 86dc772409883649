"""The GPU nodes' taint: one config value (`gpuTaint`), tolerated by every GPU-side workload.

Why one value: a taint that one GPU-side workload does not tolerate silently breaks the chain. With
`gpuFeatureDiscovery`, Node Feature Discovery's worker must run on the GPU node to label it, the device plugin
schedules only on labelled nodes, and training Jobs only on nodes whose plugin advertises `nvidia.com/gpu`.
NFD's chart tolerates only `nvidia.com/gpu=present:NoSchedule`, so that is the default taint; a different
one is added to the device plugin, GPU Feature Discovery, the NFD worker and the job template alike.

Format: `key=value:Effect`, `key:Effect` (any value), or `none` (GPU nodes are not tainted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"
NO_TAINT = "none"
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# A qualified name (optional DNS-subdomain prefix, then a name of at most 63 characters) and a label value.
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")


@dataclass(frozen=True)
class Taint:
    """A node taint as `kubectl taint` writes it."""

    key: str
    value: str | None
    effect: str

    def toleration(self) -> dict[str, str]:
        """The toleration (Kubernetes manifest form) that tolerates exactly this taint."""
        if self.value is None:
            return {"key": self.key, "operator": "Exists", "effect": self.effect}
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


def parse_taint(text: str) -> Taint | None:
    """`key=value:Effect` or `key:Effect` as a `Taint`; `none` as None. ValueError says what is wrong."""
    if text == NO_TAINT:
        return None
    spec, sep, effect = text.rpartition(":")
    if not sep or effect not in EFFECTS:
        raise ValueError(f"must be key=value:Effect with Effect one of {', '.join(EFFECTS)}, or 'none'")
    key, eq, value = spec.partition("=")
    if not _KEY.match(key):
        raise ValueError(f"taint key {key!r} is not a valid qualified name such as nvidia.com/gpu")
    if eq and not _VALUE.match(value):
        raise ValueError(f"taint value {value!r} is not a valid label value")
    return Taint(key, value if eq else None, effect)


def gpu_tolerations(taint: Taint | None) -> list[dict[str, Any]]:
    """What a GPU-side pod adds to its tolerations (nothing when GPU nodes are not tainted)."""
    return [taint.toleration()] if taint else []
