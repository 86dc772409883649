"""A recording stand-in for the Kubernetes API server, on 127.0.0.1, for the calls our callers make.

Why a stand-in and not a mock: the callers under test (MLflow's `mlflow.projects.kubernetes`, built on the
official `kubernetes` client, and `kubectl logs`) must run unchanged, load their config from a real kubeconfig
file and send real HTTP. Only the far end is replaced: this server answers the batch/v1 Job endpoints (create,
status, get, delete), the pod list/watch, get, delete and log endpoints, apps/v1 Deployment get and patch (for
the serving alias follower), and API discovery, with JSON shaped like the
API server's, and records every request so tests can check it against the Role the Pulumi program declares.

It serves HTTPS with a throwaway certificate for 127.0.0.1, as a cluster does: client-go (kubectl) sends a
bearer token only over TLS, and the kubeconfig carries the CA as `certificate-authority-data`, so the clients'
TLS verification runs as it would against EKS.

Deleting a Job follows batch/v1's garbage-collection default, which is not kubectl's: a DELETE without
`propagationPolicy` (what MLflow's `KubernetesSubmittedRun.cancel()` sends: an empty `V1DeleteOptions`)
ORPHANS the Job's pods. Upstream: kubernetes/kubernetes `pkg/registry/batch/job/strategy.go`
(`DefaultGarbageCollectionPolicy` returns `rest.OrphanDependents` for batch/v1 "for backwards compatibility")
and `pkg/registry/batch/job/storage/storage.go` (`deleteOptionWarnings`, sent as a `Warning` header: "child pods
are preserved by default when jobs are deleted; ..."). The garbage collector then removes the Job's
ownerReference from each pod (`pkg/controller/garbagecollector/garbagecollector.go`, `orphanDependents`) and the
pod keeps running. `Background` and `Foreground` delete the pods (docs: "Garbage Collection", cascading deletion).
The stand-in answers with the end state at once: the Job gone, its pods either gone or ownerless and Running.

Optionally it authorizes each request the way the API server would with RBAC (`authorize`), answering 403
with the API server's message when a request is not allowed, so a missing rule shows as the error a user
would get.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CREATED_AT = "2026-11-29T10:00:00Z"
STARTED_AT = "2026-11-29T10:00:05Z"
FINISHED_AT = "2026-11-29T10:20:00Z"
TOKEN = "stand-in-bearer-token"
LOG_LINES = ("trial 1/2 accuracy=0.61\n", "trial 2/2 accuracy=0.64\n")

# What `GET .../jobs/{name}/status` answers, phase by phase (`job_phases` picks the sequence).
JOB_STATUS: dict[str, dict[str, Any]] = {
    "pending": {},
    "active": {"active": 1, "ready": 1, "startTime": STARTED_AT},
    "succeeded": {
        "succeeded": 1,
        "startTime": STARTED_AT,
        "completionTime": FINISHED_AT,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": FINISHED_AT},
            {"type": "Complete", "status": "True", "lastTransitionTime": FINISHED_AT},
        ],
    },
    "failed": {
        "failed": 1,
        "startTime": STARTED_AT,
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": FINISHED_AT,
            },
        ],
    },
}


@dataclass(frozen=True)
class ApiRequest:
    """One request as the API server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: Any = None
    content_type: str | None = None

    @property
    def call(self) -> tuple[str, str]:
        return self.method, self.path


@dataclass
class StandInState:
    """What the stand-in remembers: the requests, the Jobs created, and how each Job's status evolves."""

    job_phases: Sequence[str]
    authorize: Callable[[ApiRequest], str | None] | None
    pods_appear_on_watch: bool = False
    watched: bool = False
    requests: list[ApiRequest] = field(default_factory=list)
    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: The pods the Job controller made, by (namespace, name); they outlive an orphaning Job DELETE.
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    polls: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


#: What the API server answers in a `Warning` header to a batch/v1 Job DELETE without a propagation policy
#: (kubernetes/kubernetes pkg/registry/batch/job/storage/storage.go, `deleteOptionWarnings`).
ORPHAN_WARNING = (
    "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them "
    "or set propagationPolicy=Orphan to suppress this warning"
)


def propagation_policy(request: ApiRequest) -> str:
    """The DELETE's propagation policy, from the query or the `DeleteOptions` body; batch/v1's default is Orphan
    (`jobStrategy.DefaultGarbageCollectionPolicy`). The deprecated `orphanDependents` flag is honoured as the
    generic store does (k8s.io/apiserver `pkg/registry/generic/registry/store.go`, `shouldOrphanDependents`)."""
    body = request.body if isinstance(request.body, dict) else {}
    policy = (request.query.get("propagationPolicy") or [None])[0] or body.get("propagationPolicy")
    if policy:
        return str(policy)
    orphan = body.get("orphanDependents")
    if orphan is False:
        return "Background"
    return "Orphan"


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "code": code,
    }
    if code >= 400:
        body.update(reason=reason, message=message)
    if details:
        body["details"] = details
    return body


def _pod_for(job: dict[str, Any]) -> dict[str, Any]:
    """The pod the Job controller would have made for `job` (what `kubectl logs job/<name>` looks for)."""
    name = job["metadata"]["name"]
    spec = job["spec"]["template"]["spec"]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": f"{name}-x7k2p",
            "namespace": job["metadata"]["namespace"],
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "resourceVersion": "2",
            "creationTimestamp": STARTED_AT,
            "labels": job["spec"]["template"]["metadata"]["labels"],
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": job["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": spec,
        "status": {"phase": "Running", "startTime": STARTED_AT},
    }


DISCOVERY: dict[str, dict[str, Any]] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "batch",
                "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
            }
        ],
    },
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": ["po"],
            },
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        ],
    },
    "/apis/batch/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "batch/v1",
        "resources": [
            {
                "name": "jobs",
                "singularName": "job",
                "namespaced": True,
                "kind": "Job",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            },
            {"name": "jobs/status", "singularName": "", "namespaced": True, "kind": "Job", "verbs": ["get"]},
        ],
    },
    "/version": {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "platform": "linux/amd64"},
}


def _self_signed_certificate() -> tuple[bytes, bytes]:
    """A CA-capable certificate for 127.0.0.1 (PEM) and its key (PEM), valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-stand-in")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are recorded, not logged."""

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _send(
        self, code: int, body: Any, content_type: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        for header, value in (headers or {}).items():
            self.send_header(header, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        request = ApiRequest(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            authorization=self.headers.get("Authorization"),
            body=self._read_body(),
            content_type=self.headers.get("Content-Type"),
        )
        state = self.server.state
        with state.lock:
            state.requests.append(request)
        if request.authorization != f"Bearer {TOKEN}":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        if state.authorize is not None:
            refusal = state.authorize(request)
            if refusal:
                self._send(403, _status(403, "Forbidden", refusal))
                return
        if request.method == "GET" and request.path in DISCOVERY:
            self._send(200, DISCOVERY[request.path])
            return
        parts = request.path.strip("/").split("/")
        if parts[:3] == ["apis", "batch", "v1"] and parts[3:4] == ["namespaces"] and parts[5:6] == ["jobs"]:
            self._jobs(request, parts[4], parts[6:])
        elif parts[:2] == ["api", "v1"] and parts[2:3] == ["namespaces"] and parts[4:5] == ["pods"]:
            self._pods(request, parts[3], parts[5:])
        elif parts[:3] == ["apis", "apps", "v1"] and parts[3:4] == ["namespaces"] and parts[5:6] == ["deployments"]:
            self._deployments(request, parts[4], parts[6:])
        else:
            self._send(404, _status(404, "NotFound", f"the server could not find the requested resource {url.path}"))

    def _jobs(self, request: ApiRequest, namespace: str, rest: list[str]) -> None:
        state = self.server.state
        if request.method == "POST" and not rest:
            job = dict(request.body)
            metadata = dict(job["metadata"])
            metadata.update(uid=str(uuid.uuid4()), resourceVersion="1", creationTimestamp=CREATED_AT)
            # What the API server's Job strategy adds: a selector on the controller's uid, and the labels
            # that select the Job's pods (kubectl finds the pods of `job/<name>` through this selector).
            pod_labels = {
                "batch.kubernetes.io/controller-uid": metadata["uid"],
                "batch.kubernetes.io/job-name": metadata["name"],
            }
            spec = dict(job["spec"])
            template = dict(spec["template"])
            template_metadata = dict(template.get("metadata") or {})
            template_metadata["labels"] = {**(template_metadata.get("labels") or {}), **pod_labels}
            spec.update(
                selector={"matchLabels": {"batch.kubernetes.io/controller-uid": metadata["uid"]}},
                template={**template, "metadata": template_metadata},
            )
            job.update(metadata=metadata, spec=spec, status={})
            pod = _pod_for(job)
            with state.lock:
                state.jobs[(namespace, metadata["name"])] = job
                state.pods[(namespace, pod["metadata"]["name"])] = pod
            self._send(201, job)
            return
        key = (namespace, rest[0]) if rest else None
        job = state.jobs.get(key) if key else None
        if job is None:
            name = rest[0] if rest else ""
            self._send(404, _status(404, "NotFound", f'jobs.batch "{name}" not found'))
            return
        if request.method == "GET" and rest[1:] == ["status"]:
            with state.lock:
                poll = state.polls.get(key, 0)
                state.polls[key] = poll + 1
            phase = state.job_phases[min(poll, len(state.job_phases) - 1)]
            self._send(200, {**job, "status": JOB_STATUS[phase]})
        elif request.method == "GET" and len(rest) == 1:
            self._send(200, job)
        elif request.method == "DELETE" and len(rest) == 1:
            policy = propagation_policy(request)
            uid = job["metadata"]["uid"]
            with state.lock:
                del state.jobs[key]
                for pod_key, pod in list(state.pods.items()):
                    owners = pod["metadata"].get("ownerReferences") or []
                    if not any(o["uid"] == uid for o in owners):
                        continue
                    if policy == "Orphan":
                        # The garbage collector strips the owner reference; the pod runs on.
                        remaining = [o for o in owners if o["uid"] != uid]
                        pod["metadata"] = {**pod["metadata"], "ownerReferences": remaining}
                        if not remaining:
                            del pod["metadata"]["ownerReferences"]
                    else:
                        del state.pods[pod_key]
            details = {"name": rest[0], "group": "batch", "kind": "jobs", "uid": uid}
            body = request.body if isinstance(request.body, dict) else {}
            defaulted = "propagationPolicy" not in request.query and not body.get("propagationPolicy")
            warning = {"Warning": f'299 - "{ORPHAN_WARNING}"'} if defaulted else {}
            self._send(200, _status(200, "", "", details), headers=warning)
        else:
            self._send(405, _status(405, "MethodNotAllowed", "the server does not allow this method"))

    def _pods(self, request: ApiRequest, namespace: str, rest: list[str]) -> None:
        state = self.server.state
        with state.lock:
            pods = [pod for (ns, _), pod in state.pods.items() if ns == namespace]
        if request.method == "GET" and not rest:
            selector = (request.query.get("labelSelector") or [""])[0]
            wanted = dict(term.split("=", 1) for term in selector.split(",") if "=" in term)
            chosen = [p for p in pods if wanted.items() <= p["metadata"]["labels"].items()]
            watch = (request.query.get("watch") or [""])[0] in ("true", "1")
            with state.lock:
                hidden = state.pods_appear_on_watch and not state.watched
                state.watched = state.watched or watch
            if watch:
                self._send_watch([{"type": "ADDED", "object": pod} for pod in chosen])
            else:
                items = [] if hidden else chosen
                self._send(
                    200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "3"}, "items": items}
                )
        elif request.method == "GET" and rest[1:] == ["log"]:
            if not any(p["metadata"]["name"] == rest[0] for p in pods):
                self._send(404, _status(404, "NotFound", f'pods "{rest[0]}" not found'))
            else:
                self._send(200, "".join(LOG_LINES).encode(), "text/plain")
        elif request.method == "GET" and len(rest) == 1:
            found = [p for p in pods if p["metadata"]["name"] == rest[0]]
            if found:
                self._send(200, found[0])
            else:
                self._send(404, _status(404, "NotFound", f'pods "{rest[0]}" not found'))
        elif request.method == "DELETE" and len(rest) == 1:
            with state.lock:
                pod = state.pods.pop((namespace, rest[0]), None)
            if pod is None:
                self._send(404, _status(404, "NotFound", f'pods "{rest[0]}" not found'))
            else:
                # A pod DELETE answers with the pod (now terminating), as the API server's pod storage does.
                self._send(200, {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": FINISHED_AT}})
        else:
            self._send(405, _status(405, "MethodNotAllowed", "the server does not allow this method"))

    def _deployments(self, request: ApiRequest, namespace: str, rest: list[str]) -> None:
        """GET and PATCH of one Deployment, as the API server answers them.

        - PATCH content types (k8s.io/apiserver/pkg/endpoints/handlers/patch.go): json-patch, merge-patch,
          strategic-merge-patch and apply-patch; any other type is 415 UnsupportedMediaType. A JSON patch must be
          an array of operations: an object is 400 BadRequest (what kubernetes client 36 sends for a dict body
          unless the caller names another content type). Merge patches follow RFC 7386 (null deletes a key);
          a strategic merge patch merges maps the same way and is refused here when it holds a list (its list
          merge keys are not implemented: failing is stricter than the real server, never kinder); JSON and
          apply patches are refused with 501 for the same reason.
        - Every write bumps `metadata.resourceVersion`; a change of `spec` bumps `metadata.generation`
          (pkg/registry/apps/deployment/strategy.go PrepareForUpdate), which is what starts a rollout.
        """
        state = self.server.state
        key = (namespace, rest[0]) if len(rest) == 1 else None
        deployment = state.deployments.get(key) if key else None
        if deployment is None:
            self._send(404, _status(404, "NotFound", f'deployments.apps "{rest[0] if rest else ""}" not found'))
            return
        if request.method == "GET":
            self._send(200, deployment)
            return
        if request.method != "PATCH":
            self._send(405, _status(405, "MethodNotAllowed", "the server does not allow this method"))
            return
        kind = (request.content_type or "").split(";")[0].strip()
        if kind not in PATCH_TYPES:
            self._send(
                415,
                _status(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(PATCH_TYPES),
                ),
            )
            return
        if kind == "application/json-patch+json" and not isinstance(request.body, list):
            self._send(
                400, _status(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            )
            return
        if kind not in ("application/merge-patch+json", "application/strategic-merge-patch+json") or (
            kind == "application/strategic-merge-patch+json" and _holds_list(request.body)
        ):
            self._send(501, _status(501, "NotImplemented", f"the stand-in does not implement this {kind} patch"))
            return
        with state.lock:
            patched = _merge_patch(deployment, request.body)
            metadata = patched["metadata"]
            metadata["resourceVersion"] = str(int(deployment["metadata"].get("resourceVersion", "1")) + 1)
            if patched.get("spec") != deployment.get("spec"):
                metadata["generation"] = int(deployment["metadata"].get("generation", 1)) + 1
            state.deployments[key] = patched
        self._send(200, patched)

    def _send_watch(self, events: list[dict[str, Any]]) -> None:
        """A watch stream (one JSON event per chunk) that ends after `events`, as when the server closes it."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle


PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = _merge_patch(merged.get(name), value)
    return merged


def _holds_list(value: Any) -> bool:
    if isinstance(value, list):
        return True
    return isinstance(value, dict) and any(_holds_list(v) for v in value.values())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StandInState, certificate_pem: bytes, key_pem: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert_file.write_bytes(certificate_pem)
            key_file.write_bytes(key_pem)
            context.load_cert_chain(cert_file, key_file)
        self.socket = context.wrap_socket(self.socket, server_side=True)


@dataclass
class KubeApiStandIn:
    """A started stand-in: its URL, what it recorded, and a kubeconfig that points a client at it."""

    url: str
    state: StandInState
    ca_pem: bytes

    @property
    def requests(self) -> list[ApiRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def write_kubeconfig(self, path: Path, context: str = "stand-in", namespace: str = "mlflow") -> Path:
        """A kubeconfig as `aws eks update-kubeconfig` or `kubectl config` would write it, with a token user."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "stand-in",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "submitter", "user": {"token": TOKEN}}],
            "contexts": [
                {"name": context, "context": {"cluster": "stand-in", "user": "submitter", "namespace": namespace}}
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path


@contextmanager
def kube_api_standin(
    job_phases: Sequence[str] = ("active", "succeeded"),
    authorize: Callable[[ApiRequest], str | None] | None = None,
    pods_appear_on_watch: bool = False,
    deployments: Sequence[dict[str, Any]] = (),
) -> Iterator[KubeApiStandIn]:
    """Serve the stand-in on a free 127.0.0.1 port.

    `job_phases`: what successive status reads of a Job answer (the last one repeats). `authorize` returns a
    403 message, or None to allow. `pods_appear_on_watch`: a Job's pod is not listed until someone watches
    for it (a client that asks right after submitting, before the Job controller made the pod). `deployments`:
    Deployments that exist already (as `pulumi up` left them).
    """
    state = StandInState(job_phases=job_phases, authorize=authorize, pods_appear_on_watch=pods_appear_on_watch)
    for deployment in deployments:
        meta = deployment["metadata"]
        state.deployments[(meta["namespace"], meta["name"])] = {
            **deployment,
            "metadata": {"resourceVersion": "1", "generation": 1, "uid": str(uuid.uuid4()), **meta},
        }
    certificate_pem, key_pem = _self_signed_certificate()
    server = _Server(state, certificate_pem, key_pem)
    thread = threading.Thread(target=server.serve_forever, name="kube-api-standin", daemon=True)
    thread.start()
    try:
        yield KubeApiStandIn(url=f"https://127.0.0.1:{server.server_address[1]}", state=state, ca_pem=certificate_pem)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
