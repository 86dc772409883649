"""The training Role, checked against what its callers really send, with the RBAC authorizer's semantics.

The callers run for real against a stand-in API server (`tests/kube_api_standin.py`) that refuses, with the API
server's 403, every request the Role the program declares does not allow:
- MLflow's Kubernetes backend (`mlflow.projects.kubernetes`), fed by our bridge from this program's own stack
  outputs (rendered as `pulumi stack output --json` prints them): one run submitted and waited for, one
  submitted and cancelled;
- `kubectl -n mlflow logs -f job/<name>` (the README's way to follow a run): the installed binary when there is
  one, else the declared list in `tests/kube_callers.py` (which another test checks against the binary).
The Role must allow every request (discovery aside, which the cluster's own `system:discovery` role allows), and
every verb it grants must be used by one of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airline_hpo.cluster import bridge
from kube_api_standin import ApiRequest
from kube_callers import (
    KUBECTL,
    declared_kubectl_logs_calls,
    run_kubectl_logs,
    standin_cluster,
    submit_with_mlflow,
)
from kubernetes.client.exceptions import ApiException
from mock_harness import Deployment
from rbac_authorizer import (
    DISCOVERY_RULES,
    Attributes,
    allowing_rules,
    forbidden_message,
    request_attributes,
    rule_allows,
)

ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
PARAMS = {"fpath": "s3://bucket/datasets/airline_small.parquet", "max_evals": "2"}


# --- the authorizer helper itself, on cases whose answer Kubernetes documents ----------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("POST", "/apis/batch/v1/namespaces/ml/jobs", {}, "create batch jobs"),
        ("GET", "/apis/batch/v1/namespaces/ml/jobs/j1", {}, "get batch jobs j1"),
        ("GET", "/apis/batch/v1/namespaces/ml/jobs/j1/status", {}, "get batch jobs/status j1"),
        ("GET", "/apis/batch/v1/namespaces/ml/jobs", {}, "list batch jobs"),
        ("GET", "/apis/batch/v1/namespaces/ml/jobs", {"watch": ["true"]}, "watch batch jobs"),
        ("GET", "/api/v1/watch/namespaces/ml/pods", {}, 'watch "" pods'),
        ("DELETE", "/apis/batch/v1/namespaces/ml/jobs/j1", {}, "delete batch jobs j1"),
        ("DELETE", "/apis/batch/v1/namespaces/ml/jobs", {}, "deletecollection batch jobs"),
        ("PATCH", "/apis/batch/v1/namespaces/ml/jobs/j1", {}, "patch batch jobs j1"),
        ("PUT", "/apis/batch/v1/namespaces/ml/jobs/j1/status", {}, "update batch jobs/status j1"),
        ("GET", "/api/v1/namespaces/ml/pods/p1/log", {"follow": ["true"]}, 'get "" pods/log p1'),
        ("GET", "/api/v1/namespaces/ml", {}, 'get "" namespaces ml'),
        ("GET", "/apis/batch/v1", {}, "get /apis/batch/v1"),
        ("GET", "/version", {}, "get /version"),
    ],
)
def test_requests_map_to_rbac_attributes_as_the_api_server_maps_them(
    method: str, path: str, query: dict, expected: str
) -> None:
    assert str(request_attributes(method, path, query)) == expected


STATUS = request_attributes("GET", "/apis/batch/v1/namespaces/ml/jobs/j1/status")
GET_JOB = request_attributes("GET", "/apis/batch/v1/namespaces/ml/jobs/j1")
CORE_PODS = request_attributes("GET", "/api/v1/namespaces/ml/pods")


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        # a subresource is granted only when named: `jobs` does not cover `jobs/status`, nor the reverse
        ({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]}, STATUS, False),
        ({"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get"]}, STATUS, True),
        ({"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get"]}, GET_JOB, False),
        ({"apiGroups": ["batch"], "resources": ["*/status"], "verbs": ["get"]}, STATUS, True),
        ({"apiGroups": ["batch"], "resources": ["*"], "verbs": ["get"]}, STATUS, True),
        # the API group must match: the core group is "", and jobs are not in it
        ({"apiGroups": [""], "resources": ["jobs"], "verbs": ["get"]}, GET_JOB, False),
        ({"apiGroups": ["*"], "resources": ["jobs"], "verbs": ["get"]}, GET_JOB, True),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}, CORE_PODS, True),
        # verbs: `get` does not give `list`; `*` gives everything
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, CORE_PODS, False),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, CORE_PODS, True),
        # resourceNames narrow a rule to named objects (and a list has no name)
        ({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"], "resourceNames": ["j1"]}, GET_JOB, True),
        ({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"], "resourceNames": ["j2"]}, GET_JOB, False),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["p1"]}, CORE_PODS, False),
        # a non-resource URL only matches nonResourceURLs rules, which a namespaced Role cannot hold
        ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, request_attributes("GET", "/api"), False),
        (DISCOVERY_RULES[0], request_attributes("GET", "/apis/batch/v1"), True),
        (DISCOVERY_RULES[0], request_attributes("GET", "/metrics"), False),
    ],
)
def test_rules_allow_what_the_rbac_authorizer_allows(rule: dict, attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


# --- the program's Role against its callers ------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """Each caller's requests, as the stand-in API server received them."""

    mlflow: list[ApiRequest]
    kubectl_logs: list[tuple[str, str, Mapping[str, Sequence[str]]]]


def _role_rules(deployment: Deployment) -> list[dict[str, Any]]:
    return deployment.one(ROLE, "-training-").inputs["rules"]


def _subject(deployment: Deployment) -> str:
    (subject,) = deployment.one(BINDING, "-training-").inputs["subjects"]
    return f"system:serviceaccount:{subject['namespace']}:{subject['name']}"


def _stack_output_json(deployment: Deployment) -> dict[str, Any]:
    """The exports as `pulumi stack output --json` prints them: secrets masked."""
    return {k: bridge.SECRET_MASK if k in deployment.secret_exports else v for k, v in deployment.exports.items()}


def _authorizer(rules: list[dict[str, Any]], user: str):
    def authorize(request: ApiRequest) -> str | None:
        attrs = request_attributes(request.method, request.path, request.query)
        granted = allowing_rules(rules if attrs.resource_request else DISCOVERY_RULES, attrs)
        return None if granted else forbidden_message(attrs, user)

    return authorize


def _record(deployment: Deployment, rules: list[dict[str, Any]], workdir: Path) -> Recording:
    outputs = _stack_output_json(deployment)
    files = bridge.write_backend_files(outputs, workdir / "k8s")
    with standin_cluster(workdir, authorize=_authorizer(rules, _subject(deployment)), pods_appear_on_watch=True) as api:
        waited = submit_with_mlflow(files.config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, workdir)
        assert waited.wait() is True
        cancelled = submit_with_mlflow(files.config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, workdir)
        cancelled.cancel()
        mlflow_requests = api.requests
        job = mlflow_requests[0].body["metadata"]["name"]
        namespace = outputs["namespace"]
        if KUBECTL:
            assert run_kubectl_logs(api, workdir / "kubeconfig", job, namespace)
            kubectl = [(r.method, r.path, r.query) for r in api.requests[len(mlflow_requests) :]]
        else:
            kubectl = declared_kubectl_logs_calls(namespace, job, f"{job}-x7k2p")
    return Recording(mlflow_requests, kubectl)


@pytest.fixture(scope="module")
def recording(default_deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return _record(default_deployment, _role_rules(default_deployment), tmp_path_factory.mktemp("rbac"))


def _attributes(calls: Sequence[tuple[str, str, Mapping[str, Sequence[str]]]]) -> list[Attributes]:
    return [request_attributes(method, path, query) for method, path, query in calls]


def test_mlflows_backend_creates_polls_status_and_deletes_nothing_more(recording: Recording) -> None:
    calls = {
        (a.verb, a.api_group, a.combined_resource)
        for a in _attributes([(r.method, r.path, r.query) for r in recording.mlflow])
    }
    assert calls == {("create", "batch", "jobs"), ("get", "batch", "jobs/status"), ("delete", "batch", "jobs")}


def test_every_call_of_every_caller_is_allowed(default_deployment: Deployment, recording: Recording) -> None:
    rules = _role_rules(default_deployment)
    calls = _attributes([(r.method, r.path, r.query) for r in recording.mlflow]) + _attributes(recording.kubectl_logs)
    refused = [str(a) for a in calls if not allowing_rules(rules if a.resource_request else DISCOVERY_RULES, a)]
    assert refused == []


def test_every_granted_verb_has_a_named_caller(default_deployment: Deployment, recording: Recording) -> None:
    """Grant nothing no caller uses: each (group, resource, verb) of each rule allows at least one real call."""
    calls = _attributes([(r.method, r.path, r.query) for r in recording.mlflow]) + _attributes(recording.kubectl_logs)
    unused = []
    for rule in _role_rules(default_deployment):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    single = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                    if not any(rule_allows(single, a) for a in calls):
                        unused.append((group, resource, verb))
    assert unused == []


def test_role_grants_no_secrets_exec_or_wildcards_and_binds_the_training_account(
    default_deployment: Deployment,
) -> None:
    for rule in _role_rules(default_deployment):
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
        assert not {"secrets", "pods/exec", "pods/attach", "pods/portforward"} & set(rule["resources"])
    binding = default_deployment.one(BINDING, "-training-").inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rapids-mlflow-training", "namespace": "mlflow"}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": default_deployment.one(ROLE, "-training-").inputs["metadata"]["name"],
    }


def test_a_role_without_jobs_status_lets_mlflow_submit_then_fails_its_first_poll(
    default_deployment: Deployment, tmp_path: Path
) -> None:
    """Why `jobs/status` is named: with `jobs` get/list/watch alone (the Role before), the Job is created and
    MLflow's wait stops at the API server's 403."""
    rules = [r for r in _role_rules(default_deployment) if "jobs/status" not in r["resources"]]
    rules.append({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]})
    outputs = _stack_output_json(default_deployment)
    files = bridge.write_backend_files(outputs, tmp_path / "k8s")
    with standin_cluster(tmp_path, authorize=_authorizer(rules, _subject(default_deployment))) as api:
        submitted = submit_with_mlflow(files.config_path, outputs["kube_mlflow_tracking_uri"], PARAMS, tmp_path)
        with pytest.raises(ApiException) as raised:
            submitted.wait()
        assert len(api.state.jobs) == 1
    assert raised.value.status == 403
    assert 'cannot get resource "jobs/status" in API group "batch"' in json.loads(raised.value.body)["message"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: the declared calls stand in for it")
def test_declared_kubectl_logs_calls_are_what_kubectl_sends(default_deployment: Deployment, tmp_path: Path) -> None:
    with standin_cluster(tmp_path, pods_appear_on_watch=True) as api:
        files = bridge.write_backend_files(_stack_output_json(default_deployment), tmp_path / "k8s")
        submit_with_mlflow(files.config_path, "http://tracking:5000", PARAMS, tmp_path)
        job = api.requests[0].body["metadata"]["name"]
        before = len(api.requests)
        assert run_kubectl_logs(api, tmp_path / "kubeconfig", job).splitlines()[-1] == "trial 2/2 accuracy=0.64"
        sent = {str(a) for a in _attributes([(r.method, r.path, r.query) for r in api.requests[before:]])}
    assert sent == {str(a) for a in _attributes(declared_kubectl_logs_calls("mlflow", job, f"{job}-x7k2p"))}
