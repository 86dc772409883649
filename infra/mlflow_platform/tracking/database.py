"""PostgreSQL, the tracking server's backend store: in the cluster by default, or an external server.

In-cluster it is a single-replica StatefulSet of the pinned official image, its data on a
PersistentVolumeClaim, reachable only through a ClusterIP Service and, through `network_policy`, only from the
tracking server.

The claim always names a StorageClass, because EKS 1.30+ marks none as the default and a claim without one
stays Pending (and `pulumi up` waits on the StatefulSet until it times out): the one the user names
(`postgresStorageClass`), or on EKS one declared here for the EBS CSI driver (gp3, encrypted, bound where the
pod lands, expandable). With `keepDataOnDestroy` (the default) `pulumi destroy` never drops experiment history:
the StatefulSet leaves its claim behind (`whenDeleted: Retain`), `namespace.py` leaves the namespace that holds
it, and the declared class's volumes outlive their claim (`reclaimPolicy: Retain`).

With `postgres: external` (for example Amazon RDS) nothing is deployed here: the URI lives in the database
Secret and the tracking server uses it unchanged.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlflow_platform.core import pod_security
from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.labels import labels, selector_labels
from mlflow_platform.core.naming import TYPE_PREFIX, Names

COMPONENT = "database"
DB_USER = "mlflow"
DB_NAME = "mlflow"
POSTGRES_PORT = 5432
POSTGRES_UID = 999  # the `postgres` user of the official Debian-based image
DATA_DIR = "/var/lib/postgresql/data"
SECRETS_DIR = "/run/secrets/postgres"

#: Run as the container's postStart hook: make the role's password the one in the Secret *now*.
#: Why: the image applies POSTGRES_PASSWORD only when it initialises an empty data directory. After `pulumi destroy`
#: (the volume kept) and `pulumi up`, or after a rotation, the Secret holds a new password while the kept data has
#: the old one, and the migration Job and the server fail to sign in until `up` times out. Over the local socket,
#: which the image's initdb leaves at `trust` for local connections, the hook sets the Secret's password on every
#: start. The password travels in a psql variable read from the mounted file, never on a command line.
ADOPT_PASSWORD_SCRIPT = """\
export PGHOST="${PGHOST:-/var/run/postgresql}"
for _ in $(seq 300); do pg_isready -q -U "$POSTGRES_USER" -d "$POSTGRES_DB" && break; sleep 1; done
psql -v ON_ERROR_STOP=1 --no-psqlrc -q -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<'SQL'
\\set pw `cat "$POSTGRES_PASSWORD_FILE"`
ALTER ROLE CURRENT_USER PASSWORD :'pw';
SQL
"""


def storage_class_name(cfg: StackConfig) -> str:
    """The class the PostgreSQL claim names: the user's, or the one `Database` declares (named for this stack's
    prefix and namespace: StorageClasses are cluster-wide, and a second stack must not collide with the first)."""
    return cfg.postgres_storage_class or Names(cfg.name_prefix, cfg.namespace).postgres_storage_class


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
        claim_dependencies: list[pulumi.Resource] = []
        if cfg.declares_storage_class:
            claim_dependencies.append(
                k8s.storage.v1.StorageClass(
                    f"{name}-storage-class",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=storage_class_name(cfg), labels=object_labels),
                    provisioner=cfg.ebs_csi_provisioner,
                    parameters={"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"},
                    # Bind where the pod is scheduled: an EBS volume lives in one availability zone.
                    volume_binding_mode="WaitForFirstConsumer",
                    reclaim_policy="Retain" if cfg.keep_data_on_destroy else "Delete",
                    allow_volume_expansion=True,
                    opts=child,
                )
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
                                    k8s.core.v1.EnvVarArgs(name="POSTGRES_USER", value=DB_USER),
                                    k8s.core.v1.EnvVarArgs(name="POSTGRES_DB", value=DB_NAME),
                                    # The image's entrypoint reads *_FILE variables: the password stays a
                                    # file, out of the environment that `ps e` and crash dumps show.
                                    k8s.core.v1.EnvVarArgs(
                                        name="POSTGRES_PASSWORD_FILE", value=f"{SECRETS_DIR}/POSTGRES_PASSWORD"
                                    ),
                                    # A subdirectory, because the volume's root holds lost+found on most
                                    # block storage and initdb refuses a non-empty directory.
                                    k8s.core.v1.EnvVarArgs(name="PGDATA", value=f"{DATA_DIR}/pgdata"),
                                ],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "250m", "memory": "512Mi"},
                                    limits={"cpu": "2", "memory": "1Gi"},
                                ),
                                security_context=pod_security.container_context(read_only_root=True),
                                lifecycle=k8s.core.v1.LifecycleArgs(
                                    post_start=k8s.core.v1.LifecycleHandlerArgs(
                                        exec_=k8s.core.v1.ExecActionArgs(command=["bash", "-c", ADOPT_PASSWORD_SCRIPT])
                                    )
                                ),
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
                                    k8s.core.v1.VolumeMountArgs(
                                        name="credentials", mount_path=SECRETS_DIR, read_only=True
                                    ),
                                ],
                            )
                        ],
                        volumes=[
                            pod_security.scratch_volume("run", "16Mi"),
                            pod_security.scratch_volume("tmp", "256Mi"),
                            pod_security.scratch_volume("shm", "256Mi", memory=True),
                            k8s.core.v1.VolumeArgs(
                                name="credentials",
                                secret=k8s.core.v1.SecretVolumeSourceArgs(
                                    secret_name=names.db_secret,
                                    items=[
                                        k8s.core.v1.KeyToPathArgs(key="POSTGRES_PASSWORD", path="POSTGRES_PASSWORD")
                                    ],
                                    default_mode=0o440,  # readable by the pod's fsGroup (postgres), nobody else
                                ),
                            ),
                        ],
                    ),
                ),
                volume_claim_templates=[
                    k8s.core.v1.PersistentVolumeClaimArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=object_labels),
                        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                            access_modes=["ReadWriteOnce"],
                            storage_class_name=storage_class_name(cfg),
                            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                                requests={"storage": cfg.postgres_storage_size}
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service, *claim_dependencies]),
        )
        self.host = names.service_fqdn(names.postgres)
        self.register_outputs({"host": self.host})
