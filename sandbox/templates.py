"""Templates in a notebook's input and output configuration, and the context they see.

Losant documents `{{ }}` templates in an input's `fileName`, `deviceIds`, `deviceTags[].key` and
`dataTableId` and in the outputs' destination templates, with the variables `notebook` and
`execution` (`/{{notebook.name}}/{{execution.runStartedAt}}`), and says the execution's context
can be used in them. It does not document the context's variable name, helpers or what a missing
value does. By default the sandbox therefore renders only value lookups, `{{ path.to.value }}`
(`{{{ path }}}` too; segments `[name]` and list indices such as `users.0.email` allowed), over:

- `notebook`: the notebook as the API returns it (`id`, `name`, `description`, ...);
- `execution`: the execution as its log entry shows it (`id`, `runStartedAt`, ...), when there is
  one (an input data export has none);
- the context under `TemplateSettings.context_name` (`context`, a guess) and, with
  `context_keys`, also its top-level keys (`notebook` and `execution` win over them).

Anything else inside `{{ }}` (a filter, an expression, a helper) and Jinja statements (`{% %}`)
fail with an `InputError`, as does a path that leads nowhere (`missing="error"`; `"empty"`
renders nothing, as Handlebars does) or to an object or a list. `syntax="jinja"` renders with a
sandboxed Jinja2 environment instead, with the same variables, filters and expressions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from sandbox import defaults
from sandbox.errors import InputError

Render = Callable[[str, str], str]  # (template, what it configures, for errors) -> text
DOCUMENTED_VARIABLES = ("notebook", "execution")
SYNTAXES = ("losant", "jinja")
MISSING = ("error", "empty")
_NAME = re.compile(r"^[A-Za-z_$][\w$]*$")
_TAG = re.compile(r"\{\{\{(.*?)\}\}\}|\{\{(.*?)\}\}", re.DOTALL)
_SEGMENT = r"(?:[A-Za-z_$][\w$-]*|\[[^\]]+\])"
_PATH = re.compile(rf"^{_SEGMENT}(?:\.(?:{_SEGMENT}|\d+))*$")


@dataclass(frozen=True)
class TemplateSettings:
    """How templates render; every field is a guess about Losant (see the module's doc), set
    through `sandbox.guesses` (`Guesses.templates()`)."""

    syntax: str = defaults.TEMPLATE_SYNTAX  # "losant" or "jinja"
    context_name: str = defaults.TEMPLATE_CONTEXT_NAME
    context_keys: bool = defaults.TEMPLATE_CONTEXT_KEYS
    missing: str = defaults.TEMPLATE_MISSING  # "error" or "empty"

    def __post_init__(self) -> None:
        if self.syntax not in SYNTAXES:
            raise ValueError(f"template syntax must be losant or jinja, not {self.syntax!r}")
        if self.missing not in MISSING:
            raise ValueError(
                f"missing template values must be error or empty, not {self.missing!r}"
            )
        if not _NAME.match(self.context_name) or self.context_name in DOCUMENTED_VARIABLES:
            raise ValueError(
                f"the context's template variable {self.context_name!r} must be a name "
                f"(letters, digits, _ and $) other than {' and '.join(DOCUMENTED_VARIABLES)}"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TemplateScope:
    """What one run's (or export's) templates see, and how they render: its context, its
    notebook, its execution (None for an export) and the settings. Inputs and outputs render
    with the same scope."""

    template_context: str | None
    notebook: dict[str, Any]  # the `notebook` of templates: the notebook as the API returns it
    execution: dict[str, Any] | None  # the `execution` of templates: the execution's log entry
    settings: TemplateSettings

    def context(self) -> Any:
        """The parsed context (InputError when it is not JSON or too long)."""
        return parse_context(self.template_context)

    def renderer(self, context: Any) -> Render:
        """The renderer over `context` (from `context()`) and the scope's variables."""
        return renderer(
            context, notebook=self.notebook, execution=self.execution, settings=self.settings
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TemplateScope:
        return cls(**{**raw, "settings": TemplateSettings(**raw["settings"])})


def parse_context(template_context: str | None) -> Any:
    """The templateContext as JSON (`{}` when none), within Losant's limit on its length."""
    if template_context is None or not template_context.strip():
        return {}
    if len(template_context) > defaults.CONTEXT_MAX_LENGTH:
        raise InputError(
            f"templateContext is {len(template_context)} characters long; "
            f"the limit is {defaults.CONTEXT_MAX_LENGTH}"
        )
    try:
        return json.loads(template_context)
    except json.JSONDecodeError as exc:
        raise InputError(f"templateContext is not valid JSON: {exc}") from None


def renderer(
    context: Any,
    *,
    notebook: Mapping[str, Any],
    execution: Mapping[str, Any] | None,
    settings: TemplateSettings,
) -> Render:
    """`render(template, what)`: the template rendered, or an InputError naming `what` (e.g.
    `inputs[0] (deviceData) fileName`), the template and what is wrong with it. Text without
    templates comes back unchanged."""
    variables: dict[str, Any] = {}
    if settings.context_keys and isinstance(context, dict):
        variables.update(context)
    variables[settings.context_name] = context
    variables["notebook"] = dict(notebook)
    if execution is not None:
        variables["execution"] = dict(execution)
    if settings.syntax == "jinja":
        return _jinja_renderer(variables, settings)
    return lambda text, what: _render_paths(text, what, variables, settings)


def _render_paths(
    text: str, what: str, variables: dict[str, Any], settings: TemplateSettings
) -> str:
    if "{%" in text:
        _refuse(what, text, "uses a {% %} statement")
    rendered, position = [], 0
    for tag in _TAG.finditer(text):
        rendered.append(text[position : tag.start()])
        position = tag.end()
        path = (tag.group(1) if tag.group(1) is not None else tag.group(2)).strip()
        if not _PATH.match(path):
            _refuse(what, text, f"{{{{ {path} }}}} is not a {{{{ path.to.value }}}} lookup")
        rendered.append(_value(path, variables, settings, what, text))
    rest = text[position:]
    if "{{" in rest:
        raise InputError(f"{what}: template {text!r} has a {{{{ without a closing }}}}")
    return "".join(rendered) + rest


def _refuse(what: str, text: str, problem: str) -> None:
    raise InputError(
        f"{what}: template {text!r} {problem}; filters, expressions, helpers and statements are "
        f"not supported (Losant documents none for notebooks). Start the sandbox with "
        f"--templates jinja to render Jinja2."
    )


def _value(
    path: str, variables: dict[str, Any], settings: TemplateSettings, what: str, text: str
) -> str:
    value: Any = variables
    for segment in re.findall(r"\[[^\]]+\]|[^.\[]+", path):
        key = segment[1:-1] if segment.startswith("[") else segment
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif settings.missing == "empty":
            return ""
        else:
            known = ", ".join(sorted(variables))
            raise InputError(
                f"{what}: template {text!r} refers to {path}, which is not defined "
                f"(the variables are {known})"
            )
    if isinstance(value, dict | list):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise InputError(f"{what}: template {text!r}: {path} is {kind}, not a value")
    return _text(value)


def _text(value: Any) -> str:
    """A JSON value as JavaScript writes it into a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _jinja_renderer(variables: dict[str, Any], settings: TemplateSettings) -> Render:
    undefined = jinja2.StrictUndefined if settings.missing == "error" else jinja2.ChainableUndefined
    environment = SandboxedEnvironment(undefined=undefined, autoescape=False)

    def render(text: str, what: str) -> str:
        if "{{" not in text and "{%" not in text:
            return text
        try:
            return environment.from_string(text).render(variables).strip()
        except Exception as exc:  # noqa: BLE001 - Jinja's errors and whatever an expression,
            # a filter or a test raises while rendering: each fails the run, never the runner
            raise InputError(
                f"{what}: template {text!r} cannot be rendered: {type(exc).__name__}: {exc}"
            ) from None

    return render
