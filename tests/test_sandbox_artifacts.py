"""Run artefacts: the log of the cells' streams, plain-text error logs and an HTML export that
never fails a run."""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_notebook, new_output

from sandbox.artifacts import collect_outputs, render_html, stream_log, write_artifacts


def executed_notebook():
    cell = new_code_cell("print('x')")
    cell.outputs = [
        new_output("stream", name="stdout", text="one\n"),
        new_output("display_data", data={"text/plain": "shown"}),
        new_output("stream", name="stderr", text="\x1b[31mtwo\x1b[0m\n"),
    ]
    return new_notebook(cells=[cell, new_code_cell("pass")])


def test_stream_log_keeps_order_and_drops_colours():
    assert stream_log(executed_notebook()) == "one\ntwo\n"


def test_html_export_falls_back_to_the_next_template():
    page = render_html(executed_notebook(), templates=("no-such-template", "basic"))
    assert "print" in page and "no-such-template" not in page


def test_html_export_without_any_template_still_gives_a_page():
    page = render_html(executed_notebook(), templates=("no-such-template",))
    assert page.startswith("<!DOCTYPE html>")
    assert "HTML export failed (no-such-template" in page
    assert "print(&#x27;x&#x27;)" in page and "one\ntwo\n" in page


def test_error_log_is_plain_text_and_artefacts_win_name_clashes(tmp_path):
    output_dir, results_dir = tmp_path / "output", tmp_path / "results"
    (output_dir / "charts").mkdir(parents=True)
    (output_dir / "charts" / "a.png").write_bytes(b"png")
    (output_dir / "result.log").write_text("written by the notebook")
    write_artifacts(results_dir, executed_notebook(), "\x1b[1;31mValueError\x1b[0m: bad")
    assert (results_dir / "result.error.log").read_text() == "ValueError: bad\n"
    outputs = collect_outputs(output_dir, results_dir)
    assert sorted(outputs) == [
        "charts/a.png",
        "result.error.log",
        "result.html",
        "result.ipynb",
        "result.log",
    ]
    assert outputs["result.log"] == results_dir / "result.log"
