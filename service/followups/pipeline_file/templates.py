"""Context templates and conditions of the pipeline file, rendered with Jinja2 in a sandboxed
environment: a template may read the values it is given and nothing else, an undefined name is
an error (never a silent empty string), and any failure becomes a `TemplateError` with a
message, never a crash of the job that renders it.

A string that is exactly one `{{ expression }}` keeps the expression's type (a number stays a
number, a mapping a mapping); any other string renders to a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.runtime import Undefined
from jinja2.sandbox import SandboxedEnvironment

from service import defaults
from service.errors import NbrelayError
from service.marker import user_context

SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|\{#).)*)\}\}\s*$", re.S)

environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
environment.filters["fromjson"] = json.loads


class TemplateError(NbrelayError):
    """A template could not be parsed, or could not be rendered with the values at hand."""


@dataclass(frozen=True)
class TemplateIssue:
    """A syntax error in one string of a nested value: where (path below the value, line in
    the string) and what."""

    path: tuple[str | int, ...]
    line: int
    message: str


def _describe(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def render(value: Any, variables: dict[str, Any], where: str = "template") -> Any:
    """Render every string inside `value` (mappings and lists are walked)."""
    if isinstance(value, dict):
        return {key: render(item, variables, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, variables, f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    try:
        single = SINGLE_EXPRESSION.match(value)
        if single:
            result = environment.compile_expression(single["expr"], undefined_to_none=False)(
                **variables
            )
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            json.dumps(result)
        else:
            result = environment.from_string(value).render(**variables)
    except Exception as exc:  # noqa: BLE001 - user code: every failure is a template error
        raise TemplateError(f"{where}: {_describe(exc)}") from None
    if len(json.dumps(result)) > defaults.TEMPLATE_CONTEXT_MAX_LENGTH:
        raise TemplateError(
            f"{where}: renders to more than {defaults.TEMPLATE_CONTEXT_MAX_LENGTH} characters"
        )
    return result


def evaluate(expression: str, variables: dict[str, Any], where: str = "when") -> bool:
    """The truth of a condition (a Jinja2 expression without braces)."""
    try:
        result = environment.compile_expression(expression, undefined_to_none=False)(**variables)
        if isinstance(result, Undefined):
            result._fail_with_undefined_error()
        return bool(result)
    except Exception as exc:  # noqa: BLE001 - user code: every failure is a template error
        raise TemplateError(f"{where}: {_describe(exc)}") from None


def _strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, path + (index,))
    elif isinstance(value, str):
        yield path, value


def parse_value(
    value: Any,
) -> tuple[list[tuple[tuple[str | int, ...], nodes.Template]], list[TemplateIssue]]:
    """Parse every template string inside `value`: (path, syntax tree) of each, and the syntax
    errors."""
    trees, issues = [], []
    for path, text in _strings(value):
        try:
            trees.append((path, environment.parse(text)))
        except TemplateSyntaxError as exc:
            issues.append(TemplateIssue(path, exc.lineno or 1, f"bad template: {exc.message}"))
    return trees, issues


def parse_expression(expression: str) -> tuple[nodes.Template | None, TemplateIssue | None]:
    """Parse a condition; conditions are expressions, so `{{ }}` around one is an error."""
    if "{{" in expression or "{%" in expression:
        return None, TemplateIssue((), 1, "a condition is an expression: write it without {{ }}")
    try:
        return environment.parse("{{ (" + expression + ") }}"), None
    except TemplateSyntaxError as exc:
        return None, TemplateIssue((), exc.lineno or 1, f"bad expression: {exc.message}")


def free_names(tree: nodes.Template) -> set[str]:
    """The variables a template reads from outside itself."""
    return meta.find_undeclared_variables(tree)


def attributes_of(tree: nodes.Template, variable: str) -> set[str]:
    """Every constant attribute or key read from `variable`: `steps.a` and `steps['a']` give a."""
    found: set[str] = set()
    for attribute in tree.find_all(nodes.Getattr):
        if isinstance(attribute.node, nodes.Name) and attribute.node.name == variable:
            found.add(attribute.attr)
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name == variable:
            if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
                found.add(item.arg.value)
    return found


def execution_variables(record: dict[str, Any]) -> dict[str, Any]:
    """What templates see of one execution: Losant's record plus `context`, the user's part of
    its templateContext."""
    return {**record, "context": user_context(record.get("templateContext"))}
