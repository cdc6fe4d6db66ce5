"""No tracebacks: a `nbrelay` command that cannot reach Redis, Losant or a notification channel
says so in one line on stderr (what could not be reached, any password masked, and what to
check) and exits with status 1.

The commands are found by walking the click group behind `nbrelay --help`, so a new command is
covered without a change here; one with required arguments fails until it has an entry in
ARGUMENTS, one that never uses Redis until it has an entry, with its reason, in WITHOUT_REDIS.
Each command runs as a real process; they run a few at a time to keep the suite fast.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from service.cli import cli
from service.runtime.embedded_redis import EmbeddedRedis
from service.runtime.processes import free_port
from service.runtime.supervisor import nbrelay_command
from tests.support.http_server import Reply, ScriptedServer
from tests.support.losant import APP, EXECUTION_ID, NOTEBOOK, NOTEBOOK_ID, TOKEN

ROOT = Path(__file__).resolve().parent.parent  # the code under test, also in the processes
TIMEOUT = 30  # seconds; every command fails within a few
PASSWORD = "redis-Pa55word-never-shown"
SLACK_SECRET = "T000/B000/slack-secret-path"
PIPELINES = f"""\
channels:
  ops: {{kind: slack, url: "${{OPS_SLACK}}"}}
pipelines:
  nightly:
    steps:
      report: {{notebook: "{NOTEBOOK_ID}"}}
"""

# Minimal valid arguments of the commands that take some: {pipelines} is the pipeline file of
# `environment`. The servers get a free port: they must stop before they listen.
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "actions show": ("execute:0",),
    "actions undo": ("patch:0",),
    "alerts silence": ("--notebook", "ETL", "--for", "1h", "--comment", "upgrade"),
    "alerts test": ("ops",),
    "alerts unsilence": ("0123456789abcdef",),
    "pipelines start": ("nightly",),
    "pipelines validate": ("{pipelines}",),
    "pipelines show": ("run-0",),
    "run": (NOTEBOOK_ID,),
    "show": (EXECUTION_ID,),
    "web": ("--port", "{port}"),
    "up": ("--port", "{port}"),
}

# The commands that never use Redis, and why.
WITHOUT_REDIS = {
    "config show": "prints the settings read from the environment",
    "config check": "checks that the settings a deployment needs are there",
    "pipelines validate": "checks a pipeline file, against Losant at most",
    "alerts test": "sends through a channel (test_a_channel_that_refuses_is_one_line)",
    "sandbox": "plays Losant, a server without Redis",
    "doctor": "reports Redis as one of its checks (test_doctor_reports_redis_as_a_failed_check)",
}


def leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """Every command of `group` and its subgroups, as typed after `nbrelay`."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaves(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name))


COMMANDS = list(leaves(cli))
# Commands that ask Losant before they use Redis: one that runs a notebook, one that checks a file.
LOSANT_COMMANDS = ["run", "pipelines validate"]
NEEDS_REDIS = [command for command in COMMANDS if command not in WITHOUT_REDIS]


def environment(folder: Path, **settings: str) -> dict[str, str]:
    """A complete deployment configuration, none of the caller's, with `settings` on top."""
    pipelines = folder / "pipelines.yaml"
    pipelines.write_text(PIPELINES)
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("NBRELAY_", "LOSANT_", "PROMETHEUS_"))
    }
    return {
        **inherited,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        "LOSANT_API_TOKEN": TOKEN,
        "LOSANT_APPLICATION_ID": APP,
        "NBRELAY_PUBLIC_URL": "http://127.0.0.1:9",
        "NBRELAY_SECRET": "unreachable-test-secret-0123456789",
        "NBRELAY_API_TOKEN": "unreachable-test-api-token",
        "NBRELAY_PIPELINES": str(pipelines),
        "OPS_SLACK": f"http://127.0.0.1:{free_port()}/services/{SLACK_SECRET}",
        **settings,
    }


def nbrelay(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`nbrelay COMMAND` with its ARGUMENTS; one still running after TIMEOUT is killed and
    reported with exit status -1."""
    values = {"port": free_port(), "pipelines": env["NBRELAY_PIPELINES"]}
    args = [arg.format(**values) for arg in ARGUMENTS.get(command, ())]
    argv = nbrelay_command(*command.split(), *args)
    try:
        return subprocess.run(
            argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return subprocess.CompletedProcess(
            argv, -1, "", f"{stderr}(still running after {TIMEOUT} s)"
        )


def in_parallel(
    commands: list[str], env: dict[str, str], cwd: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda command: nbrelay(command, env, cwd), commands)
        return dict(zip(commands, done, strict=True))


@pytest.fixture(scope="module")
def redis_down(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """Every command that needs Redis, run against a Redis nobody listens for, whose URL holds a
    password. Losant answers every request with a notebook, so no command stops there first."""
    folder = tmp_path_factory.mktemp("redis-down")
    losant = ScriptedServer(Reply(200, NOTEBOOK)).start()
    try:
        env = environment(
            folder,
            NBRELAY_REDIS_URL=f"redis://nbrelay:{PASSWORD}@127.0.0.1:{free_port()}/0",
            LOSANT_API_URL=losant.url,
        )
        yield in_parallel(NEEDS_REDIS, env, folder)
    finally:
        losant.stop()


def assert_one_line(done: subprocess.CompletedProcess[str], *named: str) -> str:
    """The one error line of a failed command, which names each of `named`."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("nbrelay: error: "), line
    for part in named:
        assert part in line, line
    return line


def test_the_table_names_only_commands_that_exist():
    assert set(WITHOUT_REDIS) | set(ARGUMENTS) <= set(COMMANDS)
    assert {"executions", "dead-letters list", "web", "worker", "scheduler", "up"} <= set(
        NEEDS_REDIS
    )


@pytest.mark.parametrize("command", NEEDS_REDIS)
def test_an_unreachable_redis_is_one_line_and_exit_1(command, redis_down):
    done = redis_down[command]
    line = assert_one_line(
        done, "cannot reach Redis at redis://nbrelay:****@127.0.0.1:", "NBRELAY_REDIS_URL"
    )
    assert PASSWORD not in line + done.stdout


def test_doctor_reports_redis_as_a_failed_check(tmp_path):
    url = f"redis://nbrelay:{PASSWORD}@127.0.0.1:{free_port()}/0"
    env = environment(
        tmp_path, NBRELAY_REDIS_URL=url, LOSANT_API_URL=f"http://127.0.0.1:{free_port()}"
    )
    done = nbrelay("doctor", env, tmp_path)
    assert done.returncode == 1 and done.stderr == ""
    shown = url.replace(PASSWORD, "****")
    assert f"✗ Redis: cannot reach {shown}" in done.stdout
    assert "NBRELAY_REDIS_URL" in done.stdout and PASSWORD not in done.stdout


@pytest.mark.parametrize(
    "losant_url",
    [f"http://127.0.0.1:{free_port()}", "http://nbrelay-unreachable.invalid"],
    ids=["refused", "unknown-host"],
)
def test_an_unreachable_losant_is_one_error_line_and_exit_1(
    losant_url, redis_server: EmbeddedRedis, tmp_path
):
    env = environment(tmp_path, NBRELAY_REDIS_URL=redis_server.url, LOSANT_API_URL=losant_url)
    for command, done in in_parallel(LOSANT_COMMANDS, env, tmp_path).items():
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr and TOKEN not in done.stderr
        *retries, line = done.stderr.splitlines()
        assert line.startswith(f"nbrelay: error: cannot reach Losant at {losant_url} (GET "), line
        assert line.endswith("check LOSANT_API_URL and this host's outbound network"), line
        # Before giving up the client retries, as everywhere; its log says so.
        assert all(r.startswith("Losant GET ") and "retry" in r for r in retries), retries


def test_a_channel_that_refuses_is_one_line(tmp_path):
    env = environment(tmp_path)
    host = env["OPS_SLACK"].split("/")[2]
    done = nbrelay("alerts test", env, tmp_path)
    line = assert_one_line(
        done, f"slack: cannot reach {host}", "check channel ops in pipelines.yaml"
    )
    assert SLACK_SECRET not in line
