"""AWS's naming rules, from AWS's own sources rather than from our code.

- IAM user, role and policy names and ECR repository names: the length limits and patterns of AWS's API
  models as botocore ships them (`iam` shapes `userNameType`, `roleNameType`, `policyNameType`; `ecr` shape
  `RepositoryName`). These are the models AWS publishes for its SDKs; the service applies the same rules.
- S3 general purpose bucket names: the API model has no pattern for them, so the documented rules are encoded
  here, from https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (3-63 characters;
  lowercase letters, digits, dots, hyphens; start and end with a letter or digit; no two adjacent dots; not an
  IP address; reserved prefixes `xn--`, `sthree-`, `amzn-s3-demo-`; reserved suffixes `-s3alias`, `--ol-s3`,
  `.mrap`, `--x-s3`, `--table-s3`).
- `bucketPrefix`: the Pulumi AWS provider (Terraform's `id.PrefixedUniqueId`) appends a 26-character suffix:
  a UTC timestamp `YYYYMMDDhhmmss` with four fractional digits, then an 8-digit hex counter.

Each checker returns the list of broken rules (empty when the name is valid), so a failing test says which.
"""

from __future__ import annotations

import ipaddress
import re

import botocore.session

_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
#: An example of what the provider appends to `bucketPrefix` (`20060102150405` + `0000` + `%08x`).
PROVIDER_UNIQUE_SUFFIX = "20261129142233" + "1234" + "0000000a"


def _shape(service: str, operation: str, member: str) -> dict:
    model = botocore.session.get_session().get_service_model(service)
    return dict(model.operation_model(operation).input_shape.members[member].metadata)


def _model_rule(name: str, service: str, operation: str, member: str) -> list[str]:
    rules = _shape(service, operation, member)
    broken = []
    if len(name) < rules.get("min", 0):
        broken.append(f"shorter than {rules['min']}")
    if len(name) > rules.get("max", 10**9):
        broken.append(f"longer than {rules['max']} ({len(name)})")
    # AWS evaluates these patterns as Java regexes, where \w is ASCII-only.
    if "pattern" in rules and not re.fullmatch(rules["pattern"], name, re.ASCII):
        broken.append(f"does not match {rules['pattern']}")
    return broken


def iam_user_name(name: str) -> list[str]:
    return _model_rule(name, "iam", "CreateUser", "UserName")


def iam_role_name(name: str) -> list[str]:
    return _model_rule(name, "iam", "CreateRole", "RoleName")


def iam_policy_name(name: str) -> list[str]:
    return _model_rule(name, "iam", "PutRolePolicy", "PolicyName")


def ecr_repository_name(name: str) -> list[str]:
    return _model_rule(name, "ecr", "CreateRepository", "repositoryName")


def s3_bucket_name(name: str) -> list[str]:
    broken = []
    if not 3 <= len(name) <= 63:
        broken.append(f"length {len(name)} outside 3-63")
    if not re.fullmatch(r"[a-z0-9.-]*", name):
        broken.append("characters other than a-z 0-9 . -")
    if not re.fullmatch(r"[a-z0-9].*[a-z0-9]", name):
        broken.append("must start and end with a letter or digit")
    if ".." in name:
        broken.append("two adjacent dots")
    try:
        ipaddress.IPv4Address(name)
        broken.append("formatted as an IP address")
    except ValueError:
        pass
    broken += [f"reserved prefix {p}" for p in _BUCKET_RESERVED_PREFIXES if name.startswith(p)]
    broken += [f"reserved suffix {s}" for s in _BUCKET_RESERVED_SUFFIXES if name.endswith(s)]
    return broken


def s3_bucket_prefix(prefix: str) -> list[str]:
    """A `bucketPrefix` is valid when every name the provider can complete it to is a valid bucket name."""
    return s3_bucket_name(prefix + PROVIDER_UNIQUE_SUFFIX)
