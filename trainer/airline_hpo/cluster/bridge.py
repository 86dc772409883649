"""Bridge from the infra stack's outputs to `mlflow run --backend kubernetes`.

    pulumi stack output --json | python -m airline_hpo.cluster.bridge --out-dir build/k8s

reads the stack outputs from stdin (or `--stack-output FILE`), writes `k8s_config.json` (MLflow's backend
config: `kube-context`, `kube-job-template-path`, `repository-uri`) and `kube_job_template.yaml` (the Job
template the stack built: GPU limit, S3 credentials by Secret reference, ServiceAccount, TTL), then prints
the exact commands to run. Nothing is edited by hand, which is where the seed went wrong: its template and
credentials were pasted into files and `kubectl`.

No secret is needed, read, printed or written. Without `--show-secrets`, Pulumi prints each secret output as
"[secret]"; nothing the bridge writes comes from one (the template refers to credentials by Secret name, and a
template with a literal credential is refused). With basic-auth, the printed lines fetch the password into the
shell's environment when they run (`pulumi stack output tracking_password --show-secrets`), never into a file.

Why the printed commands look the way they do:
- `--build-image`: MLflow copies the project into a new image on top of `docker_env.image` and pushes it to
  `repository-uri`; without it the Job would run the bare base image, without this project's code.
- `KUBE_MLFLOW_TRACKING_URI`: the Job must reach the server by its in-cluster Service name, while the
  submitting machine uses the address it can reach (port-forward, load balancer or external URL).
- MLflow does not pass `docker_env` variables or volumes to the Job: everything the Job needs is already in
  the template, so no `-A`/`docker_args` are needed.

With the stack's Ray cluster (`pulumi config set ray true`), the bridge also writes `k8s_config_ray.json` and
`kube_ray_driver_template.yaml` (the stack's driver template: no GPU, `RAY_ADDRESS` and the Ray token by Secret
reference) and prints a second run line,
`-P executor=ray -P parallelism=N -P gpus_per_trial=1 -P ray_storage=...`, N being as many trials as the worker
group holds GPUs at its maximum size, one GPU a trial (so `engine=auto` picks cuML and the GPU workers' GPUs are
used), and Tune's state under the prefix the stack's identity may write
(`ray_storage` output, `rayStatePrefix`). The Ray workers run the image tag the stack was given (`rayImageTag`); when
that differs from the commit `--build-image` would push from this checkout, a note says so, because the trials
would run other code than the driver.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airline_hpo.errors import OneLineParser, TrainerError, run_cli

CONFIG_FILE = "k8s_config.json"
TEMPLATE_FILE = "kube_job_template.yaml"
RAY_CONFIG_FILE = "k8s_config_ray.json"
RAY_TEMPLATE_FILE = "kube_ray_driver_template.yaml"
# Outputs the program exports only with `ray: true`; all or none of them must be present.
RAY_OUTPUTS = ("kube_ray_driver_template", "ray_address", "ray_max_workers", "ray_worker_gpus", "ray_image")
DATASET_FILE = "airline_small.parquet"
REQUIRED_OUTPUTS = (
    "kube_job_template",
    "repository_uri",
    "kube_mlflow_tracking_uri",
    "tracking_uri",
    "namespace",
)
SECRET_MASK = "[secret]"  # how `pulumi stack output --json` prints a secret output without --show-secrets
# Outputs the printed lines turn into environment variables, and whether each one is a secret.
CREDENTIAL_OUTPUTS = (
    ("tracking_username", "MLFLOW_TRACKING_USERNAME", False),
    ("tracking_password", "MLFLOW_TRACKING_PASSWORD", True),
)
# Env names that must never be a literal value in a Job template (they arrive by secretKeyRef).
_CREDENTIAL_ENV = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", re.IGNORECASE)
_HOW_TO_GET_OUTPUTS = (
    "pipe them in after `pulumi up`: `pulumi stack output --json | python -m airline_hpo.cluster.bridge "
    "--out-dir build/k8s` (without --show-secrets: the bridge needs no secret)"
)


@dataclass(frozen=True)
class BackendFiles:
    """What the bridge produced, and the commands that use it."""

    config_path: Path
    template_path: Path
    commands: list[str]
    # With the stack's Ray cluster: its backend config and the line that runs the search there.
    ray_config_path: Path | None = None
    ray_command: str | None = None


def read_stack_outputs(source: str) -> dict[str, Any]:
    """Load `pulumi stack output --json` from a file path, or from stdin when `source` is '-'."""
    if source == "-" and sys.stdin.isatty():
        raise TrainerError("no stack outputs on stdin", _HOW_TO_GET_OUTPUTS)
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise TrainerError(f"cannot read stack outputs from {source} ({exc.strerror})", _HOW_TO_GET_OUTPUTS) from None
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrainerError(f"stack outputs in {source} are not JSON ({exc.msg})", _HOW_TO_GET_OUTPUTS) from None
    if not isinstance(outputs, dict):
        raise TrainerError(f"stack outputs in {source} are not a JSON object", _HOW_TO_GET_OUTPUTS)
    return outputs


def _require(outputs: Mapping[str, Any], key: str) -> Any:
    value = outputs.get(key)
    if value in (None, "", {}):
        raise TrainerError(
            f"stack output '{key}' is missing",
            "run `pulumi up` with this repository's infra program, then " + _HOW_TO_GET_OUTPUTS,
        )
    return _optional(outputs, key)


def _optional(outputs: Mapping[str, Any], key: str) -> Any:
    """An output the bridge uses: a masked secret cannot be used and must not be, so it is an error."""
    value = outputs.get(key)
    if value == SECRET_MASK:
        raise TrainerError(
            f"stack output '{key}' is marked secret, so Pulumi prints it as {SECRET_MASK}",
            "it holds no secret: the program must export it without pulumi.secret (then re-run `pulumi up`)",
        )
    return value


def _refuse_literal_credentials(template: Mapping[str, Any]) -> None:
    """A credential written into the template would land in a file and in the Job's spec: refuse it."""
    for container in template["spec"]["template"]["spec"]["containers"]:
        for env in container.get("env") or []:
            if "value" in env and _CREDENTIAL_ENV.search(str(env.get("name", ""))):
                raise TrainerError(
                    f"stack output 'kube_job_template' sets {env['name']} as a literal value",
                    "credentials must reach the Job by secretKeyRef; fix the job template in the infra program",
                )


def holds_plain_secrets(outputs: Mapping[str, Any]) -> list[str]:
    """Names of secret outputs that arrived in plain text (the user ran `--show-secrets`)."""
    return [key for key, _, secret in CREDENTIAL_OUTPUTS if secret and outputs.get(key) not in (None, "", SECRET_MASK)]


def _check_template(template: Any) -> dict[str, Any]:
    """The checks MLflow would otherwise fail on with a KeyError deep inside the run."""
    if not isinstance(template, dict) or template.get("kind") != "Job":
        raise TrainerError("stack output 'kube_job_template' is not a Kubernetes Job", _HOW_TO_GET_OUTPUTS)
    if not (template.get("metadata") or {}).get("namespace"):
        raise TrainerError(
            "stack output 'kube_job_template' has no metadata.namespace (MLflow creates the Job there)",
            "re-run `pulumi up` with this repository's infra program",
        )
    containers = (((template.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    if not containers:
        raise TrainerError("stack output 'kube_job_template' has no container", "re-run `pulumi up`")
    _refuse_literal_credentials(template)
    return template


def _credential_exports(outputs: Mapping[str, Any]) -> list[str]:
    """With basic-auth: the lines that put the MLflow credentials into the shell's environment.

    A secret (or a value Pulumi masked) is fetched by the line itself when the user runs it, so its value is
    neither printed here nor written anywhere.
    """
    if not any(outputs.get(key) for key, _, _ in CREDENTIAL_OUTPUTS):
        return []
    lines = []
    for key, variable, secret in CREDENTIAL_OUTPUTS:
        value = outputs.get(key)
        if secret or value == SECRET_MASK:
            lines.append(f'export {variable}="$(pulumi stack output {key} --show-secrets)"')
        elif value:
            lines.append(f"export {variable}={shlex.quote(str(value))}")
    return lines


def mlflow_run_commands(
    outputs: Mapping[str, Any],
    config_path: Path,
    project_dir: str = "trainer",
    entry_point: str = "hyperopt",
    params: Sequence[str] = (),
) -> list[str]:
    """The shell lines that submit `entry_point` as a Kubernetes Job, in order."""
    lines: list[str] = []
    tracking_uri = str(_require(outputs, "tracking_uri"))
    if "localhost" in tracking_uri and _optional(outputs, "port_forward_command"):
        lines.append(f"{outputs['port_forward_command']} &")
    lines.append(f"export MLFLOW_TRACKING_URI={shlex.quote(tracking_uri)}")
    lines.append(f"export KUBE_MLFLOW_TRACKING_URI={shlex.quote(str(_require(outputs, 'kube_mlflow_tracking_uri')))}")
    lines += _credential_exports(outputs)
    all_params = list(params)
    if (
        entry_point == "hyperopt"
        and not any(p.startswith("fpath=") for p in all_params)
        and _optional(outputs, "data_root")
    ):
        all_params.insert(0, f"fpath={outputs['data_root']}/{DATASET_FILE}")
    command = [
        "mlflow",
        "run",
        project_dir,
        "--backend",
        "kubernetes",
        "--backend-config",
        str(config_path),
        "--build-image",
        "-e",
        entry_point,
    ]
    for param in all_params:
        command += ["-P", param]
    lines.append(shlex.join(command))
    return lines


def write_backend_files(
    outputs: Mapping[str, Any],
    out_dir: Path,
    entry_point: str = "hyperopt",
    params: Sequence[str] = (),
) -> BackendFiles:
    """Write MLflow's backend config and the job template into `out_dir`; return the commands to run.

    Every output is checked (and the commands built) before the first file is written: a refused input leaves
    nothing behind.
    """
    for key in REQUIRED_OUTPUTS:
        _require(outputs, key)
    template = _check_template(outputs["kube_job_template"])
    template_path = (out_dir / TEMPLATE_FILE).resolve()
    config_path = out_dir / CONFIG_FILE
    backend_config: dict[str, str] = {
        "kube-job-template-path": str(template_path),
        "repository-uri": str(outputs["repository_uri"]),
    }
    if _optional(outputs, "kube_context"):
        backend_config["kube-context"] = str(outputs["kube_context"])
    commands = mlflow_run_commands(outputs, config_path, entry_point=entry_point, params=params)
    ray = _ray_files(outputs, out_dir, backend_config, entry_point, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    template_path.write_text(yaml.safe_dump(template, sort_keys=False))
    config_path.write_text(json.dumps(backend_config, indent=2) + "\n")
    if ray is None:
        return BackendFiles(config_path, template_path, commands)
    ray_template, ray_config_path, ray_config, ray_command = ray
    Path(ray_config["kube-job-template-path"]).write_text(yaml.safe_dump(ray_template, sort_keys=False))
    ray_config_path.write_text(json.dumps(ray_config, indent=2) + "\n")
    return BackendFiles(config_path, template_path, commands, ray_config_path, ray_command)


def ray_parallelism(outputs: Mapping[str, Any]) -> int:
    """Trials in flight when the worker group is at its maximum: one per GPU (one per worker on CPU workers)."""
    return int(outputs["ray_max_workers"]) * max(int(outputs["ray_worker_gpus"]), 1)


def _ray_files(
    outputs: Mapping[str, Any],
    out_dir: Path,
    backend_config: Mapping[str, str],
    entry_point: str,
    params: Sequence[str],
) -> tuple[dict[str, Any], Path, dict[str, str], str] | None:
    """The driver template, its backend config and the `executor=ray` run line; None without a Ray cluster."""
    present = [key for key in RAY_OUTPUTS if outputs.get(key) not in (None, "", {})]
    if not present:
        return None
    for key in RAY_OUTPUTS:
        _require(outputs, key)
    template = _check_template(outputs["kube_ray_driver_template"])
    config_path = out_dir / RAY_CONFIG_FILE
    config = {**backend_config, "kube-job-template-path": str((out_dir / RAY_TEMPLATE_FILE).resolve())}
    ray_params = [*params]
    defaults = [("executor", "ray"), ("parallelism", str(ray_parallelism(outputs)))]
    # One GPU a trial on GPU workers: without it `engine=auto` picks scikit-learn with 0 GPUs, and the workers the
    # autoscaler starts for the queued trials (the head offers no CPUs) hold GPUs no trial uses.
    defaults.append(("gpus_per_trial", "1" if int(outputs["ray_worker_gpus"]) > 0 else "0"))
    if _optional(outputs, "ray_storage"):
        # Tune's state goes where the stack's identity may write it (`rayStatePrefix`), not to the trainer's default.
        defaults.append(("ray_storage", str(outputs["ray_storage"])))
    for name, value in defaults:
        if not any(p.startswith(f"{name}=") for p in ray_params):
            ray_params.append(f"{name}={value}")
    line = mlflow_run_commands(outputs, config_path, entry_point=entry_point, params=ray_params)[-1]
    return template, config_path, config, line


def ray_image_note(outputs: Mapping[str, Any], commit: str | None) -> str | None:
    """A warning when the Ray workers' image is not the one `--build-image` pushes from this checkout."""
    image = outputs.get("ray_image")
    if not image or not commit:
        return None
    built = f"{outputs['repository_uri']}:{commit[:7]}"
    if image == built:
        return None
    return (
        f"note: the Ray workers run {image}, while `mlflow run --build-image` pushes {built} for this checkout; "
        f"after that push, `pulumi config set rayImageTag {commit[:7]} && pulumi up` makes the trials run this code"
    )


def _git_commit(project_dir: Path) -> str | None:
    """The commit MLflow tags the built image with (`mlflow.projects.utils.get_git_commit`), or None."""
    try:
        result = subprocess.run(
            ["git", "-C", str(project_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m airline_hpo.cluster.bridge",
        description="Turn `pulumi stack output --json` into MLflow's Kubernetes backend config and job template.",
    )
    parser.add_argument(
        "--stack-output",
        default="-",
        help="`pulumi stack output --json` as a file, or - for stdin (default); no --show-secrets needed",
    )
    parser.add_argument("--out-dir", required=True, type=Path, help="where to write k8s_config.json and the template")
    parser.add_argument("--entry-point", "-e", default="hyperopt", help="MLproject entry point (default hyperopt)")
    parser.add_argument("--param", "-P", action="append", default=[], help="extra entry-point parameter, KEY=VALUE")
    args: argparse.Namespace = parser.parse_args(argv)
    for param in args.param:
        if "=" not in param:
            raise TrainerError(f"parameter {param!r} is not KEY=VALUE", "pass for example -P max_evals=50")
    outputs = read_stack_outputs(args.stack_output)
    files = write_backend_files(outputs, args.out_dir, args.entry_point, args.param)
    for key in holds_plain_secrets(outputs):
        print(
            f"note: the stack outputs hold '{key}' in plain text (--show-secrets), which the bridge does not need; "
            "pipe `pulumi stack output --json` without --show-secrets and delete any file that holds it",
            file=sys.stderr,
        )
    print(f"# wrote {files.config_path} and {files.template_path}")
    print("# from the repository root, with Docker logged in to the registry and kubectl on the cluster:")
    for line in files.commands:
        print(line)
    if files.ray_command:
        print(f"# or, trials in parallel on the stack's Ray cluster (driver Job without GPU; {files.ray_config_path}):")
        print(files.ray_command)
        note = ray_image_note(outputs, _git_commit(Path("trainer")))
        if note:
            print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
