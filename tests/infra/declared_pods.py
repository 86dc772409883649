"""Run the containers a Pulumi program declares as real processes on this machine, the way a kubelet would.

What a kubelet does and this module does too: resolve each container's env from literal values and from the
declared Secrets (`secretKeyRef`), write the files of Secret volumes where the container mounts them, expand
`$(VAR)` in the command from the container's env, run init containers to completion before the main container.

What differs, and only that: the filesystem root of the mounts (a temporary directory stands in for `/`), the
program that `mlflow` names (this environment's `mlflow`, whose version the test checks against the image tag),
and the swaps the caller asks for (host/port, the database and the bucket of the test's local stack), applied
to every resolved string: env values, command arguments and mounted file contents alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mock_harness import Deployment

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def declared_secrets(d: Deployment) -> dict[str, dict[str, str]]:
    """Every declared Secret's data by name (`stringData`, plain values: the mock harness unwraps secrets)."""
    return {
        r.inputs["metadata"]["name"]: dict(r.inputs.get("stringData") or {})
        for r in d.of_type("kubernetes:core/v1:Secret")
    }


@dataclass
class Swaps:
    """String replacements from the cluster's world to this machine's, applied to every resolved value."""

    pairs: list[tuple[str, str]] = field(default_factory=list)

    def add(self, cluster_value: str, local_value: str) -> None:
        self.pairs.append((cluster_value, local_value))

    def __call__(self, value: str) -> str:
        for old, new in self.pairs:
            value = value.replace(old, new)
        return value


@dataclass
class PreparedContainer:
    """One container, resolved: the argv and environment a process gets."""

    name: str
    image: str
    argv: list[str]
    env: dict[str, str]


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a reference to a defined variable is replaced, others stay as written."""
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def prepare(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    secrets: dict[str, dict[str, str]],
    root: Path,
    swaps: Swaps,
) -> PreparedContainer:
    """Resolve `container` of `pod_spec` as the kubelet would, under `root`, with `swaps` applied."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    mount_swaps = Swaps()
    for mount in container.get("volumeMounts") or []:
        local = root / mount["mountPath"].lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        mount_swaps.add(mount["mountPath"], str(local))
        secret_volume = volumes[mount["name"]].get("secret")
        if secret_volume:
            data = secrets[secret_volume["secretName"]]
            items = secret_volume.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                path = local / item["path"]
                path.write_text(swaps(data[item["key"]]))
                path.chmod(int(secret_volume.get("defaultMode", 0o644)) & 0o777)

    env: dict[str, str] = {"PATH": os.environ.get("PATH", "")}  # the image's PATH
    for var in container.get("env") or []:
        if "value" in var:
            raw = _expand(var["value"], env)
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            raw = secrets[ref["name"]][ref["key"]]
        env[var["name"]] = mount_swaps(swaps(raw))

    command = [*(container.get("command") or []), *(container.get("args") or [])]
    argv = [mount_swaps(swaps(_expand(arg, env))) for arg in command]
    if argv and argv[0] == "mlflow":
        argv[0] = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    elif argv and argv[0] in {"python", "python3"}:
        argv[0] = sys.executable
    return PreparedContainer(container["name"], container["image"], argv, env)


def run_to_completion(container: PreparedContainer, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run an init container (or a Job's container): it must exit 0, as Kubernetes requires."""
    return subprocess.run(
        container.argv, env=container.env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def start(container: PreparedContainer, cwd: Path, log: Path) -> subprocess.Popen:
    """Start a long-running container in its own process group (stop it with `stop`)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            container.argv,
            env=container.env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen) -> None:
    """Stop the whole process group (uvicorn workers included), escalating to SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no worker of its group survives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
