"""The bridge from `pulumi stack output --json` to `mlflow run --backend kubernetes`.

Uses a recorded stack-output file (`fixtures/stack_outputs.json`; `tests/infra/test_outputs.py` keeps it in
step with what the Pulumi program exports) and MLflow's own Kubernetes backend code to prove that the files
the bridge writes become a valid Job (`test_kubernetes_backend.py` then submits it to a stand-in API server),
and that the bridge needs no secret and writes or prints none, even when handed one.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from airline_hpo.cluster import bridge

from tests.mlflow_kube_job import job_mlflow_creates, job_template_from_backend_config

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stack_outputs.json"
TRAINER_DIR = Path(__file__).resolve().parents[3] / "trainer"
KUBERNETES_VERSION = "1.34"


@pytest.fixture
def outputs() -> dict:
    return json.loads(FIXTURE.read_text())


def test_cli_writes_backend_config_and_template_and_prints_the_run(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "k8s"
    assert bridge.main(["--stack-output", str(FIXTURE), "--out-dir", str(out_dir)]) == 0
    recorded = json.loads(FIXTURE.read_text())

    config = json.loads((out_dir / "k8s_config.json").read_text())
    template_path = (out_dir / "kube_job_template.yaml").resolve()
    assert config == {"kube-job-template-path": str(template_path), "repository-uri": recorded["repository_uri"]}
    assert yaml.safe_load(template_path.read_text()) == recorded["kube_job_template"]

    printed = capsys.readouterr().out.splitlines()
    assert "kubectl -n mlflow port-forward svc/rapids-mlflow-tracking 5000:5000 &" in printed
    assert "export MLFLOW_TRACKING_URI=http://localhost:5000" in printed
    assert "export KUBE_MLFLOW_TRACKING_URI=http://rapids-mlflow-tracking.mlflow.svc.cluster.local:5000" in printed
    run_line = printed[-1]
    assert shlex.split(run_line) == [
        "mlflow",
        "run",
        "trainer",
        "--backend",
        "kubernetes",
        "--backend-config",
        str(out_dir / "k8s_config.json"),
        "--build-image",
        "-e",
        "hyperopt",
        "-P",
        f"fpath={recorded['data_root']}/airline_small.parquet",
    ]


def test_kube_context_and_extra_params_reach_config_and_command(outputs: dict, tmp_path: Path) -> None:
    outputs["kube_context"] = "microk8s"
    files = bridge.write_backend_files(outputs, tmp_path, params=["max_evals=50", "fpath=s3://b/d.parquet"])
    assert json.loads(files.config_path.read_text())["kube-context"] == "microk8s"
    argv = shlex.split(files.commands[-1])
    assert argv[-4:] == ["-P", "max_evals=50", "-P", "fpath=s3://b/d.parquet"]


def test_stack_outputs_can_come_from_stdin(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(FIXTURE.read_text()))
    assert bridge.main(["--stack-output", "-", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "k8s_config.json").is_file()


@pytest.mark.parametrize("missing", ["repository_uri", "kube_job_template", "kube_mlflow_tracking_uri"])
def test_a_missing_output_is_a_one_line_error_naming_it(outputs: dict, tmp_path: Path, missing: str) -> None:
    del outputs[missing]
    source = tmp_path / "outputs.json"
    source.write_text(json.dumps(outputs))
    result = subprocess.run(
        [sys.executable, "-m", "airline_hpo.cluster.bridge", "--stack-output", str(source), "--out-dir", str(tmp_path)],
        cwd=TRAINER_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"stack output '{missing}' is missing" in result.stderr
    # the advice pipes the outputs in, and never says to write them (and the admin password) to a file
    assert "pulumi stack output --json | " in result.stderr and "--show-secrets >" not in result.stderr
    assert not (tmp_path / "k8s_config.json").exists()


def test_template_without_namespace_is_refused(outputs: dict, tmp_path: Path) -> None:
    del outputs["kube_job_template"]["metadata"]["namespace"]
    with pytest.raises(bridge.TrainerError, match=r"metadata\.namespace"):
        bridge.write_backend_files(outputs, tmp_path)


def test_mlflow_turns_the_written_files_into_a_valid_job(outputs: dict, tmp_path: Path, monkeypatch) -> None:
    files = bridge.write_backend_files(outputs, tmp_path)
    # MLflow's own loader, exactly as `mlflow run --backend-config k8s_config.json` calls it.
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", outputs["kube_mlflow_tracking_uri"])
    job = job_mlflow_creates(
        job_template_from_backend_config(files.config_path),
        outputs["repository_uri"] + ":5d41402",
        ["python -m airline_hpo.search --fpath s3://b/d.parquet --max-evals 20"],
    )

    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    assert job["metadata"]["name"].startswith("airline-hpo-") and job["metadata"]["namespace"] == "mlflow"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "airline-hpo"
    assert container["image"].startswith(outputs["repository_uri"] + ":5d41402@sha256:")
    assert container["command"][:3] == ["python", "-m", "airline_hpo.search"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == outputs["kube_mlflow_tracking_uri"]
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "rapids-mlflow-s3-credentials"
    assert env["PYTHONUNBUFFERED"]["value"] == "1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert job["spec"]["backoffLimit"] == 0


# --- no secret on disk ------------------------------------------------------------------------------------------

PASSWORD = "Zq8-not-a-real-admin-password-41x"


def _bridge_cli(outputs: dict, out_dir: Path) -> subprocess.CompletedProcess[str]:
    """`pulumi stack output --json | python -m airline_hpo.cluster.bridge --out-dir DIR`, as the README runs it."""
    return subprocess.run(
        [sys.executable, "-m", "airline_hpo.cluster.bridge", "--out-dir", str(out_dir)],
        cwd=TRAINER_DIR,
        input=json.dumps(outputs, indent=4),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _written(out_dir: Path) -> str:
    return "".join(path.read_text() for path in sorted(out_dir.rglob("*")) if path.is_file())


def test_masked_secret_outputs_on_stdin_are_enough_and_none_is_written_or_printed(
    outputs: dict, tmp_path: Path
) -> None:
    """With basic-auth, `pulumi stack output --json` (no --show-secrets) masks the password as "[secret]"."""
    outputs.update(tracking_username="admin", tracking_password="[secret]")
    result = _bridge_cli(outputs, tmp_path / "k8s")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "[secret]" not in _written(tmp_path / "k8s") + result.stdout
    printed = result.stdout.splitlines()
    assert "export MLFLOW_TRACKING_USERNAME=admin" in printed
    assert 'export MLFLOW_TRACKING_PASSWORD="$(pulumi stack output tracking_password --show-secrets)"' in printed


def test_printed_credential_lines_put_the_password_in_the_environment_only(outputs: dict, tmp_path: Path) -> None:
    """Run the printed lines in bash, with a stand-in `pulumi` that answers as the CLI does for a secret output."""
    outputs.update(tracking_username="[secret]", tracking_password="[secret]")
    files = bridge.write_backend_files(outputs, tmp_path / "k8s")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    pulumi = fake_bin / "pulumi"
    pulumi.write_text(
        "#!/bin/sh\n"
        'test "$1 $2 $4" = "stack output --show-secrets" || exit 3\n'
        f'case "$3" in tracking_username) echo admin ;; tracking_password) echo {PASSWORD} ;; *) exit 4 ;; esac\n'
    )
    pulumi.chmod(0o755)
    exports = [line for line in files.commands if line.startswith("export MLFLOW_TRACKING_")]
    script = "\n".join([*exports, 'printf "%s:%s" "$MLFLOW_TRACKING_USERNAME" "$MLFLOW_TRACKING_PASSWORD"'])
    before = {p for p in tmp_path.rglob("*")}
    shell = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == f"admin:{PASSWORD}"
    assert {p for p in tmp_path.rglob("*")} == before
    assert PASSWORD not in "\n".join(files.commands) + _written(tmp_path / "k8s")


def test_plain_secrets_from_show_secrets_are_neither_written_nor_printed(outputs: dict, tmp_path: Path) -> None:
    outputs.update(tracking_username="admin", tracking_password=PASSWORD)
    result = _bridge_cli(outputs, tmp_path / "k8s")
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in _written(tmp_path / "k8s") + result.stdout + result.stderr
    assert result.stderr.count("\n") == 1
    assert "'tracking_password' in plain text" in result.stderr and "without --show-secrets" in result.stderr


@pytest.mark.parametrize("key", ["repository_uri", "kube_job_template", "data_root", "kube_context"])
def test_an_output_the_bridge_needs_that_arrives_masked_is_a_one_line_error(
    outputs: dict, tmp_path: Path, key: str
) -> None:
    outputs[key] = "[secret]"
    result = _bridge_cli(outputs, tmp_path / "k8s")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"stack output '{key}' is marked secret" in result.stderr
    assert not (tmp_path / "k8s" / "k8s_config.json").exists()


def test_a_template_with_a_literal_credential_is_refused_before_anything_is_written(
    outputs: dict, tmp_path: Path
) -> None:
    container = outputs["kube_job_template"]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "MLFLOW_TRACKING_PASSWORD", "value": PASSWORD})
    result = _bridge_cli(outputs, tmp_path / "k8s")
    assert result.returncode == 2
    assert "sets MLFLOW_TRACKING_PASSWORD as a literal value" in result.stderr
    assert PASSWORD not in result.stderr
    assert not (tmp_path / "k8s").exists() or _written(tmp_path / "k8s") == ""
