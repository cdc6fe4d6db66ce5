"""Child processes that start, stop and die together: what `nbrelay up` runs, and what the
end-to-end tests and benchmarks run nbrelay's processes with.

Each child gets a process group of its own, so Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in order (web, scheduler and workers first, then the
sandbox, Redis last), each with SIGTERM to its whole group and SIGKILL after a timeout. On Linux
a child is also told to exit if the supervisor dies without cleaning up.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from service import defaults

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


def nbrelay_command(*args: str) -> list[str]:
    """The argv that runs `nbrelay <args>` with this interpreter."""
    script = Path(sys.executable).with_name("nbrelay")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from service.cli import main; main()", *args]


@dataclass
class Child:
    """One child process in a process group of its own. With `log_path`, its output (stdout and
    stderr) is appended to that file; otherwise it shares the parent's.

    On Linux the child gets SIGTERM when its parent goes away, so that no child outlives the
    owner. The kernel takes "parent" to be the thread that started it: start children from a
    thread that lives as long as they should."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = field(default=None, repr=False)  # secrets among them
    log_path: Path | None = None
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> Child:
        output = open(self.log_path, "ab") if self.log_path is not None else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                list(self.argv),
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if output is not None:
                output.close()
        return self

    def exited(self) -> int | None:
        """The exit status, or None while the child runs (or before it started)."""
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Send `signum` to the child's whole process group."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def reap_group(self) -> None:
        """SIGKILL whatever is left in the child's group after the child itself is gone."""
        self.signal(signal.SIGKILL)

    def stop(self, timeout: float = defaults.SHUTDOWN_TIMEOUT) -> int | None:
        """SIGTERM the group, wait up to `timeout`, then SIGKILL what is left; the exit status."""
        stop_together([self], timeout)
        return self.exited()

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash of the host would."""
        self.reap_group()
        self.wait(defaults.REAP_TIMEOUT)

    def log(self) -> str:
        """What the child wrote to its log file so far ('' without one)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


class Supervisor:
    """Starts children, watches them, and stops them all in stages."""

    def __init__(self, shutdown_timeout: float = defaults.SHUTDOWN_TIMEOUT) -> None:
        self.shutdown_timeout = shutdown_timeout
        self.stages: list[list[Child]] = []

    def start(self, child: Child, stage: int) -> Child:
        """Start `child`; lower stages are stopped later (Redis is stage 0)."""
        while len(self.stages) <= stage:
            self.stages.append([])
        self.stages[stage].append(child.start())
        log.info("started %s (pid %s)", child.name, child.pid)
        return child

    def children(self) -> list[Child]:
        return [child for stage in self.stages for child in stage]

    def dead_child(self) -> Child | None:
        """A child that exited on its own, if any."""
        return next((c for c in self.children() if c.exited() is not None), None)

    def stop(self) -> None:
        """SIGTERM every child of a stage together, wait, SIGKILL stragglers; highest stage
        first. Nothing started here is left running afterwards."""
        for stage in reversed(self.stages):
            stop_together(stage, self.shutdown_timeout)
        self.stages.clear()


def stop_together(children: Sequence[Child], timeout: float) -> None:
    """SIGTERM every child at once, then give them `timeout` seconds together before SIGKILL."""
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        if not child.wait(max(0.0, deadline - time.monotonic())):
            log.warning("%s did not stop in time; killing it", child.name)
        child.reap_group()
        child.wait(defaults.REAP_TIMEOUT)
