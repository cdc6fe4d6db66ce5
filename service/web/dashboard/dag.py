"""A pipeline's steps drawn as a graph: server-rendered SVG, left to right.

Steps are put in columns by longest-path layering (a step sits one column right of the
furthest step it comes after, so every edge points right); within a column they are ordered by
the mean row of the steps they come after, ties in the order the file declares them, so the
same pipeline always draws the same picture and fan-outs and fan-ins cross little. Edges are
curves from a step's right side to the next one's left side, ending in an arrowhead.

A step is a `<g class="step <state>" data-step=... data-state=...>` (state and data-state only
when one is given): the stylesheet colours it by its state, tests and the browser find it by
its key. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

NODE_WIDTH = 160
NODE_HEIGHT = 40
COLUMN_GAP = 56
ROW_GAP = 14
MARGIN = 6
LABEL_CHARS = 22  # longer notebook names are cut, whole in the tooltip


@dataclass(frozen=True)
class Node:
    key: str
    layer: int
    row: int
    x: float
    y: float


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # the SVG path's `d`


@dataclass(frozen=True)
class Layout:
    layers: list[list[str]]
    nodes: dict[str, Node]
    edges: list[Edge]
    width: float
    height: float


def layers(after: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The steps in columns, each step one column right of the furthest step it comes after
    (keys in declaration order within a column, before ordering for crossings). ValueError
    for a step after an unknown step, or a cycle."""
    depth: dict[str, int] = {}
    remaining = dict(after)
    for key, upstream in remaining.items():
        unknown = [name for name in upstream if name not in after]
        if unknown:
            raise ValueError(f"step {key} comes after unknown step {unknown[0]}")
    while remaining:
        ready = [k for k, up in remaining.items() if all(name in depth for name in up)]
        if not ready:
            raise ValueError(f"the steps {', '.join(sorted(remaining))} form a cycle")
        for key in ready:
            depth[key] = 1 + max((depth[name] for name in remaining.pop(key)), default=-1)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for key in after:
        columns[depth[key]].append(key)
    return columns


def layout(after: Mapping[str, Sequence[str]]) -> Layout:
    """Where each step and edge goes: columns from `layers`, each ordered by the mean row of
    its steps' upstream steps, columns centred on the tallest."""
    columns = layers(after)
    row: dict[str, float] = {}
    for column in columns:
        column[:] = _by_upstream_rows(column, after, row)
        row.update((key, index) for index, key in enumerate(column))
    tallest = max((len(c) for c in columns), default=0)
    nodes: dict[str, Node] = {}
    for layer, column in enumerate(columns):
        offset = (tallest - len(column)) * (NODE_HEIGHT + ROW_GAP) / 2
        for index, key in enumerate(column):
            nodes[key] = Node(
                key=key,
                layer=layer,
                row=index,
                x=MARGIN + layer * (NODE_WIDTH + COLUMN_GAP),
                y=MARGIN + offset + index * (NODE_HEIGHT + ROW_GAP),
            )
    edges = [
        Edge(source, key, _curve(nodes[source], nodes[key]))
        for key, upstream in after.items()
        for source in upstream
    ]
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + max(len(columns) - 1, 0) * COLUMN_GAP
    height = 2 * MARGIN + tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP
    return Layout(columns, nodes, edges, width, height)


def _by_upstream_rows(
    column: list[str], after: Mapping[str, Sequence[str]], row: Mapping[str, float]
) -> list[str]:
    """The column ordered by the mean row of each step's upstream steps (a step after none
    keeps its declared place), ties in declared order."""

    def place(item: tuple[int, str]) -> tuple[float, int]:
        index, key = item
        upstream = after[key]
        return (sum(row[u] for u in upstream) / len(upstream) if upstream else index), index

    return [key for _, key in sorted(enumerate(column), key=place)]


def _curve(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT / 2
    x2, y2 = target.x - 2, target.y + NODE_HEIGHT / 2  # the arrowhead's tip on the border
    bend = (x2 - x1) / 2
    return (
        f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    )


def render(
    after: Mapping[str, Sequence[str]],
    *,
    labels: Mapping[str, str],
    name: str,
    states: Mapping[str, str] | None = None,
    titles: Mapping[str, str] | None = None,
    hrefs: Mapping[str, str] | None = None,
) -> Markup:
    """The graph of steps `after` (key → the keys it comes after) as SVG: each step shows its
    key and `labels[key]` (its notebook); `states` colours steps and names their state,
    `titles` are tooltips, `hrefs` make steps links. `name` keeps the arrowhead's id unique
    when a page shows several graphs."""
    drawn = layout(after)
    marker = f"arrow-{name}"
    parts = [
        f'<svg class="chart dag" viewBox="0 0 {drawn.width:.0f} {drawn.height:.0f}" '
        f'width="{drawn.width:.0f}" height="{drawn.height:.0f}" role="img">',
        f'<defs><marker id="{escape(marker)}" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
    ]
    for edge in drawn.edges:
        parts.append(
            f'<path class="edge" data-from="{escape(edge.source)}" data-to="{escape(edge.target)}"'
            f' d="{edge.path}" marker-end="url(#{escape(marker)})"/>'
        )
    for key, node in drawn.nodes.items():
        state = (states or {}).get(key)
        label = labels.get(key, "")
        short = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
        title = (titles or {}).get(key) or f"{key}: {label}"
        group = Markup('<g class="step{}" data-step="{}"{}>').format(
            f" {state}" if state else "",
            key,
            Markup(' data-state="{}"').format(state) if state else "",
        )
        body = Markup(
            '<title>{}</title><rect x="{:.1f}" y="{:.1f}" width="{}" height="{}" rx="4"/>'
            '<text class="key" x="{:.1f}" y="{:.1f}">{}</text>'
            '<text class="notebook" x="{:.1f}" y="{:.1f}">{}</text>'
        ).format(
            title,
            node.x,
            node.y,
            NODE_WIDTH,
            NODE_HEIGHT,
            node.x + 8,
            node.y + 16,
            key,
            node.x + 8,
            node.y + 31,
            short,
        )
        href = (hrefs or {}).get(key)
        if href:
            body = Markup('<a href="{}">{}</a>').format(href, body)
        parts.append(group + body + Markup("</g>"))
    parts.append("</svg>")
    return Markup("".join(parts))
