"""API tokens and Losant's scopes: which token may call which action.

The table is Losant's (reference §1.2; the "Authentication" section of each action in Losant's
client docs): an action accepts its own scope (`notebook.logs`), its resource's wildcard
(`notebook.*`) and the scopes that grant everything (`all.Application`, `all.Organization`,
`all.User` and their `.bounded` forms); read-only actions also accept `all.*.read`. A call whose
token has none of them gets 403.

`Tokens` holds the sandbox's tokens: those given with `nbrelay sandbox --token NAME[:scope,...]`
(a bare name has `all.Application`) and those added with `POST /_sandbox/tokens`, which last
until the sandbox stops.
"""

from __future__ import annotations

import hmac
import re
import threading
from collections.abc import Iterable

from sandbox.errors import ValidationFailed

FULL_ACCESS = "all.Application"
EVERY_ACTION = (
    "all.Application",
    "all.Organization",
    "all.User",
    "all.Application.bounded",
    "all.Organization.bounded",
    "all.User.bounded",
)
READ_ONLY = ("all.Application.read", "all.Organization.read", "all.User.read")

# operationId (sandbox/openapi.yaml) -> the action's own scope; its resource's `.*` also counts.
ACTION_SCOPES: dict[str, str] = {
    "notebooks.get": "notebooks.get",
    "notebooks.post": "notebooks.post",
    "notebook.get": "notebook.get",
    "notebook.patch": "notebook.patch",
    "notebook.delete": "notebook.delete",
    "notebook.execute": "notebook.execute",
    "notebook.cancelExecution": "notebook.execute",  # cancelling has no scope of its own
    "notebook.cancelExecutionMerged": "notebook.execute",
    "notebook.logs": "notebook.logs",
    "notebook.notebookMinuteCounts": "notebook.notebookMinuteCounts",
    "notebook.requestInputDataExport": "notebook.requestInputDataExport",
    "notebook.upload": "notebook.upload",
    "applicationJobLogs.get": "applicationJobLogs.get",
    "applicationJobLog.get": "applicationJobLog.get",
}
READ_ACTIONS = frozenset(
    {
        "notebooks.get",
        "notebook.get",
        "notebook.logs",
        "notebook.notebookMinuteCounts",
        "applicationJobLogs.get",
        "applicationJobLog.get",
    }
)

SCOPE = re.compile(r"[A-Za-z]+(\.[A-Za-z*]+)+")


def accepted(operation_id: str) -> tuple[str, ...]:
    """Every scope that lets a token call the operation, its own scope first."""
    own = ACTION_SCOPES[operation_id]
    wildcard = own.split(".", 1)[0] + ".*"
    read = READ_ONLY if operation_id in READ_ACTIONS else ()
    return (own, wildcard, *EVERY_ACTION, *read)


def allows(granted: Iterable[str], operation_id: str) -> bool:
    return not set(granted).isdisjoint(accepted(operation_id))


def grants_everything(granted: Iterable[str]) -> bool:
    """Whether the scopes grant every action: only such tokens may use `/_sandbox/` routes."""
    return not set(granted).isdisjoint(EVERY_ACTION)


def check_token(token: str) -> str:
    if not token.strip() or any(c.isspace() for c in token):
        raise ValidationFailed("token must be non-empty and contain no white space")
    return token


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(scopes)
    if not chosen:
        raise ValidationFailed("scopes must name at least one scope")
    for scope in sorted(chosen):
        if not SCOPE.fullmatch(scope):
            raise ValidationFailed(f"scope {scope!r} is not a scope (like notebook.logs)")
    return chosen


def parse(spec: str) -> tuple[str, frozenset[str]]:
    """`TOKEN` (all.Application) or `TOKEN:scope,scope` -> the token and its scopes."""
    token, colon, scopes = spec.partition(":")
    check_token(token)
    if not colon:
        return token, frozenset({FULL_ACCESS})
    return token, check_scopes(s.strip() for s in scopes.split(",") if s.strip())


class Tokens:
    """The tokens the sandbox accepts, with their scopes; safe to use from any thread."""

    def __init__(self, tokens: dict[str, frozenset[str]]) -> None:
        self._lock = threading.Lock()
        self._tokens = dict(tokens)

    def scopes(self, given: str) -> frozenset[str] | None:
        """The scopes of the token `given`, None for a token the sandbox does not know
        (compared in constant time, as a single token was)."""
        with self._lock:
            known = list(self._tokens.items())
        found = None
        for token, scopes in known:
            if hmac.compare_digest(given.encode(), token.encode()):
                found = scopes
        return found

    def put(self, token: str, scopes: frozenset[str]) -> bool:
        """Add the token, or replace the scopes of a known one; returns whether it is new."""
        with self._lock:
            new = token not in self._tokens
            self._tokens[token] = scopes
        return new
