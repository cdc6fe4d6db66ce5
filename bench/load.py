"""Load generators for the benchmarks, each of which tells when it, not the server, was the limit.

- `wrk`: closed loop (a fixed number of connections, each sending its next request when the
  previous answer arrives): the most requests per second a server answers. wrk is written in C,
  so one of its threads drives far more than a Python client on the same cores; it is
  client-bound when its own CPU time approaches one core per thread.
- `open_loop`: requests sent at fixed intended times (`rate` per second whatever the server
  does), from several processes of several threads each, each keeping its connection alive.
  Latency is measured from the intended send time, so a server that falls behind is charged
  for the requests waiting behind the slow one (coordinated omission corrected, as wrk2 does;
  Debian has no wrk2). It is client-bound when it sent fewer than 95 % of the requests it meant
  to, or when one of its processes used nearly a whole core.

Both read their own CPU time from /proc/<pid>/stat.
"""

from __future__ import annotations

import http.client
import json
import math
import multiprocessing
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CLIENT_BOUND_RATE = 0.95  # share of the offered rate below which the open-loop client is the limit
CLIENT_BOUND_CPU = 0.9  # share of one core per thread (wrk) or process (Python) that counts as full
HTTP_TIMEOUT = 10.0  # seconds the open-loop client waits for one answer
START_TIMEOUT = 60.0  # seconds the open-loop client's processes may take to connect

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (also readable while it is a zombie)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@dataclass(frozen=True)
class Request:
    """What every request of a run looks like; `paths` are sent in turn (one per request)."""

    method: str
    paths: Sequence[str]
    body: bytes | None = None
    content_type: str = "application/json"


# wrk -----------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int  # answers wrk counts as "Non-2xx or 3xx"
    socket_errors: int
    cpu_per_thread: float  # wrk's CPU time / duration / threads: 1.0 is a full core each
    threads: int
    duration: float  # seconds

    @classmethod
    def merged(cls, rounds: Sequence[WrkResult]) -> WrkResult:
        """Several runs against one target as one: requests per second over their whole time,
        the median p50, the worst p99 and the busiest wrk."""
        duration = sum(r.duration for r in rounds)
        return cls(
            requests_per_second=sum(r.requests_per_second * r.duration for r in rounds) / duration,
            p50_ms=statistics.median(r.p50_ms for r in rounds),
            p99_ms=max(r.p99_ms for r in rounds),
            requests=sum(r.requests for r in rounds),
            non_2xx=sum(r.non_2xx for r in rounds),
            socket_errors=sum(r.socket_errors for r in rounds),
            cpu_per_thread=max(r.cpu_per_thread for r in rounds),
            threads=rounds[0].threads,
            duration=duration,
        )

    @property
    def client_bound(self) -> bool:
        return self.cpu_per_thread >= CLIENT_BOUND_CPU

    def describe(self) -> str:
        return (
            f"{self.requests_per_second:,.0f} req/s, p50 {self.p50_ms:.1f} ms, p99 "
            f"{self.p99_ms:.1f} ms, {self.non_2xx} non-2xx, wrk CPU "
            f"{self.cpu_per_thread:.0%} of a core per thread"
        )


def wrk_script(request: Request, threads: int) -> str:
    """The Lua that makes wrk's `threads` threads send `request`, each going through the paths
    in turn from its own share of them."""
    paths = ", ".join(json.dumps(path) for path in request.paths)
    body = json.dumps(request.body.decode()) if request.body is not None else "nil"
    return f"""wrk.method = {json.dumps(request.method)}
wrk.body = {body}
wrk.headers["Content-Type"] = {json.dumps(request.content_type)}
local paths = {{{paths}}}
local started = 0
local i = 0
function setup(thread)
  thread:set("number", started)
  started = started + 1
end
function init(args)
  i = math.floor(number * #paths / {threads})
end
function request()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
"""


def run_wrk(
    base_url: str,
    request: Request,
    *,
    duration: float,
    threads: int = 2,
    connections: int = 16,
    log: Path | None = None,
) -> WrkResult:
    """wrk against `base_url` for `duration` seconds; its output is kept in `log`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(request, threads))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        script.name,
        base_url,
    ]
    try:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        cpu, text = _collect_with_cpu(process)
    finally:
        os.unlink(script.name)
    if log is not None:
        log.write_text(f"$ {' '.join(argv)}\n{text}")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed (exit {process.returncode}): {text.strip()[-500:]}")
    return parse_wrk(text, cpu_seconds=cpu, duration=duration, threads=threads)


def _collect_with_cpu(process: subprocess.Popen[str]) -> tuple[float, str]:
    """wrk's output and its CPU time, read from /proc once it has exited but before it is
    reaped (a zombie keeps its times)."""
    assert process.stdout is not None
    text = process.stdout.read()  # until wrk closes its output, i.e. exits
    while _state(process.pid) != "Z":
        time.sleep(0.01)
    cpu = cpu_seconds(process.pid)
    process.wait()
    return cpu, text


_DURATION_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * _DURATION_UNITS[unit]


def parse_wrk(text: str, *, cpu_seconds: float, duration: float, threads: int) -> WrkResult:
    """The figures of wrk's `--latency` output."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output without {pattern!r}: {text.strip()[-300:]}")
        return match

    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests_per_second=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)").group(1)),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)").group(1)),
        requests=int(find(r"^\s+(\d+) requests in").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        cpu_per_thread=cpu_seconds / duration / threads,
        threads=threads,
        duration=duration,
    )


# open loop -----------------------------------------------------------------------------------


@dataclass
class OpenLoopResult:
    offered_rate: float
    achieved_rate: float  # answers per second, from the first intended send to the last answer
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    errors: int  # requests without an answer (connection errors, timeouts)
    cpu_per_process: list[float] = field(default_factory=list)  # 1.0 is a full core
    started_at: float = 0.0  # when the first request was due, in seconds since the epoch
    sending: float = 0.0  # seconds from the first request due to the last answer

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def fell_behind(self) -> bool:
        """Fewer than 95 % of the offered requests per second were answered: the client or
        the server was the limit (the same client's run against the trivial app tells which)."""
        return self.achieved_rate < CLIENT_BOUND_RATE * self.offered_rate

    @property
    def cpu_saturated(self) -> bool:
        return any(share >= CLIENT_BOUND_CPU for share in self.cpu_per_process)

    @property
    def client_bound(self) -> bool:
        """Taken alone, the run may have been limited by the client."""
        return self.fell_behind or self.cpu_saturated

    def describe(self) -> str:
        busiest = max(self.cpu_per_process, default=0.0)
        return (
            f"offered {self.offered_rate:,.0f} req/s, achieved {self.achieved_rate:,.0f}, p50 "
            f"{self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms, "
            f"{self.non_2xx} non-2xx, {self.errors} errors, busiest client process "
            f"{busiest:.0%} of a core"
        )


def open_loop(
    base_url: str,
    request: Request,
    *,
    rate: float,
    duration: float,
    processes: int = 2,
    threads: int = 16,
) -> OpenLoopResult:
    """Send `rate` requests per second for `duration` seconds: request k is due at
    start + k / rate and goes to sender k mod (processes × threads)."""
    context = multiprocessing.get_context("spawn")
    channels = _Channels(
        ready=context.Queue(),
        results=context.Queue(),
        go=context.Event(),
        done=context.Event(),
        start_at=context.Value("d", 0.0),
    )
    schedule = _Schedule(base_url, request, rate, int(rate * duration), processes, threads)
    senders = [
        context.Process(target=_sender_process, args=(schedule, index, channels), daemon=True)
        for index in range(processes)
    ]
    for sender in senders:
        sender.start()
    try:
        for _ in senders:
            channels.ready.get(timeout=START_TIMEOUT)
        pids = [int(sender.pid or 0) for sender in senders]
        cpu_before = [cpu_seconds(pid) for pid in pids]
        start = channels.start_at.value = time.monotonic() + 0.1
        started_at = time.time() + 0.1
        channels.go.set()
        gathered = [channels.results.get(timeout=duration + HTTP_TIMEOUT + 60) for _ in senders]
        elapsed = time.monotonic() - start
        cpu = [
            (cpu_seconds(pid) - before) / elapsed
            for pid, before in zip(pids, cpu_before, strict=True)
        ]
    finally:
        channels.done.set()
        for sender in senders:
            sender.join(timeout=10)
            if sender.is_alive():
                sender.kill()
    answering = max([duration, *(part["last_answer"] - start for part in gathered)])
    latencies = sorted(ms for part in gathered for ms in part["latencies"])
    statuses: Counter[int] = Counter()
    for part in gathered:
        statuses.update(part["statuses"])
    return OpenLoopResult(
        offered_rate=rate,
        achieved_rate=len(latencies) / answering,
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else math.nan,
        statuses=dict(statuses),
        errors=sum(part["errors"] for part in gathered),
        cpu_per_process=cpu,
        started_at=started_at,
        sending=answering,
    )


def _percentile(sorted_values: Sequence[float], percent: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(0, math.ceil(percent / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


@dataclass(frozen=True)
class _Schedule:
    """The requests of an open-loop run: `total` of them, `rate` per second, spread over
    `processes` × `threads` senders."""

    base_url: str
    request: Request
    rate: float
    total: int
    processes: int
    threads: int


@dataclass(frozen=True)
class _Channels:
    """How the parent and its client processes talk: each says `ready` once connected, all
    start at `start_at` (time.monotonic(), the same clock in every process) when `go` is set,
    put their `results`, and exit when `done` is set (after the parent read their CPU time)."""

    ready: Any
    results: Any
    go: Any
    done: Any
    start_at: Any


def _sender_process(
    schedule: _Schedule, index: int, channels: _Channels
) -> None:  # pragma: no cover - runs in a child process
    """Client process `index`: its threads send requests index, index + processes, ..."""
    parts = [
        _Sender(schedule, first=index + t * schedule.processes) for t in range(schedule.threads)
    ]
    channels.ready.put(index)
    channels.go.wait()
    start = channels.start_at.value
    workers = [threading.Thread(target=part.run, args=(start,)) for part in parts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    statuses: Counter[int] = Counter()
    for part in parts:
        statuses.update(part.statuses)
    channels.results.put(
        {
            "latencies": [ms for part in parts for ms in part.latencies],
            "statuses": dict(statuses),
            "errors": sum(part.errors for part in parts),
            "last_answer": max(part.last_answer for part in parts),
        }
    )
    channels.done.wait()


class _Sender:
    """Requests first, first + step, ... of the schedule (step: the number of senders), over
    one keep-alive connection."""

    def __init__(self, schedule: _Schedule, *, first: int) -> None:
        parts = urlsplit(schedule.base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request = schedule.request
        self.rate = schedule.rate
        self.due = range(first, schedule.total, schedule.processes * schedule.threads)
        self.headers = (
            {"Content-Type": self.request.content_type} if self.request.body is not None else {}
        )
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.last_answer = 0.0  # time.monotonic() of the last answer
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        connection.connect()
        return connection

    def run(self, start: float) -> None:
        paths = self.request.paths
        for k in self.due:
            intended = start + k / self.rate
            delay = intended - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                self.connection.request(
                    self.request.method, paths[k % len(paths)], self.request.body, self.headers
                )
                response = self.connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                self.connection.close()
                self.connection = self._connect()
                continue
            self.last_answer = time.monotonic()
            self.latencies.append((self.last_answer - intended) * 1000)
            self.statuses[response.status] += 1
        self.connection.close()
