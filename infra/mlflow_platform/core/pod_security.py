"""Security contexts and scratch volumes shared by every pod the stack declares.

The platform namespace enforces the Kubernetes "restricted" Pod Security Standard, so every pod must run as
a non-root user, with the RuntimeDefault seccomp profile, no privilege escalation and all capabilities
dropped. Building those blocks in one place keeps the pods consistent with each other and with the
`k8s-pods-hardened` policy that checks them.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

#: The uid the stack runs MLflow's image as (tracking server, its Jobs, `mlflow gc`).
MLFLOW_UID = 1000

RESTRICTED_PSA_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def pod_context(uid: int, gid: int | None = None) -> k8s.core.v1.PodSecurityContextArgs:
    """Run as `uid` (never root); `fsGroup` makes mounted volumes writable by that group."""
    group = gid if gid is not None else uid
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=group,
        fs_group=group,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def container_context(read_only_root: bool) -> k8s.core.v1.SecurityContextArgs:
    """No privilege escalation, no capabilities; a read-only root filesystem where the software allows it."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=read_only_root,
        run_as_non_root=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
    )


def scratch_volume(name: str, size: str, memory: bool = False) -> k8s.core.v1.VolumeArgs:
    """A size-limited emptyDir: writable scratch space that cannot fill the node's disk (or RAM)."""
    return k8s.core.v1.VolumeArgs(
        name=name,
        empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory" if memory else None, size_limit=size),
    )
