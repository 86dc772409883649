"""The bridge with the stack's Ray cluster: the program's real outputs become a driver Job and an `executor=ray` line.

The outputs are the program's own exports (run under Pulumi's mocks) passed through JSON as `pulumi stack output
--json` prints them; MLflow's own Kubernetes backend code turns the written files into the Job it would submit.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import kubernetes_validate
import pytest
from airline_hpo.cluster import bridge
from mock_harness import KUBERNETES_VERSION, Deployment

from tests.mlflow_kube_job import job_mlflow_creates, job_template_from_backend_config

RAY = {"ray": "true", "rayImageTag": "0a1b2c3", "rayMaxWorkers": "4", "rayWorkerGpus": "2"}


def _printed(d: Deployment) -> dict:
    """`pulumi stack output --json` without --show-secrets: secret outputs masked, everything through JSON."""
    return json.loads(json.dumps({k: bridge.SECRET_MASK if k in d.secret_exports else v for k, v in d.exports.items()}))


@pytest.fixture(scope="module")
def ray_outputs() -> dict:
    from mock_harness import run_program

    return _printed(run_program({**RAY, "basicAuth": "true"}))


def test_the_bridge_writes_the_driver_template_and_prints_the_ray_run_line(ray_outputs: dict, tmp_path: Path) -> None:
    files = bridge.write_backend_files(ray_outputs, tmp_path)
    assert files.ray_config_path == tmp_path / "k8s_config_ray.json"
    config = json.loads(files.ray_config_path.read_text())
    assert config["repository-uri"] == ray_outputs["repository_uri"]
    template = Path(config["kube-job-template-path"])
    assert template == (tmp_path / "kube_ray_driver_template.yaml").resolve()
    # The GPU search's files are unchanged beside it.
    assert json.loads(files.config_path.read_text())["kube-job-template-path"].endswith("kube_job_template.yaml")

    argv = shlex.split(files.ray_command or "")
    assert argv[:8] == [
        "mlflow",
        "run",
        "trainer",
        "--backend",
        "kubernetes",
        "--backend-config",
        str(files.ray_config_path),
        "--build-image",
    ]
    params = [argv[i + 1] for i, a in enumerate(argv) if a == "-P"]
    assert params == [
        f"fpath={ray_outputs['data_root']}/airline_small.parquet",
        "executor=ray",
        "parallelism=8",  # 4 workers at most, 2 GPUs each, one trial per GPU
        # One GPU a trial, so engine=auto picks cuML and the GPU workers' GPUs do the work (issue 14, item 2).
        "gpus_per_trial=1",
        # Tune's state where the stack's identity may write it (issue 14, item 1).
        f"ray_storage={ray_outputs['ray_storage']}",
    ]
    assert ray_outputs["ray_storage"].endswith("/ray-tune")


def test_a_parallelism_given_by_the_user_wins(ray_outputs: dict, tmp_path: Path) -> None:
    files = bridge.write_backend_files(ray_outputs, tmp_path, params=["parallelism=3", "max_evals=40"])
    params = [p for p in shlex.split(files.ray_command or "") if "=" in p]
    assert "parallelism=3" in params and "parallelism=8" not in params and "executor=ray" in params


def test_mlflow_turns_the_driver_files_into_a_gpu_less_job_that_reaches_ray(
    ray_outputs: dict, tmp_path: Path, monkeypatch
) -> None:
    files = bridge.write_backend_files(ray_outputs, tmp_path)
    assert files.ray_config_path is not None
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", ray_outputs["kube_mlflow_tracking_uri"])
    job = job_mlflow_creates(
        job_template_from_backend_config(files.ray_config_path),
        ray_outputs["repository_uri"] + ":0a1b2c3",
        ["python -m airline_hpo.search --executor ray --parallelism 8"],
    )
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"] and "tolerations" not in pod
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_ADDRESS"]["value"] == ray_outputs["ray_address"]
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "rapids-mlflow-ray-auth", "key": "auth_token"}
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "rapids-mlflow-training-auth"


def test_no_secret_reaches_a_file_or_a_line(deploy, tmp_path: Path) -> None:
    d = deploy({**RAY, "basicAuth": "true"})
    token = d.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-ray-auth").inputs["stringData"]["auth_token"]
    password = d.exports["tracking_password"]
    for name, outputs in (("masked", _printed(d)), ("shown", json.loads(json.dumps(d.exports)))):
        files = bridge.write_backend_files(outputs, tmp_path / name)
        written = "".join(p.read_text() for p in sorted((tmp_path / name).iterdir()))
        text = written + "\n".join([*files.commands, files.ray_command or ""])
        assert token not in text and password not in text and bridge.SECRET_MASK not in text


def test_without_ray_the_bridge_writes_only_the_gpu_search_files(
    default_deployment: Deployment, tmp_path: Path
) -> None:
    files = bridge.write_backend_files(_printed(default_deployment), tmp_path)
    assert files.ray_command is None and files.ray_config_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k8s_config.json", "kube_job_template.yaml"]


def test_half_the_ray_outputs_is_an_error_naming_the_missing_one(ray_outputs: dict, tmp_path: Path) -> None:
    outputs = {k: v for k, v in ray_outputs.items() if k != "ray_address"}
    with pytest.raises(bridge.TrainerError, match="stack output 'ray_address' is missing"):
        bridge.write_backend_files(outputs, tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_cli_prints_the_ray_line_and_warns_when_the_workers_run_other_code(
    ray_outputs: dict, tmp_path: Path, capsys, monkeypatch
) -> None:
    source = tmp_path / "outputs.json"
    source.write_text(json.dumps(ray_outputs))
    monkeypatch.setattr(bridge, "_git_commit", lambda _: "feedbee" + "0" * 33)
    assert bridge.main(["--stack-output", str(source), "--out-dir", str(tmp_path / "k8s")]) == 0
    out, err = capsys.readouterr()
    assert "-P executor=ray -P parallelism=8 -P gpus_per_trial=1 -P ray_storage=s3://" in out.splitlines()[-1]
    assert f"the Ray workers run {ray_outputs['repository_uri']}:0a1b2c3" in err
    assert "pulumi config set rayImageTag feedbee && pulumi up" in err
    assert bridge.ray_image_note(ray_outputs, "0a1b2c3" + "9" * 33) is None  # same commit: nothing to say
