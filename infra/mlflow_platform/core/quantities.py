"""Kubernetes resource quantities ("500m", "24Gi", "1e9"), parsed as the API server parses them.

Why our own parser: config is checked at `pulumi preview`, before any API server sees it, and a value that is
a valid quantity can still be nonsense for its field (`trainingCpu: 4Gi` is 4 294 967 296 cores, a pod that
never schedules). The grammar is apimachinery's `resource.Quantity`
(k8s.io/apimachinery/pkg/api/resource/quantity.go):

    <quantity> ::= <signedNumber><suffix>
    <number>   ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>   ::= Ki | Mi | Gi | Ti | Pi | Ei | n | u | m | "" | k | M | G | T | P | E | (e|E)<signedInteger>

The Python client's `kubernetes.utils.quantity.parse_quantity` is looser (it accepts "1K", "NaN", "1_000");
the tests check that both agree on every value this module accepts.
"""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

MEBIBYTE = Decimal(2**20)
GIBIBYTE = Decimal(2**30)
MILLICORE = Decimal("0.001")


class QuantityError(ValueError):
    """Not a Kubernetes quantity, or not a sensible one for the field; the message (a phrase) says which."""


def parse_quantity(text: str) -> Decimal:
    """The exact value of a Kubernetes quantity string (bytes for memory, cores for CPU)."""
    match = _QUANTITY.match(text) if isinstance(text, str) else None
    if not match or len(text) > 64:
        raise QuantityError("not a Kubernetes quantity")
    value = Decimal(match["number"])
    if match["binary"]:
        return value * Decimal(1024) ** _BINARY[match["binary"]]
    if match["decimal"]:
        return value.scaleb(_DECIMAL[match["decimal"]])
    if match["exponent"]:
        exponent = int(match["exponent"])
        if abs(exponent) > 30:
            raise QuantityError("an exponent out of range")
        return value.scaleb(exponent)
    return value


def parse_cpu(text: str) -> Decimal:
    """Cores: "4", "500m" or "0.5". Binary suffixes are refused, because "4Gi" cores is a typo."""
    value = parse_quantity(text)
    if _QUANTITY.match(text)["binary"]:  # type: ignore[index]
        raise QuantityError("a memory size, not a CPU amount")
    if value < MILLICORE:
        raise QuantityError("below 1m, the smallest CPU amount Kubernetes schedules")
    if value > 1024:
        raise QuantityError("more than 1024 cores, more than any node has")
    return value


def parse_bytes(text: str, minimum: Decimal = MEBIBYTE) -> Decimal:
    """Bytes: "24Gi", "512Mi", "1e9", "2G". Fractions of a byte ("500m") and tiny sizes are refused."""
    value = parse_quantity(text)
    if value != value.to_integral_value():
        raise QuantityError("not a whole number of bytes")
    if value < minimum:
        raise QuantityError(f"below the minimum of {format_bytes(minimum)}")
    return value


def format_bytes(value: Decimal) -> str:
    """A readable binary size for messages: 1073741824 -> "1Gi"."""
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        unit = Decimal(1024) ** power
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
