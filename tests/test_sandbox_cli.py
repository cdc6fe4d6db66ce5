"""`nbrelay sandbox` on the command line: start-up messages, bad options, clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

from service.runtime.processes import free_port, wait_until

COMMAND = [sys.executable, "-c", "from service.cli import main; main()", "sandbox"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=30, env=env)


def test_generated_token_is_printed_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*COMMAND, "--port", str(port), "--data", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in first
        token = process.stdout.readline().strip().removeprefix("generated API token: ")
        assert len(token) >= 24
        url = f"http://127.0.0.1:{port}/_sandbox/applications"
        wait_until(lambda: requests.get(url + "/x", timeout=1).status_code == 401, 10, "start")
        created = requests.post(
            url, json={"name": "a"}, headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert created.status_code == 201
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in out
    assert token not in err
    assert (tmp_path / "data" / "sandbox.db").is_file()


def test_taken_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("--port", str(port), "--data", str(tmp_path), "--token", "t")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"nbrelay: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_bad_options_exit_2(tmp_path: Path) -> None:
    for args in (
        ["--token", "two words"],
        ["--token", "t:"],
        ["--token", "t:notebook.logs,not a scope"],
        ["--max-run-minutes", "0"],
        ["--parallel", "0"],
        ["--export-interval", "-1"],
        ["--templates", "handlebars"],
        ["--template-context-name", "execution"],
    ):
        result = _run(*args, "--data", str(tmp_path), "--port", str(free_port()))
        assert result.returncode == 2, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_context_variable_that_shadows_a_losant_one_is_refused(tmp_path: Path) -> None:
    result = _run("--template-context-name", "notebook", "--data", str(tmp_path))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "--template-context-name" in line and "other than notebook and execution" in line
