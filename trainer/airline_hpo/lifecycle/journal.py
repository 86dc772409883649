"""A local journal of finished trials, so that no finished trial is lost while the tracking server is down.

Every trial's record (its tags, params, metrics, status and times) is appended to a JSON-lines file *before* it
is sent to MLflow; a search that ends cleanly deletes the file. When the server stays down past the retry budget,
or the driver is stopped, the file stays and names the parent run: ``<dir>/<parent_run_id>.jsonl``, where
``dir`` is ``$AIRLINE_HPO_JOURNAL_DIR`` or ``~/.cache/airline-hpo/journal``. The driver also writes one
``parent`` record saying how and why it stopped.

:func:`replay` puts a journal back into MLflow: each journaled trial becomes a finished nested run of the parent
(tag ``trial_id``: a trial already in MLflow is skipped, one left RUNNING is completed, so replaying twice does
nothing more), nested runs still RUNNING that no record completes are marked KILLED (their driver is gone), and a
parent still RUNNING gets the journal's status and ``stop_reason``. A search that resumes a parent calls it
first, so the resume sees every finished trial; ``python -m airline_hpo.lifecycle.replay <parent>`` runs it alone.

On a cluster the default directory lives and dies with the pod: point ``AIRLINE_HPO_JOURNAL_DIR`` at a volume
that outlives it for the journal to reach a resume in a new pod.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_DIR_ENV = "AIRLINE_HPO_JOURNAL_DIR"
#: Tag that names a trial across the driver, the journal and MLflow (a uuid: trial numbers restart on resume).
TRIAL_ID_TAG = "trial_id"
STOP_REASON_TAG = "stop_reason"

log = logging.getLogger(__name__)


def journal_dir() -> Path:
    configured = os.environ.get(JOURNAL_DIR_ENV, "").strip()
    return Path(configured) if configured else Path.home() / ".cache" / "airline-hpo" / "journal"


def journal_path(parent_run_id: str) -> Path:
    return journal_dir() / f"{parent_run_id}.jsonl"


class Journal:
    """Append-only JSON lines for one parent run; safe to call from the search's threads."""

    def __init__(self, parent_run_id: str, experiment_id: str) -> None:
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id
        self.path = journal_path(parent_run_id)
        self._lock = threading.Lock()
        self.trials = 0

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def trial(
        self,
        trial_id: str,
        tags: dict[str, str],
        params: dict[str, str],
        metrics: dict[str, float],
        status: str,
        start_time: int,
        end_time: int,
    ) -> None:
        """Record a finished (or failed) trial before it is written to MLflow."""
        self._append(
            {
                "kind": "trial",
                "trial_id": trial_id,
                "experiment_id": self.experiment_id,
                "tags": tags,
                "params": params,
                "metrics": metrics,
                "status": status,
                "start_time": start_time,
                "end_time": end_time,
            }
        )
        self.trials += 1

    def parent(self, status: str, stop_reason: str, end_time: int) -> None:
        """How the driver stopped (applied to the parent by :func:`replay` if MLflow could not be told)."""
        self._append(
            {"kind": "parent", "experiment_id": self.experiment_id, "status": status, "stop_reason": stop_reason,
             "end_time": end_time}
        )  # fmt: skip

    def discard(self) -> None:
        """Every record reached MLflow: the journal is no longer needed."""
        with self._lock:
            self.path.unlink(missing_ok=True)
            self.trials = 0


def read(path: Path) -> list[dict[str, Any]]:
    """The records of a journal; a torn last line (the driver was killed mid-write) is skipped."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("journal %s: line %d is not JSON (a torn write); skipped", path, number)
    return records


@dataclass
class ReplayReport:
    logged: int = 0
    completed: int = 0
    skipped: int = 0
    killed: int = 0
    parent_status: str | None = None

    def line(self, parent_run_id: str) -> str:
        parts = [
            f"{self.logged} trial(s) logged",
            f"{self.completed} completed",
            f"{self.skipped} already present",
            f"{self.killed} stale RUNNING trial(s) marked KILLED",
        ]
        if self.parent_status:
            parts.append(f"parent marked {self.parent_status}")
        return f"journal of {parent_run_id}: " + ", ".join(parts)


def _nested_runs(client: Any, experiment_id: str, parent_run_id: str) -> list[Any]:
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            run_view_type=ViewType.ALL,
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _write_trial(client: Any, record: dict[str, Any], existing: Any | None) -> None:
    from mlflow.entities import Metric, Param, RunTag

    end = int(record["end_time"])
    if existing is None:
        run_id = client.create_run(
            record["experiment_id"], start_time=int(record["start_time"]), tags=record["tags"]
        ).info.run_id
        logged_metrics: dict[str, float] = {}
    else:
        run_id, logged_metrics = existing.info.run_id, existing.data.metrics
    if not logged_metrics:  # log_batch is all or nothing: metrics present means params and tags are too
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), end, 0) for k, v in record["metrics"].items()],
            params=[Param(k, str(v)) for k, v in record["params"].items()],
            tags=[RunTag(k, str(v)) for k, v in record["tags"].items() if not k.startswith("mlflow.")],
        )
    client.set_terminated(run_id, record["status"], end_time=end)


def replay(parent_run_id: str, client: Any | None = None, mark_stale: bool = True) -> ReplayReport:
    """Log the journal of ``parent_run_id`` into MLflow (idempotent), then delete it. See the module docstring.

    ``mark_stale=False`` leaves trials still RUNNING to the caller: a resumed search marks them itself
    (:func:`airline_hpo.search.resume.kill_running`), counts them and runs them again."""
    import time

    from mlflow import MlflowClient

    client = client or MlflowClient()
    report = ReplayReport()
    path = journal_path(parent_run_id)
    records = read(path) if path.exists() else []
    parent = client.get_run(parent_run_id)
    experiment_id = parent.info.experiment_id
    nested = _nested_runs(client, experiment_id, parent_run_id)
    by_trial_id = {run.data.tags[TRIAL_ID_TAG]: run for run in nested if TRIAL_ID_TAG in run.data.tags}
    done: set[str] = set()
    for record in (r for r in records if r.get("kind") == "trial"):
        trial_id = record["trial_id"]
        existing = by_trial_id.get(trial_id)
        done.add(trial_id)
        if existing is not None and existing.info.status != "RUNNING":
            report.skipped += 1
            continue
        _write_trial(client, record, existing)
        if existing is None:
            report.logged += 1
        else:
            report.completed += 1
    now = int(time.time() * 1000)
    for run in nested:
        if mark_stale and run.info.status == "RUNNING" and run.data.tags.get(TRIAL_ID_TAG) not in done:
            client.set_tag(run.info.run_id, STOP_REASON_TAG, "its driver stopped before the trial finished")
            client.set_terminated(run.info.run_id, "KILLED", end_time=now)
            report.killed += 1
    parent_records = [r for r in records if r.get("kind") == "parent"]
    if parent_records and client.get_run(parent_run_id).info.status == "RUNNING":
        last = parent_records[-1]
        client.set_tag(parent_run_id, STOP_REASON_TAG, last["stop_reason"])
        client.set_terminated(parent_run_id, last["status"], end_time=int(last["end_time"]))
        report.parent_status = last["status"]
    path.unlink(missing_ok=True)
    return report
