"""A model server leaves no copy of the model behind.

MLflow's scoring server downloads the model it serves with no destination, into ``tempfile.mkdtemp()``
(``mlflow/store/artifact/artifact_repo.py``: ``download_artifacts`` without ``dst_path`` calls
``mlflow.utils.file_utils.create_tmp_dir``), and never removes it: each start of the local endpoint's model servers
and of ``serve_check`` left a copy of the model in /tmp. ``ModelServer`` gives each server its own ``TMPDIR`` and
removes it on ``stop``. The stand-in below downloads the way MLflow does (``tempfile.mkdtemp`` in the server's
process) and then waits like a server.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from airline_hpo.serving import server

DOWNLOADS_LIKE_MLFLOW = (
    "import pathlib, sys, tempfile, time\n"
    "folder = pathlib.Path(tempfile.mkdtemp())\n"
    "(folder / 'MLmodel').write_text('flavors: {}')\n"
    "print(folder, flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
)


def _start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lifetime: float) -> tuple[server.ModelServer, Path]:
    command = [sys.executable, "-c", DOWNLOADS_LIKE_MLFLOW, str(lifetime)]
    monkeypatch.setattr(server, "server_command", lambda *args, **kwargs: command)
    model_server = server.ModelServer("models:/m@champion", "127.0.0.1", 1, tmp_path / "server.log").start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = (tmp_path / "server.log").read_text().split()
        if lines:
            return model_server, Path(lines[0])
        time.sleep(0.05)
    model_server.stop()
    raise AssertionError("the stand-in server never downloaded")


def test_the_model_is_downloaded_into_the_servers_own_tmpdir_and_stop_removes_it(tmp_path, monkeypatch):
    model_server, downloaded = _start(tmp_path, monkeypatch, lifetime=60)
    scratch = model_server.scratch
    assert scratch is not None and downloaded.parent == scratch and (downloaded / "MLmodel").exists()
    model_server.stop()
    assert model_server.process.poll() is not None
    assert not scratch.exists()


def test_a_server_that_already_exited_leaves_nothing_either(tmp_path, monkeypatch):
    model_server, downloaded = _start(tmp_path, monkeypatch, lifetime=0)
    model_server.process.wait(timeout=30)
    model_server.stop()
    assert not downloaded.exists() and not downloaded.parent.exists()
