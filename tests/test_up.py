"""`nbrelay up` as a user runs it: in an empty folder, with nothing configured."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import requests

from service.config import Settings
from service.runtime.processes import free_port, wait_until
from service.runtime.up import Up, UpOptions
from tests.support.processes import alive, descendants

NBRELAY = str(Path(sys.executable).with_name("nbrelay"))


def clean_environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NBRELAY_", "LOSANT_", "PROMETHEUS_", "WEB_CONCURRENCY"))
    }


class UpProcess:
    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port, self.sandbox_port = port or free_port(), free_port()
        self.output = folder / f"up-{self.port}.out"
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [NBRELAY, "up", "--port", str(self.port), "--sandbox-port",
                 str(self.sandbox_port), "--workers", "1"],
                cwd=folder,
                env=clean_environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.children: set[int] = set()

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_until_up(self) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"nbrelay up exited {self.process.returncode}:\n{self.text()}")
            return "nbrelay is up" in self.text()

        wait_until(up, 120, "nbrelay up to be up")
        self.children = descendants(self.process.pid)

    def env(self) -> dict[str, str]:
        settings = {}
        for line in (self.folder / ".nbrelay" / "env").read_text().splitlines():
            name, _, value = line.partition("=")
            settings[name] = shlex.split(value)[0]
        return {**clean_environment(), **settings}

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(90)
        wait_until(lambda: not any(alive(pid) for pid in self.children), 10, "every child to exit")
        return code


def test_up_runs_everything_keeps_history_and_leaves_nothing_behind(tmp_path):
    first = UpProcess(tmp_path)
    try:
        first.wait_until_up()
        banner = first.text()
        assert f"http://127.0.0.1:{first.port}/" in banner and "run report" in banner
        assert (
            len(first.children) >= 6
        )  # redis, sandbox, gunicorn master + workers, worker, scheduler
        env = first.env()
        run = subprocess.run(
            [NBRELAY, "run", "report", "--context", '{"title": "Up test"}', "--wait"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr + first.text()
        execution_id = (run.stdout + run.stderr).split("started execution ")[1].split()[0]
        api = {"Authorization": f"Bearer {env['NBRELAY_API_TOKEN']}"}
        url = f"http://127.0.0.1:{first.port}/api/executions/{execution_id}"
        record = requests.get(url, headers=api, timeout=10).json()
        assert record["status"] == "completed"
        for field in (
            "runQueuedAt",
            "runStartedAt",
            "inputsCompletedAt",
            "notebookCompletedAt",
            "outputsCompletedAt",
        ):
            assert record["losant"][field], field
        assert "report.md" in record["losant"]["outputInfo"] or record["losant"]["outputInfo"]
        assert "pipelines start demo --wait" in banner and "set -a" not in banner
        demo = subprocess.run(  # no settings in its environment: it reads .nbrelay/env
            [NBRELAY, "pipelines", "start", "demo", "--wait", "--timeout", "170"],
            cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout + demo.stderr + first.text()
        assert demo.stdout.splitlines()[1].startswith(
            f"run {demo.stdout.split()[0]} of demo: completed"
        )
    finally:
        assert first.stop(signal.SIGINT) == 0, first.text()
    assert "Traceback" not in first.text()

    (tmp_path / ".env").write_text("NBRELAY_INGEST_TOKEN=from-dotenv-0123456789\n")
    second = UpProcess(tmp_path)
    try:
        second.wait_until_up()
        assert second.env()["NBRELAY_API_TOKEN"] == env["NBRELAY_API_TOKEN"]  # kept
        assert second.env()["NBRELAY_INGEST_TOKEN"] == "from-dotenv-0123456789"  # yours wins
        url = f"http://127.0.0.1:{second.port}/api/executions/{execution_id}"
        assert requests.get(url, headers=api, timeout=10).json()["status"] == "completed"
    finally:
        assert second.stop(signal.SIGTERM) == 0, second.text()


def test_a_second_up_in_the_same_folder_is_refused(tmp_path):
    lock = tmp_path / ".nbrelay" / "up.lock"
    lock.parent.mkdir()
    import fcntl

    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = subprocess.run(
            [NBRELAY, "up", "--port", str(free_port()), "--sandbox-port", str(free_port())],
            cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("nbrelay: error: another `nbrelay up` is running in")


def test_ctrl_c_while_starting_stops_what_was_started(tmp_path):
    up = UpProcess(tmp_path)
    wait_until(lambda: descendants(up.process.pid), 30, "a first child")
    up.children = descendants(up.process.pid)
    assert up.stop(signal.SIGINT) == 0, up.text()
    assert "Traceback" not in up.text()


def test_a_child_that_dies_stops_everything_with_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = UpProcess(tmp_path, port=taken.getsockname()[1])
        wait_until(lambda: descendants(up.process.pid), 30, "a first child")
        up.children = descendants(up.process.pid)
        code = up.process.wait(120)
    assert code == 1, up.text()
    assert (
        up.text().rstrip().splitlines()[-1]
        == "nbrelay: error: web exited while starting (status 1)"
    )
    wait_until(lambda: not any(alive(pid) for pid in up.children), 10, "every child to exit")


def test_the_banner_shows_the_redis_url_without_its_password(tmp_path):
    settings = Settings.from_env(
        {
            "NBRELAY_REDIS_URL": "redis://:hunter2-redis-password@127.0.0.1:6400/0",
            "NBRELAY_PUBLIC_URL": "http://127.0.0.1:8080",
        },
        dotenv_path=None,
    )
    shown: list[str] = []
    up = Up(UpOptions("127.0.0.1", 8080, 8081, 1, tmp_path), settings, shown.append)
    up._banner("http://127.0.0.1:8080", None, settings, [])
    assert "hunter2-redis-password" not in shown[0]
    assert "redis://:****@127.0.0.1:6400/0" in shown[0]
