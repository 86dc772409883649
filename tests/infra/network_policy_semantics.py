"""Whether Kubernetes NetworkPolicies allow a connection, with the API's semantics (networking.k8s.io/v1).

A pod is isolated for a direction when some policy in its namespace selects it and lists that direction in
`policyTypes`; an isolated pod accepts (or opens) only what at least one rule of those policies allows (rules
add up across policies); a connection needs the source's egress and the destination's ingress both allowed.
Peers: `podSelector` alone means pods of the policy's namespace; with `namespaceSelector`, pods of the matching
namespaces; `ipBlock` matches an address (pod IPs are not modelled: pods are matched by labels). Only
`matchLabels` selectors are modelled; an empty selector matches everything.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (labels and namespace, with the namespace's labels) or an address outside the cluster."""

    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    ip: str | None = None

    @property
    def is_pod(self) -> bool:
        return self.ip is None


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    assert not (selector or {}).get("matchExpressions"), "matchExpressions are not modelled"
    return all(labels.get(k) == v for k, v in wanted.items())


def _peer_matches(peer: dict[str, Any], policy_ns: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        assert not peer["ipBlock"].get("except"), "ipBlock.except is not modelled"
        return other.ip is not None and ipaddress.ip_address(other.ip) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return _matches(peer.get("podSelector"), other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    return not ports or any(p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports)


def _direction_allows(
    policies: list[dict[str, Any]], pod: Endpoint, other: Endpoint, port: int, protocol: str, direction: str
) -> bool:
    kind, rules_key, peers_key = ("Ingress", "ingress", "from") if direction == "in" else ("Egress", "egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and _matches(p["spec"].get("podSelector"), pod.labels)
        and kind in (p["spec"].get("policyTypes") or ["Ingress"])
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(_peer_matches(peer, pod.namespace, other) for peer in peers)
            if peer_ok and _port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def allowed(policies: list[dict[str, Any]], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """Whether `src` may open a connection to `dst` on `port` under `policies` (NetworkPolicy manifests)."""
    egress_ok = not src.is_pod or _direction_allows(policies, src, dst, port, protocol, "out")
    ingress_ok = not dst.is_pod or _direction_allows(policies, dst, src, port, protocol, "in")
    return egress_ok and ingress_ok
