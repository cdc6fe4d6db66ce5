"""`nbrelay doctor`: whether a deployment has everything it needs before it goes live.

Each check gives one `Check`: ok, a warning (the deployment works, but something deserves a
look), or a failure with what to do about it. Checks only read, with one exception: the public
URL check sends a probe token (signed with NBRELAY_SECRET, its own kind, valid for
DOCTOR_PROBE_TTL seconds) to `$NBRELAY_PUBLIC_URL/callbacks/<probe>`; the web process that
receives it records its nonce in Redis (`record_probe`), and the check waits to see it there.

Losant scopes are tested by their effect on calls that change nothing: reads for `notebooks.get`,
`notebook.get` and `notebook.logs`. `notebook.execute` and `notebook.patch` have no harmless call
on a real notebook, so they are asked of a notebook id no notebook has (NO_NOTEBOOK): a token
with the scope gets "not found" (nothing can run or change), one without it gets 403. That
Losant checks the scope before it looks the notebook up is inferred, not documented, so those
two lines say so.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis as redis_lib
import requests

from service import defaults, keys
from service.config import DEPLOYMENT_REQUIRED, ConfigError, Settings
from service.errors import LOSANT_FIX, REDIS_FIX
from service.events import tokens
from service.followups.pipeline_file.validation import (
    PipelineFileInvalid,
    load_file,
    losant_resolver,
)
from service.losant import LosantClient, LosantError, NotFound, Unauthorized, Unavailable
from service.queues import QUEUES, Queues
from service.runtime.processes import wait_until

OK, WARN, FAIL = "ok", "warn", "fail"
NO_NOTEBOOK = "0" * 24  # a notebook id no notebook has: the target of calls that test a scope
PROBE_SHOWN = "<probe>"  # how the probe token is shown: it is a credential while it lives


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # OK, WARN or FAIL
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the deployment may go live as far as this check is concerned."""
        return self.level != FAIL

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "level": self.level,
            "detail": self.detail,
            "fix": self.fix,
        }


def unchecked(name: str, reason: str) -> Check:
    """A check that could not run because of an earlier failure."""
    return Check(name, FAIL, f"not checked: {reason}", "fix the failures above first")


def record_probe(redis: redis_lib.Redis, claims: tokens.ProbeClaims) -> None:
    """Note that a probe arrived through the public URL (its sender looks for it)."""
    redis.set(keys.doctor_probe(claims.nonce), "1", ex=defaults.DOCTOR_PROBE_TTL)


class Doctor:
    """Every check of one deployment: `settings`, and its Redis when NBRELAY_REDIS_URL is set
    (`redis` decodes replies; `queues` is RQ's side of the same server)."""

    def __init__(
        self, settings: Settings, redis: redis_lib.Redis | None, queues: Queues | None
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.queues = queues

    def run(self) -> list[Check]:
        checks = [self.configuration()]
        redis_checks = self.redis_checks()
        checks += redis_checks
        redis_down = None
        if redis_checks[0].level != OK:
            redis_down = (
                "NBRELAY_REDIS_URL is not set" if self.redis is None else "Redis is not reachable"
            )
        checks += self.losant_checks()
        checks.append(self.public_url(redis_down))
        checks.append(self.workers(redis_down))
        checks.append(self.scheduler(redis_down))
        return checks

    # configuration

    def configuration(self) -> Check:
        missing = []
        for variable in DEPLOYMENT_REQUIRED:
            try:
                self.settings.require(variable)
            except ConfigError:
                missing.append(variable)
        if missing:
            return Check(
                "configuration",
                FAIL,
                f"not set: {', '.join(missing)}",
                "set them in the environment or .env (`nbrelay config show` lists every setting)",
            )
        return Check("configuration", OK, "every variable a deployment needs is set")

    # Redis

    def redis_checks(self) -> list[Check]:
        names = ("Redis", "Redis persistence", "Redis eviction policy", "Redis memory")
        if self.redis is None:
            return [unchecked(name, "NBRELAY_REDIS_URL is not set") for name in names]
        shown = self.settings.shown_redis_url
        try:
            info = self.redis.info()
        except redis_lib.RedisError as exc:
            failed = Check(
                "Redis",
                FAIL,
                f"cannot reach {shown}: {exc}",
                REDIS_FIX,
            )
            return [failed, *(unchecked(name, "Redis is not reachable") for name in names[1:])]
        return [
            Check("Redis", OK, f"{shown}: Redis {info.get('redis_version', '(version unknown)')}"),
            self._persistence(),
            self._eviction(info),
            self._memory(info),
        ]

    def _persistence(self) -> Check:
        name = "Redis persistence"
        assert self.redis is not None
        try:
            config = self.redis.config_get("append*")
        except redis_lib.ResponseError as exc:
            config = {}
            refused = f"CONFIG GET is refused ({exc})"
        else:
            refused = "CONFIG GET does not show `appendonly`"
        appendonly = config.get("appendonly")
        if appendonly is None:
            return Check(
                name,
                WARN,
                f"{refused} (a managed Redis?): cannot see whether append-only persistence is on",
                "make sure append-only (AOF) persistence is on in your Redis provider's settings",
            )
        if appendonly != "yes":
            return Check(
                name,
                FAIL,
                "append-only persistence is off: a restart of Redis loses the executions, "
                "claims and pipeline runs written since the last snapshot",
                "`redis-cli CONFIG SET appendonly yes`, and `appendonly yes` in redis.conf",
            )
        fsync = config.get("appendfsync", "unknown")
        return Check(name, OK, f"append-only file on (appendfsync {fsync})")

    @staticmethod
    def _eviction(info: dict[str, Any]) -> Check:
        name = "Redis eviction policy"
        policy = info.get("maxmemory_policy")
        if policy == "noeviction":
            return Check(name, OK, "noeviction")
        return Check(
            name,
            FAIL,
            f"maxmemory-policy is {policy}: Redis may evict nbrelay's claims, leases and records "
            "when it is full",
            "`redis-cli CONFIG SET maxmemory-policy noeviction`, and the same in redis.conf",
        )

    @staticmethod
    def _memory(info: dict[str, Any]) -> Check:
        name = "Redis memory"
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        used_shown = info.get("used_memory_human", f"{used} B")
        if limit == 0:
            return Check(
                name,
                WARN,
                f"{used_shown} used, no maxmemory: Redis grows until the host runs out of memory",
                "set maxmemory to what Redis may use on this host (noeviction then refuses "
                "writes instead of being killed)",
            )
        share = used / limit
        detail = f"{used_shown} of {info.get('maxmemory_human', limit)} used ({share:.0%})"
        if share >= defaults.DOCTOR_MEMORY_FAIL:
            level = FAIL
        elif share >= defaults.DOCTOR_MEMORY_WARN:
            level = WARN
        else:
            return Check(name, OK, detail)
        return Check(
            name,
            level,
            f"{detail}: at maxmemory every write fails",
            "raise maxmemory, or lower NBRELAY_RETENTION_DAYS",
        )

    # Losant

    def losant_checks(self) -> list[Check]:
        names = [
            "Losant API",
            "Losant token",
            "Losant application",
            *(f"Losant scope {scope}" for scope in _SCOPES),
            "pipeline notebooks",
            "clock",
        ]
        token, application_id = (
            self.settings.losant_api_token,
            self.settings.losant_application_id,
        )
        if not token or not application_id:
            return [
                unchecked(n, "LOSANT_API_TOKEN or LOSANT_APPLICATION_ID is not set") for n in names
            ]
        client = LosantClient(
            self.settings.losant_api_url,
            token,
            read_timeout=defaults.DOCTOR_REQUEST_TIMEOUT,
            max_retries=0,
        )
        try:
            return _LosantChecks(client, application_id, self.settings).run(names)
        finally:
            client.close()

    # the public URL

    def public_url(self, redis_down: str | None) -> Check:
        name = "public URL"
        public_url = self.settings.public_url
        if not public_url or not self.settings.secrets:
            return unchecked(name, "NBRELAY_PUBLIC_URL or NBRELAY_SECRET is not set")
        if redis_down or self.redis is None:
            return unchecked(name, redis_down or "NBRELAY_REDIS_URL is not set")
        redis = self.redis
        nonce = secrets.token_hex(16)
        token = tokens.sign_probe(self.settings.signing_secret, nonce)
        shown = tokens.callback_url(public_url, PROBE_SHOWN)
        fix = (
            "NBRELAY_PUBLIC_URL must be the address at which Losant reaches this deployment's "
            "web process (through its proxy), and that process must share NBRELAY_SECRET and "
            "NBRELAY_REDIS_URL with this host"
        )
        try:
            response = requests.post(
                tokens.callback_url(public_url, token),
                timeout=defaults.DOCTOR_REQUEST_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            reason = type(exc).__name__
            return Check(name, FAIL, f"nothing answers at {public_url} ({reason})", fix)
        try:
            wait_until(
                lambda: redis.exists(keys.doctor_probe(nonce)),
                defaults.DOCTOR_PROBE_WAIT,
                "the probe",
                interval=0.2,
            )
        except TimeoutError:
            return Check(
                name,
                FAIL,
                f"POST {shown} answered HTTP {response.status_code}, but the signed probe did "
                "not arrive in this deployment",
                fix,
            )
        return Check(name, OK, f"a signed probe sent to {shown} arrived")

    # processes

    def workers(self, redis_down: str | None) -> Check:
        name = "workers"
        if redis_down or self.queues is None:
            return unchecked(name, redis_down or "NBRELAY_REDIS_URL is not set")
        served = self.queues.workers()
        fix = "start `nbrelay worker` (it serves every nbrelay queue)"
        if not served:
            return Check(name, FAIL, "no worker is running: no notebook is synced", fix)
        idle = [q for q in QUEUES if not any(q in queues for queues in served.values())]
        if idle:
            return Check(name, FAIL, f"no worker serves {', '.join(idle)}", fix)
        return Check(name, OK, f"{len(served)} alive, serving {', '.join(QUEUES)}")

    def scheduler(self, redis_down: str | None) -> Check:
        name = "scheduler"
        if redis_down or self.redis is None:
            return unchecked(name, redis_down or "NBRELAY_REDIS_URL is not set")
        # The leader key is the scheduler's heartbeat: renewed on every tick, it expires a few
        # intervals after the last one.
        leader = cast(str | None, self.redis.get(keys.scheduler_leader()))
        if leader is None:
            return Check(
                name,
                FAIL,
                "no scheduler is running: started runs are not reconciled, watched notebooks "
                "not polled, follow-ups not driven",
                "start `nbrelay scheduler` (one is enough; more are spares)",
            )
        return Check(name, OK, f"{leader} leads")


# Every Losant action nbrelay calls (service.losant.client's callers), with its use.
_SCOPES = {
    "notebooks.get": "find notebooks by name",
    "notebook.get": "find notebooks by id",
    "notebook.logs": "read executions (every sync)",
    "notebook.execute": "start runs",
    "notebook.patch": "pipeline and rule `patch` actions",
}
_OPTIONAL_SCOPES = {"notebook.patch"}  # only a pipeline file with `patch` actions needs it
_BLIND = {"notebook.execute", "notebook.patch"}  # asked of NO_NOTEBOOK, never of a real one


class _LosantChecks:
    """The checks that talk to Losant, sharing one client and what the first call learnt."""

    def __init__(self, client: LosantClient, application_id: str, settings: Settings) -> None:
        self.client = client
        self.application_id = application_id
        self.settings = settings

    def run(self, names: list[str]) -> list[Check]:
        url = self.settings.losant_api_url
        try:
            page = self.client.list_notebooks(self.application_id, per_page=1)
        except Unavailable as exc:
            down = Check(
                "Losant API",
                FAIL,
                f"cannot reach {url}: {exc.message}",
                LOSANT_FIX,
            )
            return [down, *(unchecked(n, "Losant is not reachable") for n in names[1:])]
        except Unauthorized as exc:
            if exc.status == 401:
                return self._token_refused(url, exc, names)
            page = None  # 403: no notebooks.get; the scope check says so
        except NotFound as exc:
            missing = Check(
                "Losant application",
                FAIL,
                f"{self.application_id}: {exc.message}",
                "set LOSANT_APPLICATION_ID to the id of the application the token belongs to",
            )
            reached = [self._reached(url), Check("Losant token", OK, "accepted"), missing]
            return [*reached, *(unchecked(n, "no such application") for n in names[3:])]
        except LosantError as exc:
            answer = Check("Losant API", FAIL, f"unexpected answer: {exc}", "see the message")
            return [answer, *(unchecked(n, "Losant answered unexpectedly") for n in names[1:])]
        application = (
            Check("Losant application", OK, f"{self.application_id} exists")
            if page is not None
            else unchecked("Losant application", "the token lacks notebooks.get")
        )
        target = page.items[0].id if page is not None and page.items else None
        return [
            self._reached(url),
            Check("Losant token", OK, "accepted"),
            application,
            *self._scopes(target),
            self._pipeline_notebooks(),
            self._clock(),
        ]

    def _reached(self, url: str) -> Check:
        return Check("Losant API", OK, f"{url} answers")

    def _token_refused(self, url: str, exc: Unauthorized, names: list[str]) -> list[Check]:
        refused = Check(
            "Losant token",
            FAIL,
            f"refused: {exc.message}",
            "set LOSANT_API_TOKEN to an application API token of LOSANT_APPLICATION_ID",
        )
        rest = [unchecked(n, "the token is refused") for n in names[2:]]
        return [self._reached(url), refused, *rest]

    def _scopes(self, notebook_id: str | None) -> list[Check]:
        app, target = self.application_id, notebook_id or NO_NOTEBOOK
        probes: dict[str, Callable[[], object]] = {
            "notebooks.get": lambda: self.client.list_notebooks(app, per_page=1),
            "notebook.get": lambda: self.client.get_notebook(app, target),
            "notebook.logs": lambda: self.client.logs(app, target, limit=1),
            "notebook.execute": lambda: self.client.execute(app, NO_NOTEBOOK),
            "notebook.patch": lambda: self.client.patch_notebook(app, NO_NOTEBOOK, {}),
        }
        return [
            self._scope(scope, probes[scope], inferred=notebook_id is None or scope in _BLIND)
            for scope in _SCOPES
        ]

    def _scope(self, scope: str, call: Callable[[], object], *, inferred: bool) -> Check:
        name = f"Losant scope {scope}"
        how = (
            " (inferred from a call on a notebook that does not exist: nothing ran)"
            if inferred
            else ""
        )
        try:
            call()
        except NotFound:
            pass  # past the scope check: only the notebook is missing
        except Unauthorized as exc:
            optional = scope in _OPTIONAL_SCOPES
            return Check(
                name,
                WARN if optional else FAIL,
                f"missing ({exc.status} {exc.message}): nbrelay cannot {_SCOPES[scope]}",
                f"give LOSANT_API_TOKEN the scope {scope} (or all.Application)",
            )
        except LosantError as exc:
            return Check(name, FAIL, f"not checked: {exc}", "run doctor again")
        return Check(name, OK, f"granted{how}")

    def _pipeline_notebooks(self) -> Check:
        name = "pipeline notebooks"
        path = self.settings.pipelines_path
        if path is None:
            return Check(name, OK, "no pipeline file (NBRELAY_PIPELINES is not set)")
        try:
            load_file(path, resolver=losant_resolver(self.client, self.application_id))
        except PipelineFileInvalid as exc:
            shown = "; ".join(exc.report()[:3])
            more = f" (and {len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
            return Check(
                name,
                FAIL,
                f"{shown}{more}",
                f"correct {path.name}; `nbrelay pipelines validate {path}` lists every problem",
            )
        except LosantError as exc:
            return Check(name, FAIL, f"not checked: {exc}", "run doctor again")
        return Check(name, OK, f"every notebook {path.name} names exists, unambiguously")

    def _clock(self) -> Check:
        name = "clock"
        try:
            date, ours = self.client.server_date(self.application_id)
        except LosantError as exc:
            return Check(name, FAIL, f"not checked: {exc}", "run doctor again")
        if date is None:
            return Check(name, WARN, "Losant's answer has no Date header: skew unknown")
        skew = ours - date.timestamp()  # the Date header is whole seconds
        if abs(skew) <= defaults.DOCTOR_CLOCK_SKEW_WARN:
            return Check(name, OK, f"within {max(abs(skew), 1):.0f} s of Losant's")
        way = "ahead of" if skew > 0 else "behind"
        return Check(
            name,
            WARN,
            f"this host's clock is {abs(skew):.0f} s {way} Losant's: callback tokens, "
            "webhook timestamps and sync cursors assume clocks agree",
            "synchronise this host's clock (NTP)",
        )
