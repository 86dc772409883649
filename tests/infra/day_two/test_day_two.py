"""Day two on the cluster, as declared: backup and gc CronJobs, their network policies, the ServiceMonitor
toggle and the disruption budget, each checked against what judges it on a real cluster (the Kubernetes 1.34
schema, the Prometheus operator's CRD schema, NetworkPolicy semantics, the CrossGuard policies, config errors).
What the CronJobs' commands do is run for real in test_day_two_jobs.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from crd_schema import crd_document
from declared_pods import Swaps, cron_pod_spec, declared_secrets, prepare
from mlflow_platform.core.config import ConfigError, parse
from mock_harness import KUBERNETES_VERSION, Deployment, Recorded, manifests, run_policies
from network_policy_semantics import Endpoint, allowed

CRD = Path(__file__).parents[1] / "fixtures" / "prometheus-operator-0.93.0-servicemonitors.crd.yaml"
CRONJOB = "kubernetes:batch/v1:CronJob"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
EXTERNAL_DB = {"postgres": "external", "postgresExternalUri": "postgresql+psycopg2://u:p@rds.example.com:5432/mlflow"}

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "replicas-auth-monitor-pod-identity": {
        "trackingReplicas": "3",
        "basicAuth": "true",
        "serviceMonitor": "true",
        "s3Identity": "pod-identity",
        "eksClusterName": "ml-gpu",
    },
    "external-db-irsa": {**EXTERNAL_DB, "s3Identity": "irsa", "irsaRoleArn": "arn:aws:iam::123456789012:role/m"},
}


def _deploy(deploy, variant: str) -> Deployment:
    return deploy(VARIANTS[variant], secret_keys=("postgresExternalUri",))


def _crd_schema() -> dict[str, Any]:
    crd = crd_document(CRD)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def _unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the CRD does not declare: the API server would prune them silently (a typo scrapes nothing)."""
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += _unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += _unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def validate_service_monitor(manifest: dict[str, Any]) -> None:
    schema = _crd_schema()
    jsonschema.validate(manifest, schema)
    unknown = _unknown_fields({k: v for k, v in manifest.items() if k != "metadata"}, schema)
    assert unknown == [], f"fields the ServiceMonitor CRD does not know: {unknown}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_day_two_object_validates_and_passes_the_policies(deploy, variant: str) -> None:
    d = _deploy(deploy, variant)
    rendered = manifests(d)
    # The orphan reaper's CronJob belongs to training (training/orphan_reaper.py), not to day two.
    kinds = [m["kind"] for m in rendered if not m["metadata"]["name"].endswith("orphan-reaper")]
    assert kinds.count("CronJob") == (1 if variant == "external-db-irsa" else 2)
    optional = variant == "replicas-auth-monitor-pod-identity"
    assert ("PodDisruptionBudget" in kinds) == ("ServiceMonitor" in kinds) == optional
    for manifest in rendered:
        if manifest["kind"] == "ServiceMonitor":
            validate_service_monitor(manifest)
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {list(e.path)}: {e.message}")
    assert run_policies(d) == []


def test_the_crd_check_would_catch_a_broken_service_monitor(deploy) -> None:
    monitor = next(
        m for m in manifests(_deploy(deploy, "replicas-auth-monitor-pod-identity")) if m["kind"] == "ServiceMonitor"
    )
    typo = {
        **monitor,
        "spec": {**monitor["spec"], "endpoints": [{**monitor["spec"]["endpoints"][0], "intervall": "30s"}]},
    }
    with pytest.raises(AssertionError, match="intervall"):
        validate_service_monitor(typo)
    wrong_type = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": 5000}]}}
    with pytest.raises(jsonschema.ValidationError):
        validate_service_monitor(wrong_type)


def test_service_monitor_scrapes_the_tracking_service_port_and_signs_in_with_declared_keys(deploy) -> None:
    d = _deploy(deploy, "replicas-auth-monitor-pod-identity")
    monitor = d.one(SERVICE_MONITOR).inputs
    service = d.k8s_named("kubernetes:core/v1:Service", "rapids-mlflow-tracking").inputs
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()  # it selects the tracking Service
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    secrets = {r.inputs["metadata"]["name"]: r.inputs["stringData"] for r in d.of_type("kubernetes:core/v1:Secret")}
    for ref in endpoint["basicAuth"].values():  # /metrics needs credentials like every route under basic auth
        assert ref["key"] in secrets[ref["name"]]
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]


def test_the_server_writes_its_metrics_to_a_writable_scratch_volume(default_deployment: Deployment) -> None:
    pod = default_deployment.k8s_named(DEPLOYMENT, "rapids-mlflow-tracking").inputs["spec"]["template"]["spec"]
    container = pod["containers"][0]
    metrics_dir = next(a.split("=", 1)[1] for a in container["command"] if a.startswith("--expose-prometheus="))
    mount = next(m for m in container["volumeMounts"] if metrics_dir.startswith(m["mountPath"].rstrip("/") + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume and not mount.get("readOnly")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True  # anywhere else the write would fail


def test_one_replica_gets_no_budget_more_replicas_get_one_and_spread(deploy, default_deployment: Deployment) -> None:
    assert default_deployment.of_type(PDB) == []
    pod = default_deployment.k8s_named(DEPLOYMENT, "rapids-mlflow-tracking").inputs["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in pod
    d = deploy({"trackingReplicas": "2"})
    budget = d.one(PDB).inputs["spec"]
    deployment = d.k8s_named(DEPLOYMENT, "rapids-mlflow-tracking").inputs
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= template_labels.items()
    assert budget["maxUnavailable"] == 1  # a drain evicts one replica and waits for it to be replaced
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} >= {"kubernetes.io/hostname"}
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= template_labels.items()
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"


def test_schedules_and_retention_come_from_config(deploy) -> None:
    d = deploy(
        {"backupSchedule": "@daily", "gcSchedule": "5 4 * * SUN", "backupRetentionDays": "7", "gcOlderThan": "12h"}
    )
    backup = d.k8s_named(CRONJOB, "rapids-mlflow-db-backup").inputs["spec"]
    gc = d.k8s_named(CRONJOB, "rapids-mlflow-gc").inputs["spec"]
    assert (backup["schedule"], gc["schedule"]) == ("@daily", "5 4 * * SUN")
    assert backup["timeZone"] == gc["timeZone"] == "Etc/UTC"
    assert backup["concurrencyPolicy"] == gc["concurrencyPolicy"] == "Forbid"
    assert "--older-than=12h" in gc["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    (rules,) = [
        r.inputs["rules"] for r in d.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    ]
    by_id = {r["id"]: r for r in rules}
    assert by_id["expire-database-backups"]["filter"]["prefix"] == "backups/"
    assert by_id["expire-database-backups"]["expiration"]["days"] == 7
    assert "noncurrentVersionExpiration" in by_id["expire-noncurrent-versions"]  # the existing rule stays


def test_without_backups_nothing_is_dumped_and_the_identity_cannot_write_backups(deploy) -> None:
    for config in ({"backups": "false"}, EXTERNAL_DB):
        d = deploy(config, secret_keys=("postgresExternalUri",))
        names = [r.inputs["metadata"]["name"] for r in d.of_type(CRONJOB)]
        assert [n for n in names if not n.endswith("orphan-reaper")] == ["rapids-mlflow-gc"]
        assert "backups/" not in d.one("aws:iam/userPolicy:UserPolicy").inputs["policy"]
        (rules,) = [
            r.inputs["rules"] for r in d.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        ]
        assert [r["id"] for r in rules] == ["expire-noncurrent-versions"]
    assert [r.inputs["metadata"]["name"] for r in deploy({"gc": "false"}).of_type(CRONJOB)] == [
        "rapids-mlflow-orphan-reaper",
        "rapids-mlflow-db-backup",
    ]


@pytest.mark.parametrize(
    ("raw", "key", "fix"),
    [
        ({"backupSchedule": "every night"}, "backupSchedule", "pulumi config set backupSchedule '17 3 * * *'"),
        ({"backupSchedule": "61 3 * * *"}, "backupSchedule", "pulumi config set backupSchedule '17 3 * * *'"),
        ({"gcSchedule": "0 0 * * 7"}, "gcSchedule", "pulumi config set gcSchedule '47 3 * * *'"),
        ({"gcSchedule": "0 ? * * *"}, "gcSchedule", "pulumi config set gcSchedule '47 3 * * *'"),
        ({"gcOlderThan": "30 days"}, "gcOlderThan", "pulumi config set gcOlderThan 30d"),
        ({"gcOlderThan": "0d"}, "gcOlderThan", "pulumi config set gcOlderThan 30d"),
        ({"backupRetentionDays": "0"}, "backupRetentionDays", "pulumi config set backupRetentionDays"),
        ({"artifactPrefix": "backups"}, "artifactPrefix", "pulumi config set artifactPrefix"),
        ({"dataPrefix": "backups/data"}, "dataPrefix", "pulumi config set dataPrefix"),
    ],
)
def test_bad_day_two_config_is_one_line_naming_the_fix(raw: dict[str, str], key: str, fix: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse({"aws:region": "us-east-1", **raw})
    assert error.value.key == key
    assert "\n" not in str(error.value) and fix in str(error.value)


def test_an_external_database_may_keep_the_backups_prefix_free_for_itself() -> None:
    # No dumps are written with an external database, so the prefix is the user's to use.
    assert parse({"aws:region": "us-east-1", "artifactPrefix": "backups", **EXTERNAL_DB}).artifact_prefix == "backups"


def _pod_endpoint(d: Deployment, kind_type: str, name: str) -> Endpoint:
    spec = d.k8s_named(kind_type, name).inputs["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if kind_type == CRONJOB else spec["template"]
    return Endpoint("mlflow", template["metadata"]["labels"], {"kubernetes.io/metadata.name": "mlflow"})


def test_network_policies_let_each_maintenance_pod_reach_only_what_its_job_needs(deploy) -> None:
    d = _deploy(deploy, "replicas-auth-monitor-pod-identity")
    policies = [m for m in manifests(d) if m["kind"] == "NetworkPolicy"]
    backup = _pod_endpoint(d, CRONJOB, "rapids-mlflow-db-backup")
    gc = _pod_endpoint(d, CRONJOB, "rapids-mlflow-gc")
    postgres = _pod_endpoint(d, "kubernetes:apps/v1:StatefulSet", "rapids-mlflow-postgres")
    tracking = _pod_endpoint(d, DEPLOYMENT, "rapids-mlflow-tracking")
    training = Endpoint("mlflow", d.exports["kube_job_template"]["spec"]["template"]["metadata"]["labels"])
    dns = Endpoint("kube-system", {"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
    s3, agent = Endpoint(ip="52.216.0.10"), Endpoint(ip="169.254.170.23")
    for pod in (backup, gc):
        assert allowed(policies, pod, postgres, 5432)
        assert allowed(policies, pod, dns, 53, "UDP")
        assert allowed(policies, pod, s3, 443)
        assert allowed(policies, pod, agent, 80)  # EKS Pod Identity's credentials
        assert not allowed(policies, pod, s3, 80)
        assert not allowed(policies, pod, postgres, 22)
        assert not allowed(policies, tracking, pod, 8080)  # nothing connects to a maintenance pod
    assert allowed(policies, gc, tracking, 5000)  # gc deletes proxied artifacts through the server
    assert not allowed(policies, backup, tracking, 5000)
    assert allowed(policies, tracking, postgres, 5432)  # the database's own policy still holds
    assert not allowed(policies, training, postgres, 5432)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_secret_a_maintenance_pod_reads_is_declared(deploy, variant: str, tmp_path: Path) -> None:
    """A `secretKeyRef` to a missing Secret or key leaves the pod in CreateContainerConfigError at 3 a.m."""
    d = _deploy(deploy, variant)
    secrets = declared_secrets(d)
    for cron in d.of_type(CRONJOB):
        pod = cron_pod_spec(d, cron.inputs["metadata"]["name"])
        for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
            env = prepare(pod, container, secrets, tmp_path, Swaps()).env  # asserts each reference resolves
            if container["name"] == "mlflow-gc" and "basicAuth" in VARIANTS[variant]:  # deletes via the server
                assert (
                    env["MLFLOW_TRACKING_PASSWORD"]
                    == secrets["rapids-mlflow-tracking-auth"]["MLFLOW_AUTH_ADMIN_PASSWORD"]
                )


def _broken(d: Deployment, name: str, mutate) -> Deployment:
    """`d` with the wire inputs of CronJob `name` changed by `mutate` (its pod spec as argument)."""
    resources = []
    for r in d.resources:
        if r.type == CRONJOB and r.inputs["metadata"]["name"] == name:
            wire = copy.deepcopy(r.wire_inputs)
            mutate(wire["spec"]["jobTemplate"]["spec"]["template"]["spec"])
            r = Recorded(**{**r.__dict__, "wire_inputs": wire})
        resources.append(r)
    return Deployment(resources=resources)


@pytest.mark.parametrize(
    ("policy", "name", "mutate"),
    [
        (
            "k8s-pods-hardened",
            "rapids-mlflow-db-backup",
            lambda p: p["initContainers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        ),
        ("k8s-pods-hardened", "rapids-mlflow-gc", lambda p: p["containers"][0]["resources"].pop("limits")),
        (
            "k8s-no-inline-secrets",
            "rapids-mlflow-db-backup",
            lambda p: p["initContainers"][0]["env"].append({"name": "PGPASSWORD", "value": "hunter2"}),
        ),
        (
            "k8s-no-inline-secrets",
            "rapids-mlflow-gc",
            lambda p: p["containers"][0]["command"].append("--backend-store-uri=postgresql://u:pw@db/mlflow"),
        ),
        (
            "images-pinned",
            "rapids-mlflow-db-backup",
            lambda p: p["containers"][0].update(image="amazon/aws-cli:latest"),
        ),
    ],
)
def test_the_policies_judge_the_cronjobs_pods(default_deployment: Deployment, policy: str, name: str, mutate) -> None:
    assert policy in {v.policy for v in run_policies(_broken(default_deployment, name, mutate))}
