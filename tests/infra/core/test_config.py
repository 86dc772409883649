"""Config: one validated object, secure defaults, and errors that say which command fixes them."""

from __future__ import annotations

import re

import pytest
import yaml
from mlflow_platform.core.config import PROJECT, ConfigError, StackConfig, parse
from mock_harness import REPO

REGION = {"aws:region": "us-east-1"}


@pytest.mark.parametrize(
    ("raw", "key", "command"),
    [
        ({}, "aws:region", "pulumi config set aws:region us-east-1"),
        ({**REGION, "s3Identity": "irsa"}, "irsaRoleArn", "pulumi config set irsaRoleArn arn:aws:iam::"),
        ({**REGION, "postgres": "external"}, "postgresExternalUri", "pulumi config set --secret postgresExternalUri"),
        ({**REGION, "namespace": "Not_A_Label"}, "namespace", "pulumi config set namespace"),
        ({**REGION, "namespace": "kube-system"}, "namespace", "pulumi config set namespace"),
        (
            {**REGION, "trackingImage": "ghcr.io/mlflow/mlflow:v3.16.0-full"},
            "trackingImage",
            "pulumi config set trackingImage",
        ),
        (
            {**REGION, "trackingImage": "ghcr.io/mlflow/mlflow:latest"},
            "trackingImage",
            "pulumi config set trackingImage",
        ),
        ({**REGION, "serviceType": "Ingress"}, "serviceType", "pulumi config set serviceType"),
        ({**REGION, "trainingGpus": "lots"}, "trainingGpus", "pulumi config set trainingGpus"),
        ({**REGION, "postgresStorageSize": "ten gigs"}, "postgresStorageSize", "pulumi config set postgresStorageSize"),
        (
            {**REGION, "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/abc"},
            "s3Encryption",
            "pulumi config set s3Encryption",
        ),
        ({**REGION, "externalUrl": "mlflow.example.com"}, "externalUrl", "pulumi config set externalUrl"),
        ({**REGION, "trainingRepositoryUri": "registry/airline:1"}, "trainingRepositoryUri", "pulumi config set"),
        # Values Kubernetes or AWS would reject (or never schedule) only after `pulumi up` has started.
        ({"aws:region": "us-mars-1"}, "aws:region", "pulumi config set aws:region us-east-1"),
        ({**REGION, "trainingCpu": "4Gi"}, "trainingCpu", "pulumi config set trainingCpu 4"),
        ({**REGION, "trainingCpu": "four"}, "trainingCpu", "pulumi config set trainingCpu 4"),
        ({**REGION, "trainingMemory": "500m"}, "trainingMemory", "pulumi config set trainingMemory 24Gi"),
        ({**REGION, "trainingShmSize": "32Gi"}, "trainingShmSize", "pulumi config set trainingShmSize 8Gi"),
        ({**REGION, "trainingMemory": "4Gi"}, "trainingShmSize", "pulumi config set trainingShmSize 8Gi"),
        ({**REGION, "postgresStorageSize": "512Mi"}, "postgresStorageSize", "pulumi config set postgresStorageSize"),
        ({**REGION, "postgresStorageSize": "17Ti"}, "postgresStorageSize", "pulumi config set postgresStorageSize"),
        (
            {**REGION, "clusterKind": "other"},
            "postgresStorageClass",
            "pulumi config set postgresStorageClass microk8s-hostpath",
        ),
        ({**REGION, "clusterKind": "gke"}, "clusterKind", "pulumi config set clusterKind"),
        ({**REGION, "gpuTaint": "nvidia.com/gpu=true"}, "gpuTaint", "pulumi config set gpuTaint nvidia.com/gpu="),
        # Serving: each mistake that would leave the endpoint pending, crash-looping or serving the wrong thing.
        ({**REGION, "serving": "true"}, "servingImageTag", "pulumi config set servingImageTag"),
        ({**REGION, "servingImageTag": "latest"}, "servingImageTag", "pulumi config set servingImageTag"),
        ({**REGION, "servingModel": "models:/airline-delay"}, "servingModel", "pulumi config set servingModel"),
        ({**REGION, "servingAlias": "v3"}, "servingAlias", "pulumi config set servingAlias champion"),
        ({**REGION, "servingAlias": "champ.ion"}, "servingAlias", "pulumi config set servingAlias champion"),
        ({**REGION, "servingReplicas": "0"}, "servingReplicas", "pulumi config set servingReplicas"),
        ({**REGION, "servingGpus": "-1"}, "servingGpus", "pulumi config set servingGpus"),
        ({**REGION, "servingCpu": "1Gi"}, "servingCpu", "pulumi config set servingCpu 1"),
        ({**REGION, "servingMemory": "lots"}, "servingMemory", "pulumi config set servingMemory 4Gi"),
        ({**REGION, "servingCpu": "4"}, "servingCpuLimit", "pulumi config set servingCpuLimit 2"),
        ({**REGION, "servingMemoryLimit": "2Gi"}, "servingMemoryLimit", "pulumi config set servingMemoryLimit 4Gi"),
        (
            {**REGION, "servingFollowSchedule": "every 2 minutes"},
            "servingFollowSchedule",
            "pulumi config set servingFollowSchedule '*/2 * * * *'",
        ),
    ],
)
def test_invalid_config_names_the_key_and_the_fixing_command(raw: dict, key: str, command: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(raw)
    assert error.value.key == key
    assert error.value.command.startswith(command)
    qualified = key if ":" in key else f"{PROJECT}:{key}"
    assert str(error.value).startswith(f"config {qualified}: ")
    assert command in str(error.value)


def test_the_program_fails_at_preview_on_bad_config(deploy) -> None:
    with pytest.raises(ConfigError, match=r"config rapids-mlflow-stack:irsaRoleArn: is required"):
        deploy({"s3Identity": "irsa"})


def test_defaults_are_the_secure_choices() -> None:
    cfg = parse(REGION)
    assert cfg.s3_identity == "iam-user" and cfg.s3_encryption == "sse-s3"
    assert cfg.bucket_force_destroy is False
    assert cfg.service_type == "ClusterIP"  # nothing exposed outside the cluster unless asked
    assert cfg.gpu_device_plugin is True and cfg.postgres == "in-cluster"


def _project_config() -> dict:
    return yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]


def test_pulumi_yaml_documents_every_key_with_the_code_default() -> None:
    declared = _project_config()
    fields = {f.alias: f for f in StackConfig.model_fields.values() if f.alias and ":" not in f.alias}
    fields.pop("stack")
    assert set(declared) == set(fields)
    for key, spec in declared.items():
        assert spec["type"] in {"string", "integer", "boolean"} and spec["description"], key
        # The CLI requires every declared key without a default, so optional keys default to "" (unset).
        default = fields[key].default
        assert spec["default"] == ("" if default is None else default), key


def test_project_file_uses_the_repository_venv_and_infra_program() -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT and project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert (REPO / project["main"] / "__main__.py").is_file()


def test_empty_optional_values_count_as_unset(deploy) -> None:
    """What the CLI passes for an optional key the stack does not set: its empty default."""
    d = deploy({"bucketName": "", "externalUrl": "", "postgresExternalUri": "", "trainingRepositoryUri": ""})
    assert d.exports["tracking_uri"] == "http://localhost:5000"
    assert "aws:ecr/repository:Repository" in d.types


def test_dev_stack_is_valid_and_holds_no_plain_secret() -> None:
    stack_file = (REPO / "Pulumi.dev.yaml").read_text()
    values = yaml.safe_load(stack_file)["config"]
    raw = {k.removeprefix(f"{PROJECT}:"): str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}
    assert parse(raw).namespace == "mlflow"
    for key, value in values.items():
        if re.search(r"password|secret|accesskey|token", key, re.IGNORECASE):
            assert isinstance(value, dict) and "secure" in value, key


def _as_cli_string(value: object) -> str:
    """How the CLI hands a YAML scalar to the program: booleans lower-case, everything as a string."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_dev_stack_previews_as_the_cli_would_merge_it(deploy) -> None:
    """Mirror the CLI's merge: a declared key with no default and no stack value fails preview; otherwise the
    project default fills in. Then the program must run on exactly that config."""
    declared = _project_config()
    stack = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    merged: dict[str, str] = {}
    for key, spec in declared.items():
        value = stack.get(f"{PROJECT}:{key}", spec.get("default"))
        assert value is not None, f"Stack 'dev' is missing configuration value '{key}'"
        merged[key] = _as_cli_string(value)
    merged.update({k: _as_cli_string(v) for k, v in stack.items() if not k.startswith(f"{PROJECT}:")})
    d = deploy(merged)
    assert d.exports["namespace"] == "mlflow" and d.exports["aws_region"] == "us-east-1"


@pytest.mark.parametrize(
    "raw",
    [
        {"trainingCpu": "500m", "trainingMemory": "2Gi", "trainingShmSize": "2Gi"},  # shm may use all of it
        {"trainingCpu": "0.5", "trainingMemory": "16e9", "trainingShmSize": "1G"},
        {"trainingMemory": "24576Mi", "postgresStorageSize": "1Gi"},
        {"clusterKind": "other", "postgresStorageClass": "microk8s-hostpath", "postgresStorageSize": "100Ti"},
        {"aws:region": "eu-central-2"},
        {"gpuTaint": "none"},
        {"serving": "true", "servingImageTag": "0a1b2c3", "servingGpus": "1", "servingCpu": "500m"},
        {"servingAlias": "challenger", "servingModel": "airline_delay.v2", "servingMemoryLimit": "8Gi"},
    ],
)
def test_sensible_values_in_every_kubernetes_spelling_are_accepted(raw: dict) -> None:
    parse({**REGION, **raw})


def test_every_region_the_provider_knows_is_accepted() -> None:
    import pulumi_aws

    for region in pulumi_aws.Region:
        assert parse({"aws:region": region.value}).aws_region == region.value


def test_a_size_error_is_one_line_naming_the_value(deploy) -> None:
    with pytest.raises(ConfigError) as error:
        deploy({"trainingShmSize": "32Gi"})
    message = str(error.value)
    assert "\n" not in message and "'32Gi'" in message and "trainingMemory (24Gi)" in message
