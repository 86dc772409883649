"""The job template `mlflow run --backend kubernetes` fills in: what it must carry for the Job to work."""

from __future__ import annotations

from mock_harness import Deployment
from toleration_matching import tolerated_by


def _pod(d: Deployment) -> dict:
    return d.exports["kube_job_template"]["spec"]["template"]["spec"]


def test_template_requests_a_gpu_and_tolerates_the_gpu_taint(default_deployment: Deployment) -> None:
    pod = _pod(default_deployment)
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    # The default `gpuTaint`; every value is covered in test_gpu_taint.py with Kubernetes' matching rules.
    assert tolerated_by(pod["tolerations"], {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})


def test_template_runs_once_is_cleaned_up_and_runs_as_the_training_account(default_deployment: Deployment) -> None:
    template = default_deployment.exports["kube_job_template"]
    assert template["metadata"]["namespace"] == "mlflow"  # MLflow reads the namespace from here
    assert template["spec"]["backoffLimit"] == 0
    assert template["spec"]["ttlSecondsAfterFinished"] == 86400
    pod = template["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == default_deployment.exports["training_service_account"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False  # trials cannot use the account's Job-creating Role
    assert pod["securityContext"]["runAsUser"] == 1001  # rapidsai/base's `rapids` user


def test_credentials_are_referenced_never_inlined(default_deployment: Deployment) -> None:
    env = {e["name"]: e for e in _pod(default_deployment)["containers"][0]["env"]}
    assert env["PYTHONUNBUFFERED"]["value"] == "1"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[var] == {
            "name": var,
            "valueFrom": {"secretKeyRef": {"name": "rapids-mlflow-s3-credentials", "key": var}},
        }
    assert "MLFLOW_TRACKING_PASSWORD" not in env


def test_basic_auth_gives_jobs_the_training_users_credentials_by_reference(deploy) -> None:
    env = {e["name"]: e for e in _pod(deploy({"basicAuth": "true"}))["containers"][0]["env"]}
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "rapids-mlflow-training-auth", "key": var}


def test_cpu_only_template_has_no_gpu_limit_or_toleration(deploy) -> None:
    pod = _pod(deploy({"trainingGpus": "0"}))
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in pod


def test_template_is_not_secret_and_holds_no_secret_values(default_deployment: Deployment) -> None:
    assert "kube_job_template" not in default_deployment.secret_exports
    text = repr(default_deployment.exports["kube_job_template"])
    assert "mock-secret-access-key-value" not in text and "pppp" not in text


def test_training_pods_accept_no_connections(default_deployment: Deployment) -> None:
    """A NetworkPolicy selects the pods MLflow creates from the template (it keeps the template's labels) and
    allows no ingress; the database's policy does not select them."""
    pod_labels = default_deployment.exports["kube_job_template"]["spec"]["template"]["metadata"]["labels"]
    selecting = [
        r.inputs["spec"]
        for r in default_deployment.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.inputs["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    ]
    assert len(selecting) == 1
    assert selecting[0]["policyTypes"] == ["Ingress"] and not selecting[0].get("ingress")
