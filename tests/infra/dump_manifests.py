"""Write every Kubernetes object the program declares (under Pulumi's mocks) as YAML files, for scanners.

    .venv/bin/python tests/infra/dump_manifests.py /tmp/manifests
    checkov -d /tmp/manifests --framework kubernetes

Two configs are rendered (the default, and basic-auth + LoadBalancer + IRSA + feature discovery) plus the
training job template. Secrets hold the mocks' placeholder values, never real ones. The Helm release (the NVIDIA
device plugin) is not rendered here: that needs the chart and `helm template`.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "infra")]

import yaml  # noqa: E402
from mock_harness import manifests, run_program  # noqa: E402

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "auth-lb-irsa": {
        "basicAuth": "true",
        "serviceType": "LoadBalancer",
        "tlsCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-0000-4000-8000-000000000001",
        "s3Identity": "irsa",
        "irsaRoleArn": "arn:aws:iam::123456789012:role/mlflow",
        "gpuFeatureDiscovery": "true",
    },
}


def _as_mlflow_fills_it(exports: dict) -> dict:
    """The job template with the Job name, container name, image and command MLflow substitutes (MLflow 3.17's
    `_get_kubernetes_job_definition` sets the image to `<repository>:<git sha>@<pushed digest>`)."""
    template = copy.deepcopy(exports["kube_job_template"])
    template["metadata"]["name"] = "airline-hpo-0123abcd"
    container = template["spec"]["template"]["spec"]["containers"][0]
    container.update(
        name="airline-hpo", image=f"{exports['repository_uri']}:0123abc@sha256:{'0' * 64}", command=["mlflow", "run"]
    )
    return template


def dump(out: Path) -> list[Path]:
    """Render each variant into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for variant, config in VARIANTS.items():
        deployment = run_program(config)
        template = _as_mlflow_fills_it(deployment.exports)
        for i, manifest in enumerate([*manifests(deployment), template]):
            name = re.sub(r"[^a-z0-9-]", "-", manifest["metadata"]["name"])
            path = out / f"{variant}-{i:02d}-{manifest['kind']}-{name}.yaml"
            path.write_text(yaml.safe_dump(manifest, sort_keys=False))
            written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: dump_manifests.py OUTPUT_DIR")
    print(f"{len(dump(Path(sys.argv[1])))} manifests written to {sys.argv[1]}")
