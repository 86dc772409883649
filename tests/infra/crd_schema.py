"""Validate a custom resource against its CustomResourceDefinition, as the API server would, with jsonschema.

A CRD's `openAPIV3Schema` is an OpenAPI 3.0 schema, which is JSON Schema draft 4 plus a few extensions; this module
turns it into a draft-4 schema the `jsonschema` package runs:
- `nullable: true` lets the value be null; `x-kubernetes-int-or-string: true` means integer or string.
- `x-kubernetes-preserve-unknown-fields: true` keeps fields the schema does not list.
- Strict where the schema is structural: every object schema that lists its `properties` and neither preserves
  unknown fields nor sets `additionalProperties` refuses fields it does not list. The API server prunes such a
  field silently (or, with strict field validation, refuses it); either way a misspelt field of ours would never
  reach KubeRay, so the test treats it as an error.
- `x-kubernetes-validations` (CEL rules) are not evaluated; the tests list the CRD's rules and show that none
  applies to a field we set.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_OBJECT_KEYWORDS = ("properties",)


@functools.cache
def crd_document(crd_path: Path) -> dict[str, Any]:
    """The CRD in `crd_path`, parsed once per process (callers must not change it) with libyaml's safe loader where
    PyYAML has it: KubeRay's RayCluster CRD is 0.9 MB, 1.3 s in pure Python and 0.3 s in C."""
    return yaml.load(crd_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def served_schema(crd_path: Path, version: str) -> dict[str, Any]:
    """The `openAPIV3Schema` of one served version of the CRD in `crd_path`."""
    crd = crd_document(crd_path)
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            if not entry.get("served"):
                raise ValueError(f"{crd['metadata']['name']} does not serve {version}")
            return entry["schema"]["openAPIV3Schema"]
    raise ValueError(f"{crd['metadata']['name']} has no version {version}")


def to_json_schema(schema: Any) -> Any:
    """The draft-4 equivalent of an OpenAPI v3 CRD schema node (recursively), strict where it is structural."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def validator(crd_path: Path, version: str) -> jsonschema.Draft4Validator:
    """A validator for objects of `version` of the CRD (metadata is the API server's to check, not the CRD's); one
    per process, as `to_json_schema` copies what it keeps of the cached document."""
    schema = to_json_schema(served_schema(crd_path, version))
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def problems(validator_: jsonschema.Draft4Validator, obj: dict[str, Any]) -> list[str]:
    """Every schema violation of `obj`, as `path: message` lines (empty: valid)."""
    return sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator_.iter_errors(obj)
    )
