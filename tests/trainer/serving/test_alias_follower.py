"""The cluster's alias follower run for real: the real MLflow registry (local stack), the real promotion code,
the real kubernetes client from a kubeconfig, against the API stand-in, every request authorized with RBAC
semantics against the rules the Role declares (`mlflow_platform.serving.follower.follower_rules`)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
from airline_hpo import train
from airline_hpo.errors import run_cli
from airline_hpo.serving import follow
from kube_api_standin import ApiRequest, kube_api_standin
from mlflow_platform.serving.follower import follower_rules
from rbac_authorizer import DISCOVERY_RULES, allowing_rules, forbidden_message, request_attributes

NAMESPACE, DEPLOYMENT = "mlflow", "mlflow-serving"
USER = "system:serviceaccount:mlflow:mlflow-serving-follower"


def _deployment() -> dict:
    """The serving Deployment as `pulumi up` leaves it: no version annotation yet (Pulumi ignores it)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "serving"}},
            "template": {
                "metadata": {"labels": {"app": "serving"}, "annotations": {"checksum/secrets": "abc"}},
                "spec": {"containers": [{"name": "scoring", "image": "trainer:1"}]},
            },
        },
    }


def _authorizer(rules: list[dict]):
    def authorize(request: ApiRequest) -> str | None:
        attrs = request_attributes(request.method, request.path, request.query)
        return None if allowing_rules(rules + DISCOVERY_RULES, attrs) else forbidden_message(attrs, USER)

    return authorize


def _train(fpath, name: str, seed: int) -> None:
    argv = ["--fpath", str(fpath), "--engine", "sklearn", "--seed", str(seed), "--model-name", name]
    with redirect_stdout(io.StringIO()):
        assert run_cli(train.main, [*argv, "--n-estimators", "5", "--max-depth", "4", "--promote", "always"]) == 0


def _follow(kubeconfig, name: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["--namespace", NAMESPACE, "--deployment", DEPLOYMENT, "--model-name", name, "--kubeconfig", kubeconfig]
    with redirect_stdout(out):
        code = run_cli(follow.main, argv)
    return code, out.getvalue().strip()


def _template_annotations(api) -> dict:
    return api.state.deployments[(NAMESPACE, DEPLOYMENT)]["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.integration
def test_the_follower_rolls_the_deployment_only_when_the_alias_moves(stack_env, small_airline, tmp_path):
    name = f"{stack_env.experiment}-followed"
    _train(small_airline, name, seed=1)
    rules = follower_rules(DEPLOYMENT)
    with kube_api_standin(authorize=_authorizer(rules), deployments=[_deployment()]) as api:
        kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
        assert _follow(kubeconfig, name) == (0, f"{name}@champion is version 1: rolling deployment {DEPLOYMENT}")
        annotations = _template_annotations(api)
        assert annotations[follow.VERSION_ANNOTATION] == "1"
        assert follow.RESTARTED_AT_ANNOTATION in annotations and annotations["checksum/secrets"] == "abc"
        generation = api.state.deployments[(NAMESPACE, DEPLOYMENT)]["metadata"]["generation"]
        assert generation == 2  # a spec change: the Deployment controller starts a rolling update

        assert _follow(kubeconfig, name) == (0, f"{name}@champion: the served version is current; nothing to do")
        assert api.state.deployments[(NAMESPACE, DEPLOYMENT)]["metadata"]["generation"] == generation

        _train(small_airline, name, seed=2)  # the real promotion code moves champion to version 2
        assert _follow(kubeconfig, name) == (0, f"{name}@champion is version 2: rolling deployment {DEPLOYMENT}")
        assert _template_annotations(api)[follow.VERSION_ANNOTATION] == "2"
        assert api.state.deployments[(NAMESPACE, DEPLOYMENT)]["metadata"]["generation"] == generation + 1

        calls = {(r.method, r.path) for r in api.requests}
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}"
        assert calls == {("GET", path), ("PATCH", path)}
        assert all(r.content_type == follow.PATCH_CONTENT_TYPE for r in api.requests if r.method == "PATCH")


@pytest.mark.integration
def test_a_role_without_patch_is_one_line_and_changes_nothing(stack_env, small_airline, tmp_path, capsys):
    name = f"{stack_env.experiment}-readonly"
    _train(small_airline, name, seed=1)
    read_only = [{**follower_rules(DEPLOYMENT)[0], "verbs": ["get"]}]
    capsys.readouterr()  # the training's output
    with kube_api_standin(authorize=_authorizer(read_only), deployments=[_deployment()]) as api:
        code, _ = _follow(str(api.write_kubeconfig(tmp_path / "kubeconfig")), name)
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"error: the Kubernetes API refused 403 Forbidden on deployment {NAMESPACE}/{DEPLOYMENT}; check the "
            "follower's Role (get and patch on that one Deployment) and the Deployment's name"
        )
        assert follow.VERSION_ANNOTATION not in _template_annotations(api)


def test_the_role_names_only_its_deployment():
    """Another Deployment in the namespace (the tracking server's) is out of the follower's reach."""
    rules = follower_rules(DEPLOYMENT)
    for verb, method in (("get", "GET"), ("patch", "PATCH")):
        mine = request_attributes(method, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}", {})
        other = request_attributes(method, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/mlflow-tracking", {})
        assert allowing_rules(rules, mine) == [0] and mine.verb == verb
        assert allowing_rules(rules, other) == []
    listing = request_attributes("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", {})
    assert allowing_rules(rules, listing) == []
