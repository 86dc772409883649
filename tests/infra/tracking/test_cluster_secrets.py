"""Secrets: generated, marked secret, and referenced by name, never copied into pods."""

from __future__ import annotations

import configparser

from mock_harness import Deployment, is_wire_secret


def test_database_secret_holds_generated_password_and_psycopg2_uri(default_deployment: Deployment) -> None:
    secret = default_deployment.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-db-credentials")
    assert is_wire_secret(secret.wire_inputs["stringData"])
    data = secret.inputs["stringData"]
    password = default_deployment.one("random:index/randomPassword:RandomPassword", "db-password")
    assert password.inputs["length"] == 32 and password.inputs["special"] is False
    assert data["POSTGRES_PASSWORD"] == password.outputs["result"]
    assert data["MLFLOW_BACKEND_STORE_URI"] == (
        f"postgresql+psycopg2://mlflow:{data['POSTGRES_PASSWORD']}"
        "@rapids-mlflow-postgres.mlflow.svc.cluster.local:5432/mlflow"
    )


def test_no_configmap_and_no_unmarked_secret_output(default_deployment: Deployment) -> None:
    assert not default_deployment.of_type("kubernetes:core/v1:ConfigMap")
    for secret in default_deployment.of_type("kubernetes:core/v1:Secret"):
        assert is_wire_secret(secret.wire_inputs["stringData"]), secret.name
        assert {"data", "stringData"} <= set(secret.additional_secret_outputs)


def test_basic_auth_generates_admin_credentials_and_auth_config(deploy) -> None:
    d = deploy({"basicAuth": "true"})
    secret = d.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-tracking-auth")
    assert is_wire_secret(secret.wire_inputs["stringData"])
    data = secret.inputs["stringData"]
    assert len(data["MLFLOW_AUTH_ADMIN_PASSWORD"]) >= 12  # MLflow refuses shorter admin passwords
    assert "MLFLOW_TRACKING_PASSWORD" not in data  # the admin's password is for the server, not for Jobs
    assert data["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    ini = configparser.ConfigParser()
    ini.read_string(data["basic_auth.ini"])
    db_uri = d.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-db-credentials").inputs["stringData"][
        "MLFLOW_BACKEND_STORE_URI"
    ]
    assert ini["mlflow"]["database_uri"] == db_uri
    assert ini["mlflow"]["admin_username"] == "admin"
    assert ini["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    # a successful login check is cached for a minute (MLflow 3.17's option), or every request pays scrypt
    assert ini["mlflow"]["auth_cache_ttl_seconds"] == "60"
    assert "tracking_password" in d.secret_exports
    assert d.exports["tracking_password"] == data["MLFLOW_AUTH_ADMIN_PASSWORD"]


def test_training_jobs_get_their_own_generated_user_in_their_own_secret(deploy) -> None:
    d = deploy({"basicAuth": "true"})
    training = d.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-training-auth")
    assert is_wire_secret(training.wire_inputs["stringData"])
    data = training.inputs["stringData"]
    assert data["MLFLOW_TRACKING_USERNAME"] == "training"
    password = d.one("random:index/randomPassword:RandomPassword", "training-password")
    assert data["MLFLOW_TRACKING_PASSWORD"] == password.outputs["result"] and password.inputs["length"] >= 12
    assert not deploy({}).of_type("random:index/randomPassword:RandomPassword")[1:]  # only the database's
