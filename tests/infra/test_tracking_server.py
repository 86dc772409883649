"""The MLflow tracking server Deployment and Service."""

from __future__ import annotations

from mock_harness import Deployment


def _deployment(d: Deployment) -> dict:
    return d.k8s_named("kubernetes:apps/v1:Deployment", "rapids-mlflow-tracking").inputs


def _args(d: Deployment) -> list[str]:
    return _deployment(d)["spec"]["template"]["spec"]["containers"][0]["command"]


def _migration(d: Deployment) -> dict:
    (job,) = d.of_type("kubernetes:batch/v1:Job")
    return job.inputs


def _flag(args: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"--{name}="))


def test_server_proxies_artifacts_to_the_bucket_prefix(default_deployment: Deployment) -> None:
    args = _args(default_deployment)
    assert args[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in args
    assert _flag(args, "artifacts-destination") == default_deployment.exports["artifact_root"]
    assert default_deployment.exports["artifact_root"].endswith("/mlflow")


def test_backend_uri_comes_from_the_secret_and_never_the_command_line(default_deployment: Deployment) -> None:
    pod = _deployment(default_deployment)["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    ref = env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "rapids-mlflow-db-credentials", "key": "MLFLOW_BACKEND_STORE_URI"}
    assert not any("postgresql" in a for a in _args(default_deployment))
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    migration = _migration(default_deployment)["spec"]["template"]["spec"]["containers"][0]
    assert migration["command"] == ["mlflow", "db", "upgrade", "$(MLFLOW_BACKEND_STORE_URI)"]
    assert migration["env"][0] == env["MLFLOW_BACKEND_STORE_URI"]
    assert migration["image"] == pod["containers"][0]["image"] == "ghcr.io/mlflow/mlflow:v3.17.2-full"


def test_allowed_hosts_cover_service_dns_and_port_forward(default_deployment: Deployment) -> None:
    hosts = _flag(_args(default_deployment), "allowed-hosts").split(",")
    assert "rapids-mlflow-tracking.mlflow.svc.cluster.local:5000" in hosts
    assert "rapids-mlflow-tracking:5000" in hosts
    assert "localhost:*" in hosts
    assert "*" not in hosts
    assert default_deployment.exports["kube_mlflow_tracking_uri"] == (
        "http://rapids-mlflow-tracking.mlflow.svc.cluster.local:5000"
    )


def test_external_url_is_allowed_and_becomes_the_user_uri(deploy) -> None:
    d = deploy({"externalUrl": "https://mlflow.example.com", "serviceType": "NodePort"})
    hosts = _flag(_args(d), "allowed-hosts").split(",")
    assert {"mlflow.example.com", "mlflow.example.com:443"} <= set(hosts)
    assert d.exports["tracking_uri"] == "https://mlflow.example.com"
    assert d.k8s_named("kubernetes:core/v1:Service", "rapids-mlflow-tracking").inputs["spec"]["type"] == "NodePort"


def test_load_balancer_hostname_is_allowed_and_exported(deploy) -> None:
    d = deploy({"serviceType": "LoadBalancer"})
    assert "mlflow-lb.elb.example.com:5000" in _flag(_args(d), "allowed-hosts").split(",")
    assert d.exports["tracking_uri"] == "http://mlflow-lb.elb.example.com:5000"


def test_pod_is_non_root_read_only_with_health_probes_and_sized_memory(default_deployment: Deployment) -> None:
    pod = _deployment(default_deployment)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["memory"] == "1Gi"  # above the 400-700 MiB idle footprint
    assert container["resources"]["limits"]["memory"] == "2Gi"
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"] == "1Gi"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}


def test_basic_auth_turns_on_the_auth_app_with_secret_credentials(deploy) -> None:
    d = deploy({"basicAuth": "true"})
    args = _args(d)
    assert "--app-name=basic-auth" in args
    container = _deployment(d)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    for var in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "rapids-mlflow-tracking-auth"
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow-auth/basic_auth.ini"


def test_exposing_the_server_without_auth_warns_at_preview(deploy, caplog) -> None:
    with caplog.at_level("WARNING"):
        deploy({"serviceType": "LoadBalancer"})
    assert any("without authentication" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING"):
        deploy({"serviceType": "LoadBalancer", "basicAuth": "true"})
    assert not any("without authentication" in r.getMessage() for r in caplog.records)


def test_cors_allows_only_the_origin_users_open_the_ui_at(deploy, default_deployment: Deployment) -> None:
    assert not any(a.startswith("--cors-allowed-origins") for a in _args(default_deployment))
    d = deploy({"externalUrl": "https://mlflow.example.com:8443/"})
    assert _flag(_args(d), "cors-allowed-origins") == "https://mlflow.example.com:8443"
    d = deploy({"externalUrl": "https://mlflow.example.com"})
    assert _flag(_args(d), "cors-allowed-origins") == "https://mlflow.example.com"  # a browser omits :443
    d = deploy({"serviceType": "LoadBalancer", "basicAuth": "false"})
    assert _flag(_args(d), "cors-allowed-origins") == "http://mlflow-lb.elb.example.com:5000"
