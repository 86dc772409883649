"""The in-cluster endpoint (`serving: true`): what `pulumi up` declares, checked against the real counterparts:
kubernetes schemas, the CrossGuard policies, RBAC semantics for the follower's Role, NetworkPolicy semantics."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
from mlflow_platform.core.config import ConfigError
from mlflow_platform.policies import check_pod_spec
from mlflow_platform.serving.follower import follower_rules
from mock_harness import KUBERNETES_VERSION, SECRET_SIG_KEY, Deployment, ProviderMocks, manifests, run_policies
from network_policy_semantics import Endpoint, allowed
from rbac_authorizer import allowing_rules, request_attributes

TAG = "0a1b2c3"
SERVING = {"serving": "true", "servingImageTag": TAG}
NAME, FOLLOWER, NS = "rapids-mlflow-serving", "rapids-mlflow-serving-follower", "mlflow"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rapids-mlflow-dev/airline-hpo"
VERSION_ANNOTATION = "serving.rapids-mlflow-stack/model-version"


@pytest.fixture(scope="module")
def served() -> Deployment:
    from mock_harness import run_program

    return run_program(SERVING)


def _deployment(d: Deployment) -> dict:
    return d.k8s_named(DEPLOYMENT, NAME).inputs


def _pod(d: Deployment) -> dict:
    return _deployment(d)["spec"]["template"]["spec"]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def _serving_objects(d: Deployment) -> list[str]:
    return sorted(
        f"{m['kind']}/{m['metadata']['name']}" for m in manifests(d) if m["metadata"]["name"].startswith(NAME)
    )


def test_nothing_is_served_unless_serving_is_on(default_deployment: Deployment, served: Deployment) -> None:
    assert _serving_objects(default_deployment) == []
    assert "serving_url" not in default_deployment.exports
    assert _serving_objects(served) == sorted(
        [
            f"Deployment/{NAME}",
            f"Service/{NAME}",
            f"ServiceAccount/{NAME}",
            f"NetworkPolicy/{NAME}-traffic",
            f"CronJob/{FOLLOWER}",
            f"ServiceAccount/{FOLLOWER}",
            f"Role/{FOLLOWER}",
            f"RoleBinding/{FOLLOWER}",
            f"NetworkPolicy/{FOLLOWER}",
        ]
    )
    assert served.exports["serving_url"] == f"http://{NAME}.{NS}.svc.cluster.local:8080"
    service = served.k8s_named("kubernetes:core/v1:Service", NAME).inputs["spec"]
    assert service["type"] == "ClusterIP" and service["ports"][0]["port"] == 8080


def test_it_serves_the_champion_with_mlflows_scoring_server_from_the_training_image(served: Deployment) -> None:
    (container,) = _pod(served)["containers"]
    assert container["command"] == [
        "mlflow", "models", "serve", "-m", "models:/airline-delay@champion",
        "--env-manager", "local", "--host", "0.0.0.0", "--port", "8080",
    ]  # fmt: skip
    # The image the Job template's repository holds, at the configured tag (the same as the training Jobs').
    assert container["image"] == f"{ECR}:{TAG}"
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]


def test_model_and_alias_come_from_config(deploy) -> None:
    d = deploy({**SERVING, "servingModel": "flights", "servingAlias": "challenger"})
    assert "models:/flights@challenger" in _pod(d)["containers"][0]["command"]
    follower = d.k8s_named("kubernetes:batch/v1:CronJob", FOLLOWER).inputs
    command = follower["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--model-name") + 1] == "flights"
    assert command[command.index("--alias") + 1] == "challenger"


def test_it_fetches_the_model_through_the_proxy_and_holds_no_s3_key(served: Deployment, deploy) -> None:
    env = _env(_pod(served)["containers"][0])
    assert env["MLFLOW_TRACKING_URI"]["value"] == served.exports["kube_mlflow_tracking_uri"]
    assert not any(name.startswith("AWS_") for name in env)
    assert _pod(served)["automountServiceAccountToken"] is False
    d = deploy({**SERVING, "basicAuth": "true"})
    cron = d.k8s_named("kubernetes:batch/v1:CronJob", FOLLOWER).inputs["spec"]["jobTemplate"]["spec"]["template"]
    # The scoring pods and the follower sign in as the endpoint's own read-only user, by reference: never the
    # admin, never the training user, never a literal password.
    for container in (_pod(d)["containers"][0], cron["spec"]["containers"][0]):
        authed = _env(container)
        for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert authed[var]["valueFrom"]["secretKeyRef"] == {"name": "rapids-mlflow-serving-auth", "key": var}
        assert not any("ADMIN" in str(e) or "training" in str(e) for e in authed.values())


def _job_env(spec: dict) -> dict[str, dict]:
    (container,) = spec["containers"]
    return _env(container)


def test_with_basic_auth_the_serving_user_is_made_and_granted_by_the_admin_in_the_mlflow_image(deploy) -> None:
    d = deploy({**SERVING, "basicAuth": "true"})
    secret = d.k8s_named("kubernetes:core/v1:Secret", "rapids-mlflow-serving-auth")
    assert secret.inputs["stringData"]["MLFLOW_TRACKING_USERNAME"] == "serving"
    assert len(secret.inputs["stringData"]["MLFLOW_TRACKING_PASSWORD"]) >= 30  # generated
    wire = secret.wire_inputs["stringData"]
    assert SECRET_SIG_KEY in str(wire)  # a secret in the state, masked in previews
    assert not any(secret.inputs["stringData"]["MLFLOW_TRACKING_PASSWORD"] in str(v) for v in d.exports.values())
    (job,) = [j for j in d.of_type("kubernetes:batch/v1:Job") if "serving-user" in j.inputs["metadata"]["name"]]
    spec = job.inputs["spec"]["template"]["spec"]
    tracking = d.k8s_named(DEPLOYMENT, "rapids-mlflow-tracking")
    assert tracking.urn in job.dependencies  # it talks to the running server
    assert job.urn in d.k8s_named(DEPLOYMENT, NAME).dependencies  # the scoring pods start after their user exists
    grants = d.k8s_named("kubernetes:batch/v1:CronJob", FOLLOWER).inputs["spec"]["jobTemplate"]["spec"]["template"]
    (init,) = grants["spec"]["initContainers"]  # before every follower run: grants on new versions' experiments
    tracking_image = tracking.inputs["spec"]["template"]["spec"]["containers"][0]["image"]
    for env, image in ((_job_env(spec), spec["containers"][0]["image"]), (_env(init), init["image"])):
        assert image == tracking_image  # MLflow's own client, never the training image, holds the admin's pair
        assert env["MLFLOW_TRACKING_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == "rapids-mlflow-tracking-auth"
        assert env["SERVING_USERNAME"]["value"] == "serving" and env["SERVING_MODEL"]["value"] == "airline-delay"
    assert _job_env(spec)["SERVING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "rapids-mlflow-serving-auth",
        "key": "MLFLOW_TRACKING_PASSWORD",
    }
    assert "SERVING_PASSWORD" not in _env(init)  # the recurring pod never holds the serving password
    # Without serving, or without basic auth, there is no serving user at all.
    for config in ({"basicAuth": "true"}, SERVING):
        other = deploy(config)
        assert not [s for s in manifests(other) if s["metadata"]["name"].startswith("rapids-mlflow-serving-")
                    and s["kind"] in ("Secret", "Job")]  # fmt: skip
    assert "initContainers" not in _pod_template(deploy(SERVING))["spec"]


def _pod_template(d: Deployment) -> dict:
    return d.k8s_named("kubernetes:batch/v1:CronJob", FOLLOWER).inputs["spec"]["jobTemplate"]["spec"]["template"]


def test_ready_only_once_the_model_answers_ping_and_rolls_without_dropping_capacity(served: Deployment) -> None:
    container = _pod(served)["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/ping", "port": "http"}
    # A slow model download gets ten minutes before the kubelet gives up on the pod.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    strategy = _deployment(served)["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_pods_meet_restricted_pod_security_and_carry_the_secrets_checksum(served: Deployment) -> None:
    assert check_pod_spec(_pod(served)) == []
    cron = served.k8s_named("kubernetes:batch/v1:CronJob", FOLLOWER).inputs
    assert check_pod_spec(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]) == []
    annotations = _deployment(served)["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == {"checksum/secrets"}


class _Rotated(ProviderMocks):
    """The provider's answer after `pulumi up --replace` of one generated password."""

    def __init__(self, which: str) -> None:
        self.which = which

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.name.endswith(self.which):
            state["result"] = "r" * int(state.get("length", 16))
        return rid, state


def _checksum(d: Deployment) -> str:
    return _deployment(d)["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]


def test_a_rotated_serving_password_rolls_the_scoring_pods_and_others_do_not(deploy) -> None:
    auth = {**SERVING, "basicAuth": "true"}
    before = _checksum(deploy(auth))
    assert _checksum(deploy(auth, mocks=_Rotated("serving-password"))) != before
    for other in ("admin-password", "training-password"):  # the pods never read them
        assert _checksum(deploy(auth, mocks=_Rotated(other))) == before


def test_a_rotated_serving_or_admin_password_reruns_the_serving_user_job(deploy) -> None:
    auth = {**SERVING, "basicAuth": "true"}

    def job_name(d: Deployment) -> str:
        (name,) = [j.inputs["metadata"]["name"] for j in d.of_type("kubernetes:batch/v1:Job")
                   if "serving-user" in j.inputs["metadata"]["name"]]  # fmt: skip
        return name

    before = job_name(deploy(auth))
    assert before.startswith("rapids-mlflow-serving-user-") and len(before) <= 63
    assert job_name(deploy(auth, mocks=_Rotated("serving-password"))) != before
    assert job_name(deploy(auth, mocks=_Rotated("admin-password"))) != before
    assert job_name(deploy(auth, mocks=_Rotated("training-password"))) == before


def test_pulumi_leaves_the_followers_annotations_alone(served: Deployment) -> None:
    deployment = served.k8s_named(DEPLOYMENT, NAME)
    assert sorted(deployment.ignore_changes) == sorted(
        [
            f'spec.template.metadata.annotations["{VERSION_ANNOTATION}"]',
            'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]',
        ]
    )
    from airline_hpo.serving import follow

    assert follow.VERSION_ANNOTATION == VERSION_ANNOTATION  # the annotation the follower actually patches


def test_gpus_add_the_limit_the_toleration_and_the_runtime_class(served: Deployment, deploy) -> None:
    cpu_pod = _pod(served)
    assert "nvidia.com/gpu" not in cpu_pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in cpu_pod
    gpu_pod = _pod(deploy({**SERVING, "servingGpus": "1", "gpuRuntimeClass": "nvidia"}))
    assert gpu_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu_pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert gpu_pod["runtimeClassName"] == "nvidia"


def test_resources_and_replicas_come_from_config(served: Deployment, deploy) -> None:
    assert _pod(served)["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert not served.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    d = deploy({**SERVING, "servingReplicas": "3", "servingCpu": "500m", "servingMemoryLimit": "6Gi"})
    assert _deployment(d)["spec"]["replicas"] == 3
    assert _pod(d)["containers"][0]["resources"]["requests"]["cpu"] == "500m"
    budget = d.k8s_named("kubernetes:policy/v1:PodDisruptionBudget", NAME).inputs["spec"]
    assert budget["maxUnavailable"] == 1 and budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    spread = _pod(d)["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert "topologySpreadConstraints" not in _pod(served)
    assert budget["selector"]["matchLabels"] == _deployment(d)["spec"]["selector"]["matchLabels"]


def test_serving_without_an_image_tag_is_one_line(deploy) -> None:
    with pytest.raises(ConfigError, match=r"^config rapids-mlflow-stack:servingImageTag: is required") as error:
        deploy({"serving": "true"})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("variant", ["plain", "auth-gpu-replicas", "exposed-tls"])
def test_manifests_validate_and_policies_pass(deploy, variant: str) -> None:
    config = {
        "plain": SERVING,
        "auth-gpu-replicas": {**SERVING, "basicAuth": "true", "servingGpus": "1", "servingReplicas": "2"},
        "exposed-tls": {**SERVING, "servingExposure": "loadBalancer", "servingSourceRanges": "203.0.113.0/24",
                        "servingTlsCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f0e"},
    }[variant]  # fmt: skip
    d = deploy(config)
    for manifest in manifests(d):
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {e.message}")
    assert run_policies(d) == []


def test_the_followers_role_is_follower_rules_and_allows_exactly_its_calls(served: Deployment) -> None:
    role = served.k8s_named("kubernetes:rbac.authorization.k8s.io/v1:Role", FOLLOWER).inputs
    assert role["rules"] == follower_rules(NAME)
    binding = served.k8s_named("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", FOLLOWER).inputs
    assert binding["roleRef"]["name"] == FOLLOWER
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FOLLOWER, "namespace": NS}]
    cron = served.k8s_named("kubernetes:batch/v1:CronJob", FOLLOWER).inputs
    assert cron["spec"]["schedule"] == "*/2 * * * *"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == FOLLOWER and pod["automountServiceAccountToken"] is True
    command = pod["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "airline_hpo.serving.follow"]
    deployment, namespace = command[command.index("--deployment") + 1], command[command.index("--namespace") + 1]
    assert (deployment, namespace) == (NAME, NS)  # the Deployment the Role names, in the Role's namespace
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
    # The follower's two calls (read, then strategic-merge patch) are allowed; nothing else is.
    assert allowing_rules(role["rules"], request_attributes("GET", path)) == [0]
    assert allowing_rules(role["rules"], request_attributes("PATCH", path)) == [0]
    for method, other in (
        ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/rapids-mlflow-tracking"),
        ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments"),
        ("DELETE", path),
        ("PUT", path),
        ("GET", f"/api/v1/namespaces/{NS}/secrets/rapids-mlflow-training-auth"),
    ):
        assert allowing_rules(role["rules"], request_attributes(method, other)) == [], (method, other)


def _pod_labels(d: Deployment, kind: str, name: str) -> dict[str, str]:
    inputs = d.k8s_named(kind, name).inputs["spec"]
    template = inputs["jobTemplate"]["spec"]["template"] if kind.endswith("CronJob") else inputs["template"]
    return template["metadata"]["labels"]


def test_network_policies_admit_the_serving_pods_to_the_tracking_server_and_little_else(deploy) -> None:
    for config in (SERVING, {**SERVING, "basicAuth": "true", "serviceType": "LoadBalancer",
                             "tlsCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f0e"}):  # fmt: skip
        d = deploy(config)
        policies = [m for m in manifests(d) if m["kind"] == "NetworkPolicy"]
        ns_labels = {"kubernetes.io/metadata.name": NS}

        def pod(labels: dict[str, str], namespace: str = NS) -> Endpoint:
            return Endpoint(namespace, labels, {"kubernetes.io/metadata.name": namespace})

        tracking = pod(_pod_labels(d, DEPLOYMENT, "rapids-mlflow-tracking"))
        serving = pod(_pod_labels(d, DEPLOYMENT, NAME))
        follower = pod(_pod_labels(d, "kubernetes:batch/v1:CronJob", FOLLOWER))
        dns = pod({"k8s-app": "kube-dns"}, "kube-system")
        client = Endpoint(NS, {"app": "some-client"}, ns_labels)
        assert allowed(policies, serving, tracking, 5000)
        assert allowed(policies, serving, dns, 53, "UDP")
        assert allowed(policies, client, serving, 8080)
        assert not allowed(policies, client, serving, 9000)
        assert not allowed(policies, pod({"app": "x"}, "other"), serving, 8080)
        assert not allowed(policies, serving, Endpoint(ip="52.216.0.10"), 443)  # no S3, no internet
        assert not allowed(policies, serving, pod({"app": "x"}), 8080)
        assert allowed(policies, follower, tracking, 5000)
        assert allowed(policies, follower, Endpoint(ip="10.0.0.1"), 443)  # the API server
        assert not allowed(policies, client, follower, 8080)


def test_the_follower_runs_in_the_scoring_image_which_brings_its_kubernetes_client(served: Deployment) -> None:
    """The follower imports `kubernetes`; neither MLflow nor Ray brings it into the training image."""
    import re

    from mock_harness import REPO

    cron = served.k8s_named("kubernetes:batch/v1:CronJob", FOLLOWER).inputs
    follower = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert follower["image"] == _pod(served)["containers"][0]["image"] == f"{ECR}:{TAG}"
    pins = [
        re.findall(r"^kubernetes==(\S+)", (REPO / p).read_text(), re.M)
        for p in ("requirements.txt", "trainer/requirements.txt")
    ]
    assert pins[0] and pins[1] == pins[0]


CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f0e"
EXPOSED = {**SERVING, "servingExposure": "loadBalancer", "servingSourceRanges": "203.0.113.0/24,198.51.100.0/24"}
PUBLIC = f"{NAME}-public"
LB = "service.beta.kubernetes.io/aws-load-balancer-"


def test_the_endpoint_stays_inside_the_cluster_unless_exposed(served: Deployment) -> None:
    assert not [m for m in manifests(served) if m["kind"] == "Service" and m["spec"]["type"] == "LoadBalancer"]
    assert "serving_external_url" not in served.exports


@pytest.mark.parametrize("tls", [False, True])
def test_exposed_it_gets_a_load_balancer_of_the_trackings_kind_limited_to_its_sources(deploy, tls: bool) -> None:
    d = deploy({**EXPOSED, **({"servingTlsCertificateArn": CERT} if tls else {})})
    service = d.k8s_named("kubernetes:core/v1:Service", PUBLIC).inputs
    spec, annotations = service["spec"], service["metadata"]["annotations"]
    assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
    assert spec["loadBalancerSourceRanges"] == ["203.0.113.0/24", "198.51.100.0/24"]
    assert spec["selector"] == _deployment(d)["spec"]["selector"]["matchLabels"]
    # The scheme stated for both AWS controllers, the tracking server's default (internal), never awaited.
    assert annotations[f"{LB}scheme"] == "internal" and annotations[f"{LB}internal"] == "true"
    assert annotations[f"{LB}type"] == "nlb" and annotations["pulumi.com/skipAwait"] == "true"
    if tls:
        assert spec["ports"] == [{"name": "https", "port": 443, "targetPort": "http"}]
        assert annotations[f"{LB}ssl-cert"] == CERT and annotations[f"{LB}ssl-ports"] == "https"
        assert d.exports["serving_external_url"] == "https://mlflow-lb.elb.example.com"
    else:
        assert spec["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]
        assert f"{LB}ssl-cert" not in annotations
        assert d.exports["serving_external_url"] == "http://mlflow-lb.elb.example.com:8080"
    facing = deploy({**EXPOSED, "loadBalancerScheme": "internet-facing"})
    annotations = facing.k8s_named("kubernetes:core/v1:Service", PUBLIC).inputs["metadata"]["annotations"]
    assert annotations[f"{LB}scheme"] == "internet-facing" and f"{LB}internal" not in annotations


def test_until_the_load_balancer_has_an_address_the_output_says_how_to_see_it() -> None:
    from mlflow_platform.core.config import parse
    from mlflow_platform.core.naming import Names
    from mlflow_platform.serving.endpoint import external_url

    cfg = parse({"aws:region": "us-east-1", **EXPOSED})
    assert external_url(cfg, Names(cfg.name_prefix, cfg.namespace), []) == (
        f"pending: kubectl -n {NS} get service {PUBLIC}"
    )


def test_exposed_the_network_policy_admits_the_source_ranges_and_no_other_address(served: Deployment, deploy) -> None:
    def admitted(d: Deployment, ip: str, port: int = 8080) -> bool:
        policies = [m for m in manifests(d) if m["kind"] == "NetworkPolicy"]
        serving = Endpoint(NS, _pod_labels(d, DEPLOYMENT, NAME), {"kubernetes.io/metadata.name": NS})
        return allowed(policies, Endpoint(ip=ip), serving, port)

    exposed = deploy(EXPOSED)
    assert admitted(exposed, "203.0.113.7") and admitted(exposed, "198.51.100.200")
    assert not admitted(exposed, "192.0.2.1")
    assert not admitted(exposed, "203.0.113.7", 9000)
    assert not admitted(served, "203.0.113.7")  # not exposed: no address outside the cluster
    follower = Endpoint(NS, _pod_labels(exposed, "kubernetes:batch/v1:CronJob", FOLLOWER), {})
    policies = [m for m in manifests(exposed) if m["kind"] == "NetworkPolicy"]
    assert not allowed(policies, Endpoint(ip="203.0.113.7"), follower, 8080)  # the follower stays closed


@pytest.mark.parametrize(
    ("config", "key", "says"),
    [
        ({"servingExposure": "loadBalancer"}, "serving", "must be true"),
        ({**SERVING, "servingExposure": "loadBalancer"}, "servingSourceRanges", "is required"),
        (
            {**EXPOSED, "servingSourceRanges": "10.0.0.0/8,0.0.0.0/0"},
            "servingSourceRanges",
            "must not contain 0.0.0.0/0",
        ),
        ({**EXPOSED, "servingSourceRanges": "::/0"}, "servingSourceRanges", "must not contain ::/0"),
        ({**SERVING, "servingSourceRanges": "10.0.0.0/8"}, "servingExposure", "must be loadBalancer"),
        ({**SERVING, "servingTlsCertificateArn": CERT}, "servingExposure", "must be loadBalancer"),
        ({**SERVING, "servingExposure": "public"}, "servingExposure", "'cluster' or 'loadBalancer'"),
        ({**EXPOSED, "servingSourceRanges": "10.0.0.1/8"}, "servingSourceRanges", "not a CIDR block"),
        ({**EXPOSED, "servingTlsCertificateArn": "cert"}, "servingTlsCertificateArn", "ACM certificate ARN"),
    ],
)
def test_exposure_mistakes_are_one_line_at_preview(deploy, config: dict, key: str, says: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config rapids-mlflow-stack:{key}: .*{re.escape(says)}") as error:
        deploy(config)
    assert "\n" not in str(error.value) and "pulumi config set" in str(error.value)


def test_every_address_is_accepted_only_when_asked_for(deploy) -> None:
    d = deploy({**EXPOSED, "servingSourceRanges": "0.0.0.0/0", "servingAllowAnywhere": "true"})
    assert d.k8s_named("kubernetes:core/v1:Service", PUBLIC).inputs["spec"]["loadBalancerSourceRanges"] == ["0.0.0.0/0"]
