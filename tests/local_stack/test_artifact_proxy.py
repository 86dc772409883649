"""The MLflow server of the stack: an artifact write with wrong S3 credentials must fail loudly, never silently."""

from __future__ import annotations

import time
import uuid

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from local_stack import postgres, tracking_server
from local_stack.processes import ServiceProcess, free_ports
from tests.stack_fixtures import use_stack

pytestmark = pytest.mark.integration


def test_wrong_s3_credentials_fail_the_artifact_write(local_stack, tmp_path, monkeypatch):
    stack = local_stack.stack
    creds = stack.credentials
    database = f"wrongcreds_{uuid.uuid4().hex[:8]}"
    postgres.create_database(stack.settings, creds, database)
    (port,) = free_ports(1)
    server = ServiceProcess("mlflow-wrong-creds", tmp_path / "server.pid", tmp_path / "server.log")
    env = tracking_server.scratch_server_env(stack.settings, creds, database, tmp_path)
    env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    server.start(tracking_server.server_argv(stack.settings, port), env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        login = use_stack(monkeypatch, stack)  # the second server asks for the same admin login
        server.wait_until(lambda: tracking_server.is_ready(url, login), timeout=120, what="ready")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the client would retry 500s for minutes
        client = MlflowClient(url)
        run_id = client.create_run("0").info.run_id
        artifact = tmp_path / "model.txt"
        artifact.write_text("weights")
        with pytest.raises(MlflowException, match="500"):
            client.log_artifact(run_id, str(artifact))
        # S3's own error is in the server log (uvicorn writes the traceback just after the 500's access line, so
        # it may land a moment after the answer), and the run itself (metadata in PostgreSQL) is kept.
        deadline = time.monotonic() + 15
        while "SignatureDoesNotMatch" not in server.log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "SignatureDoesNotMatch" in server.log_file.read_text()
        assert client.get_run(run_id).info.run_id == run_id
    finally:
        server.stop()
        postgres.drop_database(stack.settings, creds, database)
