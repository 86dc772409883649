"""The Kubernetes RBAC authorizer's decision, for checking recorded API requests against a declared Role.

Two halves, each following the API server's own code:
- `request_attributes` turns an HTTP request into the attributes RBAC decides on, as
  `k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory` does: API group, resource, subresource, name,
  namespace, and the verb (POST=create, GET on a named object=get, GET on a collection=list, or watch with
  `?watch=true` or the legacy `/watch/` prefix, PUT=update, PATCH=patch, DELETE on a named object=delete, on a
  collection=deletecollection). Paths outside `/api` and `/apis/<group>/<version>` are non-resource URLs.
- `rule_allows` is `k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac.RuleAllows`: verb, API group, resource
  and resource name must all match a rule, `*` matches anything, a subresource must be named as
  `resource/subresource` (or `*/subresource`): a rule on `jobs` does not cover `jobs/status`.

Rules are dicts in the Kubernetes wire form (`apiGroups`, `resources`, `verbs`, `resourceNames`,
`nonResourceURLs`), which is how the Pulumi mocks record a Role's `rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

# The ClusterRole every authenticated user has through `system:discovery` / `system:public-info-viewer`
# (Kubernetes' bootstrap policy): API discovery and the version endpoint, never a namespaced resource.
DISCOVERY_RULES: list[dict[str, Any]] = [
    {
        "nonResourceURLs": [
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/healthz",
            "/livez",
            "/readyz",
            "/version",
            "/version/",
        ],
        "verbs": ["get"],
    },
    {"nonResourceURLs": ["/openapi", "/openapi/*"], "verbs": ["get"]},
]


@dataclass(frozen=True)
class Attributes:
    """What RBAC sees of one request."""

    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        if not self.resource_request:
            return f"{self.verb} {self.path}"
        group = self.api_group or '""'
        return f"{self.verb} {group} {self.combined_resource}" + (f" {self.name}" if self.name else "")


def _is_watch(query: Mapping[str, Sequence[str]]) -> bool:
    return any(value in ("true", "1") for value in query.get("watch", ()))


def request_attributes(method: str, path: str, query: Mapping[str, Sequence[str]] | None = None) -> Attributes:
    """The RBAC attributes of `method path?query`, as the API server's RequestInfoFactory derives them."""
    query = query or {}
    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    parts = [p for p in path.strip("/").split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        api_group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        api_group, rest = parts[1], parts[3:]
    else:
        return Attributes(verb=verb, path=path, resource_request=False)
    if not rest:  # `/api/v1` or `/apis/batch/v1`: discovery of one group version
        return Attributes(verb=verb, path=path, resource_request=False)
    if rest[0] == "watch":  # legacy `/api/v1/watch/namespaces/...`
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:  # the namespace object itself
        namespace, rest = rest[1], ["namespaces", rest[1]]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 else ""
    if not name and verb == "get":
        verb = "watch" if _is_watch(query) else "list"
    elif not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        verb=verb,
        path=path,
        resource_request=True,
        api_group=api_group,
        resource=resource,
        subresource=subresource,
        name=name,
        namespace=namespace,
    )


def _resource_matches(rule_resources: Iterable[str], attrs: Attributes) -> bool:
    for ruled in rule_resources:
        if ruled in ("*", attrs.combined_resource):
            return True
        if attrs.subresource and ruled == f"*/{attrs.subresource}":
            return True
    return False


def _non_resource_url_matches(urls: Iterable[str], path: str) -> bool:
    return any(url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])) for url in urls)


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """Whether one PolicyRule allows the request, with the RBAC authorizer's semantics."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return _non_resource_url_matches(rule.get("nonResourceURLs") or [], attrs.path)
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.api_group not in groups:
        return False
    if not _resource_matches(rule.get("resources") or [], attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def allowing_rules(rules: Sequence[Mapping[str, Any]], attrs: Attributes) -> list[int]:
    """Indexes of the rules that allow the request (empty: RBAC denies it)."""
    return [i for i, rule in enumerate(rules) if rule_allows(rule, attrs)]


def forbidden_message(attrs: Attributes, user: str) -> str:
    """The API server's 403 message for a resource request RBAC denied."""
    group = attrs.api_group or ""
    what = f"{attrs.resource}.{group}".rstrip(".") + (f' "{attrs.name}"' if attrs.name else "")
    return (
        f'{what} is forbidden: User "{user}" cannot {attrs.verb} resource "{attrs.combined_resource}" '
        f'in API group "{group}" in the namespace "{attrs.namespace}"'
    )
