"""The pipeline file's validator: each kind of problem, reported with its line and path, all of
them at once; a valid file loads into typed models."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from service.followups.pipeline_file.model import (
    AlertSettings,
    ExecuteItem,
    NotifyItem,
    PatchItem,
    RetryItem,
)
from service.followups.pipeline_file.validation import (
    PipelineFileInvalid,
    load_file,
    load_text,
    summary,
)

NBRELAY = str(Path(sys.executable).with_name("nbrelay"))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

VALID = """\
notebooks:
  etl: {name: Nightly ETL}
  features: {id: 5c782b8d4f3a8e51c1db42e4}
channels:
  ops-slack: {kind: slack, url: "${SLACK_URL}"}
  ops-hook: {kind: webhook, url: "https://hooks.example.com/in", secret: "${HOOK_SECRET}"}
  audit: {kind: log}
alerts:
  group_wait: 250ms
  repeat_interval: 1h30m
pipelines:
  nightly:
    params: {day: "2024-05-01"}
    steps:
      extract:
        notebook: etl
        context: {day: "{{ params.day }}"}
        retry: {max_attempts: 3, backoff: [1s, 5s]}
      features:
        notebook: features
        after: extract
        context:
          source: "{{ steps.extract.outputInfo['data.csv'].url }}"
      model:
        notebook: Train model
        after: extract
        on_failure: continue
      report:
        notebook: Weekly report
        after: [features, model]
        when: steps.features.status == 'completed'
        context: {rows: "{{ steps.extract.context.rows }}"}
rules:
  etl-failed:
    notebook: etl
    statuses: [errored, timeout]
    when: execution.executionErrors | length > 0
    actions:
      - notify: [ops-slack, ops-hook, audit]
      - retry: {max_attempts: 2}
  etl-done:
    notebook: etl
    statuses: completed
    actions:
      - patch:
          notebook: Weekly report
          set: {description: "Data up to {{ execution.notebookCompletedAt }}"}
          inputs: {data.csv: {start: -86400000, end: 0}}
      - execute: {notebook: Weekly report, context: {source: "{{ execution.id }}"}}
"""
ENVIRON = {
    "SLACK_URL": "https://hooks.slack.com/services/T/B/X",
    "HOOK_SECRET": SECRET,
    "PD_KEY": "R" * 32,
}


def problems(text: str, **options) -> list[str]:
    with pytest.raises(PipelineFileInvalid) as invalid:
        load_text(textwrap.dedent(text), "pipelines.yaml", environ=ENVIRON, **options)
    return invalid.value.report()


def test_valid_file_loads_into_models():
    loaded = load_text(VALID, environ=ENVIRON)
    assert summary(loaded) == "1 pipeline (4 steps), 2 rules, 3 channels, 2 notebook aliases"
    nightly = loaded.pipelines["nightly"]
    assert nightly.steps["features"].after == ["extract"]
    assert nightly.upstream("report") == {"extract", "features", "model"}
    assert nightly.steps["extract"].retry.delay_before(3) == 5.0
    assert loaded.alerts.group_wait == 0.25 and loaded.alerts.repeat_interval == 5400
    failed, done = loaded.rules["etl-failed"], loaded.rules["etl-done"]
    assert failed.statuses == ["errored", "timeout"]
    assert [type(a) for a in failed.actions] == [NotifyItem, RetryItem]
    assert failed.retry.max_attempts == 2 and failed.retry.backoff == [60.0]
    assert [type(a) for a in done.actions] == [PatchItem, ExecuteItem]
    assert loaded.notebook_reference("etl") == "Nightly ETL"
    assert loaded.notebook_reference("Weekly report") == "Weekly report"
    assert loaded.channels["ops-slack"].url.get_secret_value().endswith("/T/B/X")


def test_unknown_step():
    assert problems(
        """\
        pipelines:
          p:
            steps:
              features: {notebook: a}
              report:
                notebook: b
                after:
                  - features
                  - featurs
        """
    ) == [
        "pipelines.yaml:9: pipelines.p.steps.report.after[1]: unknown step 'featurs' (did you"
        " mean 'features'?)"
    ]


def test_cycle_is_named():
    assert problems(
        """\
        pipelines:
          p:
            steps:
              a: {notebook: x, after: [c]}
              b: {notebook: x, after: [a]}
              c: {notebook: x, after: [b]}
              d: {notebook: x, after: d}
        """
    ) == [
        "pipelines.yaml:4: pipelines.p.steps.a.after: cycle: a → b → c → a",
        "pipelines.yaml:7: pipelines.p.steps.d.after: cycle: d → d",
    ]


def test_unknown_channel():
    assert problems(
        """\
        channels:
          ops: {kind: log}
        rules:
          r:
            notebook: etl
            statuses: errored
            actions:
              - notify: [ops, pager]
        """
    ) == ["pipelines.yaml:8: rules.r.actions[0].notify[1]: unknown channel 'pager'"]


def test_a_rules_notify_settings_are_taken_over_the_global_ones():
    loaded = load_text(
        textwrap.dedent(
            """\
            channels:
              ops: {kind: log}
              pager: {kind: log}
            alerts: {group_wait: 1m, repeat_interval: 2h, severity: warning}
            rules:
              paged:
                notebook: etl
                statuses: [errored, timeout]
                actions:
                  - notify:
                      channels: [pager, ops]
                      group_wait: 0s
                      repeat_interval: 15m
                      send_resolved: false
                      severity: critical
              listed:
                notebook: etl
                statuses: errored
                actions: [{notify: ops}, {notify: {channels: ops, repeat_interval: 1d}}]
            """
        )
    )
    (paged,) = loaded.rules["paged"].actions
    assert isinstance(paged, NotifyItem) and paged.notify.channels == ["pager", "ops"]
    assert paged.notify.settings(loaded.alerts) == AlertSettings(
        group_wait=0, repeat_interval=900, send_resolved=False, severity="critical"
    )
    short, long = (a.notify for a in loaded.rules["listed"].actions if isinstance(a, NotifyItem))
    assert short.channels == long.channels == ["ops"]
    assert short.settings(loaded.alerts) == loaded.alerts  # all from the global block
    assert long.settings(loaded.alerts) == AlertSettings(
        group_wait=60, repeat_interval=86400, send_resolved=True, severity="warning"
    )
    assert load_text("rules: {}").alerts.severity == "error"


def test_bad_notify_settings_are_located():
    assert problems(
        """\
        channels:
          ops: {kind: log}
        alerts: {severity: high}
        rules:
          r:
            notebook: etl
            statuses: errored
            actions:
              - notify:
                  channels: [ops]
                  group_wait: 5 minutes
                  severity: urgent
                  send_resolve: false
              - notify: {channels: [ops, pager], repeat_interval: -1}
              - notify: {channels: []}
              - notify: {severity: info}
        """
    ) == [
        "pipelines.yaml:3: alerts.severity: input should be 'critical', 'error', 'warning' or"
        " 'info' (got 'high')",
        "pipelines.yaml:11: rules.r.actions[0].notify.group_wait: '5 minutes' is not a duration"
        " such as 30s, 5m or 4h",
        "pipelines.yaml:12: rules.r.actions[0].notify.severity: input should be 'critical',"
        " 'error', 'warning' or 'info' (got 'urgent')",
        "pipelines.yaml:13: rules.r.actions[0].notify: unknown key 'send_resolve'",
        "pipelines.yaml:14: rules.r.actions[1].notify.repeat_interval: must not be negative",
        "pipelines.yaml:15: rules.r.actions[2].notify.channels: value should have at least 1"
        " item after validation, not 0",
        "pipelines.yaml:16: rules.r.actions[3].notify: missing required key 'channels'",
    ]


def test_an_unknown_channel_in_a_notify_object_is_located():
    assert problems(
        """\
        channels:
          ops: {kind: log}
        rules:
          r:
            notebook: etl
            statuses: errored
            actions:
              - notify:
                  channels:
                    - ops
                    - pagr
        """
    ) == ["pipelines.yaml:11: rules.r.actions[0].notify.channels[1]: unknown channel 'pagr'"]


def test_bad_templates_are_located_inside_block_scalars():
    assert problems(
        """\
        pipelines:
          p:
            steps:
              a:
                notebook: x
                context:
                  one: "{{ params.day "
                  two: |
                    first line
                    {% for x in %}
                when: "{{ true }}"
        """
    ) == [
        "pipelines.yaml:7: pipelines.p.steps.a.context.one: bad template: unexpected end of"
        " template, expected 'end of print statement'.",
        "pipelines.yaml:10: pipelines.p.steps.a.context.two: bad template: Expected an"
        " expression, got 'end of statement block'",
        "pipelines.yaml:11: pipelines.p.steps.a.when: a condition is an expression: write it"
        " without {{ }}",
    ]


def test_template_references_are_checked():
    assert problems(
        """\
        pipelines:
          p:
            params: {day: null}
            steps:
              a: {notebook: x, context: {d: "{{ params.dya }}"}}
              b: {notebook: x, context: {u: "{{ steps.c.id }}", v: "{{ execution.id }}"}}
              c: {notebook: x, after: [a], context: {s: "{{ steps.a.status }} {{ steps.zz }}"}}
        """
    ) == [
        "pipelines.yaml:5: pipelines.p.steps.a.context.d: unknown parameter 'dya' (did you mean"
        " 'day'?)",
        "pipelines.yaml:6: pipelines.p.steps.b.context.u: step 'c' is not upstream of 'b'",
        "pipelines.yaml:6: pipelines.p.steps.b.context.v: unknown variable 'execution'"
        " (a step template can use params, steps, run)",
        "pipelines.yaml:7: pipelines.p.steps.c.context.s: unknown step 'zz'",
    ]


def test_malformed_notebook_references():
    assert problems(
        """\
        notebooks:
          short: {id: 12345abc}
          both: {id: 5c782b8d4f3a8e51c1db42e4, name: x}
        pipelines:
          p:
            steps:
              a: {notebook: ""}
              b: {notebook: 42}
        """
    ) == [
        "pipelines.yaml:2: notebooks.short.id: malformed notebook id '12345abc': a Losant id is"
        " 24 hex digits",
        "pipelines.yaml:3: notebooks.both: give either id or name",
        "pipelines.yaml:7: pipelines.p.steps.a.notebook: string should have at least 1 character",
        "pipelines.yaml:8: pipelines.p.steps.b.notebook: wrong type: input should be a valid"
        " string (got 42)",
    ]


def test_unknown_notebooks_when_losant_is_asked():
    known = {"Nightly ETL", "5c782b8d4f3a8e51c1db42e4", "Train model"}
    lines = problems(
        VALID, resolver=lambda ref: None if ref in known else f"unknown notebook '{ref}'"
    )
    assert lines == [
        "pipelines.yaml:29: pipelines.nightly.steps.report.notebook: unknown notebook 'Weekly"
        " report'",
        "pipelines.yaml:46: rules.etl-done.actions[0].patch.notebook: unknown notebook 'Weekly"
        " report'",
        "pipelines.yaml:49: rules.etl-done.actions[1].execute.notebook: unknown notebook 'Weekly"
        " report'",
    ]


def test_unknown_keys_and_wrong_types_everywhere_at_once():
    assert problems(
        """\
        version: 1
        pipeline: {}
        alerts: {group_wait: soon}
        channels:
          s: {kind: slack, url: "ftp://x"}
          e: {kind: email, host: h, from: a@b.c, to: [x@y.z], port: "many"}
          q: {kind: pager}
        pipelines:
          p:
            steps:
              a: {notebook: x, colour: blue, on_failure: explode, retry: {max_attempts: 1}}
        rules:
          r:
            notebook: x
            on: [errored]
            actions: [{notify: [s], retry: {max_attempts: 2}}]
        """
    ) == [
        "pipelines.yaml:2: unknown key 'pipeline'",
        "pipelines.yaml:3: alerts.group_wait: 'soon' is not a duration such as 30s, 5m or 4h",
        "pipelines.yaml:5: channels.s.url: must be an http(s) URL (a Slack incoming webhook URL)",
        "pipelines.yaml:6: channels.e.port: input should be a valid integer, unable to parse"
        " string as an integer",
        "pipelines.yaml:7: channels.q: input tag 'pager' found using 'kind' does not match any"
        " of the expected tags: 'slack', 'webhook', 'email', 'log', 'pagerduty', 'teams',"
        " 'opsgenie'",
        "pipelines.yaml:11: pipelines.p.steps.a: unknown key 'colour'",
        "pipelines.yaml:11: pipelines.p.steps.a.on_failure: input should be 'fail', 'skip' or"
        " 'continue' (got 'explode')",
        "pipelines.yaml:11: pipelines.p.steps.a.retry.max_attempts: input should be greater than"
        " or equal to 2",
        "pipelines.yaml:13: rules.r: missing required key 'statuses'",
        "pipelines.yaml:15: rules.r: unknown key 'on'",
        "pipelines.yaml:16: rules.r.actions[0]: an action is a mapping with one key: execute,"
        " patch, retry or notify",
    ]


def test_secrets_from_missing_variables_and_values_never_echoed():
    lines = problems(
        """\
        channels:
          s: {kind: slack, url: "${NOT_SET}"}
          w: {kind: webhook, url: "https://x", secret: "not-a-whsec-TOPSECRET"}
        """
    )
    assert lines == [
        "pipelines.yaml:2: channels.s.url: environment variable NOT_SET is not set",
        "pipelines.yaml:3: channels.w.secret: must start with whsec_",
    ]


def test_paging_channels_are_checked_without_echoing_their_secrets():
    lines = problems(
        """\
        channels:
          pager: {kind: pagerduty, routing_key: "not-a-key-TOPSECRET"}
          pager-eu: {kind: pagerduty, routing_key: "${PD_KEY}", url: events.eu.pagerduty.com}
          teams: {kind: teams, url: "TOPSECRET"}
          genie: {kind: opsgenie, api_key: "TOPSECRET", priority: P1}
        """
    )
    assert lines == [
        "pipelines.yaml:2: channels.pager.routing_key: must be the 32-character integration key"
        " of an Events API v2 integration",
        "pipelines.yaml:3: channels.pager-eu.url: must be an http(s) URL",
        "pipelines.yaml:4: channels.teams.url: must be an http(s) URL (a Teams incoming webhook"
        " or Workflows URL)",
        "pipelines.yaml:5: channels.genie: unknown key 'priority'",
        "pipelines.yaml:5: channels.genie.api_key: must be the API key of an Opsgenie API"
        " integration (a UUID)",
    ]


def test_yaml_syntax_and_duplicates():
    assert problems("pipelines:\n  p: [unclosed\n") == [
        "pipelines.yaml:3: invalid YAML: while parsing a flow sequence expected ',' or ']',"
        " but got '<stream end>'"
    ]
    assert problems("rules: {}\nrules: {}\n") == ["pipelines.yaml:2: rules: duplicate key"]
    assert problems("- a\n- b\n") == [
        "pipelines.yaml:1: the file must be a mapping of sections (pipelines, rules, channels, ...)"
    ]


def test_empty_file_is_valid(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert (
        summary(load_file(path)) == "0 pipelines (0 steps), 0 rules, 0 channels, 0 notebook aliases"
    )


def test_cli_validate(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    env = {"PATH": "/usr/bin:/bin", **ENVIRON}
    result = subprocess.run(
        [NBRELAY, "pipelines", "validate", str(good)], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "good.yaml: valid: 1 pipeline (4 steps), 2 rules, 3 channels, 2 notebook aliases"
        " (notebooks not checked)\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("after: [features, model]", "after: [featurs, model]"))
    result = subprocess.run(
        [NBRELAY, "pipelines", "validate", str(bad)], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == (
        "bad.yaml:30: pipelines.nightly.steps.report.after[0]: unknown step 'featurs'"
        " (did you mean 'features'?)\n"
        "bad.yaml:31: pipelines.nightly.steps.report.when: step 'features' is not upstream of"
        " 'report'\n"
    )
    assert result.stderr == "bad.yaml: 2 problem(s)\n"


def test_the_readme_example_is_valid():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("```yaml", readme.index("A complete example:")) + len("```yaml")
    example = readme[start : readme.index("```", start)]
    environ = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/x", "SMTP_PASSWORD": "p"}
    loaded = load_text(example, environ={**environ, "NBRELAY_WEBHOOK_SECRET": SECRET})
    assert set(loaded.pipelines["nightly"].steps) == {"extract", "features", "model", "report"}


def test_cli_validate_checks_notebooks_in_losant(tmp_path, sandbox_app):
    sandbox_app.create_notebook("Nightly ETL")
    path = tmp_path / "pipelines.yaml"
    path.write_text(
        "pipelines:\n  p:\n    steps:\n      a: {notebook: Nightly ETL}\n"
        "      b: {notebook: Nightly ELT, after: a}\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "LOSANT_API_URL": sandbox_app.sandbox.url,
        "LOSANT_API_TOKEN": sandbox_app.sandbox.token,
        "LOSANT_APPLICATION_ID": sandbox_app.id,
    }
    command = [NBRELAY, "pipelines", "validate", str(path)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == (
        "pipelines.yaml:5: pipelines.p.steps.b.notebook: unknown notebook 'Nightly ELT'\n"
    )
    offline = subprocess.run(
        [*command, "--offline"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert offline.returncode == 0 and "(notebooks not checked)" in offline.stdout


def test_overdue_status_and_its_slack():
    loaded = load_text(
        textwrap.dedent(
            """\
            alerts:
              overdue: {queue_slack: 10m, output_slack: 30s}
            rules:
              stuck:
                notebook: etl
                statuses: [overdue, errored]
                actions: [{notify: [audit]}]
            channels:
              audit: {kind: log}
            """
        )
    )
    assert loaded.rules["stuck"].statuses == ["overdue", "errored"]
    assert loaded.alerts.overdue.slack == 630
    assert load_text("alerts: {group_wait: 1s}\n").alerts.overdue.slack == 300  # the defaults
    assert problems(
        """\
        alerts:
          overdue:
            queue_slack: a while
            output: 5m
        rules:
          r:
            notebook: x
            statuses: [stuck]
            actions: [{notify: [s]}]
        channels:
          s: {kind: log}
        """
    ) == [
        "pipelines.yaml:3: alerts.overdue.queue_slack: 'a while' is not a duration such as 30s,"
        " 5m or 4h",
        "pipelines.yaml:4: alerts.overdue: unknown key 'output'",
        "pipelines.yaml:8: rules.r.statuses[0]: input should be 'completed', 'errored',"
        " 'timeout', 'canceled', 'missing_callback' or 'overdue' (got 'stuck')",
    ]
