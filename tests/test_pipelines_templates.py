"""Context templates and conditions: sandboxed, strict about undefined names, typed when a
value is one expression, and failing with a message instead of an exception of their own."""

from __future__ import annotations

import pytest

from service.followups.pipeline_file.templates import (
    TemplateError,
    attributes_of,
    evaluate,
    free_names,
    parse_expression,
    parse_value,
    render,
)

VARIABLES = {
    "params": {"day": "2024-05-01", "limit": 10},
    "steps": {
        "extract": {
            "id": "e1",
            "status": "completed",
            "outputInfo": {"data.csv": {"url": "https://files/data.csv"}},
            "context": {"rows": 42},
        }
    },
}


def test_single_expression_keeps_its_type():
    rendered = render(
        {
            "limit": "{{ params.limit * 2 }}",
            "rows": "{{ steps.extract.context.rows }}",
            "info": "{{ steps.extract.outputInfo }}",
            "label": "day {{ params.day }}",
            "plain": 3,
            "list": ["{{ params.limit }}", "x"],
        },
        VARIABLES,
    )
    assert rendered == {
        "limit": 20,
        "rows": 42,
        "info": {"data.csv": {"url": "https://files/data.csv"}},
        "label": "day 2024-05-01",
        "plain": 3,
        "list": [10, "x"],
    }


def test_two_expressions_render_to_text():
    assert render("{{ params.limit }}-{{ params.day }}", VARIABLES) == "10-2024-05-01"


def test_undefined_names_are_errors_with_a_location():
    with pytest.raises(TemplateError, match=r"context\.source: .*'missing'"):
        render({"source": "{{ steps.extract.outputInfo.missing.url }}"}, VARIABLES, "context")
    with pytest.raises(TemplateError, match="'nothing' is undefined"):
        render("{{ nothing }}", VARIABLES)
    with pytest.raises(TemplateError, match="has no attribute 'nope'"):
        render("text {{ params.nope }}", VARIABLES)


def test_the_sandbox_refuses_unsafe_access():
    with pytest.raises(TemplateError, match="unsafe|not safely"):
        render("{{ params.__class__.__mro__ }}", VARIABLES)
    with pytest.raises(TemplateError):
        render("{{ ''.__class__.__subclasses__() }}", VARIABLES)


def test_runtime_errors_become_template_errors():
    with pytest.raises(TemplateError, match="division by zero"):
        render("{{ 1 / 0 }}", VARIABLES)
    with pytest.raises(TemplateError, match="more than"):
        render("{{ 'x' * 40000 }}", VARIABLES)


def test_conditions():
    assert evaluate("steps.extract.status == 'completed'", VARIABLES)
    assert not evaluate("params.limit > 100", VARIABLES)
    assert evaluate("steps.extract.outputInfo['data.csv'] is defined", VARIABLES)
    with pytest.raises(TemplateError, match="when: "):
        evaluate("steps.nope.status", VARIABLES)


def test_parsing_reports_syntax_errors_with_their_line():
    trees, issues = parse_value({"a": "{{ ok }}", "b": ["x", "line\n{% if %}"]})
    assert [path for path, _ in trees] == [("a",), ("b", 0)]
    (issue,) = issues
    assert issue.path == ("b", 1) and issue.line == 2 and issue.message.startswith("bad template")
    tree, issue = parse_expression("{{ x }}")
    assert tree is None and "without {{ }}" in issue.message
    tree, issue = parse_expression("a ==")
    assert tree is None and issue.message.startswith("bad expression")


def test_references_are_found():
    (_, tree), *_ = parse_value("{{ steps.a.id }} {{ steps['b-c'].status }} {{ params.x }}")[0]
    assert free_names(tree) == {"steps", "params"}
    assert attributes_of(tree, "steps") == {"a", "b-c"}
    assert attributes_of(tree, "params") == {"x"}
