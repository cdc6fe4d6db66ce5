"""The terminal side of nbrelay: human log lines (or JSON ones), NBRELAY_LOG_LEVEL, the instance
settings in .nbrelay/env found by every command, and the progress line of --wait."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service import logs, terminal
from service.cli.progress import Progress, execution_segments, output_links, run_segments
from service.events.records import ExecutionRecord
from service.followups.pipelines.runs import Run, RunStatus, Step, StepState
from service.runtime.supervisor import nbrelay_command

TOKEN = "AbCdEf0123456789_-token"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
DEPLOYMENT = {
    "LOSANT_API_TOKEN": "losant-token-only-in-this-test",
    "LOSANT_APPLICATION_ID": "575ec8687ae143cd83dc4a97",
    "NBRELAY_PUBLIC_URL": "http://127.0.0.1:9",
    "NBRELAY_SECRET": "secret-only-in-this-test-0123456789",
    "NBRELAY_API_TOKEN": "api-token-only-in-this-test",
}


def record(message: str, *args: object, level: int = logging.INFO, **extra: object):
    entry = logging.LogRecord("nbrelay", level, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


# -- the human formatter ------------------------------------------------------------------------


def test_a_human_line_has_time_process_event_message_and_the_fields_that_matter():
    line = logs.HumanFormatter("worker").format(
        record(
            "execution %s of notebook %s ended %s",
            "65f0c0ffee0123456789abcd",
            "5c782b8d4f3a8e51c1db42e4",
            "completed",
            event="terminal",
            execution="65f0c0ffee0123456789abcd",  # already in the message
            status="completed",  # already in the message
            application="575ec8687ae143cd83dc4a97",  # never on a human line
            seconds=1.5,
            pipeline={"run": "r1", "step": "a"},
        )
    )
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d worker    terminal execution 65f0c0ffee0123456789abcd of notebook "
        r'5c782b8d4f3a8e51c1db42e4 ended completed seconds=1.5 pipeline=\{"run":"r1","step":"a"\}',
        line,
    ), line


def test_the_level_is_shown_only_when_it_is_not_info():
    formatter = logs.HumanFormatter("web")
    assert " warning could not" in formatter.format(record("could not", level=logging.WARNING))
    assert re.fullmatch(r"\d\d:\d\d:\d\d web       started", formatter.format(record("started")))


def test_an_access_line_reads_as_method_path_status_and_duration():
    line = logs.HumanFormatter("web").format(
        record(
            "%s %s %s",
            "POST",
            f"/callbacks/{TOKEN}",
            202,
            event="access",
            method="POST",
            path=f"/callbacks/{logs.REDACTED}",
            status=202,
            ms=3.1,
            bytes=2,
            remote="127.0.0.1",
            userAgent="curl/8",
        )
    )
    assert line.endswith(f"web       access POST /callbacks/{logs.REDACTED} 202 ms=3.1")


def test_colours_only_when_asked_for():
    warning = record("slow", level=logging.WARNING, event="sync", seconds=9)
    plain = logs.HumanFormatter("scheduler").format(warning)
    coloured = logs.HumanFormatter("scheduler", colour=True).format(warning)
    assert "\x1b[" not in plain
    assert f"{terminal.BLUE}scheduler" in coloured and f"{terminal.YELLOW}warning" in coloured
    assert ANSI.sub("", coloured) == plain


def test_human_lines_are_redacted_like_json_lines():
    logs.add_secrets(["human-line-secret-value"])
    try:
        raise RuntimeError("cannot reach redis://:human-line-secret-value@host")
    except RuntimeError:
        failed = record("hook: %s", "Bearer abc.def", level=logging.ERROR)
        failed.exc_info = sys.exc_info()
    failed.url = f"http://relay/%63allbacks/{TOKEN}"
    failed.settings = {"token": "human-line-secret-value"}
    for colour in (False, True):
        line = logs.HumanFormatter("web", colour=colour).format(failed)
        assert "human-line-secret-value" not in line and TOKEN not in line
        assert "abc.def" not in line and f"Bearer {logs.REDACTED}" in line
        assert "Traceback" in line and f"url=http://relay/%63allbacks/{logs.REDACTED}" in line


# -- which format, which level: real processes --------------------------------------------------


def environment(**values: str) -> dict[str, str]:
    """This interpreter's environment (its PYTHONPATH included) without nbrelay's settings."""
    kept = {
        k: v for k, v in os.environ.items() if not k.startswith(("NBRELAY_", "LOSANT_", "NO_COLOR"))
    }
    return {**kept, **values}


def burst_worker(
    redis_url: str, cwd: Path, *options: str, tty: bool = False, **env: str
) -> tuple[int, str]:
    """`nbrelay worker --burst` (it logs its start and stop, then exits); its stderr."""
    argv = nbrelay_command("worker", "--burst", *options)
    full_env = environment(NBRELAY_REDIS_URL=redis_url, **DEPLOYMENT, **env)
    if not tty:
        done = subprocess.run(argv, env=full_env, cwd=cwd, capture_output=True, timeout=60)
        return done.returncode, done.stderr.decode()
    leader, follower = pty.openpty()
    try:
        with subprocess.Popen(argv, env=full_env, cwd=cwd, stdout=follower, stderr=follower) as p:
            os.close(follower)
            output = b""
            while chunk := _read(leader):
                output += chunk
            code = p.wait(60)
    finally:
        os.close(leader)
    return code, output.decode(errors="replace")


def _read(descriptor: int) -> bytes:
    try:
        return os.read(descriptor, 65536)
    except OSError:  # the terminal's other end is closed: the child has exited
        return b""


def test_json_lines_when_the_output_is_not_a_terminal(redis_server, tmp_path):
    code, stderr = burst_worker(redis_server.url, tmp_path)
    assert code == 0, stderr
    entries = [json.loads(line) for line in stderr.splitlines()]
    assert entries and {e["process"] for e in entries} == {"worker"}


@pytest.mark.parametrize(
    ("options", "env"),
    [(("--log-format", "human"), {}), ((), {"NBRELAY_LOG_FORMAT": "human"})],
)
def test_human_lines_when_asked_for(redis_server, tmp_path, options, env):
    code, stderr = burst_worker(redis_server.url, tmp_path, *options, **env)
    assert code == 0, stderr
    lines = stderr.splitlines()
    assert lines and all(re.match(r"\d\d:\d\d:\d\d worker    ", line) for line in lines), stderr
    assert "\x1b[" not in stderr  # not a terminal: no colour


def test_coloured_human_lines_on_a_terminal_and_json_when_asked(redis_server, tmp_path):
    code, output = burst_worker(redis_server.url, tmp_path, tty=True)
    assert code == 0, output
    assert f"{terminal.MAGENTA}worker" in output and "{" not in ANSI.sub("", output)
    code, output = burst_worker(redis_server.url, tmp_path, tty=True, NO_COLOR="1")
    assert code == 0 and "\x1b[" not in output
    assert re.match(r"\d\d:\d\d:\d\d worker    ", output), output
    code, output = burst_worker(redis_server.url, tmp_path, "--log-format", "json", tty=True)
    assert code == 0 and all(json.loads(line) for line in output.splitlines()), output


def test_the_log_level_comes_from_nbrelay_log_level(redis_server, tmp_path):
    code, quiet = burst_worker(redis_server.url, tmp_path, NBRELAY_LOG_LEVEL="warning")
    assert (code, quiet) == (0, "")
    code, chatty = burst_worker(redis_server.url, tmp_path, NBRELAY_LOG_LEVEL="DEBUG")
    assert code == 0 and any(json.loads(line)["level"] == "debug" for line in chatty.splitlines())


def test_a_bad_log_level_is_one_line_and_exit_2(redis_server, tmp_path):
    code, stderr = burst_worker(redis_server.url, tmp_path, NBRELAY_LOG_LEVEL="loud")
    assert (code, stderr) == (
        2,
        "nbrelay: error: NBRELAY_LOG_LEVEL: must be one of debug, info, warning, error, "
        "got 'loud'\n",
    )


# -- .nbrelay/env -------------------------------------------------------------------------------


def nbrelay(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        nbrelay_command(*args),
        env=environment(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_commands_in_the_folder_of_nbrelay_up_use_its_settings(redis, redis_server, tmp_path):
    (tmp_path / ".nbrelay").mkdir()
    (tmp_path / ".nbrelay" / "env").write_text(
        f"NBRELAY_REDIS_URL={redis_server.url}\nNBRELAY_RETENTION_DAYS=3\n"
    )
    (tmp_path / ".env").write_text("NBRELAY_RETENTION_DAYS=5\n")
    listed = nbrelay(tmp_path, "dead-letters", "list")
    assert (listed.returncode, listed.stderr) == (0, "no dead letters\n"), listed.stderr

    shown = nbrelay(tmp_path, "config", "show", NBRELAY_LOG_LEVEL="warning").stdout.splitlines()
    assert f"NBRELAY_REDIS_URL={redis_server.url}  # from .nbrelay/env" in shown
    assert "NBRELAY_RETENTION_DAYS=5  # from .env" in shown  # yours wins over the instance's
    assert "NBRELAY_LOG_LEVEL=warning  # from environment" in shown
    assert "NBRELAY_WATCH=(not set)" in shown

    elsewhere = "redis://127.0.0.1:1/0"  # the environment wins over both files
    shown = nbrelay(tmp_path, "config", "show", NBRELAY_REDIS_URL=elsewhere).stdout
    assert f"NBRELAY_REDIS_URL={elsewhere}  # from environment" in shown.splitlines()
    assert nbrelay(tmp_path, "dead-letters", "list", NBRELAY_REDIS_URL=elsewhere).returncode == 1


def test_only_the_current_folder_is_searched(redis_server, tmp_path):
    (tmp_path / ".nbrelay").mkdir()
    (tmp_path / ".nbrelay" / "env").write_text(f"NBRELAY_REDIS_URL={redis_server.url}\n")
    (tmp_path / "sub").mkdir()
    shown = nbrelay(tmp_path / "sub", "config", "show").stdout.splitlines()
    assert "NBRELAY_REDIS_URL=(not set)" in shown


# -- the progress line of --wait ----------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def an_execution(status: str | None, **losant: object) -> ExecutionRecord:
    return ExecutionRecord(
        id="65f0c0ffee0123456789abcd",
        application_id="575ec8687ae143cd83dc4a97",
        notebook_id="5c782b8d4f3a8e51c1db42e4",
        losant={"status": status, **losant} if status else None,
        meta={},
    )


def test_off_a_terminal_progress_is_a_plain_line_each_time_it_changes():
    stream = io.StringIO()
    with Progress(stream) as progress:
        progress.show(execution_segments("65f0c0ffee0123456789abcd", None))
        progress.show(execution_segments("65f0c0ffee0123456789abcd", None))
        queued = an_execution("queued", runQueuedAt="2024-05-01T10:00:00Z")
        progress.show(execution_segments(queued.id, queued))
    assert stream.getvalue() == (
        "[0s] execution 65f0c0ffee0123456789abcd: requested\n"
        "[0s] execution 65f0c0ffee0123456789abcd: queued · queued\n"
    )


def test_on_a_terminal_progress_rewrites_one_coloured_line(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = Terminal()
    with Progress(stream) as progress:
        running = an_execution(
            "inProgress", runQueuedAt="2024-05-01T10:00:00Z", runStartedAt="2024-05-01T10:00:01Z"
        )
        progress.show(execution_segments(running.id, running))
        progress.show(execution_segments(running.id, an_execution("completed")))
    text = stream.getvalue()
    assert text.count("\r\x1b[K") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert f"{terminal.BLUE}inProgress" in text and f"{terminal.GREEN}completed" in text
    assert ANSI.sub("", text.split("\r\x1b[K")[1]) == (
        "0s execution 65f0c0ffee0123456789abcd: inProgress · started"
    )


def test_on_a_narrow_terminal_the_line_is_cut_to_fit(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    monkeypatch.setenv("NO_COLOR", "1")
    run = Run("r1", "diamond", {}, {}, "cli", "2024-05-01T10:00:00Z")
    run.steps = {"a": Step("A", StepState.COMPLETED), "b": Step("B", StepState.RUNNING, 2)}
    stream = Terminal()
    with Progress(stream) as progress:
        progress.show(run_segments(run))
    line = stream.getvalue().removeprefix("\r\x1b[K").removesuffix("\n")
    assert line == "0s run r1 diamond: running ·…" and len(line) == 29
    assert "\x1b[3" not in line
    run.status = RunStatus.COMPLETED
    assert " ".join(text for text, _ in run_segments(run)) == (
        "run r1 diamond: completed · a completed · b running (attempt 2)"
    )


def test_output_links_are_the_files_losant_published():
    losant = {
        "outputInfo": {
            "result.log": {"url": "https://files.example.com/result.log", "size": 3},
            "odd": "not a file description",
        }
    }
    assert output_links(losant) == [("result.log", "https://files.example.com/result.log")]
    assert output_links(None) == []
