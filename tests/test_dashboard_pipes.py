"""The dashboard's pipelines pages: each pipeline's steps as a graph, starting a run from the
form (the same facade call as the API), and a run's page with its steps coloured by state and a
Gantt of their executions. Pages through Flask's test client on a real Redis; runs executed by
the sandbox through the follow-ups harness."""

from __future__ import annotations

import re
import textwrap
from urllib.parse import parse_qs, urlsplit

import pytest

from service.followups.pipelines.runs import RunStatus
from service.times import iso
from service.web import create_app
from service.web.dashboard import dag
from tests.support.dashboard import csrf_token, page, press, signed_in
from tests.support.followups import Harness
from tests.support.web import API_TOKEN, CONSOLE

DIAMOND = """\
pipelines:
  diamond:
    description: Nightly <b>report</b> for every region
    params: {day: "2024-05-01", region: null}
    steps:
      a: {notebook: A, context: {day: "{{ params.day }}"}}
      b: {notebook: B, after: a}
      c: {notebook: C, after: a}
      d: {notebook: D, after: [b, c]}
"""

FAILING = """\
pipelines:
  failing:
    steps:
      a: {notebook: A}
      b:
        notebook: B
        after: a
        on_failure: skip
        retry: {max_attempts: 2, backoff: [0.1s]}
      c: {notebook: C, after: b}
      d: {notebook: D, after: a}
"""


@pytest.fixture
def published(redis_server, sandbox_app, tmp_path):
    """Publishes a pipeline file (as the scheduler does) and returns the harness that runs it."""
    created: list[Harness] = []

    def publish(text: str, *notebooks: str, **behaviour) -> Harness:
        path = tmp_path / "pipelines.yaml"
        path.write_text(textwrap.dedent(text))
        harness = Harness(redis_server.url, sandbox_app, path)
        created.append(harness)
        for name in notebooks:
            harness.notebook(name, **behaviour.get(name, {}))
        harness.registry.refresh()
        assert harness.followups.pipeline_file() is not None
        return harness

    yield publish
    for harness in created:
        harness.close()


@pytest.fixture
def client(make_components):
    components = make_components(**{**CONSOLE, "NBRELAY_PUBLIC_URL": "http://nb.test"})
    return signed_in(create_app(components=components))


def start(client, name: str, params: str | None, *, csrf: bool = True):
    """Press the form's Start button with `params`; or post the form without its CSRF token."""
    data = {} if params is None else {"params": params}
    if csrf:
        return press(client, f"/pipelines/{name}", f"/pipelines/{name}/runs", data)
    page(client, f"/pipelines/{name}")
    return client.post(f"/pipelines/{name}/runs", data=data)


def steps_drawn(html: str) -> dict[str, tuple[str, str]]:
    """Each step of the page's graph: key → (its class, its data-state)."""
    return {
        key: (css, state)
        for css, key, state in re.findall(
            r'<g class="([^"]*)" data-step="([^"]+)"(?: data-state="([^"]*)")?>', html
        )
    }


# the layout


def test_steps_are_layered_by_their_longest_path():
    after = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["a", "d"], "f": []}
    drawn = dag.layout(after)
    assert drawn.layers == [["a", "f"], ["b", "c"], ["d"], ["e"]]  # e: after d, not beside b
    assert {(e.source, e.target) for e in drawn.edges} == {
        ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "e"), ("d", "e"),
    }  # fmt: skip
    nodes = drawn.nodes
    for edge in drawn.edges:
        assert nodes[edge.target].x > nodes[edge.source].x
    assert nodes["b"].x == nodes["c"].x and nodes["b"].y != nodes["c"].y  # fan-out
    assert nodes["d"].y > nodes["b"].y and nodes["d"].y < nodes["c"].y  # fan-in, between
    assert dag.layout(dict(reversed(after.items()))).nodes["e"].layer == 3
    assert dag.layout(after) == drawn


def test_a_column_follows_the_rows_of_what_it_comes_after():
    drawn = dag.layout({"x": [], "y": [], "from_y": ["y"], "from_x": ["x"]})
    assert drawn.layers == [["x", "y"], ["from_x", "from_y"]]


def test_cycles_and_unknown_steps_are_refused():
    with pytest.raises(ValueError, match="cycle"):
        dag.layers({"a": ["b"], "b": ["a"], "c": []})
    with pytest.raises(ValueError, match="unknown step z"):
        dag.layers({"a": ["z"]})


def test_the_graph_escapes_every_text_and_names_each_step():
    svg = str(
        dag.render(
            {"a": [], "b": ["a"]},
            labels={"a": "<script>alert(1)</script>", "b": 'say "hi"'},
            name="p",
            states={"a": "completed", "b": "running"},
            titles={"b": "b & co"},
            hrefs={"a": "/x?y=1&z=2"},
        )
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "say &#34;hi&#34;" in svg and "b &amp; co" in svg and 'href="/x?y=1&amp;z=2"' in svg
    assert steps_drawn(svg) == {
        "a": ("step completed", "completed"),
        "b": ("step running", "running"),
    }
    assert svg.count('class="edge"') == 1 and 'marker-end="url(#arrow-p)"' in svg


# the pages


def test_without_a_pipeline_file_the_page_says_so(client):
    assert "No pipeline file is loaded" in page(client, "/pipelines")


def test_pipelines_show_their_steps_params_and_runs(client, published):
    harness = published(DIAMOND, "A", "B", "C", "D")
    run = harness.followups.start_run("diamond", {"region": "north"}, "test")
    listed = page(client, "/pipelines")
    assert "Nightly &lt;b&gt;report&lt;/b&gt; for every region" in listed
    assert set(steps_drawn(listed)) == {"a", "b", "c", "d"}
    assert listed.count('class="edge"') == 4
    assert f'href="/runs/{run.id}"' in listed and "required" in listed
    assert 'hx-trigger="every 2s"' in listed  # a run is still going
    one = page(client, "/pipelines/diamond")
    assert steps_drawn(one) == {k: ("step", "") for k in "abcd"}
    assert re.search(r'<form id="start-run" method="post" action="/pipelines/diamond/runs"', one)
    assert re.search(r'<textarea[^>]* name="params"[^>]*>\{\}</textarea>', one)
    assert "Start run</button>" in one and f"/runs/{run.id}" in one
    missing = client.get("/pipelines/nope")
    assert missing.status_code == 404
    assert "No pipeline named nope" in missing.get_data(as_text=True)


def test_the_form_starts_exactly_one_run(client, published):
    harness = published(DIAMOND, "A", "B", "C", "D")
    response = start(client, "diamond", '{"region": "south", "day": "2024-06-01"}')
    assert response.status_code == 303
    (run,) = harness.followups.runs("diamond", 10)
    assert urlsplit(response.headers["Location"]).path == f"/runs/{run.id}"
    assert run.params == {"day": "2024-06-01", "region": "south"}
    assert run.requested_by == "dashboard"
    shown = page(client, response.headers["Location"])
    assert f"Run {run.id} started" in shown
    assert re.search(r'id="run-status"[^>]*>running<', shown)
    assert steps_drawn(shown) == {
        "a": ("step running", "running"),
        **{k: ("step pending", "pending") for k in "bcd"},
    }
    assert 'hx-trigger="every 2s"' in shown and "No execution started yet" in shown


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ("{day: 1", "params: not valid JSON"),
        ('{"region": NaN}', "params: NaN is not a JSON number"),
        ('{"region": ' + "[" * 100 + "]" * 100 + "}", "params: JSON nested more than"),
        ('["north"]', "params must be a JSON object"),
        ('{"regoin": "north"}', "unknown parameter 'regoin'"),
        ("{}", "parameter 'region' is required"),
    ],
)
def test_bad_params_start_nothing_and_say_why(client, published, params, says):
    harness = published(DIAMOND, "A", "B", "C", "D")
    response = start(client, "diamond", params)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/pipelines/diamond"
    query = parse_qs(location.query)
    assert query["level"] == ["error"] and says in query["notice"][0]
    assert harness.followups.runs("diamond", 10) == []
    assert says.replace("'", "&#39;") in page(client, f"{location.path}?{location.query}")


def test_an_unknown_pipeline_starts_nothing(client, published):
    harness = published(DIAMOND, "A", "B", "C", "D")
    csrf = csrf_token(page(client, "/pipelines"))
    response = client.post("/pipelines/nope/runs", data={"csrf_token": csrf, "params": "{}"})
    assert response.status_code == 303
    assert (
        "no pipeline named 'nope'"
        in parse_qs(urlsplit(response.headers["Location"]).query)["notice"][0]
    )
    assert harness.followups.runs("nope", 10) == []


def test_starting_without_the_csrf_token_is_refused(client, published):
    harness = published(DIAMOND, "A", "B", "C", "D")
    response = start(client, "diamond", '{"region": "north"}', csrf=False)
    assert response.status_code == 403
    assert harness.followups.runs("diamond", 10) == []


def test_a_run_page_shows_step_states_reasons_and_a_gantt(client, published):
    harness = published(FAILING, "A", "B", "C", "D", B={"status": "errored"})
    started = harness.followups.start_run("failing", {}, "test")
    run = harness.run_until(
        lambda: (r := harness.followups.run(started.id)).finished_at and r, "the run to end"
    )
    assert run.status is RunStatus.FAILED
    shown = page(client, f"/runs/{run.id}")
    assert re.search(r'id="run-status"[^>]*>failed<', shown)
    assert steps_drawn(shown) == {
        key: (f"step {step.state.value}", step.state.value) for key, step in run.steps.items()
    }
    assert [run.steps[k].state.value for k in "abcd"] == [
        "completed", "failed", "skipped", "completed",
    ]  # fmt: skip
    assert "upstream step b failed" in shown and "ended errored" in shown
    assert "hx-trigger" not in shown  # finished: no polling
    gantt = shown[shown.index('<div id="gantt">') :]
    labels = re.findall(r'<a href="/executions/([0-9a-f]{24})">([a-z] #\d)</a>', gantt)
    executions = [
        (e["id"], f"{k} #{e['attempt']}") for k in "abcd" for e in run.steps[k].executions
    ]
    assert labels == executions
    assert [label for _, label in labels] == ["a #1", "b #1", "b #2", "d #1"]
    assert 'class="bar errored"' in gantt and 'class="bar completed"' in gantt
    assert "test" in shown and API_TOKEN not in shown


def test_a_step_waiting_for_its_retry_shows_when_and_the_page_keeps_updating(client, published):
    harness = published(FAILING.replace("0.1s", "1h"), "A", "B", "C", "D", B={"status": "errored"})
    started = harness.followups.start_run("failing", {}, "test")
    run = harness.run_until(
        lambda: (r := harness.followups.run(started.id)).steps["b"].retry_at and r,
        "b to wait for its second attempt",
    )
    shown = page(client, f"/runs/{run.id}")
    assert re.search(r'id="run-status"[^>]*>running<', shown)
    assert steps_drawn(shown)["b"] == ("step running", "running")
    row = re.search(r'<tr id="step-b".*?</tr>', shown, re.S)
    assert row is not None
    assert "2 of 2" in row.group(0) and iso(run.steps["b"].retry_at) in row.group(0)
    assert 'hx-trigger="every 2s"' in shown
    assert re.findall(r">([a-z] #\d)</a>", shown[shown.index('<div id="gantt">') :]) == [
        "a #1", "b #1", "d #1",
    ]  # fmt: skip


def test_an_unknown_run_is_404(client):
    missing = client.get("/runs/0123456789abcdef")
    assert missing.status_code == 404
    assert "No run 0123456789abcdef" in missing.get_data(as_text=True)
