"""`nbrelay up`: everything on one machine, for trying nbrelay out and for development.

With no `NBRELAY_REDIS_URL` it runs an embedded Redis (append-only file under `.nbrelay/redis`);
with no `LOSANT_API_TOKEN` it runs the sandbox (data under `.nbrelay/sandbox`) and seeds a demo
application with the demo notebooks. Secrets and tokens it generates are kept in
`.nbrelay/secrets.json`, so a restart keeps callback URLs valid, and the history stays in Redis.
The effective settings go to `.nbrelay/env` once everything answers; `nbrelay` commands run in
this folder read it (`service.config`), so they find this instance without further setup. Every
child logs to this terminal, in the format chosen here (human lines on a terminal by default).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import sandbox
from sandbox import defaults as sandbox_defaults
from sandbox.client import SandboxClient
from service import defaults
from service.config import DEPLOYMENT_REQUIRED, Settings
from service.errors import NbrelayError, UsageProblem
from service.losant import LosantClient, NotFound
from service.runtime.deployment import Deployment, sandbox_child
from service.runtime.embedded_redis import EmbeddedRedis
from service.runtime.supervisor import Supervisor

log = logging.getLogger(__name__)

DEMO_DIR = Path(sandbox.__file__).resolve().parent / "demo"
DEMO_APPLICATION_NAME = "nbrelay demo"
GENERATED = (
    "NBRELAY_SECRET",
    "NBRELAY_API_TOKEN",
    "NBRELAY_INGEST_TOKEN",
    "NBRELAY_METRICS_TOKEN",
    "SANDBOX_TOKEN",
)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


@dataclass(frozen=True)
class UpOptions:
    host: str = defaults.HOST
    port: int = defaults.PORT
    sandbox_port: int = sandbox_defaults.PORT
    workers: int = defaults.UP_WORKERS
    data_dir: Path = Path(defaults.DATA_DIR)
    log_format: str | None = None  # --log-format, for every child too


@contextmanager
def folder_lock(path: Path) -> Iterator[None]:
    """One `nbrelay up` per folder: a second one would share its Redis files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageProblem(f"another `nbrelay up` is running in {path.parent.parent}") from None
        yield


def generated_secrets(path: Path) -> dict[str, str]:
    """Secrets made on the first start and read back on every later one (mode 0600)."""
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in GENERATED if not kept.get(name)]
    if missing:
        kept.update({name: secrets.token_urlsafe(32) for name in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(kept, handle, indent=2)
    return kept


def seed_demo(sandbox_url: str, token: str, state_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """Make sure the demo application and its notebooks exist; returns the application id and
    the demo notebooks' descriptions."""
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    known = {"id": state["applicationId"]} if state.get("applicationId") else {}
    with SandboxClient(sandbox_url, token) as sandbox_client:
        application_id = sandbox_client.create_application(DEMO_APPLICATION_NAME, **known)
    state_path.write_text(json.dumps({"applicationId": application_id}))
    description = json.loads((DEMO_DIR / "notebooks.json").read_text())
    with LosantClient(sandbox_url, token) as client:
        for entry in description["notebooks"]:
            try:
                client.find_notebook(application_id, entry["name"])
                continue
            except NotFound:
                pass
            notebook = client.create_notebook(
                application_id,
                {k: entry[k] for k in ("name", "description", "inputs", "outputs") if k in entry},
            )
            content = (DEMO_DIR / entry["file"]).read_bytes()
            client.upload(application_id, notebook.id, entry["file"], content)
    return application_id, description["notebooks"]


def write_env_file(path: Path, settings: Settings) -> None:
    """The settings the `nbrelay` commands need to work with this instance (mode 0600)."""
    values = {
        "NBRELAY_REDIS_URL": settings.redis_url,
        "LOSANT_API_URL": settings.losant_api_url,
        "LOSANT_API_TOKEN": settings.losant_api_token,
        "LOSANT_APPLICATION_ID": settings.losant_application_id,
        "NBRELAY_PUBLIC_URL": settings.public_url,
        "NBRELAY_SECRET": ",".join(settings.secrets),
        "NBRELAY_API_TOKEN": settings.api_token,
        "NBRELAY_INGEST_TOKEN": settings.ingest_token,
        "NBRELAY_METRICS_TOKEN": settings.metrics_token,
    }
    lines = [f"{name}={shlex.quote(value)}" for name, value in values.items() if value]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")


class Up:
    """One run of `nbrelay up`: start everything, wait for a signal or a death, stop everything."""

    def __init__(self, options: UpOptions, settings: Settings, echo: Callable[[str], None]):
        self.options = options
        self.settings = settings
        self.echo = echo
        self.data_dir = options.data_dir
        self.supervisor = Supervisor()
        self.redis: EmbeddedRedis | None = None
        self.stop_requested = threading.Event()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested.set()

    def _await(self, condition: Callable[[], Any], what: str) -> None:
        """Wait for `condition`; give up at once when asked to stop or when a child died."""
        deadline = time.monotonic() + defaults.UP_START_TIMEOUT
        while True:
            if self.stop_requested.is_set():
                raise Interrupted("stopped while starting")
            dead = self.supervisor.dead_child()
            if dead is not None:
                raise NbrelayError(f"{dead.name} exited while starting (status {dead.exited()})")
            try:
                if condition():
                    return
            except Exception:  # noqa: BLE001 - not answering yet
                pass
            if time.monotonic() > deadline:
                raise NbrelayError(
                    f"timed out after {defaults.UP_START_TIMEOUT:g}s waiting for {what}"
                )
            self.stop_requested.wait(0.1)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        with folder_lock(self.data_dir / "up.lock"):
            # What an earlier instance left must not mislead the commands (or this start).
            (self.data_dir / "env").unlink(missing_ok=True)
            try:
                return self._run()
            except Interrupted:
                self.echo("stopping...")
                return 0
            finally:
                self.supervisor.stop()
                if self.redis is not None:
                    self.redis.stop()

    def _run(self) -> int:
        opts = self.options
        kept = generated_secrets(self.data_dir / "secrets.json")
        env = dict(os.environ)
        if opts.log_format:
            env["NBRELAY_LOG_FORMAT"] = opts.log_format
        if not self.settings.redis_url:
            self.redis = EmbeddedRedis(self.data_dir / "redis", appendonly=True).start()
            env["NBRELAY_REDIS_URL"] = self.redis.url
        demo: list[dict[str, Any]] = []
        sandbox_url = None
        if not self.settings.losant_api_token:
            sandbox_url, application_id, demo = self._start_sandbox(kept["SANDBOX_TOKEN"], env)
            env.update(
                LOSANT_API_URL=sandbox_url,
                LOSANT_API_TOKEN=kept["SANDBOX_TOKEN"],
                LOSANT_APPLICATION_ID=application_id,
            )
            if not self.settings.pipelines_path:
                env["NBRELAY_PIPELINES"] = str(DEMO_DIR / "pipelines.yaml")
        configured = self.settings  # the environment and .env: what the user set wins
        if not configured.public_url:
            env["NBRELAY_PUBLIC_URL"] = f"http://{opts.host}:{opts.port}"
        for name, value in (
            ("NBRELAY_SECRET", configured.secrets),
            ("NBRELAY_API_TOKEN", configured.api_token),
            ("NBRELAY_INGEST_TOKEN", configured.ingest_token),
            ("NBRELAY_METRICS_TOKEN", configured.metrics_token),
        ):
            if not value:
                env[name] = kept[name]
        metrics_dir = self.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
        # The children read .env too, so they see exactly these settings.
        effective = Settings.from_env(env, instance_path=None).require(*DEPLOYMENT_REQUIRED)

        deployment = Deployment(env, host=opts.host, port=opts.port)
        web = self.supervisor.start(deployment.web(), stage=2)
        for _ in range(opts.workers):
            self.supervisor.start(deployment.worker(), stage=2)
        self.supervisor.start(deployment.scheduler(), stage=2)
        self._await(deployment.ready, f"{web.name} at {deployment.url}")
        write_env_file(self.data_dir / "env", effective)
        self._banner(deployment.url, sandbox_url, effective, demo)

        while not self.stop_requested.wait(0.5):
            dead = self.supervisor.dead_child()
            if dead is not None:
                raise NbrelayError(f"{dead.name} exited unexpectedly (status {dead.exited()})")
        self.echo("stopping...")
        return 0

    def _start_sandbox(
        self, token: str, env: dict[str, str]
    ) -> tuple[str, str, list[dict[str, Any]]]:
        port = self.options.sandbox_port
        url = f"http://127.0.0.1:{port}"
        data = (self.data_dir / "sandbox").resolve()
        self.supervisor.start(sandbox_child(port, data, token, env), stage=1)
        with SandboxClient(url, token) as client:
            answers = lambda: client.health(timeout=defaults.PROBE_TIMEOUT)  # noqa: E731
            self._await(answers, f"the sandbox at {url}")
        application_id, demo = seed_demo(url, token, self.data_dir / "demo.json")
        return url, application_id, demo

    def _banner(
        self, web_url: str, sandbox_url: str | None, settings: Settings, demo: list[dict]
    ) -> None:
        command = _command_name()
        env_file = self.data_dir / "env"
        lines = [
            "nbrelay is up",
            f"  dashboard   {web_url}/  (sign in with NBRELAY_API_TOKEN in {env_file})",
            f"  API         {web_url}/api/executions  (bearer token: NBRELAY_API_TOKEN)",
            f"  callbacks   {settings.public_url}/callbacks/<token>",
            f"  metrics     {web_url}/metrics  (bearer token: NBRELAY_METRICS_TOKEN)",
            f"  Redis       {settings.shown_redis_url}"
            + (f"  (data in {self.data_dir / 'redis'})" if self.redis else ""),
        ]
        if sandbox_url:
            lines.append(
                f"  sandbox     {sandbox_url}  (Losant API; demo application "
                f"{settings.losant_application_id})"
            )
        lines += [
            "",
            f"Try it from another terminal in this folder (commands read {env_file}):",
        ]
        if demo:
            example = next((e for e in demo if not e.get("inputs")), demo[0])
            context = json.dumps(example.get("exampleContext") or {})
            lines.append(
                f"  {command} run {shlex.quote(example['name'])} --context "
                f"{shlex.quote(context)} --wait"
            )
            lines.append(f"  (demo notebooks: {', '.join(e['name'] for e in demo)})")
            lines.append(f"  {command} pipelines start demo --wait")
        else:
            lines.append(f"  {command} run <notebook id or name> --wait")
        lines += [f"  {command} executions", "", "Ctrl-C stops everything."]
        self.echo("\n".join(lines))
        sys.stdout.flush()


def _command_name() -> str:
    """How to type `nbrelay` in this folder: the bare name when it is on PATH."""
    script = Path(sys.executable).with_name("nbrelay")
    if shutil.which("nbrelay") == str(script):
        return "nbrelay"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else str(script)
