"""Where `mlflow run --build-image` pushes the training image: an ECR repository unless one is configured.

MLflow's Kubernetes backend builds the project into an image on top of the MLproject's `docker_env.image`
and pushes it to the backend config's `repository-uri` before creating the Job. With
`trainingRepositoryUri` set (for example MicroK8s' built-in registry, `localhost:32000/airline-hpo`) nothing
is created; otherwise this stack creates a private, scanned, encrypted ECR repository. Tags stay mutable
because MLflow tags each build with the project's git commit, and re-running a commit rebuilds that tag.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from mlflow_platform.aws.tags import aws_tags
from mlflow_platform.core.config import StackConfig
from mlflow_platform.core.naming import TYPE_PREFIX, AwsNames


class ImageRepository(pulumi.ComponentResource):
    """The registry repository the training image is pushed to; `uri` feeds `repository-uri`."""

    uri: pulumi.Output[str]

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:ImageRepository", name, None, opts)
        if cfg.training_repository_uri:
            self.uri = pulumi.Output.from_input(cfg.training_repository_uri)
        else:
            repository = aws.ecr.Repository(
                f"{name}-ecr",
                name=AwsNames(cfg.name_prefix, cfg.stack).ecr_repository,
                image_tag_mutability="MUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
                tags=aws_tags(cfg.name_prefix, cfg.stack, "training-image"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.uri = repository.repository_url
        self.register_outputs({"uri": self.uri})
