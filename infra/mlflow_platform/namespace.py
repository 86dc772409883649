"""The platform's namespace, labelled to enforce the "restricted" Pod Security Standard.

Every pod the stack declares (and the training Jobs from the job template) meets that standard, so the
namespace can refuse anything that does not: a mistyped manifest cannot bring a root container in.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from .config import StackConfig
from .labels import labels
from .pod_security import RESTRICTED_PSA_LABELS


def create_namespace(name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> k8s.core.v1.Namespace:
    """The namespace, with an explicit name: Secrets, the job template and DNS names all refer to it."""
    return k8s.core.v1.Namespace(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=cfg.namespace, labels={**labels(cfg.name_prefix, "platform"), **RESTRICTED_PSA_LABELS}
        ),
        opts=opts,
    )
