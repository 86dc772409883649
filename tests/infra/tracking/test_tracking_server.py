"""The MLflow tracking server Deployment and Service."""

from __future__ import annotations

import pytest
from mlflow_platform.core.config import ConfigError
from mock_harness import Deployment

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-0000-4000-8000-000000000001"


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
        deploy({"serviceType": "LoadBalancer", "basicAuth": "true", "tlsCertificateArn": CERT})
    assert not any("without authentication" in r.getMessage() for r in caplog.records)


def test_cors_allows_only_the_origin_users_open_the_ui_at(deploy, default_deployment: Deployment) -> None:
    assert not any(a.startswith("--cors-allowed-origins") for a in _args(default_deployment))
    d = deploy({"externalUrl": "https://mlflow.example.com:8443/"})
    assert _flag(_args(d), "cors-allowed-origins") == "https://mlflow.example.com:8443"
    d = deploy({"externalUrl": "https://mlflow.example.com"})
    assert _flag(_args(d), "cors-allowed-origins") == "https://mlflow.example.com"  # a browser omits :443
    d = deploy({"serviceType": "LoadBalancer", "basicAuth": "false"})
    assert _flag(_args(d), "cors-allowed-origins") == "http://mlflow-lb.elb.example.com:5000"


def test_an_exposed_server_with_basic_auth_and_no_tls_is_refused_at_preview(deploy) -> None:
    with pytest.raises(ConfigError, match=r"^config rapids-mlflow-stack:tlsCertificateArn: .*without TLS") as e:
        deploy({"serviceType": "LoadBalancer", "basicAuth": "true"})
    assert "\n" not in str(e.value) and "pulumi config set tlsCertificateArn arn:aws:acm:" in str(e.value)
    with pytest.raises(ConfigError, match=r"pulumi config set allowInsecureExposure true$"):
        deploy({"serviceType": "NodePort", "basicAuth": "true"})
    d = deploy(
        {
            "serviceType": "NodePort",
            "basicAuth": "true",
            "allowInsecureExposure": "true",
            "externalUrl": "http://10.0.0.5:30500",
        }
    )
    assert d.k8s_named("kubernetes:core/v1:Service", "rapids-mlflow-tracking").inputs["spec"]["type"] == "NodePort"


def test_tls_ends_at_the_nlb_with_the_acm_certificate_and_only_443_faces_out(deploy) -> None:
    d = deploy({"serviceType": "LoadBalancer", "basicAuth": "true", "tlsCertificateArn": CERT})
    public = d.k8s_named("kubernetes:core/v1:Service", "rapids-mlflow-tracking-public").inputs
    annotations = public["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == CERT
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] == "https"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-backend-protocol"] == "tcp"
    assert public["spec"]["type"] == "LoadBalancer"
    assert public["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "http"}]
    inside = d.k8s_named("kubernetes:core/v1:Service", "rapids-mlflow-tracking").inputs
    assert inside["spec"]["type"] == "ClusterIP"  # plain HTTP stays inside the cluster
    assert d.exports["tracking_uri"] == "https://mlflow-lb.elb.example.com"
    assert _flag(_args(d), "cors-allowed-origins") == "https://mlflow-lb.elb.example.com"
    assert "mlflow-lb.elb.example.com" in _flag(_args(d), "allowed-hosts").split(",")


@pytest.mark.parametrize("ranges", ["10.0.0.1/8", "not-a-cidr", "10.0.0.0/8,,"])
def test_bad_source_ranges_are_refused_in_one_line(deploy, ranges: str) -> None:
    with pytest.raises(ConfigError, match=r"^config rapids-mlflow-stack:loadBalancerSourceRanges: .*CIDR"):
        deploy({"serviceType": "LoadBalancer", "loadBalancerSourceRanges": ranges})


def test_source_ranges_limit_the_load_balancer(deploy) -> None:
    d = deploy({"serviceType": "LoadBalancer", "loadBalancerSourceRanges": "203.0.113.0/24, 2001:db8::/32"})
    spec = d.k8s_named("kubernetes:core/v1:Service", "rapids-mlflow-tracking-public").inputs["spec"]
    assert spec["loadBalancerSourceRanges"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert spec["externalTrafficPolicy"] == "Local"  # client addresses reach the NetworkPolicy
    with pytest.raises(ConfigError, match="serviceType: must be LoadBalancer"):
        deploy({"loadBalancerSourceRanges": "203.0.113.0/24"})
