"""Request validation driven by `openapi.yaml`, so the document and the behaviour cannot drift.

Every operation of the document is looked up by its operationId; its path and query parameters
are coerced from text to the declared type and checked, and its JSON body is parsed strictly
(no NaN, no Infinity, no lone surrogates) and checked against the body schema. Failures raise
`ValidationFailed` with a message that names the offending field (`body.inputs[0].fileName: ...`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError, relevance
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from sandbox.errors import ValidationFailed

DOCUMENT_URI = "urn:nbrelay:sandbox:openapi"
MAX_MESSAGE = 400
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

FORMATS = FormatChecker()


@FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    """An absolute URI (RFC 3986): a scheme, then no white space or control characters."""
    if not isinstance(value, str):
        return True
    scheme = urlsplit(value).scheme
    return bool(_URI_SCHEME.fullmatch(scheme)) and not any(
        c.isspace() or ord(c) < 32 for c in value
    )


@FORMATS.checks("email")
def _is_email(value: object) -> bool:
    if not isinstance(value, str):
        return True
    local, _, domain = value.rpartition("@")
    return bool(local) and "." in domain.strip(".") and not any(c.isspace() for c in value)


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path" or "query"
    required: bool
    schema: dict[str, Any]


@dataclass(frozen=True)
class Operation:
    operation_id: str
    parameters: tuple[Parameter, ...]
    body_schema: dict[str, Any] | None = None
    body_required: bool = False


@dataclass
class ValidRequest:
    """What a handler works with: typed parameters (defaults filled in) and the parsed body."""

    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None


@cache
def document() -> dict[str, Any]:
    """The sandbox's OpenAPI document, parsed once."""
    text = resources.files("sandbox").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def _registry() -> Registry:
    return Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document(), default_specification=DRAFT7)
    )


@cache
def validator(pointer: str) -> Draft7Validator:
    """A validator for the schema at `pointer` (e.g. `/components/schemas/notebookPost`)."""
    return Draft7Validator(
        {"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=_registry(), format_checker=FORMATS
    )


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


@cache
def operations() -> dict[str, Operation]:
    """Every operation of the document by operationId."""
    found: dict[str, Operation] = {}
    for path_item in document()["paths"].values():
        shared = path_item.get("parameters", [])
        for method, spec in path_item.items():
            if method == "parameters":
                continue
            params = tuple(
                Parameter(p["name"], p["in"], p.get("required", False), _resolve(p["schema"]))
                for p in (_resolve(raw) for raw in [*shared, *spec.get("parameters", [])])
            )
            body = spec.get("requestBody", {})
            json_body = body.get("content", {}).get("application/json")
            found[spec["operationId"]] = Operation(
                spec["operationId"],
                params,
                json_body["schema"] if json_body else None,
                body.get("required", False),
            )
    return found


def validate_request(
    operation_id: str, path: dict[str, str], query: dict[str, str], body: bytes | None
) -> ValidRequest:
    """Check one request against the document; raise ValidationFailed on the first problem."""
    operation = operations()[operation_id]
    valid = ValidRequest()
    for param in operation.parameters:
        raw = (path if param.location == "path" else query).get(param.name)
        target = valid.path if param.location == "path" else valid.query
        if raw is None or (raw == "" and param.location == "query"):
            if param.required:
                raise ValidationFailed(f"{param.location}.{param.name} is required")
            if "default" in param.schema:
                target[param.name] = param.schema["default"]
            continue
        value = _coerce(f"{param.location}.{param.name}", raw, param.schema)
        check(param.schema, value, f"{param.location}.{param.name}")
        target[param.name] = value
    if operation.body_schema is not None:
        valid.body = parse_json(body or b"{}")
        check(operation.body_schema, valid.body, "body")
    return valid


def check(schema: dict[str, Any], instance: Any, location: str) -> None:
    """Validate `instance` against a schema of the document (or one that `$ref`s into it)."""
    pointer = schema["$ref"].removeprefix("#") if set(schema) == {"$ref"} else None
    if pointer is not None:
        chosen = validator(pointer)
    else:
        chosen = Draft7Validator(schema, registry=_registry(), format_checker=FORMATS)
    errors = list(chosen.iter_errors(instance))
    if errors:
        raise ValidationFailed(_describe(location, max(errors, key=relevance)))


def parse_json(raw: bytes) -> Any:
    """Strict JSON: valid UTF-8, finite numbers only, no unpaired surrogates."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite
        )
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise ValidationFailed(f"body is not valid JSON: {_short(str(exc))}") from None
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {_short(text)} is out of range")
    return number


def _coerce(location: str, raw: str, schema: dict[str, Any]) -> Any:
    """Query and path values are text; turn them into the type their schema declares."""
    kind = schema.get("type")
    if kind == "integer":
        if not re.fullmatch(r"[+-]?\d{1,30}", raw.strip()):
            raise ValidationFailed(f"{location} must be an integer")
        return int(raw)
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            raise ValidationFailed(f"{location} must be a number") from None
        if not math.isfinite(number):
            raise ValidationFailed(f"{location} must be a finite number")
        return int(number) if number.is_integer() else number
    return raw


def _describe(location: str, error: ValidationError) -> str:
    if error.validator == "oneOf" and (branch := _matching_branch(error)) is not None:
        return _describe(location, branch)
    where = location + "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
    )
    if (
        error.validator == "additionalProperties"
        and isinstance(error.instance, dict)
        and isinstance(error.schema, Mapping)
    ):
        allowed = error.schema.get("properties", {})
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        return _short(f"{where}: unknown field(s) {', '.join(extra)}")
    if error.validator in ("oneOf", "anyOf"):
        return _short(f"{where}: does not match any of the allowed forms")
    if error.validator == "required":
        return _short(f"{where}: {error.message.split(' is a required')[0]} is required")
    rule = _RULES.get(str(error.validator), "{message}")
    return _short(f"{where}: " + rule.format(message=error.message, value=error.validator_value))


# Messages that state the rule instead of repeating a possibly huge value.
_RULES = {
    "type": "must be of type {value}",
    "maxLength": "must be at most {value} characters long",
    "minLength": "must be at least {value} characters long",
    "maxItems": "must have at most {value} items",
    "pattern": "does not match the pattern {value}",
    "enum": "must be one of {value}",
    "maximum": "must be at most {value}",
    "minimum": "must be at least {value}",
}


def _matching_branch(error: ValidationError) -> ValidationError | None:
    """For a `oneOf` of typed variants (`inputType`, `outputType`), the problem inside the variant
    whose type matches, which says far more than "matches none of the forms"."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    matching = [errors for errors in branches.values() if not any(map(_wrong_variant, errors))]
    return max(matching[0], key=relevance) if len(matching) == 1 < len(branches) else None


def _wrong_variant(error: ValidationError) -> bool:
    path = list(error.relative_path)
    return error.validator == "enum" and len(path) == 1 and str(path[0]).endswith("Type")


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
