"""A load test of the running stack: N concurrent loggers using MlflowClient as a training job would.

Each logger loops: create a run, log a param, three metrics, a batch (5 metrics, 2 params, 1 tag), end the run.
Every call is timed by type; any exception counts as an error. MLflow's client retries are off
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``), so an error a retry would have hidden is counted too. The loggers are
threads of one process: the client is mostly waiting on the server, and 16 processes would each import MLflow.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from local_stack.stack import SERVICES, LocalStack

CALL_TYPES = ("create_run", "log_param", "log_metric", "log_batch", "set_terminated")


@dataclass
class LoadReport:
    loggers: int
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)
    rss_start: int = 0
    rss_peak: int = 0
    rss_end: int = 0
    runs: int = 0

    @property
    def calls(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def lines(self) -> list[str]:
        """The report as printed by ``make load``."""
        mib = 1024 * 1024
        out = [
            f"{self.loggers} loggers for {self.seconds:.0f}s: {self.calls} calls, {self.calls / self.seconds:.1f} "
            f"calls/s, {self.runs} runs, {self.error_count} errors",
            f"{'call':16}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}",
        ]
        for name in CALL_TYPES:
            values = sorted(self.latencies.get(name, []))
            p50, p95, p99 = (percentile(values, q) * 1000 for q in (50, 95, 99))
            out.append(f"{name:16}{len(values):>8}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}{self.errors.get(name, 0):>8}")
        out.append(
            f"MLflow server RSS (process tree): {self.rss_start / mib:.0f} MiB at start, "
            f"{self.rss_peak / mib:.0f} MiB peak, {self.rss_end / mib:.0f} MiB at end"
        )
        out.extend(f"error: {message}" for message in self.first_errors)
        return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (0 for none)."""
    if not values:
        return 0.0
    rank = max(1, round(q / 100 * len(values) + 0.5 - 1e-9))
    return values[min(rank, len(values)) - 1]


def server_rss(stack: LocalStack) -> int:
    """Resident memory of the MLflow server's whole process tree (leader, uvicorn and its workers), in bytes."""
    svc = next(svc for svc in SERVICES if svc.name == "mlflow")
    pid = stack.process(svc).inspect().pid
    if pid is None:
        return 0
    total = 0
    try:
        leader = psutil.Process(pid)
        for proc in [leader, *leader.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        return 0
    return total


def run_load(stack: LocalStack, loggers: int = 16, seconds: float = 60.0) -> LoadReport:
    """Run ``loggers`` concurrent loggers for ``seconds`` against the stack; the caller checks it is healthy."""
    os.environ.update(stack.client_env())
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # one "View run" line per run otherwise
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    report = LoadReport(loggers, seconds)
    lock = threading.Lock()
    setup = MlflowClient(stack.settings.tracking_uri)
    experiment_id = setup.create_experiment(f"local-stack-load-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}")
    stop = threading.Event()
    report.rss_start = report.rss_peak = server_rss(stack)

    def timed(name: str, call: Callable[..., object], *args: object, **kwargs: object) -> tuple[bool, object]:
        started = time.perf_counter()
        try:
            result = call(*args, **kwargs)
        except Exception as exc:
            with lock:
                report.errors[name] += 1
                if len(report.first_errors) < 5:
                    report.first_errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            return False, None
        with lock:
            report.latencies[name].append(time.perf_counter() - started)
        return True, result

    def logger(index: int) -> None:
        client = MlflowClient(stack.settings.tracking_uri)
        step = 0
        while not stop.is_set():
            ok, run = timed("create_run", client.create_run, experiment_id, run_name=f"load-{index}-{step}")
            step += 1
            if not ok:
                continue
            run_id = run.info.run_id
            timed("log_param", client.log_param, run_id, "logger", index)
            for k in range(3):
                timed("log_metric", client.log_metric, run_id, "loss", 1.0 / (k + 1), step=k)
            now = int(time.time() * 1000)
            metrics = [Metric(f"m{i}", float(i), now, 0) for i in range(5)]
            params = [Param("p1", "a"), Param("p2", "b")]
            timed("log_batch", client.log_batch, run_id, metrics, params, [RunTag("load", "yes")])
            ok, _ = timed("set_terminated", client.set_terminated, run_id)
            if ok:
                with lock:
                    report.runs += 1

    threads = [threading.Thread(target=logger, args=(i,), daemon=True) for i in range(loggers)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    while time.monotonic() - began < seconds:
        time.sleep(1.0)
        report.rss_peak = max(report.rss_peak, server_rss(stack))
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    report.seconds = time.monotonic() - began
    report.rss_end = server_rss(stack)
    report.rss_peak = max(report.rss_peak, report.rss_end)
    return report
