"""The artefacts every run leaves (result.ipynb, result.html, result.log, result.error.log) and
the collection of every file a run left."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

RESULT_NOTEBOOK = "result.ipynb"
RESULT_HTML = "result.html"
RESULT_LOG = "result.log"
ERROR_LOG = "result.error.log"
RESULT_FILES = (RESULT_NOTEBOOK, RESULT_HTML, RESULT_LOG, ERROR_LOG)
HTML_TEMPLATES = ("lab", "basic")  # tried in order; the basic one needs the fewest resources
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")

log = logging.getLogger(__name__)


def strip_ansi(text: str) -> str:
    """Tracebacks from IPython are coloured; log files must be plain text."""
    return ANSI_ESCAPE.sub("", text)


def stream_log(notebook: NotebookNode) -> str:
    """The cells' stdout and stderr streams, in the order they were produced."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", ()):
            if output.get("output_type") == "stream":
                text = output.get("text", "")
                parts.append(text if isinstance(text, str) else "".join(text))
    return strip_ansi("".join(parts))


def write_artifacts(
    results_dir: Path, notebook: NotebookNode | None, error_text: str | None
) -> None:
    """Write result.log always, result.ipynb and result.html when there is a notebook, and
    result.error.log when the run failed (`error_text`)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / RESULT_LOG).write_text(stream_log(notebook) if notebook is not None else "")
    if notebook is not None:
        nbformat.write(notebook, results_dir / RESULT_NOTEBOOK)
        (results_dir / RESULT_HTML).write_text(render_html(notebook), encoding="utf-8")
    if error_text is not None:
        write_error_log(results_dir, error_text)


def write_error_log(results_dir: Path, error_text: str) -> None:
    (results_dir / ERROR_LOG).write_text(strip_ansi(error_text).rstrip() + "\n")


def add_to_error_log(results_dir: Path, error_text: str) -> None:
    """Append to result.error.log (create it when the run had no error so far)."""
    with (results_dir / ERROR_LOG).open("a") as log:
        log.write(strip_ansi(error_text).rstrip() + "\n")


def render_html(notebook: NotebookNode, templates: Sequence[str] = HTML_TEMPLATES) -> str:
    """The nbconvert HTML export. An export problem (e.g. a template that is not installed)
    never fails a run: the next template is tried, and at worst a plain page with the cells'
    text is returned."""
    from nbconvert import HTMLExporter  # heavy import, needed only here

    problems = []
    for template in templates:
        try:
            body, _ = HTMLExporter(template_name=template).from_notebook_node(notebook)
            return body
        except Exception as exc:  # noqa: BLE001 - any exporter failure means "try the next"
            log.warning("HTML export with template %r failed: %s", template, exc)
            problems.append(f"{template}: {exc}")
    cells = "\n".join(
        f"<pre>{html.escape(cell.get('source', ''))}</pre>" for cell in notebook.cells
    )
    reasons = html.escape("; ".join(problems))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>result</title></head><body>"
        f"<p>HTML export failed ({reasons}); the notebook's cells follow.</p>\n{cells}\n"
        f"<h2>Log</h2><pre>{html.escape(stream_log(notebook))}</pre></body></html>\n"
    )


def collect_outputs(output_dir: Path, results_dir: Path) -> dict[str, Path]:
    """Every regular file under OUTPUT_DIR by its relative name, then the artefacts (which win a
    name clash, as their names are reserved): what `outputInfo` lists under the `all` rule."""
    outputs: dict[str, Path] = {}
    if output_dir.is_dir():
        for path in sorted(output_dir.rglob("*")):
            if path.is_file() and not path.is_symlink():
                outputs[path.relative_to(output_dir).as_posix()] = path
    for name in RESULT_FILES:
        if (results_dir / name).is_file():
            outputs[name] = results_dir / name
    return outputs
