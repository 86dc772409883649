"""Journey: two stacks in one cluster (two teams, same defaults but the namespace).

Chained: the program run as two stacks; every object outside a stack's own namespace (cluster-scoped objects,
the KubeRay operator's namespace and Helm release) compared by name: one shared name means the second
`pulumi up` fails on "already exists", or worse, adopts and later deletes the first stack's object.
"""

from __future__ import annotations

from mock_harness import manifests, run_program

RAY = {"ray": "true", "rayImageTag": "0a1b2c3"}
CLUSTER_SCOPED = {"Namespace", "StorageClass", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "RuntimeClass"}


def _outside_names(config: dict[str, str], stack: str) -> set[tuple[str, str]]:
    d = run_program(config, stack=stack)
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests(d) if m["kind"] in CLUSTER_SCOPED}
    for release in d.of_type("kubernetes:helm.sh/v3:Release"):
        names.add(("HelmRelease", f"{release.inputs['namespace']}/{release.inputs['name']}"))
    return names


def test_two_stacks_share_no_object_outside_their_namespaces() -> None:
    # The GPU device plugin is the cluster's, installed once: the second stack turns it off (docs/cloud-stack.md).
    first = _outside_names({**RAY, "namespace": "team-a"}, "team-a")
    second = _outside_names({**RAY, "namespace": "team-b", "gpuDevicePlugin": "false"}, "team-b")
    assert ("StorageClass", next(n for k, n in first if k == "StorageClass")) in first
    assert first & second == set()
