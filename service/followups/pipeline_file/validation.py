"""Loading and checking the pipeline file. Every problem is collected, not just the first, and
located as `file:line: path: message`: the models check each entry's shape (unknown keys, wrong
types), then cross-checks follow the references between entries (steps, cycles, channels,
notebooks, templates)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from service.config import OBJECT_ID
from service.errors import UsageProblem
from service.followups.channels import ChannelConfig
from service.followups.pipeline_file import templates
from service.followups.pipeline_file.model import (
    NAME,
    Action,
    AlertSettings,
    ExecuteItem,
    NotebookEntry,
    NotifyItem,
    PatchItem,
    Pipeline,
    PipelineFile,
    Rule,
    Step,
    Strict,
)
from service.followups.pipeline_file.source import (
    Path,
    Problem,
    YamlDocument,
    YamlSyntaxError,
    format_path,
    parse_yaml,
)
from service.losant import AmbiguousNotebook, LosantClient, NotFound

STEP_VARIABLES = ("params", "steps", "run")
RULE_VARIABLES = ("execution", "notebook", "rule")

NotebookResolver = Callable[[str], str | None]
"""Checks a notebook id or exact name against the Losant API: None when it names exactly one
notebook, else what is wrong with it ("unknown notebook 'x'", "ambiguous ...")."""


class PipelineFileInvalid(UsageProblem):
    """The pipeline file has problems; `report()` lists them, one located line each."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = sorted(problems)
        count = len(self.problems)
        first = self.problems[0].format(filename)
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"invalid pipeline file: {first}{more}")

    def report(self) -> list[str]:
        return [problem.format(self.filename) for problem in self.problems]


def losant_resolver(
    client: LosantClient, application_id: str, found: dict[str, str] | None = None
) -> NotebookResolver:
    """A resolver that looks references up in one Losant application, noting the id of each
    notebook found in `found`. Errors other than "no such notebook" (a bad token, Losant down)
    are not problems of the file: they propagate."""

    def resolve(reference: str) -> str | None:
        try:
            notebook = client.find_notebook(application_id, reference)
        except NotFound:
            return f"unknown notebook '{reference}'"
        except AmbiguousNotebook as exc:
            return f"ambiguous notebook '{reference}': {exc.message}"
        if found is not None:
            found[reference] = notebook.id
        return None

    return resolve


def load_file(
    path: str | FilePath,
    *,
    resolver: NotebookResolver | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineFile:
    """Read and check the pipeline file at `path`; PipelineFileInvalid lists what is wrong."""
    path = FilePath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"cannot read pipeline file {path}: {exc}") from None
    return load_text(text, path.name, resolver=resolver, environ=environ)


def load_text(
    text: str,
    filename: str = "pipelines.yaml",
    *,
    resolver: NotebookResolver | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineFile:
    try:
        document = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise PipelineFileInvalid(filename, exc.problems) from None
    checker = _Checker(document, environ, resolver)
    result = checker.run()
    if checker.problems or result is None:
        raise PipelineFileInvalid(filename, checker.problems)
    return result


def summary(pipeline_file: PipelineFile) -> str:
    """What a valid file defines, in one line."""
    steps = sum(len(p.steps) for p in pipeline_file.pipelines.values())
    counts = [
        _count(len(pipeline_file.pipelines), "pipeline") + f" ({_count(steps, 'step')})",
        _count(len(pipeline_file.rules), "rule"),
        _count(len(pipeline_file.channels), "channel"),
        _count(len(pipeline_file.notebooks), "notebook alias", "notebook aliases"),
    ]
    return ", ".join(counts)


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else (plural or singular + 's')}"


class _Shell(Strict):
    """The top level, with the entries of each section left for one-by-one checking."""

    version: int = 1
    notebooks: dict[str, Any] = Field(default_factory=dict)
    channels: dict[str, Any] = Field(default_factory=dict)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    pipelines: dict[str, Any] = Field(default_factory=dict)
    rules: dict[str, Any] = Field(default_factory=dict)


class _RuleShell(BaseModel):
    """Just enough of a rule to check its parts one by one (the parts check their own keys)."""

    notebook: Any = None
    statuses: Any = None
    when: Any = None
    actions: list[Any] = Field(min_length=1)


class _PipelineShell(BaseModel):
    """Just enough of a pipeline to check its steps one by one."""

    steps: dict[str, Any] = Field(min_length=1)


class _PipelineHead(Strict):
    """A pipeline's own keys, its steps left out."""

    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)


_CHANNEL = TypeAdapter(ChannelConfig)
_ACTION = TypeAdapter(Action)


class _Checker:
    def __init__(
        self,
        document: YamlDocument,
        environ: Mapping[str, str] | None,
        resolver: NotebookResolver | None,
    ) -> None:
        self.doc = document
        self.context = {"environ": environ} if environ is not None else {}
        self.resolver = resolver
        self.problems: list[Problem] = []

    # -- reporting --------------------------------------------------------------------------

    def add(self, path: Path, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(line or self.doc.line_of(path), format_path(path), message))

    def validate(self, model: type[BaseModel] | TypeAdapter, data: Any, path: Path) -> Any:
        """The validated object, or None after recording each of pydantic's complaints."""
        try:
            if isinstance(model, TypeAdapter):
                return model.validate_python(data, context=self.context)
            return model.model_validate(data, context=self.context)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self._pydantic_problem(error, data, path)
            return None

    def _pydantic_problem(self, error: ErrorDetails, data: Any, path: Path) -> None:
        loc = list(error["loc"])
        real: list[Any] = []
        current = data
        for index, part in enumerate(loc):
            last = index == len(loc) - 1
            if isinstance(current, dict) and part in current:
                real.append(part)
                current = current[part]
            elif isinstance(current, list) and isinstance(part, int) and part < len(current):
                real.append(part)
                current = current[part]
            elif last and error["type"] == "missing":
                real.append(part)
        kind, message = error["type"], error["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        message = message[:1].lower() + message[1:]
        full = path + tuple(real)
        if kind == "missing":
            self.add(full[:-1], f"missing required key '{full[-1]}'", self.doc.line_of(full[:-1]))
        elif kind == "extra_forbidden":
            hint = (
                " (YAML reads a bare on/off/yes/no as true/false)"
                if isinstance(full[-1], bool)
                else ""
            )
            self.add(full[:-1], f"unknown key '{full[-1]}'{hint}", self.doc.line_of(full))
        elif loc and loc[-1] == "[key]":
            self.add(full[:-1], f"unknown key '{full[-1]}': {message}", self.doc.line_of(full))
        elif kind == "string_pattern_mismatch":
            self.add(full, self._pattern_message(error))
        else:
            if kind.endswith(("_type", "_parsing")) or kind in ("literal_error", "enum"):
                if "channels" not in path[:1] and isinstance(error.get("input"), str | int | float):
                    message += f" (got {error['input']!r:.60})"
                message = "wrong type: " + message if kind.endswith("_type") else message
            self.add(full, message)

    @staticmethod
    def _pattern_message(error: ErrorDetails) -> str:
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern == NAME:
            return (
                f"not a valid name {error['input']!r:.60}: use letters, digits, '_' and '-',"
                " starting with a letter or '_' (at most 64)"
            )
        if pattern == OBJECT_ID.pattern:
            return f"malformed notebook id {error['input']!r:.60}: a Losant id is 24 hex digits"
        return error["msg"][:1].lower() + error["msg"][1:]

    # -- the checks ---------------------------------------------------------------------------

    def run(self) -> PipelineFile | None:
        data = {} if self.doc.data is None else self.doc.data
        if not isinstance(data, dict):
            self.add((), "the file must be a mapping of sections (pipelines, rules, channels, ...)")
            return None
        shell = self.validate(_Shell, data, ())
        sections: dict[str, dict[Any, Any]] = {
            name: value if isinstance(value := data.get(name), dict) else {}
            for name in ("notebooks", "channels", "pipelines", "rules")
        }
        for section, entries in sections.items():
            for key in entries:
                if not isinstance(key, str) or not re.match(NAME, key):
                    self.add((section, key), _pattern_name(key))
        notebooks = self._entries("notebooks", NotebookEntry, sections["notebooks"])
        self._entries("channels", _CHANNEL, sections["channels"])
        rules = {
            name: rule
            for name, raw in sections["rules"].items()
            if (rule := self._rule(name, raw)) is not None
        }
        pipelines = {
            name: pipeline
            for name, raw in sections["pipelines"].items()
            if (pipeline := self._pipeline(name, raw)) is not None
        }
        channel_names = set(sections["channels"])
        for name, pipeline in pipelines.items():
            self._check_pipeline(name, pipeline, sections["pipelines"][name])
        for name, rule in rules.items():
            self._check_rule(name, rule, sections["rules"][name], channel_names)
        if self.resolver is not None:
            self._check_notebooks(self.resolver, notebooks, pipelines, rules)
        if self.problems or shell is None:
            return None
        return self.validate(PipelineFile, data, ())

    def _entries(self, section: str, model: Any, entries: dict[Any, Any]) -> dict[str, Any]:
        checked = {}
        for key, raw in entries.items():
            value = self.validate(model, raw, (section, key))
            if value is not None:
                checked[key] = value
        return checked

    def _pipeline(self, name: str, raw: Any) -> Pipeline | None:
        path: Path = ("pipelines", name)
        shell = self.validate(_PipelineShell, raw, path)
        if not isinstance(raw, dict):
            return None
        head = self.validate(_PipelineHead, {k: v for k, v in raw.items() if k != "steps"}, path)
        if shell is None or head is None:
            return None
        steps = {}
        for key, step_raw in shell.steps.items():
            if not isinstance(key, str) or not re.match(NAME, key):
                self.add(path + ("steps", key), _pattern_name(key))
            step = self.validate(Step, step_raw, path + ("steps", key))
            if step is not None:
                steps[key] = step
        for key in head.params:
            if not isinstance(key, str) or not re.match(NAME, key):
                self.add(path + ("params", key), _pattern_name(key))
        return Pipeline.model_construct(
            description=head.description, params=head.params, steps=steps
        )

    def _rule(self, name: str, raw: Any) -> Rule | None:
        """The rule as far as it is valid, so that one bad part (a status, an action) does not
        hide the problems of the others."""
        path: Path = ("rules", name)
        shell = self.validate(_RuleShell, raw, path)
        if shell is None:
            return None
        fields = {key: value for key, value in raw.items() if key != "actions"}
        self.validate(Rule, {**fields, "actions": [{"notify": ["_"]}]}, path)
        actions = [  # invalid ones stay as None, so that positions keep matching the file
            self.validate(_ACTION, raw_action, path + ("actions", index))
            for index, raw_action in enumerate(shell.actions)
        ]
        return Rule.model_construct(
            notebook=shell.notebook if isinstance(shell.notebook, str) else None,
            statuses=shell.statuses,
            when=shell.when if isinstance(shell.when, str) else None,
            actions=actions,
        )

    def _check_pipeline(self, name: str, pipeline: Pipeline, raw: dict[str, Any]) -> None:
        path: Path = ("pipelines", name)
        known = set(raw.get("steps") or {})
        for key, step in pipeline.steps.items():
            step_path = path + ("steps", key)
            for index, after in enumerate(step.after):
                if after not in known:
                    self.add(step_path + ("after", index), _unknown("step", after, known))
        for cycle in _cycles(pipeline):
            self.add(path + ("steps", cycle[0], "after"), "cycle: " + " → ".join(cycle))
        for key, step in pipeline.steps.items():
            step_path = path + ("steps", key)
            upstream = pipeline.upstream(key)
            trees = self._templates(step_path, "context", step.context)
            trees += self._templates(step_path, "relative_to", step.relative_to)
            trees += self._expression(step_path, "when", step.when)
            for tree, where in trees:
                self._names(tree, where, STEP_VARIABLES, "a step template")
                for used in sorted(templates.attributes_of(tree, "steps")):
                    if used not in known:
                        self.add(where, _unknown("step", used, known))
                    elif used not in upstream:
                        self.add(where, f"step '{used}' is not upstream of '{key}'")
                for used in sorted(templates.attributes_of(tree, "params")):
                    if used not in pipeline.params:
                        self.add(where, _unknown("parameter", used, set(pipeline.params)))

    def _check_rule(self, name: str, rule: Rule, raw: dict[str, Any], channels: set[str]) -> None:
        path: Path = ("rules", name)
        trees = self._expression(path, "when", rule.when)
        for index, action in enumerate(rule.actions):
            action_path = path + ("actions", index)
            if isinstance(action, ExecuteItem):
                trees += self._templates(
                    action_path + ("execute",), "context", action.execute.context
                )
                trees += self._templates(
                    action_path + ("execute",), "relative_to", action.execute.relative_to
                )
            elif isinstance(action, PatchItem):
                trees += self._templates(action_path + ("patch",), "set", action.patch.set)
                trees += self._templates(action_path + ("patch",), "inputs", action.patch.inputs)
            elif isinstance(action, NotifyItem):
                # `notify: [a, b]` lists the channels itself; `notify: {channels: [a, b]}` under
                # a key of its own
                written = raw["actions"][index]["notify"]
                where = (
                    action_path + ("notify",) + (("channels",) if isinstance(written, dict) else ())
                )
                for position, channel in enumerate(action.notify.channels):
                    if channel not in channels:
                        self.add(where + (position,), _unknown("channel", channel, channels))
        for tree, where in trees:
            self._names(tree, where, RULE_VARIABLES, "a rule template")

    def _templates(self, parent: Path, key: str, value: Any) -> list[tuple[Any, Path]]:
        """Parse the template strings under `parent.key`; report syntax errors at their line."""
        if value is None:
            return []
        trees, issues = templates.parse_value(value)
        for issue in issues:
            where = parent + (key,) + issue.path
            self.add(where, issue.message, self.doc.spot_of(where).text_line(issue.line))
        return [(tree, parent + (key,) + path) for path, tree in trees]

    def _expression(self, parent: Path, key: str, expression: str | None) -> list[tuple[Any, Path]]:
        if expression is None:
            return []
        tree, issue = templates.parse_expression(expression)
        if issue is not None:
            where = parent + (key,)
            self.add(where, issue.message, self.doc.spot_of(where).text_line(issue.line))
            return []
        return [(tree, parent + (key,))]

    def _names(self, tree: Any, where: Path, allowed: tuple[str, ...], what: str) -> None:
        for name in sorted(templates.free_names(tree) - set(allowed)):
            self.add(where, f"unknown variable '{name}' ({what} can use {', '.join(allowed)})")

    def _check_notebooks(
        self,
        resolver: NotebookResolver,
        aliases: dict[str, NotebookEntry],
        pipelines: dict[str, Pipeline],
        rules: dict[str, Rule],
    ) -> None:
        """With a Losant API at hand, every reference must name an existing notebook."""
        sites: list[tuple[Path, str]] = []
        for name, pipeline in pipelines.items():
            for key, step in pipeline.steps.items():
                sites.append((("pipelines", name, "steps", key, "notebook"), step.notebook))
        for name, rule in rules.items():
            if rule.notebook is not None:
                sites.append((("rules", name, "notebook"), rule.notebook))
            for index, action in enumerate(rule.actions):
                for kind in ("execute", "patch"):
                    target = getattr(getattr(action, kind, None), "notebook", None)
                    if target is not None:
                        path: Path = ("rules", name, "actions", index, kind, "notebook")
                        sites.append((path, target))
        verdicts: dict[str, str | None] = {}

        def problem(reference: str) -> str | None:
            if reference not in verdicts:
                verdicts[reference] = resolver(reference)
            return verdicts[reference]

        for alias, entry in aliases.items():
            if (message := problem(entry.reference)) is not None:
                self.add(("notebooks", alias), message)
        for path, reference in sites:
            if reference not in aliases and (message := problem(reference)) is not None:
                self.add(path, message)


def _pattern_name(key: Any) -> str:
    return (
        f"not a valid name {key!r:.60}: use letters, digits, '_' and '-',"
        " starting with a letter or '_' (at most 64)"
    )


def _unknown(what: str, name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"unknown {what} '{name}'" + (f" (did you mean '{close[0]}'?)" if close else "")


def _cycles(pipeline: Pipeline) -> list[list[str]]:
    """Each cycle of `after` edges once, as the list of steps around it (first step repeated
    at the end), starting from the step that comes first in the file."""
    order = list(pipeline.steps)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()

    def visit(key: str, trail: list[str]) -> None:
        state[key] = 1
        trail.append(key)
        for upstream in pipeline.steps[key].after:
            if upstream not in pipeline.steps:
                continue
            if state.get(upstream) == 1:
                members = trail[trail.index(upstream) :]
                if frozenset(members) not in seen_cycles:
                    seen_cycles.add(frozenset(members))
                    first = min(members, key=order.index)
                    start = members.index(first)
                    rotated = members[start:] + members[:start]
                    # `after` points upstream; show the cycle in the direction work flows.
                    flow = [rotated[0]] + list(reversed(rotated[1:]))
                    cycles.append(flow + [flow[0]])
            elif state.get(upstream) is None:
                visit(upstream, trail)
        trail.pop()
        state[key] = 2

    for key in order:
        if key not in state:
            visit(key, [])
    return cycles
