"""JSON that comes from outside nbrelay (request bodies, callback hints, command-line values),
decoded strictly: standard JSON only (no `NaN` or `Infinity`, no number too large for a float,
no string holding half of a surrogate pair, which no UTF-8 text can carry on to Redis or Losant)
and nested at most `defaults.JSON_MAX_DEPTH` deep, checked before decoding so that no input can
exhaust the decoder's recursion."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from service import defaults

# A string literal (skipped: brackets inside it do not nest) or a bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


class MalformedJson(ValueError):
    """Input that is not standard JSON, or nests too deep."""


def loads(text: str | bytes) -> Any:
    """The value of the JSON document `text` (bytes in UTF-8, -16 or -32); MalformedJson when it
    is not one, nests deeper than the limit or holds a number JSON cannot carry."""
    if isinstance(text, bytes):
        try:
            text = text.decode(json.detect_encoding(text))
        except UnicodeDecodeError as exc:
            raise MalformedJson(f"not valid text: {exc.reason}") from None
    _check_depth(text)
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except MalformedJson:
        raise
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"not valid JSON: {exc}") from None
    except ValueError:  # an integer longer than Python converts
        raise MalformedJson("a number has too many digits") from None
    if "\\u" in text:  # only an escape can make a lone surrogate
        _check_text(value)
    return value


def _check_text(value: Any) -> None:
    """MalformedJson when a string in `value` (a key or a value) is not valid Unicode text."""
    strings = (
        [*value, *value.values()] if isinstance(value, dict) else value
        if isinstance(value, list) else [value]
    )  # fmt: skip
    for item in strings:
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedJson("a string holds half of a surrogate pair") from None
        elif isinstance(item, (dict, list)):
            _check_text(item)


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") <= defaults.JSON_MAX_DEPTH:
        return  # too few brackets to nest too deep: the usual small body, at no scan
    depth = 0
    for token in _TOKENS.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > defaults.JSON_MAX_DEPTH:
                raise MalformedJson(f"JSON nested more than {defaults.JSON_MAX_DEPTH} levels deep")
        elif bracket in ("]", "}"):
            depth -= 1


def _reject_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise MalformedJson(f"the number {literal[:40]} is too large")
    return value
