"""The bridge from `pulumi stack output --json` to `mlflow run --backend kubernetes`.

Uses a recorded stack-output file (`fixtures/stack_outputs.json`; `tests/infra/test_outputs.py` keeps it in
step with what the Pulumi program exports) and MLflow's own Kubernetes backend code to prove that the files
the bridge writes become a valid Job.
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
from airline_hpo import kube_backend
from mlflow.projects import _parse_kubernetes_config
from mlflow.projects.kubernetes import _get_kubernetes_job_definition, _get_run_command

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stack_outputs.json"
TRAINER_DIR = Path(__file__).resolve().parents[2] / "trainer"
KUBERNETES_VERSION = "1.34"


@pytest.fixture
def outputs() -> dict:
    return json.loads(FIXTURE.read_text())


def test_cli_writes_backend_config_and_template_and_prints_the_run(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "k8s"
    assert kube_backend.main(["--stack-output", str(FIXTURE), "--out-dir", str(out_dir)]) == 0
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
    files = kube_backend.write_backend_files(outputs, tmp_path, params=["max_evals=50", "fpath=s3://b/d.parquet"])
    assert json.loads(files.config_path.read_text())["kube-context"] == "microk8s"
    argv = shlex.split(files.commands[-1])
    assert argv[-4:] == ["-P", "max_evals=50", "-P", "fpath=s3://b/d.parquet"]


def test_stack_outputs_can_come_from_stdin(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(FIXTURE.read_text()))
    assert kube_backend.main(["--stack-output", "-", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "k8s_config.json").is_file()


@pytest.mark.parametrize("missing", ["repository_uri", "kube_job_template", "kube_mlflow_tracking_uri"])
def test_a_missing_output_is_a_one_line_error_naming_it(outputs: dict, tmp_path: Path, missing: str) -> None:
    del outputs[missing]
    source = tmp_path / "outputs.json"
    source.write_text(json.dumps(outputs))
    result = subprocess.run(
        [sys.executable, "-m", "airline_hpo.kube_backend", "--stack-output", str(source), "--out-dir", str(tmp_path)],
        cwd=TRAINER_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"stack output '{missing}' is missing" in result.stderr
    assert not (tmp_path / "k8s_config.json").exists()


def test_template_without_namespace_is_refused(outputs: dict, tmp_path: Path) -> None:
    del outputs["kube_job_template"]["metadata"]["namespace"]
    with pytest.raises(kube_backend.TrainerError, match=r"metadata\.namespace"):
        kube_backend.write_backend_files(outputs, tmp_path)


def test_mlflow_turns_the_written_files_into_a_valid_job(outputs: dict, tmp_path: Path, monkeypatch) -> None:
    files = kube_backend.write_backend_files(outputs, tmp_path)
    # MLflow's own loader, exactly as `mlflow run --backend-config k8s_config.json` calls it.
    kube_config = _parse_kubernetes_config(json.loads(files.config_path.read_text()))
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", outputs["kube_mlflow_tracking_uri"])
    job = _get_kubernetes_job_definition(
        project_name="airline-hpo",
        image_tag=outputs["repository_uri"] + ":5d41402",
        image_digest="sha256:" + "0" * 64,
        command=_get_run_command(["python -m airline_hpo.search --fpath s3://b/d.parquet --max-evals 20"]),
        env_vars={
            "MLFLOW_RUN_ID": "abc123",
            "MLFLOW_TRACKING_URI": "http://localhost:5000",
            "MLFLOW_EXPERIMENT_ID": "1",
        },
        job_template=kube_config["kube-job-template"],
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
