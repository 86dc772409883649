"""A workload's own Kubernetes identity: a ServiceAccount, a Role with exactly its rules, and the binding.

The CronJobs that call the API server (the orphan reaper, the serving alias follower) each get one of these, so
that a Role grants one caller's calls and nothing else (tests/rbac_authorizer.py checks each against its caller).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

#: The API server's ports as pods reach it (the kubernetes Service's 443, and 6443 where the endpoint is the
#: control plane's own address, as on EKS): its address is not a pod selector, so egress names ports only.
API_SERVER_PORTS = (443, 6443)


def api_server_egress() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    """The egress rule a workload that calls the API server needs, and only that."""
    np_ = k8s.networking.v1
    return np_.NetworkPolicyEgressRuleArgs(
        to=[np_.NetworkPolicyPeerArgs(ip_block=np_.IPBlockArgs(cidr="0.0.0.0/0"))],
        ports=[np_.NetworkPolicyPortArgs(protocol="TCP", port=p) for p in API_SERVER_PORTS],
    )


def bound_service_account(
    resource_name: str,
    meta: k8s.meta.v1.ObjectMetaArgs,
    account_name: str,
    namespace: pulumi.Input[str],
    rules: Sequence[k8s.rbac.v1.PolicyRuleArgs],
    parent: pulumi.Resource,
) -> k8s.rbac.v1.RoleBinding:
    """Declare the three objects under ``parent``, all named ``account_name`` by ``meta``; returns the binding,
    which a workload should depend on (its pods must not start before their permissions exist)."""
    child = pulumi.ResourceOptions(parent=parent)
    account = k8s.core.v1.ServiceAccount(
        f"{resource_name}-service-account", metadata=meta, automount_service_account_token=False, opts=child
    )
    role = k8s.rbac.v1.Role(f"{resource_name}-role", metadata=meta, rules=list(rules), opts=child)
    return k8s.rbac.v1.RoleBinding(
        f"{resource_name}-role-binding",
        metadata=meta,
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=account_name),
        subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=account_name, namespace=namespace)],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[account, role]),
    )
