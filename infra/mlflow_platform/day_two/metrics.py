"""Prometheus metrics of the tracking server: a ServiceMonitor for the Prometheus operator (config toggle).

The server always exposes `/metrics` (`--expose-prometheus`, request counters and latencies by endpoint and
status); the ServiceMonitor is declared only with `serviceMonitor: true`, because without the operator's CRD
the API server refuses the object and `pulumi up` fails. With basic auth, `/metrics` needs credentials like
every other route, so the ServiceMonitor points Prometheus at the non-admin `training` user's pair (Prometheus
reads Secrets of the ServiceMonitor's namespace): never at the admin's, which would give whoever reads Prometheus'
configuration every experiment, user and permission. The tracking pods admit Prometheus' namespace
(`prometheusNamespace`) on their port (`network/platform.py`).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names

METRICS_PATH = "/metrics"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1"


def service_monitor_spec(
    cfg: StackConfig, names: Names, service_selector: dict[str, str], port_name: str
) -> dict[str, Any]:
    """The ServiceMonitor's spec: the tracking Service's named port, `/metrics`, every 30 s."""
    endpoint: dict[str, Any] = {"port": port_name, "path": METRICS_PATH, "interval": "30s", "scheme": "http"}
    if cfg.basic_auth:
        endpoint["basicAuth"] = {
            "username": {"name": names.training_auth_secret, "key": "MLFLOW_TRACKING_USERNAME"},
            "password": {"name": names.training_auth_secret, "key": "MLFLOW_TRACKING_PASSWORD"},
        }
    return {
        "selector": {"matchLabels": service_selector},
        "namespaceSelector": {"matchNames": [cfg.namespace]},
        "endpoints": [endpoint],
    }


class TrackingServiceMonitor(pulumi.ComponentResource):
    """The ServiceMonitor that makes a Prometheus operator scrape every tracking server pod."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        service_selector: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:TrackingServiceMonitor", name, None, opts)
        k8s.apiextensions.CustomResource(
            f"{name}-service-monitor",
            api_version=SERVICE_MONITOR_API,
            kind="ServiceMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=names.tracking, namespace=namespace, labels=labels(cfg.name_prefix, "tracking-server")
            ),
            spec=service_monitor_spec(cfg, names, service_selector, "http"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
