"""Journey: expose the tracking server, under each AWS load-balancer controller, or on a node port.

The controllers are modelled from their sources (what each does with the Service the program declares):
- in-tree (cloud-provider-aws `pkg/providers/v1/aws.go`): an internal NLB only with
  `service.beta.kubernetes.io/aws-load-balancer-internal: "true"`, else internet-facing; it ignores `...-scheme`;
- AWS Load Balancer Controller v2 (`pkg/service/model_build_load_balancer.go`, `buildLoadBalancerScheme`): its
  mutating webhook (on by default, `--enable-service-mutator-webhook`) claims every new LoadBalancer Service
  (`loadBalancerClass: service.k8s.aws/nlb`); scheme from `...-scheme`, else `...-internal: "true"`, else its
  default, `internal`.
The browser's side runs MLflow's own CORS decision (`mlflow.server.security_utils.should_block_cors_request`)
on the `--cors-allowed-origins` the program puts on the server's command line.
"""

from __future__ import annotations

import pytest
from journey_helpers import named, of_kind
from mlflow.server.security_utils import should_block_cors_request
from mlflow_platform.core.config import ConfigError

LB = "service.beta.kubernetes.io/aws-load-balancer-"


def scheme_under(controller: str, annotations: dict[str, str]) -> str:
    """The scheme of the NLB `controller` builds for a Service with `annotations` (sources in the docstring)."""
    internal = annotations.get(f"{LB}internal", "").lower() == "true"
    if controller == "in-tree":
        return "internal" if internal else "internet-facing"
    # The LBC: the explicit scheme wins; otherwise the deprecated internal flag and the default both say internal.
    return annotations.get(f"{LB}scheme", "internal")


def _public_service(d) -> dict:
    (service,) = [s for s in of_kind(d, "Service") if s["spec"]["type"] == "LoadBalancer"]
    return service


@pytest.mark.parametrize(("configured", "expected"), [(None, "internal"), ("internet-facing", "internet-facing")])
def test_both_controllers_build_the_same_load_balancer(deploy, configured: str | None, expected: str) -> None:
    config = {"serviceType": "LoadBalancer", **({"loadBalancerScheme": configured} if configured else {})}
    annotations = _public_service(deploy(config))["metadata"]["annotations"]
    assert scheme_under("in-tree", annotations) == scheme_under("aws-load-balancer-controller", annotations) == expected


def test_a_load_balancer_that_never_provisions_does_not_hold_up_the_server(deploy) -> None:
    """Pulumi's await logic waits on a LoadBalancer Service for its address unless told not to."""
    service = _public_service(deploy({"serviceType": "LoadBalancer"}))
    assert service["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"


def test_a_node_port_server_accepts_the_uis_posts_from_its_address(deploy) -> None:
    url = "http://10.0.0.5:30500"
    d = deploy({"serviceType": "NodePort", "externalUrl": url})
    service = named(d, "Service", "rapids-mlflow-tracking")
    assert service["spec"]["ports"][0]["nodePort"] == 30500
    (container,) = named(d, "Deployment", "rapids-mlflow-tracking")["spec"]["template"]["spec"]["containers"]
    origins = [a.split("=", 1)[1] for a in container["command"] if a.startswith("--cors-allowed-origins=")]
    assert origins, "without listed origins MLflow answers every UI POST from the node's address with 403"
    allowed = origins[0].split(",")
    assert not should_block_cors_request(url, "POST", allowed)
    assert should_block_cors_request("http://evil.example", "POST", allowed)


def test_a_node_port_without_the_address_users_open_is_refused_in_one_line(deploy) -> None:
    with pytest.raises(ConfigError, match=r"externalUrl: is needed with serviceType NodePort") as raised:
        deploy({"serviceType": "NodePort"})
    assert "\n" not in str(raised.value)
