"""``make demo``: the whole flow on the local stack, with the commands MLproject declares.

A ``docker_env`` project cannot run without Docker, so the demo does what ``mlflow run`` would do inside the
image: it loads ``trainer/MLproject`` with MLflow's own project loader, lets each entry point compute its
command from the parameters, and runs that command with ``trainer/`` as the working directory and the local
stack's client environment. The commands are therefore exactly the ones a Kubernetes Job runs.

Steps: start the stack, prepare the data, upload it to the bucket, search (reading ``s3://``; whole days held out
as the test part), register the refitted best model (``champion`` when it beats the current one on the same test
rows, else ``challenger``), start the long-running local endpoint (``make serve``: it follows the champion alias
and keeps running) and ask it for labels and probabilities, then print a summary read back from MLflow.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from airline_hpo import ui_links
from airline_hpo.errors import COUNT, EXIT_FAILED, SEED, OneLineParser, TrainerError, run_cli

TRAINER_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TRAINER_DIR.parent
EXPERIMENT = "airline-hpo-demo"


def entry_point_command(entry_point: str, parameters: dict[str, object], project_dir: Path = TRAINER_DIR) -> str:
    """The shell command ``mlflow run <project_dir> -e <entry_point> -P ...`` would run, from MLproject itself."""
    from mlflow.projects._project_spec import load_project

    project = load_project(str(project_dir))
    with tempfile.TemporaryDirectory() as storage_dir:
        return project.get_entry_point(entry_point).compute_command(
            {k: str(v) for k, v in parameters.items()}, storage_dir
        )


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment plus ``extra``, with this interpreter's scripts first on PATH: MLproject commands say
    ``python``, which must be the interpreter that has the trainer's requirements (the venv)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, **extra, "PATH": path}


def run_entry_point(entry_point: str, parameters: dict[str, object], env: dict[str, str]) -> float:
    """Run one entry point as a local process; a non-zero exit stops the demo. Returns its wall time."""
    command = entry_point_command(entry_point, parameters)
    print(f"\n[{entry_point}] $ {command}", flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, shell=True, cwd=TRAINER_DIR, env=process_env(env), check=False)
    if result.returncode != 0:
        raise TrainerError(
            f"entry point {entry_point} failed with exit status {result.returncode}",
            "read its error line above, fix the cause, and run `make demo` again",
            exit_code=EXIT_FAILED,
        )
    return time.perf_counter() - started


def stack_up_and_env() -> dict[str, str]:
    """``python -m local_stack up`` then ``env``: the stack's public CLI, parsed from its ``export`` lines."""
    python = sys.executable
    if subprocess.run([python, "-m", "local_stack", "up"], cwd=REPO_ROOT, check=False).returncode != 0:
        raise TrainerError("the local stack did not start", "see its error above (`make status`, `make down`)")
    out = subprocess.run(
        [python, "-m", "local_stack", "env"], cwd=REPO_ROOT, check=False, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise TrainerError(f"cannot read the local stack's environment: {out.stderr.strip()}", "run `make up`")
    env = {}
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


def start_endpoint(model_name: str) -> str:
    """``python -m local_stack serve --detach``: the long-running endpoint that follows the champion (``make
    serve``), left running after the demo; returns its URL."""
    command = [sys.executable, "-m", "local_stack", "serve", "--detach", "--model-name", model_name]
    print(f"\n[serve] $ {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, cwd=REPO_ROOT, check=False, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0 or not result.stdout.strip():
        raise TrainerError("the model endpoint did not start", "see its error above (SERVE_PORT=<port>: another port)")
    return result.stdout.strip().splitlines()[-1]  # `serve --detach` prints its URL last, alone


def _short(value: str) -> str:
    """Params come back as strings; show fractions with three decimals."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else f"{number:.3f}"


def summary(model_name: str, tracking_uri: str, parent_run_id: str | None = None) -> list[tuple[str, str]]:
    """Read the outcome back from MLflow (the registry and the newest version's parent run), not our output."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(model_name, "champion")
    if parent_run_id is None:  # the newest version's run: the search that just ran, champion or challenger
        versions = client.search_model_versions(f"name = '{model_name}'")
        parent_run_id = max(versions, key=lambda v: int(v.version)).run_id
    parent = client.get_run(parent_run_id)
    trials = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=1000
    )
    failed = sum(t.info.status == "FAILED" for t in trials)
    metrics, tags = parent.data.metrics, parent.data.tags
    val_base = metrics["val_baseline_accuracy"]
    best = {k[len("best_") :]: v for k, v in parent.data.params.items() if k.startswith("best_")}
    experiment_id = parent.info.experiment_id
    parent_url = ui_links.run_url(tracking_uri, experiment_id, parent.info.run_id)
    split = f"{tags.get('split.kind', '?')} split, {int(metrics.get('test_rows', 0)):,} rows no trial saw"
    objective = parent.data.params.get("objective", "log_loss")
    low, high = metrics.get(f"test_{objective}_low"), metrics.get(f"test_{objective}_high")
    spread = "" if low is None or high is None else f" (95% interval {low:.4f}-{high:.4f})"
    return [
        ("trials", f"{len(trials)} ({failed} failed), engine {tags.get('engine', '?')}; {tags.get('stop_reason')}"),
        ("validation accuracy", f"{metrics['best_val_accuracy']:.4f} (best trial; baseline {val_base:.4f})"),
        (
            f"test {objective}",
            f"{metrics[f'test_{objective}']:.4f}{spread}, accuracy {metrics['test_accuracy']:.4f}, "
            f"ROC AUC {metrics['test_roc_auc']:.4f} ({split}, refitted on train+val)",
        ),
        ("majority baseline", f"{metrics['test_baseline_accuracy']:.4f} on the same test rows"),
        ("best parameters", ", ".join(f"{k}={_short(v)}" for k, v in sorted(best.items()))),
        ("promotion", f"-> {tags.get('promotion.alias', '?')}: {tags.get('promotion.reason', '?')}"),
        ("champion", f"{model_name} version {champion.version}"),
        ("parent run (plots)", f"{parent_url}  -> Artifacts: plots/"),
        ("trials in the UI", f"{ui_links.runs_url(tracking_uri, experiment_id)}  (expand the parent run)"),
        ("model in the UI", ui_links.model_url(tracking_uri, model_name)),
    ]


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=COUNT, default=60_000, help="flights sampled for the demo")
    parser.add_argument("--max-evals", type=COUNT, default=12)
    parser.add_argument("--trees-max", type=COUNT, default=50)
    parser.add_argument("--depth-max", type=COUNT, default=14)
    parser.add_argument("--seed", type=SEED, default=42)
    parser.add_argument("--model-name", default="airline-delay")
    parser.add_argument("--skip-serve", action="store_true", help="stop after registration")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    print("== starting the local stack (PostgreSQL, SeaweedFS S3, MLflow server)", flush=True)
    env = {**stack_up_and_env(), "MLFLOW_EXPERIMENT_NAME": EXPERIMENT}
    os.environ.update(env)  # for the upload below and the summary
    local_data = REPO_ROOT / "data" / "airline.parquet"
    s3_data = f"s3://{env['ARTIFACT_BUCKET']}/datasets/airline.parquet"
    timings = {"prepare_data": run_entry_point("prepare_data", {"output": local_data, "rows": args.rows}, env)}

    from airline_hpo.data import storage

    storage.upload_file(local_data, s3_data)
    print(f"uploaded {local_data.relative_to(REPO_ROOT)} to {s3_data}")
    search_params = {
        "fpath": s3_data,
        "max_evals": args.max_evals,
        "seed": args.seed,
        "engine": "auto",
        "model_name": args.model_name,
        "trees_max": args.trees_max,
        "depth_max": args.depth_max,
    }
    timings["hyperopt"] = run_entry_point("hyperopt", search_params, env)
    if not args.skip_serve:
        url = start_endpoint(args.model_name)
        timings["serve_check"] = run_entry_point("serve_check", {"model_name": args.model_name, "url": url}, env)

    rows = summary(args.model_name, env["MLFLOW_TRACKING_URI"])
    rows.append(("time", ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())))
    rows.append(("demo total", f"{time.perf_counter() - started:.0f}s; the stack keeps running (`make down`)"))
    width = max(len(k) for k, _ in rows)
    print("\n== summary")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
