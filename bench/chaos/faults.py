"""The faults the soak injects, each on a schedule of its own and each logged with its time:

- SIGKILL a random worker every ~10 s, and start it again 0.5-2 s later;
- SIGKILL the leading scheduler every ~60 s (the other one takes over), start it again;
- SIGKILL Redis and restart it from its append-only file (once in the quick soak, every 10
  minutes in the long one);
- restart a web process every ~90 s, by SIGKILL or SIGTERM at random (the balancer sends
  requests to the other one meanwhile);
- at the sandbox, all the time: 10 % of requests answer 5xx, 5 % answer 429 with Retry-After,
  5 % of executes lose their answer (applied, connection cut), 30 % of callbacks are dropped and
  30 % sent twice; every minute, a 20 s spell in which `/logs` answers after 2 s;
- the webhook receiver and the mail server each fail (503, 451) for 10 s in every 40 s.

Like a process supervisor, the soak also starts again any process that exited on its own; each
such exit is logged and counted: it is a finding, unless Redis was down (a process started then
stops at once, saying it cannot reach Redis, and is started again).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.deployment import ChaosDeployment
from bench.chaos.scenario import Behaviours
from bench.chaos.sinks import MailSink, WebhookSink
from service.runtime.supervisor import Child

SANDBOX_FAULTS: dict[str, Any] = {
    "serverErrors": 0.10,
    "rateLimited": 0.05,
    "retryAfterSeconds": 1,
    "lostExecuteAnswers": 0.05,
    "dropCallbacks": 0.30,
    "duplicateCallbacks": 0.30,
}
LOGS_LATENCY = {"logsLatencySeconds": 2.0}
SUPERVISE_INTERVAL = 1.0
REDIS_GRACE = 5.0  # seconds after Redis answers again in which an exit still counts as its outage
PLANNED_FAULTS = (  # what the schedule injects, by the kind it logs
    "worker killed",
    "leading scheduler killed",
    "redis killed",
    "web restarted",
    "/logs latency spell",
    "webhook receiver failing",
    "mail server failing",
)


@dataclass(frozen=True)
class Fault:
    at: float  # time.time()
    elapsed: float  # seconds since the faults began
    kind: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "elapsed": round(self.elapsed, 2),
            "kind": self.kind,
            "detail": self.detail,
        }


@dataclass
class RedisOutage:
    killed_at: float
    answering_at: float | None = None


@dataclass
class FaultLog:
    began: float = field(default_factory=time.time)
    faults: list[Fault] = field(default_factory=list)
    redis_outages: list[RedisOutage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, detail: str = "") -> Fault:
        now = time.time()
        fault = Fault(now, now - self.began, kind, detail)
        with self._lock:
            self.faults.append(fault)
        print(f"  {fault.elapsed:7.1f}s  {kind}  {detail}", flush=True)
        return fault


class Faults:
    def __init__(
        self,
        deployment: ChaosDeployment,
        behaviours: Behaviours,
        webhook: WebhookSink,
        mail: MailSink,
        *,
        redis_every: float,
        redis_first: float,
    ) -> None:
        self.deployment = deployment
        self.behaviours = behaviours
        self.webhook = webhook
        self.mail = mail
        self.log = FaultLog()
        self._stop = threading.Event()
        self._restarting: set[str] = set()  # children the faults stopped and will start again
        self._children_lock = threading.Lock()
        plans: list[tuple[Callable[[], None], float, float, float]] = [
            # (fault, seconds before the first, seconds between two, jitter either side)
            (self._kill_worker, 5, 10, 2),
            (self._kill_leader, 30, 60, 5),
            (self._restart_web, 45, 90, 5),
            (self._kill_redis, redis_first, redis_every, 0),
            (self._slow_logs, 20, 60, 0),
            (self._fail_webhook, 10, 40, 0),
            (self._fail_mail, 30, 40, 0),
        ]
        self._threads = [
            threading.Thread(target=self._every, args=plan, name=plan[0].__name__, daemon=True)
            for plan in plans
        ]
        self._threads.append(threading.Thread(target=self._supervise, daemon=True))

    def start(self) -> None:
        self.log.began = time.time()
        self.behaviours.set_faults(**SANDBOX_FAULTS)
        self.log.note("sandbox faults on", _describe(SANDBOX_FAULTS))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop injecting and put everything back: every process running, Redis answering,
        the sandbox and the receivers behaving."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.behaviours.set_faults()
        self.webhook.failing = self.mail.failing = False
        self._revive_exited()
        self.log.note("faults off")

    # the schedule

    def _every(self, fault: Callable[[], None], first: float, every: float, jitter: float) -> None:
        if self._stop.wait(first):
            return
        while True:
            try:
                fault()
            except Exception as exc:  # noqa: BLE001 - noted (a must), and the schedule goes on
                self.log.note("fault failed", f"{fault.__name__}: {type(exc).__name__}: {exc}")
            if self._stop.wait(every + random.uniform(-jitter, jitter)):
                return

    def _pause(self, low: float, high: float) -> None:
        time.sleep(random.uniform(low, high))  # not cut short: a killed process must come back

    # the faults

    def _kill_worker(self) -> None:
        worker = random.choice(self.deployment.workers)
        self._kill_and_restart(worker, "worker killed", signal.SIGKILL, 0.5, 2)

    def _kill_leader(self) -> None:
        leader = self.deployment.leading_scheduler()
        if leader is None:
            self.log.note("scheduler not killed", "no scheduler leads right now")
            return
        self._kill_and_restart(leader, "leading scheduler killed", signal.SIGKILL, 4, 6)

    def _restart_web(self) -> None:
        web = random.choice(self.deployment.webs)
        how = random.choice([signal.SIGKILL, signal.SIGTERM])
        self._kill_and_restart(web, "web restarted", how, 0.5, 1)

    def _kill_and_restart(
        self, child: Child, kind: str, how: signal.Signals, low: float, high: float
    ) -> None:
        with self._children_lock:
            self._restarting.add(child.name)
        try:
            self.log.note(kind, f"{child.name} (pid {child.pid}, {how.name})")
            child.signal(how)
            if not child.wait(30):
                child.kill()
            self._pause(low, high)
            self.deployment.start_child(child)
        finally:
            with self._children_lock:
                self._restarting.discard(child.name)

    def _kill_redis(self) -> None:
        outage = RedisOutage(time.time())
        self.log.redis_outages.append(outage)
        self.log.note("redis killed")
        self.deployment.kill_redis()
        self._pause(1.5, 2.5)
        seconds = self.deployment.restart_redis()
        outage.answering_at = time.time()
        self.log.note("redis restarted", f"answering after {seconds:.1f}s, from its AOF")

    def _slow_logs(self) -> None:
        self.behaviours.set_faults(**SANDBOX_FAULTS, **LOGS_LATENCY)
        self.log.note("/logs latency spell", "2 s per /logs for 20 s")
        self._stop.wait(20)
        self.behaviours.set_faults(**SANDBOX_FAULTS)

    def _fail_webhook(self) -> None:
        self._fail_sink(self.webhook, "webhook receiver failing", "503 for 10 s")

    def _fail_mail(self) -> None:
        self._fail_sink(self.mail, "mail server failing", "451 for 10 s")

    def _fail_sink(self, sink: WebhookSink | MailSink, kind: str, detail: str) -> None:
        sink.failing = True
        self.log.note(kind, detail)
        self._stop.wait(10)
        sink.failing = False

    # supervision

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_INTERVAL):
            self._revive_exited()

    def _revive_exited(self) -> None:
        deployment = self.deployment
        for child in deployment.webs + deployment.workers + deployment.schedulers:
            with self._children_lock:
                if child.name in self._restarting:
                    continue
                status = child.exited()
                if status is None:
                    continue
                detail = f"{child.name} (status {status}), started again"
                # Started while Redis is down, a process stops at once ("cannot reach Redis")
                # and its supervisor starts it again: that is how it is meant to go.
                kind = "exited while Redis was down" if self._redis_down() else "exited on its own"
                self.log.note(kind, detail)
                self.deployment.start_child(child)

    def _redis_down(self) -> bool:
        """Whether Redis is down, or answered again less than REDIS_GRACE seconds ago."""
        now = time.time()
        return any(
            o.answering_at is None or now < o.answering_at + REDIS_GRACE
            for o in self.log.redis_outages
            if o.killed_at <= now
        )


def _describe(faults: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in faults.items())
