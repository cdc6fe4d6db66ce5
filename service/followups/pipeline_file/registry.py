"""The pipeline file in force, shared by every process through Redis.

The scheduler calls `refresh()` on each tick: when the file changed on disk it is validated like
`nbrelay pipelines validate` does (notebook references included, when a Losant API is
configured) and published to Redis only if it is valid. The log says which, once per version.
Web and worker processes read the published version (`current()`), so all of them act on the
same file, even across hosts, and a broken edit never replaces a working version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis as redis_lib

from service import defaults, keys
from service.config import OBJECT_ID
from service.followups.pipeline_file.model import PipelineFile
from service.followups.pipeline_file.validation import (
    NotebookResolver,
    PipelineFileInvalid,
    load_text,
    losant_resolver,
    summary,
)
from service.losant import LosantClient, LosantError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """A published pipeline file, parsed, with the ids its notebook references resolved to."""

    file: PipelineFile
    digest: str
    notebook_ids: dict[str, str] = field(default_factory=dict)

    def notebook_id(self, reference: str) -> str | None:
        """The id of the notebook a reference (alias, id or name) stands for, when known."""
        target = self.file.notebook_reference(reference)
        return self.notebook_ids.get(target) or (target if OBJECT_ID.fullmatch(target) else None)

    def watched_notebooks(self) -> list[str]:
        """The notebooks the file's rules and pipeline steps name, each by id when known, else
        by the name the file gives: what the scheduler polls, whoever starts their runs."""
        references = [rule.notebook for rule in self.file.rules.values()] + [
            step.notebook
            for pipeline in self.file.pipelines.values()
            for step in pipeline.steps.values()
        ]
        return list(
            dict.fromkeys(
                self.notebook_id(ref) or self.file.notebook_reference(ref) for ref in references
            )
        )

    def notebook_name(self, notebook_id: str) -> str | None:
        """The name the file knows a notebook by, when it names it rather than giving its id."""
        return next(
            (ref for ref, nb in self.notebook_ids.items() if nb == notebook_id and ref != nb),
            None,
        )


class PipelineRegistry:
    def __init__(
        self,
        redis: redis_lib.Redis,
        path: Path | None,
        *,
        ttl: int,
        losant: Callable[[], tuple[LosantClient, str] | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`losant` gives the client and application id to check notebooks against (None:
        offline); `ttl` is how long a reported problem stays reported (the retention)."""
        self.redis = redis
        self.path = path
        self.ttl = ttl
        self.losant = losant
        self.clock = clock
        self._cache: Loaded | None = None
        self._checked_at = -math.inf  # time.monotonic() of the last look at the version in force
        self._unchecked: tuple[str, float] | None = (
            None  # a version Losant could not check: when to try again
        )

    def refresh(self) -> None:
        """Publish the file on disk if it changed and is valid; log what happened. Without a
        file (NBRELAY_PIPELINES unset) the version in force is withdrawn."""
        if self.path is None:
            if self.redis.delete(keys.pipeline_file()):
                self._checked_at = -math.inf
                log.info("no pipeline file is configured: pipelines and rules are off")
            return
        try:
            stat = self.path.stat()
            text = None
            published = _fields(self.redis.hmget(keys.pipeline_file(), ["digest", "stamp"]))
            stamp = f"{stat.st_mtime_ns}:{stat.st_size}"
            if published[1] == stamp:
                return
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._once("unreadable", str(exc), "cannot read pipeline file %s: %s", self.path, exc)
            return
        digest = hashlib.sha256(text.encode()).hexdigest()
        if published[0] == digest:
            self.redis.hset(keys.pipeline_file(), "stamp", stamp)
            return
        if self.redis.exists(keys.pipeline_file_note(f"rejected:{digest}")):
            return  # this version was found invalid before: said once, not checked again
        if self._unchecked and self._unchecked[0] == digest and self.clock() < self._unchecked[1]:
            return
        ids: dict[str, str] = {}
        try:
            loaded = load_text(text, self.path.name, resolver=self._resolver(ids))
        except PipelineFileInvalid as exc:
            self._once(
                f"rejected:{digest}",
                digest,
                "pipeline file %s changed but is invalid; the version in force stays: %s",
                self.path,
                "; ".join(exc.report()),
            )
            return
        except LosantError as exc:
            self._unchecked = (digest, self.clock() + defaults.PIPELINES_RECHECK_INTERVAL)
            log.warning(
                "pipeline file %s changed; its notebooks cannot be checked now (%s); "
                "trying again in %gs",
                self.path,
                exc,
                defaults.PIPELINES_RECHECK_INTERVAL,
            )
            return
        self.redis.hset(
            keys.pipeline_file(),
            mapping={
                "text": text,
                "digest": digest,
                "stamp": stamp,
                "ids": json.dumps(ids),
                "source": str(self.path),
                "loaded_at": self.clock(),
            },
        )
        self._checked_at = -math.inf
        log.info(
            "pipeline file %s loaded: %s",
            self.path,
            summary(loaded),
            extra={"event": "pipelines-loaded", "digest": digest[:12]},
        )

    def current(self) -> Loaded | None:
        """The published pipeline file (None when none was ever loaded). Which version is in
        force is looked up at most every PIPELINES_CURRENT_CHECK: a version another process
        published is in force here that much later at most."""
        now = time.monotonic()
        if self._cache is not None and now - self._checked_at < defaults.PIPELINES_CURRENT_CHECK:
            return self._cache
        self._checked_at = now
        digest = _fields(self.redis.hmget(keys.pipeline_file(), ["digest"]))[0]
        if digest is None and self.path is not None:
            self.refresh()
            digest = _fields(self.redis.hmget(keys.pipeline_file(), ["digest"]))[0]
        if digest is None:
            self._cache = None  # withdrawn
            return None
        if self._cache is not None and self._cache.digest == digest:
            return self._cache
        text, ids = _fields(self.redis.hmget(keys.pipeline_file(), ["text", "ids"]))
        try:
            self._cache = Loaded(load_text(text or ""), digest, json.loads(ids or "{}"))
        except PipelineFileInvalid as exc:
            log.error(
                "the published pipeline file does not load in this process: %s",
                "; ".join(exc.report()),
            )
        return self._cache

    def _resolver(self, ids: dict[str, str]) -> NotebookResolver | None:
        target = self.losant() if self.losant else None
        return losant_resolver(target[0], target[1], ids) if target else None

    def _once(self, note: str, value: str, message: str, *args: Any) -> None:
        """Log an error once per distinct problem, however many processes meet it."""
        if self.redis.set(keys.pipeline_file_note(note), value, nx=True, ex=self.ttl):
            log.error(message, *args)


def _fields(values: object) -> list[str | None]:
    """An HMGET reply of the decoding connection."""
    return cast(list[str | None], values)
