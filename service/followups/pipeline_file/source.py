"""Reading the pipeline file: YAML is composed into nodes first so that every value keeps the
line it was written on, and a problem found later (by pydantic or by the cross-checks) can be
reported as `file:line: path: message`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PathPart = str | int
Path = tuple[PathPart, ...]

MERGE_TAG = "tag:yaml.org,2002:merge"
BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 booleans: only true/false are booleans, so `on:`, `no`
    or `off` stay the strings they look like."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def format_path(path: Sequence[PathPart]) -> str:
    """`("rules", "etl", "actions", 1, "notify")` → `rules.etl.actions[1].notify`."""
    text = ""
    for part in path:
        text += (
            f"[{part}]"
            if isinstance(part, int) and not isinstance(part, bool)
            else (f".{part}" if text else str(part))
        )
    return text


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the pipeline file, at a line (1-based) and a path inside it."""

    line: int
    path: str
    message: str

    def format(self, filename: str) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{filename}:{self.line}: {where}{self.message}"


@dataclass(frozen=True)
class ScalarSpot:
    """Where a scalar value starts, and whether it is a block scalar (its text begins a line
    later than its node)."""

    line: int
    block: bool

    def text_line(self, offset: int = 1) -> int:
        """The file line of line `offset` (1-based) of the scalar's text."""
        return self.line + (1 if self.block else 0) + offset - 1


@dataclass
class YamlDocument:
    """The parsed data of a YAML file plus the line of every entry in it."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    scalars: dict[Path, ScalarSpot] = field(default_factory=dict)

    def line_of(self, path: Sequence[PathPart]) -> int:
        """The line of `path`, or of its nearest parent when it is not in the file (missing)."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def spot_of(self, path: Sequence[PathPart]) -> ScalarSpot:
        path = tuple(path)
        return self.scalars.get(path) or ScalarSpot(self.line_of(path), False)


class YamlSyntaxError(ValueError):
    """The text is not YAML, or not one document; carries the problems found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document with the safe loader, recording lines and duplicate keys."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data=None, lines={(): 1})
        document = YamlDocument(data=None, lines={(): node.start_mark.line + 1})
        duplicates: list[Problem] = []
        _record(node, (), document, duplicates, loader)
        if duplicates:
            raise YamlSyntaxError(duplicates)
        document.data = loader.construct_document(node)
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise YamlSyntaxError([Problem(line, "", f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError([Problem(1, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _record(
    node: Node, path: Path, doc: YamlDocument, problems: list[Problem], loader: yaml.SafeLoader
) -> None:
    if isinstance(node, ScalarNode):
        doc.scalars[path] = ScalarSpot(node.start_mark.line + 1, node.style in ("|", ">"))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            doc.lines[path + (index,)] = item.start_mark.line + 1
            _record(item, path + (index,), doc, problems, loader)
    elif isinstance(node, MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                problems.append(Problem(line, format_path(path), "keys must be plain values"))
                continue
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                problems.append(Problem(line, format_path(path + (key,)), "duplicate key"))
            seen.add(key)
            doc.lines.setdefault(path + (key,), line)
            _record(value_node, path + (key,), doc, problems, loader)
