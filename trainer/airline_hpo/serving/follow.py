"""The cluster's alias follower (a CronJob's command): restart the serving Deployment when the alias has moved.

``python -m airline_hpo.serving.follow --namespace NS --deployment NAME --model-name M --alias champion``

MLflow's scoring server resolves ``models:/<name>@<alias>`` once, at start; Kubernetes already knows how to
replace pods without dropping a request (a rolling update gated on readiness, so a version that fails to load
never takes traffic and the old pods keep serving). This job only decides when: it asks the registry which
version the alias names (:func:`airline_hpo.serving.alias.alias_version`), reads the version the Deployment was
last rolled for (the pod template annotation :data:`VERSION_ANNOTATION`), and when
:func:`airline_hpo.serving.alias.version_to_serve` says so, patches that annotation and ``restartedAt`` into the
pod template: what ``kubectl rollout restart`` does. Two API calls, both on the one Deployment: ``get`` and
``patch`` (the Role grants nothing else). ``pulumi up`` ignores the annotations (``ignore_changes``).

Kubernetes client 36 sends a dict body of a PATCH as ``application/json-patch+json`` (the first type it
lists), which the API server refuses for an object; the content type is set to a strategic merge patch, as
kubectl's ``rollout restart`` sends.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

from airline_hpo.errors import OneLineParser, TrainerError, run_cli
from airline_hpo.serving.alias import alias_version, version_to_serve

VERSION_ANNOTATION = "serving.rapids-mlflow-stack/model-version"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
PATCH_CONTENT_TYPE = "application/strategic-merge-patch+json"


def served_version(apps, namespace: str, deployment: str) -> str | None:
    """The version the Deployment was last rolled for (None before the first roll by this job)."""
    found = apps.read_namespaced_deployment(deployment, namespace)
    annotations = (found.spec.template.metadata.annotations if found.spec.template.metadata else None) or {}
    return annotations.get(VERSION_ANNOTATION)


def restart_patch(version: str, now: dt.datetime) -> dict:
    annotations = {VERSION_ANNOTATION: version, RESTARTED_AT_ANNOTATION: now.isoformat(timespec="seconds")}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def follow(apps, namespace: str, deployment: str, model_name: str, alias: str) -> str | None:
    """Roll the Deployment when the alias names another version; returns the version rolled to, or None."""
    current = alias_version(model_name, alias)
    target = version_to_serve(served_version(apps, namespace, deployment), current)
    if target is None:
        return None
    apps.patch_namespaced_deployment(
        deployment, namespace, restart_patch(target, dt.datetime.now(dt.UTC)), _content_type=PATCH_CONTENT_TYPE
    )
    return target


def apps_api(kubeconfig: str | None = None):
    """The apps/v1 API as this pod's ServiceAccount (in the cluster), or from a kubeconfig (elsewhere)."""
    import kubernetes

    if kubeconfig:
        kubernetes.config.load_kube_config(config_file=kubeconfig)
    else:
        kubernetes.config.load_incluster_config()
    return kubernetes.client.AppsV1Api()


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="follow", description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--kubeconfig", default=None, help="outside the cluster: a kubeconfig file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from kubernetes.client.exceptions import ApiException

    args = _parser().parse_args(argv)
    try:
        rolled = follow(apps_api(args.kubeconfig), args.namespace, args.deployment, args.model_name, args.alias)
    except ApiException as exc:
        raise TrainerError(
            f"the Kubernetes API refused {exc.status} {exc.reason} on deployment {args.namespace}/{args.deployment}",
            "check the follower's Role (get and patch on that one Deployment) and the Deployment's name",
        ) from exc
    if rolled is None:
        print(f"{args.model_name}@{args.alias}: the served version is current; nothing to do")
    else:
        print(f"{args.model_name}@{args.alias} is version {rolled}: rolling deployment {args.deployment}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
