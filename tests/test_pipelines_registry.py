"""The pipeline file in force: published to Redis only when valid (notebooks checked against the
sandbox), reloaded on change, with a log line either way."""

from __future__ import annotations

import logging

import pytest

from service import defaults, keys
from service.followups.pipeline_file.registry import PipelineRegistry
from service.losant import LosantClient
from service.runtime.processes import free_port, wait_until

TTL = 2 * 86400  # NBRELAY_RETENTION_DAYS=2

GOOD = """\
notebooks:
  etl: {name: Nightly ETL}
pipelines:
  p:
    steps:
      a: {notebook: etl}
      b: {notebook: "%s", after: a}
"""


@pytest.fixture
def losant(sandbox):
    client = LosantClient(sandbox.url, sandbox.token)
    yield client
    client.close()


def test_valid_file_is_published_and_invalid_edits_are_not(text_redis, tmp_path, caplog):
    path = tmp_path / "pipelines.yaml"
    path.write_text(GOOD % "Report")
    registry = PipelineRegistry(text_redis, path, ttl=TTL)
    with caplog.at_level(logging.INFO, logger="service.followups.pipeline_file.registry"):
        registry.refresh()
    assert "pipeline file" in caplog.text and "loaded: 1 pipeline (2 steps)" in caplog.text
    reader = PipelineRegistry(text_redis, None, ttl=TTL)  # another process: it only reads
    assert list(reader.current().file.pipelines["p"].steps) == ["a", "b"]

    caplog.clear()
    path.write_text(GOOD.replace("after: a", "after: z"))
    with caplog.at_level(logging.INFO, logger="service.followups.pipeline_file.registry"):
        registry.refresh()
        registry.refresh()
        PipelineRegistry(text_redis, path, ttl=TTL).refresh()  # a second process, the same file
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    (note,) = text_redis.scan_iter(keys.pipeline_file_note("rejected:*"))
    assert 0 < text_redis.ttl(note) <= TTL  # reported once for the configured retention
    assert "is invalid; the version in force stays" in errors[0].getMessage()
    assert (
        "pipelines.yaml:7: pipelines.p.steps.b.after[0]: unknown step 'z'" in errors[0].getMessage()
    )
    assert reader.current().file.pipelines["p"].steps["b"].after == ["a"]

    path.write_text(GOOD % "Report v2")
    registry.refresh()
    assert registry.current().file.pipelines["p"].steps["b"].notebook == "Report v2"  # at once
    wait_until(  # another process looks again within PIPELINES_CURRENT_CHECK
        lambda: reader.current().file.pipelines["p"].steps["b"].notebook == "Report v2",
        defaults.PIPELINES_CURRENT_CHECK + 5,
        "the other process to use the new version",
    )


def test_notebooks_are_checked_and_resolved(text_redis, tmp_path, sandbox_app, losant, caplog):
    etl = sandbox_app.create_notebook("Nightly ETL")
    path = tmp_path / "pipelines.yaml"
    path.write_text(GOOD % "Report")
    registry = PipelineRegistry(text_redis, path, ttl=TTL, losant=lambda: (losant, sandbox_app.id))
    with caplog.at_level(logging.ERROR):
        registry.refresh()
    assert "unknown notebook 'Report'" in caplog.text
    assert registry.current() is None
    report = sandbox_app.create_notebook("Report")
    path.write_text(GOOD % "Report" + "\n")
    registry.refresh()
    loaded = registry.current()
    assert loaded.notebook_id("etl") == etl["id"]
    assert loaded.notebook_id("Report") == report["id"]
    assert loaded.notebook_id(etl["id"]) == etl["id"]
    assert loaded.notebook_id("Unknown") is None
    assert loaded.notebook_name(report["id"]) == "Report"
    assert loaded.notebook_name(etl["id"]) == "Nightly ETL"
    assert loaded.notebook_name("0" * 24) is None


def test_a_file_losant_cannot_check_is_tried_again_later(text_redis, tmp_path, caplog):
    path = tmp_path / "pipelines.yaml"
    path.write_text(GOOD % "Report")
    down = LosantClient(f"http://127.0.0.1:{free_port()}", "token", max_retries=0)
    registry = PipelineRegistry(text_redis, path, ttl=TTL, losant=lambda: (down, "0" * 24))
    try:
        with caplog.at_level(logging.WARNING, logger="service.followups.pipeline_file.registry"):
            registry.refresh()
            registry.refresh()
    finally:
        down.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "cannot be checked now" in warnings[0]
    assert registry.current() is None


def test_unsetting_the_file_withdraws_it(text_redis, tmp_path):
    path = tmp_path / "pipelines.yaml"
    path.write_text(GOOD % "Report")
    PipelineRegistry(text_redis, path, ttl=TTL).refresh()
    assert PipelineRegistry(text_redis, None, ttl=TTL).current() is not None
    PipelineRegistry(
        text_redis, None, ttl=TTL
    ).refresh()  # the scheduler, restarted without NBRELAY_PIPELINES
    assert PipelineRegistry(text_redis, None, ttl=TTL).current() is None


def test_a_withdrawn_file_stays_withdrawn_in_every_process(text_redis, tmp_path):
    path = tmp_path / "pipelines.yaml"
    path.write_text(GOOD % "Report")
    PipelineRegistry(text_redis, path, ttl=TTL).refresh()
    reader = PipelineRegistry(text_redis, None, ttl=TTL)  # another process: it only reads
    assert reader.current() is not None
    PipelineRegistry(text_redis, None, ttl=TTL).refresh()  # NBRELAY_PIPELINES unset: withdrawn
    wait_until(
        lambda: reader.current() is None,
        defaults.PIPELINES_CURRENT_CHECK + 5,
        "the other process to see the file withdrawn",
    )
    assert [reader.current() for _ in range(3)] == [None] * 3
