"""Journey: train on the cluster. `pulumi up` -> bridge -> `mlflow run --backend kubernetes` -> a Job that runs.

Chained, each the real code: the Pulumi program (under mocks) and its exports as `pulumi stack output --json`
prints them; the bridge's files; MLflow's Kubernetes backend submitting and waiting, against the stand-in API
server with the program's training Role enforced (RBAC semantics); the Job MLflow sent, validated against the
Kubernetes 1.34 schema; and the program's NetworkPolicies, which must let that Job's pod reach the tracking
server and S3 while admitting nothing into it.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
from airline_hpo.cluster import bridge
from journey_helpers import named, of_kind, pod, pod_template_labels
from kube_api_standin import ApiRequest
from kube_callers import standin_cluster, submit_with_mlflow
from mock_harness import run_program
from network_policy_semantics import Endpoint, allowed
from rbac_authorizer import DISCOVERY_RULES, allowing_rules, forbidden_message, request_attributes

PARAMS = {"max_evals": "2"}


def test_a_run_submitted_from_the_stacks_outputs_runs_and_reaches_what_it_needs(tmp_path: Path) -> None:
    d = run_program({})
    outputs = {k: bridge.SECRET_MASK if k in d.secret_exports else v for k, v in d.exports.items()}
    files = bridge.write_backend_files(outputs, tmp_path / "k8s")
    rules = d.one("kubernetes:rbac.authorization.k8s.io/v1:Role", "-training-").inputs["rules"]

    def authorize(request: ApiRequest) -> str | None:
        attrs = request_attributes(request.method, request.path, request.query)
        granted = allowing_rules(rules if attrs.resource_request else DISCOVERY_RULES, attrs)
        return None if granted else forbidden_message(attrs, "submitter")

    params = {"fpath": f"{outputs['data_root']}/airline_small.parquet", **PARAMS}
    with standin_cluster(tmp_path, job_phases=("pending", "active", "succeeded"), authorize=authorize) as api:
        run = submit_with_mlflow(files.config_path, outputs["kube_mlflow_tracking_uri"], params, tmp_path)
        assert run.wait() is True
    job = api.requests[0].body
    kubernetes_validate.validate(job, "1.34", strict=True)

    policies = of_kind(d, "NetworkPolicy")
    trainer = pod("mlflow", job["spec"]["template"]["metadata"]["labels"])
    tracking = pod("mlflow", pod_template_labels(named(d, "Deployment", "rapids-mlflow-tracking")))
    assert allowed(policies, trainer, tracking, 5000)
    assert allowed(policies, trainer, Endpoint(ip="52.216.0.1"), 443)  # an S3 address
    assert not allowed(policies, pod("other", {"app": "x"}), trainer, 8080)
