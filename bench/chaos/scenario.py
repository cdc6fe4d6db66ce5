"""What the soak runs: its notebooks (scripted at the sandbox), its pipeline file, and the load
that starts runs through nbrelay's API for as long as the soak lasts.

- Two pipelines with fan-out and fan-in: `etl` (extract, three cleans in parallel, merge,
  report, and an audit step that always fails, is retried once and lets the run go on) and
  `fanout` (a source, four parts in parallel, a join).
- Rules with each kind of action: `retry` (up to 3 runs in all), `patch` (another notebook's
  description names the execution that completed), `execute` (another notebook, with the
  execution's id in its context), `notify` (a webhook and an email channel) on four notebooks
  that flip between failing and completing, so alerts open and resolve, and on the audit step.
- Notebooks without rules, started directly (only callbacks and the reconciler follow them).
"""

from __future__ import annotations

import base64
import itertools
import random
import threading
import time
from collections import Counter
from typing import Any

import requests

from bench.chaos.deployment import ChaosDeployment

REQUEST_TIMEOUT = 30.0
FLAP_PERIOD = 15.0  # seconds an alerting notebook keeps failing, or completing
RETRY_ATTEMPTS = 3  # runs in all of a notebook the retry rule matches
FLAPPING = [f"a-flap-{n}" for n in range(1, 5)]

# name: (scripted status, durationSeconds)
NOTEBOOKS: dict[str, tuple[str, float]] = {
    "p-extract": ("completed", 0.4),
    **{f"p-clean-{n}": ("completed", 0.2 + 0.2 * n) for n in range(1, 4)},
    "p-merge": ("completed", 0.3),
    "p-report": ("completed", 0.2),
    "p-audit": ("errored", 0.3),
    "f-source": ("completed", 0.2),
    **{f"f-part-{n}": ("completed", 0.1 * n) for n in range(1, 5)},
    "f-join": ("completed", 0.3),
    "r-retry": ("errored", 0.3),
    "r-patch": ("completed", 0.3),
    "r-patch-target": ("completed", 0.1),
    "r-execute": ("completed", 0.3),
    "r-exec-target": ("completed", 0.5),
    **{name: ("errored", 0.2) for name in FLAPPING},
    "n-plain-1": ("completed", 0.5),
    "n-plain-2": ("errored", 1.0),
}

# (what to start, seconds between two starts): a pipeline, or a notebook started directly
STREAMS: list[tuple[str, float]] = [
    ("pipeline:etl", 3.0),
    ("pipeline:fanout", 3.0),
    ("notebook:r-retry", 6.0),
    ("notebook:r-patch", 3.0),
    ("notebook:r-execute", 3.0),
    *((f"notebook:{name}", 4.0) for name in FLAPPING),
    ("notebook:n-plain-1", 2.0),
    ("notebook:n-plain-2", 2.0),
]


def pipeline_file(webhook_url: str, webhook_secret: str, mail_port: int) -> str:
    flap_rules = "".join(
        f"""
  flap-{n}:
    notebook: a-flap-{n}
    statuses: [errored]
    actions:
      - notify: {{channels: [hook, mail], group_wait: 0s}}
"""
        for n in range(1, 5)
    )
    return f"""\
channels:
  hook: {{kind: webhook, url: "{webhook_url}", secret: "{webhook_secret}"}}
  mail:
    kind: email
    host: 127.0.0.1
    port: {mail_port}
    security: none
    from: nbrelay@chaos.test
    to: [oncall@chaos.test]

alerts:
  group_wait: 0s
  repeat_interval: 1d
  send_resolved: true

pipelines:
  etl:
    steps:
      extract: {{notebook: p-extract}}
      clean_1: {{notebook: p-clean-1, after: extract}}
      clean_2: {{notebook: p-clean-2, after: extract}}
      clean_3: {{notebook: p-clean-3, after: extract}}
      audit:
        notebook: p-audit
        after: extract
        retry: {{max_attempts: 2, backoff: [1s]}}
        on_failure: continue
      merge: {{notebook: p-merge, after: [clean_1, clean_2, clean_3]}}
      report: {{notebook: p-report, after: [merge, audit]}}
  fanout:
    steps:
      source: {{notebook: f-source}}
      part_1: {{notebook: f-part-1, after: source}}
      part_2: {{notebook: f-part-2, after: source}}
      part_3: {{notebook: f-part-3, after: source}}
      part_4: {{notebook: f-part-4, after: source}}
      join: {{notebook: f-join, after: [part_1, part_2, part_3, part_4]}}

rules:
  retry-failed:
    notebook: r-retry
    statuses: [errored]
    actions:
      - retry: {{max_attempts: {RETRY_ATTEMPTS}, backoff: [1s]}}
  patch-after:
    notebook: r-patch
    statuses: [completed]
    actions:
      - patch:
          notebook: r-patch-target
          set: {{description: "after {{{{ execution.id }}}}"}}
  execute-after:
    notebook: r-execute
    statuses: [completed]
    actions:
      - execute:
          notebook: r-exec-target
          context: {{source: "{{{{ execution.id }}}}"}}
  audit-failed:
    notebook: p-audit
    statuses: [errored]
    actions:
      - notify: [hook, mail]
{flap_rules}"""


def webhook_secret() -> str:
    return "whsec_" + base64.b64encode(random.randbytes(32)).decode()


class Behaviours:
    """Each notebook's scripted behaviour at the sandbox: its own status and duration, plus the
    faults in force for all of them. A change is sent to the sandbox at once."""

    def __init__(self, deployment: ChaosDeployment) -> None:
        self.deployment = deployment
        self.ids: dict[str, str] = {}
        self.base: dict[str, dict[str, Any]] = {}
        self.faults: dict[str, Any] = {}
        self._lock = threading.Lock()

    def create(self) -> None:
        losant, application = self.deployment.losant, self.deployment.application_id
        for name, (status, seconds) in NOTEBOOKS.items():
            self.ids[name] = losant.create_notebook(application, {"name": name}).id
            self.base[name] = {"status": status, "durationSeconds": seconds}
            self._push(name)

    def set_status(self, name: str, status: str) -> None:
        with self._lock:
            self.base[name] = {**self.base[name], "status": status}
            self._push(name)

    def set_faults(self, **faults: Any) -> None:
        """Replace the faults in force on every notebook (none: behave)."""
        with self._lock:
            self.faults = dict(faults)
            for name in self.ids:
                self._push(name)

    def _push(self, name: str) -> None:
        self.deployment.sandbox.set_behaviour(
            self.deployment.application_id, self.ids[name], **self.base[name], **self.faults
        )


class Load:
    """Starts runs through the balancer, one thread per stream, until `stop`. Counts each
    start's outcome: `accepted` (201), `refused` (an error answer: nbrelay did not take it on)
    and `unknown` (no answer at all), and keeps the ids of the pipeline runs accepted."""

    def __init__(self, deployment: ChaosDeployment, behaviours: Behaviours) -> None:
        self.deployment = deployment
        self.behaviours = behaviours
        self.outcomes: Counter[str] = Counter()
        self.run_ids: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._stream, args=(what, period), name=what, daemon=True)
            for what, period in STREAMS
        ]
        self._threads.append(threading.Thread(target=self._flap, name="flap", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        session = requests.Session()
        for name in FLAPPING:  # end on a completed run, so that every alert can resolve
            self.behaviours.set_status(name, "completed")
            self._start_one(f"notebook:{name}", session)

    def _stream(self, what: str, period: float) -> None:
        session = requests.Session()
        # Spread the streams' first starts over one period, so they do not all start at once.
        if self._stop.wait(random.uniform(0, period)):
            return
        while not self._stop.is_set():
            began = time.monotonic()
            self._start_one(what, session)
            self._stop.wait(max(0.0, period - (time.monotonic() - began)))

    def _start_one(self, what: str, session: requests.Session) -> None:
        kind, name = what.split(":", 1)
        if kind == "pipeline":
            path = f"/api/pipelines/{name}/runs"
        else:
            path = f"/api/notebooks/{self.behaviours.ids[name]}/executions"
        headers = {"Authorization": f"Bearer {self.deployment.api_token}"}
        try:
            response = session.post(
                self.deployment.url + path,
                json={"requestedBy": "chaos"},
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            )
        except requests.RequestException:
            outcome = "unknown"
        else:
            if response.status_code == 201:
                outcome = "accepted"
                if kind == "pipeline":
                    with self._lock:
                        self.run_ids.append(response.json()["id"])
            elif response.status_code == 502:
                outcome = "unknown"  # the balancer reached no web, or lost its answer
            else:
                outcome = "refused"
        with self._lock:
            self.outcomes[f"{kind} {outcome}"] += 1

    def _flap(self) -> None:
        """Every FLAP_PERIOD, each alerting notebook switches between failing and completing
        (one after the other, so that their alerts do not move together)."""
        for name in itertools.cycle(FLAPPING):
            if self._stop.wait(FLAP_PERIOD / len(FLAPPING)):
                return
            failing = self.behaviours.base[name]["status"] == "errored"
            self.behaviours.set_status(name, "completed" if failing else "errored")
