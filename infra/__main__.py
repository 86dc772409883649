"""rapids-mlflow-stack: a GPU hyperparameter-search platform (MLflow on Kubernetes, artifacts in S3).

Thin on purpose: read the config once, build one component per concern, export what `mlflow run` needs.
Each component lives in `mlflow_platform/<concern>.py`.
"""

import pulumi
from mlflow_platform.aws.artifact_store import ArtifactStore
from mlflow_platform.aws.identity import service_accounts
from mlflow_platform.aws.image_repository import ImageRepository
from mlflow_platform.core import config as stack_config
from mlflow_platform.core.namespace import PlatformNamespace
from mlflow_platform.core.naming import Names
from mlflow_platform.day_two.component import DayTwo
from mlflow_platform.gpu.device_plugin import GpuDevicePlugin
from mlflow_platform.kuberay.cluster import RayCluster, build_ray_driver_template
from mlflow_platform.kuberay.operator import RayOperator
from mlflow_platform.network.platform import DatabaseNetworkPolicy, TrackingNetworkPolicy
from mlflow_platform.network.training import TrainingNetworkPolicy
from mlflow_platform.serving.endpoint import ServingEndpoint
from mlflow_platform.tracking.cluster_secrets import AUTH_ADMIN_USER, ClusterSecrets
from mlflow_platform.tracking.database import Database
from mlflow_platform.tracking.server import CHECKSUM_ANNOTATION, TrackingServer
from mlflow_platform.training.access import TrainingAccess
from mlflow_platform.training.job_template import build_job_template
from mlflow_platform.training.orphan_reaper import OrphanReaper

cfg = stack_config.load()
names = Names(cfg.name_prefix, cfg.namespace)
p = cfg.name_prefix

ns = PlatformNamespace(f"{p}-platform", cfg)
namespace = ns.name
in_namespace = pulumi.ResourceOptions(depends_on=[ns])

store = ArtifactStore(f"{p}-artifacts", cfg)
secrets = ClusterSecrets(f"{p}-secrets", cfg, names, namespace, store, opts=in_namespace)
database = Database(
    f"{p}-database",
    cfg,
    names,
    namespace,
    opts=pulumi.ResourceOptions(depends_on=[ns, secrets]),
    pod_annotations={CHECKSUM_ANNOTATION: secrets.checksum(names.db_secret)},
)
tracking = TrackingServer(
    f"{p}-tracking",
    cfg,
    names,
    namespace,
    store,
    secrets,
    opts=pulumi.ResourceOptions(depends_on=[ns, secrets, database]),
)
if cfg.in_cluster_postgres:
    DatabaseNetworkPolicy(
        f"{p}-network",
        cfg,
        names,
        namespace,
        database.selector,
        [tracking.selector, tracking.migration_selector],
        opts=in_namespace,
    )
TrackingNetworkPolicy(
    f"{p}-network",
    cfg,
    names,
    namespace,
    tracking.selector,
    database.selector if cfg.in_cluster_postgres else None,
    opts=in_namespace,
    migration_selector=tracking.migration_selector,
)
training = TrainingAccess(f"{p}-training", cfg, names, namespace, opts=in_namespace)
TrainingNetworkPolicy(f"{p}-training-network", cfg, names, namespace, opts=in_namespace)
# A cancelled `mlflow run` orphans its Job's pod (batch/v1's default); this stops it and frees its GPU.
OrphanReaper(f"{p}-orphan-reaper", cfg, names, namespace, opts=in_namespace)
if cfg.gpu_device_plugin:
    GpuDevicePlugin(f"{p}-gpu", cfg)
images = ImageRepository(f"{p}-images", cfg)
DayTwo(
    f"{p}-day-two", cfg, names, namespace, store, database, tracking, opts=pulumi.ResourceOptions(depends_on=[tracking])
)
ray = None
if cfg.ray:
    operator = RayOperator(f"{p}-ray-operator", cfg, names)
    ray = RayCluster(
        f"{p}-ray",
        cfg,
        names,
        namespace,
        images.uri,
        tracking.in_cluster_uri,
        crd_source=operator.release,
        # A rotated S3 key or training password rolls the head and the workers, as it rolls the tracking server.
        pod_annotations={CHECKSUM_ANNOTATION: secrets.checksum(names.s3_secret, names.training_auth_secret)},
        # The Secrets hold what the Ray pods reference.
        opts=pulumi.ResourceOptions(depends_on=[ns, secrets, training]),
    )
serving = None
if cfg.serving:
    serving = ServingEndpoint(
        f"{p}-serving",
        cfg,
        names,
        namespace,
        images.uri,
        tracking.in_cluster_uri,
        tracking.selector,
        # A rotated serving password rolls the scoring pods, as it rolls the tracking server.
        pod_annotations={CHECKSUM_ANNOTATION: secrets.checksum(names.serving_auth_secret)},
        opts=pulumi.ResourceOptions(depends_on=[ns, secrets, training, tracking]),
        serving_user=tracking.serving_user,
    )

pulumi.export("namespace", namespace)
pulumi.export("tracking_uri", tracking.user_uri)
pulumi.export("kube_mlflow_tracking_uri", tracking.in_cluster_uri)
pulumi.export("port_forward_command", tracking.port_forward_command)
pulumi.export("artifact_root", store.artifact_root)
pulumi.export("data_root", store.data_root)
pulumi.export("bucket_name", store.bucket_name)
pulumi.export("aws_region", cfg.aws_region)
pulumi.export("training_service_account", training.service_account_name)
pulumi.export("repository_uri", images.uri)
pulumi.export("kube_context", cfg.kube_context or "")
pulumi.export("kube_job_template", build_job_template(cfg, names))
if ray is not None:
    pulumi.export("ray_address", ray.address)
    pulumi.export("ray_storage", store.ray_storage)
    pulumi.export("ray_image", ray.image)
    pulumi.export("ray_max_workers", cfg.ray_max_workers)
    pulumi.export("ray_worker_gpus", cfg.ray_worker_gpus)
    pulumi.export("kube_ray_driver_template", build_ray_driver_template(cfg, names))
if serving is not None:
    pulumi.export("serving_url", serving.url)
    if serving.external_url is not None:
        pulumi.export("serving_external_url", serving.external_url)
if store.role_arn is not None:
    pulumi.export("s3_role_arn", store.role_arn)
if cfg.declares_storage_class:
    pulumi.log.info(
        f"the PostgreSQL volume's StorageClass uses provisioner {cfg.ebs_csi_provisioner}: install the "
        "aws-ebs-csi-driver add-on, or on EKS Auto Mode `pulumi config set ebsCsiProvisioner ebs.csi.eks.amazonaws.com`"
    )
if cfg.irsa_role_arn:
    pulumi.log.info(
        f"the existing role {cfg.irsa_role_arn} must trust these ServiceAccounts' tokens (sub) in its trust policy: "
        + ", ".join(f"system:serviceaccount:{cfg.namespace}:{a}" for a in service_accounts(cfg))
    )
if cfg.service_type != "ClusterIP" and not cfg.basic_auth:
    pulumi.log.warn(
        f"serviceType {cfg.service_type} makes the MLflow server reachable from outside the cluster without "
        "authentication; consider `pulumi config set basicAuth true`"
    )
if cfg.basic_auth:
    pulumi.export("tracking_username", AUTH_ADMIN_USER)
    pulumi.export("tracking_password", secrets.admin_password)
