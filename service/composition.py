"""The composition root: every collaborator of one nbrelay process, built from its settings.

The edges build one `Components` and hand its parts in: the web app factory, the worker
runtime, the scheduler and the CLI. Nothing below them imports this module; the domain takes
what it uses as constructor arguments. Parts are built on first use, so a process only connects
to what it needs (the web process reaches Losant only to start runs). Importing this module loads
the metrics, so commands import it only once they have set the metrics up.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import redis as redis_lib

from service import defaults
from service.config import Settings
from service.dead_letters import DeadLetters
from service.events.ingress import Ingress
from service.events.logs_limit import LogsCaps
from service.events.minutes import MinuteUsage
from service.events.reconciler import Reconciler
from service.events.starter import ExecutionStarter
from service.events.store import ExecutionStore
from service.events.sync import NotebookSync
from service.events.sync_state import SyncState
from service.events.transitions import Transitions
from service.events.unseen import UnseenExecutions
from service.followups.facade import Followups
from service.followups.factory import build_followups
from service.followups.pipeline_file.registry import PipelineRegistry
from service.gauges import StateGauges
from service.losant import LosantClient
from service.losant.instruments import instrumented_client
from service.queues import Queues


@dataclass
class Components:
    settings: Settings
    redis: redis_lib.Redis  # decodes responses: for nbrelay's own keys
    rq_redis: redis_lib.Redis  # raw bytes: what RQ requires
    _losant: LosantClient | None = field(default=None, repr=False)
    _losant_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Components:
        url = settings.require("NBRELAY_REDIS_URL").redis_url or ""
        options = {
            "socket_timeout": defaults.REDIS_SOCKET_TIMEOUT,
            "socket_connect_timeout": defaults.REDIS_CONNECT_TIMEOUT,
            "health_check_interval": defaults.REDIS_HEALTH_CHECK_INTERVAL,
        }
        return cls(
            settings,
            redis_lib.Redis.from_url(url, decode_responses=True, **options),
            redis_lib.Redis.from_url(url, **options),
        )

    def losant(self) -> LosantClient:
        """The Losant client, built on first use (ConfigError without LOSANT_API_TOKEN)."""
        with self._losant_lock:
            if self._losant is None:
                self._losant = instrumented_client(self.settings)
            return self._losant

    # the event side

    @cached_property
    def store(self) -> ExecutionStore:
        return ExecutionStore(self.redis, ttl=self.settings.retention_seconds)

    @cached_property
    def syncs(self) -> SyncState:
        return SyncState(
            self.redis,
            lease_seconds=self.settings.sync_lease,
            ttl=self.settings.retention_seconds,
        )

    @cached_property
    def queues(self) -> Queues:
        return Queues(
            self.rq_redis,
            sync_retry_intervals=self.settings.sync_retry_intervals,
            action_timeout=self.settings.action_lease,
            failure_ttl=self.settings.retention_seconds,
        )

    @cached_property
    def ingress(self) -> Ingress:
        return Ingress(self.redis, self.store, self.syncs, self.queues)

    @cached_property
    def starter(self) -> ExecutionStarter:
        return ExecutionStarter(
            self.settings,
            self.losant,
            self.store,
            LogsCaps(self.redis),
            lambda application_id, notebook_id: self.ingress.request_sync(
                application_id, notebook_id, "outcome-unknown"
            ),
        )

    @cached_property
    def transitions(self) -> Transitions:
        return Transitions(self.store, self.followups.on_terminal)

    @cached_property
    def sync(self) -> NotebookSync:
        return NotebookSync(
            self.losant,
            self.store,
            self.syncs,
            self.transitions,
            self.queues,
            LogsCaps(self.redis),
            self.unseen,
            self.settings.reconcile_interval,
        )

    @cached_property
    def unseen(self) -> UnseenExecutions:
        return UnseenExecutions(self.redis, ttl=self.settings.retention_seconds)

    @cached_property
    def minutes(self) -> MinuteUsage:
        """Notebook minutes used this month, asked of Losant with short timeouts and kept."""
        client = None
        if self.settings.losant_api_token:
            client = instrumented_client(
                self.settings,
                connect_timeout=defaults.MINUTES_CONNECT_TIMEOUT,
                read_timeout=defaults.MINUTES_READ_TIMEOUT,
                max_retries=0,
            )
        return MinuteUsage(self.redis, client)

    @cached_property
    def reconciler(self) -> Reconciler:
        return Reconciler(
            self.settings,
            self.store,
            self.syncs,
            self.queues,
            self.ingress,
            self.losant,
            watched=self._ruled_notebooks,
        )

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.queues, self.ingress)

    # the follow-ups

    @cached_property
    def registry(self) -> PipelineRegistry:
        return PipelineRegistry(
            self.redis,
            self.settings.pipelines_path,
            ttl=self.settings.retention_seconds,
            losant=self._checking_client,
        )

    @cached_property
    def followups(self) -> Followups:
        def start(notebook: str, **options: Any) -> str:
            return self.starter.start(notebook, **options).execution_id

        def enqueue(kind: str, key: str, starts_run: bool) -> None:
            self.queues.enqueue_action(kind, key, starts_run=starts_run)

        return build_followups(
            self.redis,
            self.registry,
            losant=self.losant,
            application_id=self.settings.losant_application_id or "",
            start=start,
            enqueue=enqueue,
            ttl=self.settings.retention_seconds,
            known_name=self.store.notebook_name,
            action_lease=self.settings.action_lease,
        )

    @cached_property
    def gauges(self) -> StateGauges:
        return StateGauges(self.queues, self.store, self.followups)

    def _ruled_notebooks(self) -> list[str]:
        """The notebooks the pipeline file in force names in rules and steps: polled."""
        loaded = self.registry.current()
        return loaded.watched_notebooks() if loaded else []

    def _checking_client(self) -> tuple[LosantClient, str] | None:
        """What the pipeline file's notebook references are checked against, when configured."""
        application_id = self.settings.losant_application_id
        if self.settings.losant_api_token and application_id:
            return self.losant(), application_id
        return None

    def close(self) -> None:
        if self._losant is not None:
            self._losant.close()
        if "minutes" in self.__dict__:  # built
            self.minutes.close()
        self.redis.close()
        self.rq_redis.close()
