"""Our quantity parser against the Kubernetes Python client's own `parse_quantity` and apimachinery's grammar."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes.utils.quantity import parse_quantity as client_parse_quantity
from mlflow_platform.core.quantities import QuantityError, parse_bytes, parse_cpu, parse_quantity

VALID = [
    "0",
    "1",
    "2",
    "4",
    "0.5",
    ".5",
    "5.",
    "+3",
    "-1",
    "500m",
    "250m",
    "1500m",
    "100n",
    "7u",
    "1k",
    "1M",
    "2G",
    "3T",
    "1P",
    "1E",
    "1Ki",
    "1Mi",
    "512Mi",
    "24Gi",
    "1.5Gi",
    "0.5Ti",
    "2Pi",
    "1Ei",
    "1e3",
    "1E3",
    "1e-3",
    "2.5e+6",
    "129e6",
    "1e0",
    "0.001",
    "123456789",
    "8Gi",
    "10Gi",
    "16Ti",
    "1.25",
    "3.75Mi",
]
# Not Kubernetes quantities (apimachinery refuses them), whatever the looser Python client says.
INVALID = [
    "",
    " ",
    "Gi",
    "4 Gi",
    "4gi",
    "1ki",
    "1K",
    "1KB",
    "1.2.3",
    "1e",
    "e3",
    "1e3.5",
    "0x10",
    "1_000",
    "NaN",
    "inf",
    "Infinity",
    "ten",
    "1Gi ",  # the API server trims JSON whitespace, but a config value with a space is a typo
    "--1",
    "1mi",
    "1Gib",
    "½",
]


@pytest.mark.parametrize("text", VALID)
def test_every_valid_quantity_has_the_value_the_kubernetes_client_computes(text: str) -> None:
    assert parse_quantity(text) == client_parse_quantity(text)


@pytest.mark.parametrize("text", INVALID)
def test_strings_apimachinery_refuses_are_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_where_the_client_is_looser_we_follow_apimachinery() -> None:
    # The client accepts these; the API server would reject them, so a preview must too.
    for text in ("1K", "NaN", "1_000"):
        client_parse_quantity(text)
        with pytest.raises(QuantityError):
            parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "cores"), [("4", "4"), ("500m", "0.5"), ("0.5", "0.5"), ("1e0", "1"), ("1m", "0.001")]
)
def test_cpu_amounts(text: str, cores: str) -> None:
    assert parse_cpu(text) == Decimal(cores)


@pytest.mark.parametrize("text", ["4Gi", "512Mi", "0", "0.0001", "-2", "2000"])
def test_cpu_nonsense_is_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_cpu(text)


@pytest.mark.parametrize(
    ("text", "size"), [("24Gi", 24 * 2**30), ("1e9", 10**9), ("2G", 2 * 10**9), ("1.5Mi", 1572864)]
)
def test_memory_sizes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["500m", "1.5", "100", "1Ki", "-1Gi"])
def test_memory_nonsense_is_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_bytes(text)
