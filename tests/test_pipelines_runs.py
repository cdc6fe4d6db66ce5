"""The pipeline run state machine: fan-out and fan-in, conditions, contexts rendered from
upstream executions, retries with the same context, failure policies; and its Redis store."""

from __future__ import annotations

import threading

import pytest

from service.errors import UsageProblem
from service.followups.pipeline_file.model import Pipeline, Retry
from service.followups.pipelines.runs import (
    RunNotFound,
    RunStatus,
    RunStore,
    StepState,
    advance,
    execution_ended,
    execution_started,
    launch_failed,
    launches,
    new_run,
    step_failure,
)

NOW = 1_700_000_000.0


def pipeline(steps: dict, params: dict | None = None) -> Pipeline:
    return Pipeline.model_validate({"params": params or {}, "steps": steps})


DIAMOND = {
    "a": {"notebook": "nb-a", "context": {"day": "{{ params.day }}"}},
    "b": {
        "notebook": "nb-b",
        "after": "a",
        "context": {
            "source": "{{ steps.a.outputInfo['data.csv'].url }}",
            "rows": "{{ steps.a.context.rows }}",
        },
    },
    "c": {"notebook": "nb-c", "after": "a", "context": {"upstream": "{{ steps.a.id }}"}},
    "d": {"notebook": "nb-d", "after": ["b", "c"], "context": {"b": "{{ steps.b.status }}"}},
}


def start(definition: dict, params: dict | None = None, given: dict | None = None):
    run = new_run("p", pipeline(definition, params), given or {}, str.upper, "test", NOW)
    advance(run, NOW)
    return run


def ended(execution_id: str, status: str = "completed", **fields) -> dict:
    return {"id": execution_id, "status": status, "runQueuedAt": "2024-05-01T00:00:00Z", **fields}


def test_diamond_runs_to_completion_with_rendered_contexts():
    run = start(DIAMOND, {"day": "2024-05-01"})
    assert [(w.step, w.attempt) for w in launches(run)] == [("a", 1)]
    assert run.steps["a"].context == {"day": "2024-05-01"}
    assert run.steps["a"].notebook == "NB-A"  # the reference as the caller resolved it
    execution_started(run, "a", 1, "ea")
    assert launches(run) == []
    a_record = ended(
        "ea",
        outputInfo={"data.csv": {"url": "https://files/a.csv"}},
        templateContext='{"rows": 7, "nbrelay": {"run": "r", "step": "a", "attempt": 1}}',
    )
    execution_ended(run, "a", 1, a_record, NOW + 1)
    assert sorted(w.step for w in launches(run)) == ["b", "c"]
    assert run.steps["b"].context == {"source": "https://files/a.csv", "rows": 7}
    assert run.steps["c"].context == {"upstream": "ea"}
    for step, execution in (("b", "eb"), ("c", "ec")):
        execution_started(run, step, 1, execution)
    execution_ended(run, "b", 1, ended("eb"), NOW + 2)
    assert launches(run) == []  # d waits for c as well
    assert run.steps["d"].state is StepState.PENDING
    execution_ended(run, "c", 1, ended("ec"), NOW + 3)
    assert [w.step for w in launches(run)] == ["d"]
    assert run.steps["d"].context == {"b": "completed"}
    execution_ended(run, "d", 1, ended("ed"), NOW + 4)
    assert run.status is RunStatus.COMPLETED and run.finished_at is not None
    assert run.steps["a"].executions == [
        {"id": "ea", "attempt": 1, "status": "completed", "queuedAt": "2024-05-01T00:00:00Z",
         "startedAt": None, "completedAt": None}
    ]  # fmt: skip


def test_duplicate_and_stale_news_change_nothing():
    run = start(DIAMOND, {"day": "x"})
    execution_ended(run, "a", 1, ended("ea"), NOW)
    before = run.to_json()
    execution_ended(run, "a", 1, ended("ea"), NOW + 5)
    assert run.to_json() == before


def test_retry_uses_the_same_context_and_belongs_to_the_step():
    definition = {
        "a": {"notebook": "x", "context": {"v": "{{ params.v }}"},
              "retry": {"max_attempts": 3, "backoff": ["10s", "1m"]}},
    }  # fmt: skip
    run = start(definition, {"v": 1})
    execution_ended(run, "a", 1, ended("e1", "errored"), NOW)
    assert run.steps["a"].state is StepState.RUNNING
    (launch,) = launches(run)
    assert (launch.attempt, launch.due_at) == (2, NOW + 10)
    assert launch.action_key == f"run:{run.id}:a:2"
    execution_started(run, "a", 2, "e2")
    execution_ended(run, "a", 2, ended("e2", "timeout"), NOW + 20)
    assert launches(run)[0].due_at == NOW + 80
    execution_ended(run, "a", 3, ended("e3"), NOW + 100)
    assert run.status is RunStatus.COMPLETED
    assert run.steps["a"].context == {"v": 1}
    assert [(e["id"], e["attempt"], e["status"]) for e in run.steps["a"].executions] == [
        ("e1", 1, "errored"), ("e2", 2, "timeout"), ("e3", 3, "completed"),
    ]  # fmt: skip


def test_a_rules_retry_applies_when_the_step_has_none():
    run = start({"a": {"notebook": "x"}})
    execution_ended(run, "a", 1, ended("e1", "errored"), NOW, fallback_retry=Retry(max_attempts=2))
    assert launches(run)[0].attempt == 2


def test_failure_fails_the_run_and_skips_the_rest():
    run = start(DIAMOND, {"day": "x"})
    execution_ended(
        run, "a", 1,
        ended("ea", "errored", executionErrors=[{"name": "KeyError", "message": "'x'"}]), NOW,
    )  # fmt: skip
    assert run.status is RunStatus.FAILED
    assert run.steps["a"].reason == "execution ea ended errored: KeyError: 'x'"
    assert {run.steps[s].state for s in "bcd"} == {StepState.SKIPPED}
    assert run.steps["b"].reason == "the run failed at step a"
    assert run.finished_at is not None


def test_skip_policy_skips_dependants_only():
    definition = {
        "a": {"notebook": "x"},
        "b": {"notebook": "x", "after": "a", "on_failure": "skip"},
        "c": {"notebook": "x", "after": "a"},
        "d": {"notebook": "x", "after": "b"},
    }
    run = start(definition)
    execution_ended(run, "a", 1, ended("ea"), NOW)
    execution_ended(run, "b", 1, ended("eb", "canceled"), NOW)
    assert run.steps["d"].state is StepState.SKIPPED
    assert run.steps["d"].reason == "upstream step b failed"
    assert run.status is RunStatus.RUNNING  # c is still running
    execution_ended(run, "c", 1, ended("ec"), NOW)
    assert run.status is RunStatus.FAILED


def test_a_failure_names_the_steps_skipped_because_of_it():
    definition = {
        "a": {"notebook": "x"},
        "b": {"notebook": "x", "after": "a", "on_failure": "skip"},
        "c": {"notebook": "x", "after": "b"},
        "d": {"notebook": "x", "after": "c"},
        "e": {"notebook": "x", "after": "a", "when": "false"},
        "f": {"notebook": "x", "after": "e"},
    }
    run = start(definition)
    execution_ended(run, "a", 1, ended("ea"), NOW)
    assert step_failure(run, "b", "eb") is None  # still running
    execution_ended(run, "b", 1, ended("eb", "errored"), NOW)
    failure = step_failure(run, "b", "eb")
    assert failure is not None
    assert (failure.pipeline, failure.run, failure.step) == ("p", run.id, "b")
    assert failure.skipped == ("c", "d")  # not e and f, skipped by a condition
    assert run.steps["f"].state is StepState.SKIPPED
    assert step_failure(run, "b", "another") is None  # not the execution it failed with
    assert step_failure(run, "a", "ea") is None  # completed


def test_a_failed_run_names_every_pending_step_it_skipped():
    run = start(DIAMOND, {"day": "x"})
    execution_ended(run, "a", 1, ended("ea", "timeout"), NOW)
    failure = step_failure(run, "a", "ea")
    assert failure is not None and failure.skipped == ("b", "c", "d")


def test_continue_policy_runs_dependants_anyway():
    definition = {
        "a": {"notebook": "x", "on_failure": "continue"},
        "b": {"notebook": "x", "after": "a", "context": {"prev": "{{ steps.a.status }}"}},
    }
    run = start(definition)
    execution_ended(run, "a", 1, ended("ea", "errored"), NOW)
    assert run.steps["b"].context == {"prev": "errored"}
    execution_ended(run, "b", 1, ended("eb"), NOW)
    assert run.status is RunStatus.COMPLETED


def test_conditions_skip_steps():
    definition = {
        "a": {"notebook": "x", "when": "params.go"},
        "b": {"notebook": "x", "after": "a"},
    }
    run = start(definition, {"go": False})
    assert run.steps["a"].reason == "condition is false"
    assert run.steps["b"].reason == "upstream step a skipped"
    assert run.status is RunStatus.COMPLETED


def test_template_error_fails_the_step_with_its_message():
    definition = {
        "a": {"notebook": "x"},
        "b": {"notebook": "x", "after": "a", "context": {"u": "{{ steps.a.outputInfo.nope.url }}"}},
    }
    run = start(definition)
    execution_ended(run, "a", 1, ended("ea", outputInfo={}), NOW)
    assert run.steps["b"].state is StepState.FAILED
    assert run.steps["b"].reason == "context.u: 'dict object' has no attribute 'nope'"
    assert run.status is RunStatus.FAILED


def test_launch_failure_fails_the_step():
    run = start({"a": {"notebook": "x"}})
    launch_failed(run, "a", 1, "unknown notebook 'x'", NOW)
    assert run.steps["a"].reason == "unknown notebook 'x'"
    assert run.status is RunStatus.FAILED


def test_parameters_are_checked():
    with pytest.raises(UsageProblem, match="unknown parameter 'dya'"):
        start(DIAMOND, {"day": None}, {"dya": 1})
    with pytest.raises(UsageProblem, match="parameter 'day' is required"):
        start(DIAMOND, {"day": None})
    assert start(DIAMOND, {"day": None}, {"day": "d"}).params == {"day": "d"}


def test_store_applies_concurrent_changes_without_losing_any(text_redis):
    store = RunStore(text_redis, ttl=86400)
    run = start(DIAMOND, {"day": "x"})
    store.create(run)
    a_record = ended("ea", outputInfo={"data.csv": {"url": "u"}}, templateContext='{"rows": 1}')
    store.change(run.id, lambda r, now: execution_ended(r, "a", 1, a_record, now))
    barrier = threading.Barrier(2)

    def finish(step: str) -> None:
        other = RunStore(text_redis, ttl=86400)
        barrier.wait()
        other.change(run.id, lambda r, now: execution_ended(r, step, 1, ended(f"e{step}"), now))

    threads = [threading.Thread(target=finish, args=(s,)) for s in "bc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saved = store.get(run.id)
    assert [w.step for w in launches(saved)] == ["d"]
    assert store.active() == [run.id]
    store.change(run.id, lambda r, now: execution_ended(r, "d", 1, ended("ed"), now))
    assert store.get(run.id).status is RunStatus.COMPLETED
    assert store.active() == []
    assert [r.id for r in store.recent("p", 10)] == [run.id]
    with pytest.raises(RunNotFound):
        store.get("nope")
