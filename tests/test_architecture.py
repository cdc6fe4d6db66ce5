"""The layout's rules, checked on the source: who may import whom.

Every import counts, also one inside a function or under `TYPE_CHECKING`: a late import hides a
dependency from the reader, it does not remove it.

- No import cycle anywhere in `service`, `workers` and `sandbox`.
- Layers: a module imports from its own layer and the layers below, never from one above (the
  table is `LAYERS`; the README's "Architecture" section draws it).
- The sandbox plays Losant and stands alone: it imports nothing of nbrelay's.
- The composition root (`service.composition`) and the edges that use it (`service.web`,
  `service.cli`, `workers`) are imported by no module of the domain.
- The domain never imports Flask: the web layer only translates HTTP.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "workers", "sandbox")
EDGES = ("service.composition", "service.web", "service.cli", "workers")


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """module -> the names it imports (modules of `packages` resolved, others as written)."""
    known = modules(root, packages)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    targets.add(candidate if candidate in known else base)
        graph[name] = {_owner(target, known) for target in targets} - {name}
    return graph


def _owner(target: str, known: dict[str, Path]) -> str:
    """The module of ours that `target` names (or is inside), else `target` itself."""
    probe = target
    while probe and probe not in known:
        probe = probe.rpartition(".")[0]
    return probe or target


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def sandbox_leaks(graph: dict[str, set[str]]) -> set[str]:
    """Imports of nbrelay's own packages from the sandbox."""
    return {
        f"{module} imports {target}"
        for module, targets in graph.items()
        if within(module, ["sandbox"])
        for target in targets
        if within(target, ["service", "workers"])
    }


LAYERS = (  # lowest first
    ("sandbox",),
    (  # foundation: configuration, keys, clients, the queues
        "service",
        "service.config",
        "service.defaults",
        "service.errors",
        "service.json_input",
        "service.keys",
        "service.logs",
        "service.losant",
        "service.marker",
        "service.metrics",
        "service.queues",
        "service.standard_webhooks",
        "service.times",
    ),
    ("service.events", "service.dead_letters"),
    # the follow-ups, from what notifications say up to the facade and its factory
    ("service.followups.messages", "service.followups.due"),
    ("service.followups.channels",),
    ("service.followups.pipeline_file",),
    ("service.followups.actions",),
    ("service.followups.pipelines", "service.followups.alerts"),
    ("service.followups.rules",),
    ("service.followups",),
    ("service.composition", "service.doctor", "service.gauges", "service.runtime"),
    ("service.web", "service.cli", "workers"),
)


def layer_of(module: str) -> int | None:
    """The layer whose longest prefix names `module` (None for modules not of ours)."""
    matches = [
        (len(prefix), number)
        for number, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if within(module, [prefix])
    ]
    return max(matches)[1] if matches else None


def upward_imports(graph: dict[str, set[str]]) -> set[str]:
    """Imports of a module from a layer above its own."""
    return {
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if (low := layer_of(module)) is not None
        and (high := layer_of(target)) is not None
        and high > low
    }


EDGE_IMPORTS = {  # edge -> the other edges it may import
    "service.composition": set(),
    "service.web": {"service.composition"},
    "service.cli": {"service.composition", "service.web", "workers"},
    "workers": {"service.composition"},
}


def edge_breaches(graph: dict[str, set[str]]) -> set[str]:
    """Imports of an edge from the domain, or of an edge from an edge not allowed to."""
    breaches = set()
    for module, targets in graph.items():
        edge = next((e for e in EDGE_IMPORTS if within(module, [e])), None)
        for target in targets:
            target_edge = next((e for e in EDGE_IMPORTS if within(target, [e])), None)
            if target_edge is None or target_edge == edge:
                continue
            if edge is None or target_edge not in EDGE_IMPORTS[edge]:
                breaches.add(f"{module} imports {target}")
    return breaches


def flask_in_domain(graph: dict[str, set[str]]) -> set[str]:
    """Modules of the domain (`service` but its web layer) that import Flask."""
    return {
        module
        for module, targets in graph.items()
        if within(module, ["service"]) and not within(module, ["service.web"])
        if any(within(target, ["flask"]) for target in targets)
    }


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return imports(ROOT, PACKAGES)


def test_there_is_no_import_cycle(graph):
    assert cycles(graph) == []


def test_every_module_has_a_layer_and_imports_no_layer_above_it(graph):
    assert {m for m in graph if layer_of(m) is None} == set()
    assert upward_imports(graph) == set()


def test_the_sandbox_imports_nothing_of_nbrelays(graph):
    assert sandbox_leaks(graph) == set()


def test_only_the_edges_import_the_composition_root_and_each_other(graph):
    assert edge_breaches(graph) == set()


def test_the_domain_never_imports_flask(graph):
    assert flask_in_domain(graph) == set()


# The checks themselves, on packages made for the purpose: each can fail.


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_find_cycles_late_imports_and_breaches(tmp_path):
    write(
        tmp_path,
        {
            "service/__init__.py": "",
            "service/events/__init__.py": "",
            "service/events/store.py": "from service.events import sync\n",
            "service/events/sync.py": "def later():\n    from service.events.store import X\n",
            "service/events/view.py": "import flask\n",
            "service/composition.py": "from service.events import store\n",
            "service/events/leak.py": "from ..composition import Components\n",
            "sandbox/__init__.py": "",
            "sandbox/api.py": "from service.events.store import X\n",
        },
    )
    graph = imports(tmp_path, ["service", "sandbox"])
    assert cycles(graph) == [["service.events.store", "service.events.sync"]]
    assert edge_breaches(graph) == {"service.events.leak imports service.composition"}
    assert sandbox_leaks(graph) == {"sandbox.api imports service.events.store"}
    assert flask_in_domain(graph) == {"service.events.view"}
    assert upward_imports(graph) == {
        "service.events.leak imports service.composition",
        "sandbox.api imports service.events.store",
    }
