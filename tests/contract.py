"""Checks requests and responses against the provider's OpenAPI file, vendored in tests/data/."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator

# Kotani's published v3 OpenAPI document, byte for byte (provenance: tests/data/README.md).
SPEC_PATH = Path(__file__).resolve().parent / "data" / "kotani-openapi.json"

# Assumptions where the file has a hole (docs/provider.md, "Where the OpenAPI file is silent");
# each is named by a test.
ASSUMED_RESPONSE = {
    ("get", "/api/v3/withdraw/v2/bank/status/{referenceId}"): "/api/v3/withdraw/status/{reference_id}",
    ("get", "/api/v3/withdraw/v2/bank/supporting-banks/{currency}"): "/api/v3/customer/support/banks",
}


@cache
def spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        raise FileNotFoundError(
            f"the provider's OpenAPI file is missing: expected {SPEC_PATH} "
            "(tests/data/kotani-openapi.json in the repository; see tests/data/README.md)"
        )
    raw = json.loads(SPEC_PATH.read_text())
    patched = copy.deepcopy(raw)
    # Assumption: bank codes are strings or numbers although the file types them as objects.
    patched["components"]["schemas"]["BankResponseDto"]["properties"]["code"] = {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    }
    return patched


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The path template and operation object matching a concrete request."""
    for template, ops in spec()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            # Prefer a literal template over a parameterised one (/status/x vs /{referenceId}/...)
            literal = [t for t, o in spec()["paths"].items() if t == path and method.lower() in o]
            if literal:
                return literal[0], spec()["paths"][literal[0]][method.lower()]
            return template, ops[method.lower()]
    raise AssertionError(f"{method} {path} is not in the provider's OpenAPI file")


def _validate(schema: dict[str, Any], instance: Any, what: str) -> None:
    doc = {**schema, "components": spec()["components"]}
    errors = sorted(OAS30Validator(doc).iter_errors(_plain(instance)), key=str)
    assert not errors, f"{what} breaks the provider's schema: {errors[0].message} at {list(errors[0].path)}"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def check_request(method: str, path: str, body: Any) -> str:
    template, op = operation(method, path)
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body is not None:
        assert schema is not None, f"{method} {template} takes no JSON body in the provider's file"
        _validate(schema, body, f"request {method} {template}")
    return template


def response_schema(method: str, template: str, status: int) -> dict[str, Any] | None:
    assumed = ASSUMED_RESPONSE.get((method.lower(), template))
    op = spec()["paths"][assumed or template][method.lower()]
    responses = op.get("responses", {})
    # Assumption: a 201 from a create endpoint has the body documented for its 200.
    entry = responses.get(str(status)) or (responses.get("200") if status == 201 else None)
    if entry is None:
        return None
    schema = entry.get("content", {}).get("application/json", {}).get("schema")
    return dict(schema) if schema else None


def check_response(method: str, path: str, status: int, body: Any) -> bool:
    """Validate a response body; return False when the file documents no schema for it."""
    template, _ = operation(method, path)
    schema = response_schema(method, template, status)
    if schema is None:
        return False
    _validate(schema, body, f"response {status} to {method} {template}")
    return True
