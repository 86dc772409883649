"""The program's real stack outputs, as `pulumi stack output --json` prints them, through the training bridge.

With basic-auth the program exports the admin password as a secret; the CLI prints it as "[secret]" unless
asked with `--show-secrets`. The bridge must work from the masked outputs and keep the password out of every
file and line it produces, even when handed the plain value.
"""

from __future__ import annotations

from pathlib import Path

from airline_hpo.cluster import bridge
from mock_harness import Deployment


def _written(out_dir: Path) -> str:
    return "".join(path.read_text() for path in sorted(out_dir.rglob("*")) if path.is_file())


def test_the_bridge_runs_on_masked_outputs_and_never_carries_the_password(deploy, tmp_path: Path) -> None:
    deployment: Deployment = deploy({"basicAuth": "true"})
    password = deployment.exports["tracking_password"]
    assert "tracking_password" in deployment.secret_exports
    printed = {k: bridge.SECRET_MASK if k in deployment.secret_exports else v for k, v in deployment.exports.items()}
    shown = dict(deployment.exports)  # what `--show-secrets` would print
    for name, outputs in (("masked", printed), ("shown", shown)):
        files = bridge.write_backend_files(outputs, tmp_path / name)
        text = _written(tmp_path / name) + "\n".join(files.commands)
        assert password not in text and bridge.SECRET_MASK not in text
        assert (
            'export MLFLOW_TRACKING_PASSWORD="$(pulumi stack output tracking_password --show-secrets)"'
            in files.commands
        )
    assert bridge.holds_plain_secrets(printed) == []
    assert bridge.holds_plain_secrets(shown) == ["tracking_password"]
