"""PostgreSQL, the tracking server's backend store: in the cluster by default, or an external server.

In-cluster it is a single-replica StatefulSet of the pinned official image, its data on a
PersistentVolumeClaim (size and storage class from config, retained when the StatefulSet is deleted, so a
`pulumi destroy` never silently drops experiment history), reachable only through a ClusterIP Service and,
through `network_policy`, only from the tracking server. With `postgres: external` (for example Amazon RDS)
nothing is deployed here: the URI lives in the database Secret and the tracking server uses it unchanged.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from . import pod_security
from .config import StackConfig
from .labels import labels, selector_labels
from .naming import TYPE_PREFIX, Names

COMPONENT = "database"
DB_USER = "mlflow"
DB_NAME = "mlflow"
POSTGRES_PORT = 5432
POSTGRES_UID = 999  # the `postgres` user of the official Debian-based image
DATA_DIR = "/var/lib/postgresql/data"


def _image_version(image: str) -> str:
    return image.rsplit(":", 1)[-1]


class Database(pulumi.ComponentResource):
    """The backend store; `host` is None for an external database (its address is inside the URI)."""

    host: str | None
    selector: dict[str, str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        names: Names,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        pod_annotations: dict[str, pulumi.Input[str]] | None = None,
    ) -> None:
        """`pod_annotations`: e.g. the checksum of the database Secret, so a rotated password restarts the pod."""
        super().__init__(f"{TYPE_PREFIX}:Database", name, None, opts)
        self.selector = selector_labels(cfg.name_prefix, COMPONENT, name="postgresql")
        if not cfg.in_cluster_postgres:
            self.host = None
            self.register_outputs({"host": None})
            return

        child = pulumi.ResourceOptions(parent=self)
        object_labels = labels(
            cfg.name_prefix, COMPONENT, name="postgresql", version=_image_version(cfg.postgres_image)
        )

        def secret_env(var: str) -> k8s.core.v1.EnvVarArgs:
            return k8s.core.v1.EnvVarArgs(
                name=var,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=names.db_secret, key=var)
                ),
            )

        ready_check = k8s.core.v1.ExecActionArgs(
            command=["pg_isready", "--host=127.0.0.1", f"--username={DB_USER}", f"--dbname={DB_NAME}"]
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.postgres, namespace=namespace, labels=object_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=self.selector,
                ports=[k8s.core.v1.ServicePortArgs(name="postgres", port=POSTGRES_PORT, target_port="postgres")],
            ),
            opts=child,
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.postgres, namespace=namespace, labels=object_labels),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                replicas=1,
                service_name=names.postgres,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self.selector),
                persistent_volume_claim_retention_policy=k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                    when_deleted="Retain", when_scaled="Retain"
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels, annotations=pod_annotations),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        security_context=pod_security.pod_context(POSTGRES_UID),
                        termination_grace_period_seconds=60,
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="postgres",
                                image=cfg.postgres_image,
                                ports=[k8s.core.v1.ContainerPortArgs(name="postgres", container_port=POSTGRES_PORT)],
                                env=[
                                    secret_env("POSTGRES_USER"),
                                    secret_env("POSTGRES_PASSWORD"),
                                    secret_env("POSTGRES_DB"),
                                    # A subdirectory, because the volume's root holds lost+found on most
                                    # block storage and initdb refuses a non-empty directory.
                                    k8s.core.v1.EnvVarArgs(name="PGDATA", value=f"{DATA_DIR}/pgdata"),
                                ],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "250m", "memory": "512Mi"},
                                    limits={"cpu": "2", "memory": "1Gi"},
                                ),
                                security_context=pod_security.container_context(read_only_root=True),
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    exec_=ready_check, period_seconds=5, timeout_seconds=3, failure_threshold=3
                                ),
                                liveness_probe=k8s.core.v1.ProbeArgs(
                                    exec_=ready_check,
                                    initial_delay_seconds=30,
                                    period_seconds=10,
                                    timeout_seconds=5,
                                    failure_threshold=6,
                                ),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA_DIR),
                                    k8s.core.v1.VolumeMountArgs(name="run", mount_path="/var/run/postgresql"),
                                    k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                                    k8s.core.v1.VolumeMountArgs(name="shm", mount_path="/dev/shm"),
                                ],
                            )
                        ],
                        volumes=[
                            pod_security.scratch_volume("run", "16Mi"),
                            pod_security.scratch_volume("tmp", "256Mi"),
                            pod_security.scratch_volume("shm", "256Mi", memory=True),
                        ],
                    ),
                ),
                volume_claim_templates=[
                    k8s.core.v1.PersistentVolumeClaimArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=object_labels),
                        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                            access_modes=["ReadWriteOnce"],
                            storage_class_name=cfg.postgres_storage_class,
                            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                                requests={"storage": cfg.postgres_storage_size}
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
        )
        self.host = names.service_fqdn(names.postgres)
        self.register_outputs({"host": self.host})
