"""Configuration of nbrelay, read from the environment (and two files) in one place.

Every value is parsed and checked here so that a wrong setting stops start-up with one line that
names the variable, instead of failing later inside a request or a job.

A value comes from the first of these that sets it: the environment; `.env` in the current
folder (yours); `.nbrelay/env` in the current folder, the settings `nbrelay up` wrote for the
instance it runs there (so that any `nbrelay` command started in that folder finds it). Parent
folders are not searched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from dotenv import dotenv_values

from service import defaults
from service.errors import UsageProblem

OBJECT_ID = re.compile(r"^[0-9A-Fa-f]{24}$")  # ASCII digits only (`\d` takes any script's)

# What the separate processes of a real deployment (web, worker, scheduler) cannot run without.
DEPLOYMENT_REQUIRED = (
    "NBRELAY_REDIS_URL",
    "LOSANT_API_TOKEN",
    "LOSANT_APPLICATION_ID",
    "NBRELAY_PUBLIC_URL",
    "NBRELAY_SECRET",
    "NBRELAY_API_TOKEN",
)

DOTENV = ".env"
INSTANCE_ENV = f"{defaults.DATA_DIR}/env"  # written by `nbrelay up` for the commands next to it
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "human")
ENVIRONMENT = "environment"


class ConfigError(UsageProblem):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True, repr=False)
class Settings:
    """Validated configuration. Secret values are kept out of `repr`, and a password in
    NBRELAY_REDIS_URL is masked wherever the URL is shown."""

    redis_url: str | None = field(default=None, metadata={"env": "NBRELAY_REDIS_URL"})
    losant_api_url: str = field(default=defaults.LOSANT_API_URL, metadata={"env": "LOSANT_API_URL"})
    losant_api_token: str | None = field(
        default=None, repr=False, metadata={"env": "LOSANT_API_TOKEN", "secret": True}
    )
    losant_application_id: str | None = field(
        default=None, metadata={"env": "LOSANT_APPLICATION_ID"}
    )
    public_url: str | None = field(default=None, metadata={"env": "NBRELAY_PUBLIC_URL"})
    secrets: tuple[str, ...] = field(
        default=(), repr=False, metadata={"env": "NBRELAY_SECRET", "secret": True}
    )
    api_token: str | None = field(
        default=None, repr=False, metadata={"env": "NBRELAY_API_TOKEN", "secret": True}
    )
    ingest_token: str | None = field(
        default=None, repr=False, metadata={"env": "NBRELAY_INGEST_TOKEN", "secret": True}
    )
    metrics_token: str | None = field(
        default=None, repr=False, metadata={"env": "NBRELAY_METRICS_TOKEN", "secret": True}
    )
    admin_bind: str | None = field(default=None, metadata={"env": "NBRELAY_ADMIN_BIND"})
    trusted_proxies: int = field(default=0, metadata={"env": "NBRELAY_TRUSTED_PROXIES"})
    pipelines_path: Path | None = field(default=None, metadata={"env": "NBRELAY_PIPELINES"})
    retention_days: int = field(
        default=defaults.RETENTION_DAYS, metadata={"env": "NBRELAY_RETENTION_DAYS"}
    )
    watch: tuple[str, ...] = field(default=(), metadata={"env": "NBRELAY_WATCH"})
    poll_interval: float = field(
        default=defaults.POLL_INTERVAL, metadata={"env": "NBRELAY_POLL_INTERVAL"}
    )
    poll_busy_interval: float = field(
        default=defaults.POLL_BUSY_INTERVAL, metadata={"env": "NBRELAY_POLL_BUSY_INTERVAL"}
    )
    poll_busy_window: float = field(
        default=defaults.POLL_BUSY_WINDOW, metadata={"env": "NBRELAY_POLL_BUSY_WINDOW"}
    )
    reconcile_interval: float = field(
        default=defaults.RECONCILE_INTERVAL, metadata={"env": "NBRELAY_RECONCILE_INTERVAL"}
    )
    sync_lease: float = field(default=defaults.SYNC_LEASE, metadata={"env": "NBRELAY_SYNC_LEASE"})
    sync_retry_intervals: tuple[int, ...] = field(
        default=defaults.SYNC_RETRY_INTERVALS, metadata={"env": "NBRELAY_SYNC_RETRY_INTERVALS"}
    )
    action_lease: float = field(
        default=defaults.ACTION_LEASE, metadata={"env": "NBRELAY_ACTION_LEASE"}
    )
    log_level: str = field(default="info", metadata={"env": "NBRELAY_LOG_LEVEL"})
    log_format: str | None = field(default=None, metadata={"env": "NBRELAY_LOG_FORMAT"})

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | Path | None = DOTENV,
        instance_path: str | Path | None = INSTANCE_ENV,
    ) -> Settings:
        """Parse settings from `environ` (default: the process environment).

        Values from the `.env` file, then from the instance file `nbrelay up` wrote, fill in
        what the environment does not set.
        """
        found = sources(environ, dotenv_path, instance_path)
        env = {var: value for var, (value, _) in found.items()}
        values = {name: parser(env[var]) for name, var, parser in _PARSERS if _present(env, var)}
        return cls(**values)

    def require(self, *variables: str) -> Settings:
        """Raise ConfigError for the first of `variables` (env names) that has no value."""
        by_env = {f.metadata["env"]: f.name for f in fields(self)}
        for variable in variables:
            if not getattr(self, by_env[variable]):
                raise ConfigError(variable, "is required but not set")
        return self

    @property
    def retention_seconds(self) -> int:
        """NBRELAY_RETENTION_DAYS in seconds: the TTL of every key nbrelay writes."""
        return self.retention_days * 24 * 3600

    @property
    def signing_secret(self) -> str:
        """The secret that signs new callback tokens (the first of NBRELAY_SECRET)."""
        self.require("NBRELAY_SECRET")
        return self.secrets[0]

    @property
    def shown_redis_url(self) -> str | None:
        """NBRELAY_REDIS_URL fit for a banner or a log line: its password masked."""
        return masked_url(self.redis_url) if self.redis_url else None

    @property
    def log_secrets(self) -> tuple[str, ...]:
        """Every configured secret value, for the log redaction of each process."""
        redis_password = urlsplit(self.redis_url).password if self.redis_url else None
        values = (
            *self.secrets,
            self.api_token,
            self.ingest_token,
            self.losant_api_token,
            self.metrics_token,
            redis_password,
            unquote(redis_password) if redis_password else None,
        )
        return tuple(dict.fromkeys(v for v in values if v))

    def describe(self) -> dict[str, str]:
        """Every setting by variable name, secrets masked: safe to print or log."""
        shown = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret"):
                shown[f.metadata["env"]] = "(set)" if value else "(not set)"
            elif f.name == "redis_url" and value:
                shown[f.metadata["env"]] = masked_url(value)
            elif isinstance(value, tuple):
                shown[f.metadata["env"]] = ",".join(map(str, value)) or "(not set)"
            else:
                shown[f.metadata["env"]] = "(not set)" if value is None else str(value)
        return shown

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.describe().items())
        return f"Settings({shown})"


def sources(
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | Path | None = DOTENV,
    instance_path: str | Path | None = INSTANCE_ENV,
) -> dict[str, tuple[str, str]]:
    """Every variable with its raw value and where that came from: `ENVIRONMENT` or the path of
    the file that set it; the first source that sets a variable wins."""
    found: dict[str, tuple[str, str]] = {}
    for path in (instance_path, dotenv_path):
        if path is not None and Path(path).is_file():
            values = dotenv_values(path).items()
            found.update({var: (value, str(path)) for var, value in values if value is not None})
    environment = os.environ if environ is None else environ
    found.update({var: (value, ENVIRONMENT) for var, value in environment.items()})
    return found


def masked_url(url: str) -> str:
    """`url` with the password of its user information replaced by `****`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))


def _present(env: Mapping[str, str], variable: str) -> bool:
    return env.get(variable, "").strip() != ""


def _url(variable: str, schemes: tuple[str, ...]):
    def parse(raw: str) -> str:
        value = raw.strip()
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ConfigError(
                variable, f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        if parts.scheme in ("http", "https") and not parts.netloc:
            raise ConfigError(variable, "must be a URL with a host")
        return value.rstrip("/") if parts.scheme in ("http", "https") else value

    return parse


def _object_id(variable: str):
    def parse(raw: str) -> str:
        value = raw.strip()
        if not OBJECT_ID.fullmatch(value):
            raise ConfigError(variable, "must be a 24-character hexadecimal Losant id")
        return value

    return parse


def _secret(variable: str):
    def parse(raw: str) -> str:
        value = raw.strip()
        if any(c.isspace() for c in value):
            raise ConfigError(variable, "must not contain white space")
        return value

    return parse


def _token(variable: str):
    """A bearer token nbrelay checks: no white space, and long enough not to be guessed."""
    no_space = _secret(variable)

    def parse(raw: str) -> str:
        value = no_space(raw)
        if len(value) < defaults.MIN_TOKEN_LENGTH:
            minimum = defaults.MIN_TOKEN_LENGTH
            raise ConfigError(variable, f"must be at least {minimum} characters long")
        return value

    return parse


def _secrets(raw: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in raw.split(","))
    if any(not v for v in values):
        raise ConfigError("NBRELAY_SECRET", "has an empty entry in its comma-separated list")
    if any(len(v) < defaults.MIN_SECRET_LENGTH for v in values):
        minimum = defaults.MIN_SECRET_LENGTH
        message = f"each secret must be at least {minimum} characters long"
        raise ConfigError("NBRELAY_SECRET", message)
    return values


def parse_bind(variable: str, raw: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets) as (host, port); the port is 1-65535."""
    host, _, port = raw.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(variable, f"must be HOST:PORT with a port from 1 to 65535, got {raw!r}")
    return host, int(port)


def _bind(variable: str):
    def parse(raw: str) -> str:
        parse_bind(variable, raw)
        return raw.strip()

    return parse


def _choice(variable: str, choices: tuple[str, ...]):
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(variable, f"must be one of {', '.join(choices)}, got {raw.strip()!r}")
        return value

    return parse


def _existing_file(raw: str) -> Path:
    path = Path(raw.strip()).expanduser()
    if not path.is_file():
        raise ConfigError("NBRELAY_PIPELINES", f"file not found: {path}")
    return path


def _whole_number(variable: str, minimum: int):
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(variable, f"must be a whole number, got {raw.strip()!r}") from None
        if value < minimum:
            raise ConfigError(variable, f"must be at least {minimum}, got {value}")
        return value

    return parse


def _positive_number(variable: str):
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(
                variable, f"must be a number of seconds, got {raw.strip()!r}"
            ) from None
        if not value > 0 or value == float("inf"):
            raise ConfigError(variable, f"must be a positive number of seconds, got {raw.strip()}")
        return value

    return parse


def _notebook_list(raw: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in raw.split(","))
    if any(not v for v in values):
        raise ConfigError("NBRELAY_WATCH", "has an empty entry in its comma-separated list")
    return tuple(dict.fromkeys(values))


def _intervals(raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v.strip()) for v in raw.split(","))
    except ValueError:
        raise ConfigError(
            "NBRELAY_SYNC_RETRY_INTERVALS", "must be comma-separated whole numbers of seconds"
        ) from None
    if any(v < 0 for v in values):
        raise ConfigError("NBRELAY_SYNC_RETRY_INTERVALS", "intervals must not be negative")
    return values


_PARSERS = [
    ("redis_url", "NBRELAY_REDIS_URL", _url("NBRELAY_REDIS_URL", ("redis", "rediss", "unix"))),
    ("losant_api_url", "LOSANT_API_URL", _url("LOSANT_API_URL", ("http", "https"))),
    ("losant_api_token", "LOSANT_API_TOKEN", _secret("LOSANT_API_TOKEN")),
    ("losant_application_id", "LOSANT_APPLICATION_ID", _object_id("LOSANT_APPLICATION_ID")),
    ("public_url", "NBRELAY_PUBLIC_URL", _url("NBRELAY_PUBLIC_URL", ("http", "https"))),
    ("secrets", "NBRELAY_SECRET", _secrets),
    ("api_token", "NBRELAY_API_TOKEN", _token("NBRELAY_API_TOKEN")),
    ("ingest_token", "NBRELAY_INGEST_TOKEN", _token("NBRELAY_INGEST_TOKEN")),
    ("metrics_token", "NBRELAY_METRICS_TOKEN", _token("NBRELAY_METRICS_TOKEN")),
    ("admin_bind", "NBRELAY_ADMIN_BIND", _bind("NBRELAY_ADMIN_BIND")),
    (
        "trusted_proxies",
        "NBRELAY_TRUSTED_PROXIES",
        _whole_number("NBRELAY_TRUSTED_PROXIES", 0),
    ),
    ("pipelines_path", "NBRELAY_PIPELINES", _existing_file),
    ("retention_days", "NBRELAY_RETENTION_DAYS", _whole_number("NBRELAY_RETENTION_DAYS", 1)),
    ("watch", "NBRELAY_WATCH", _notebook_list),
    ("poll_interval", "NBRELAY_POLL_INTERVAL", _positive_number("NBRELAY_POLL_INTERVAL")),
    (
        "poll_busy_interval",
        "NBRELAY_POLL_BUSY_INTERVAL",
        _positive_number("NBRELAY_POLL_BUSY_INTERVAL"),
    ),
    (
        "poll_busy_window",
        "NBRELAY_POLL_BUSY_WINDOW",
        _positive_number("NBRELAY_POLL_BUSY_WINDOW"),
    ),
    (
        "reconcile_interval",
        "NBRELAY_RECONCILE_INTERVAL",
        _positive_number("NBRELAY_RECONCILE_INTERVAL"),
    ),
    ("sync_lease", "NBRELAY_SYNC_LEASE", _positive_number("NBRELAY_SYNC_LEASE")),
    ("sync_retry_intervals", "NBRELAY_SYNC_RETRY_INTERVALS", _intervals),
    ("action_lease", "NBRELAY_ACTION_LEASE", _positive_number("NBRELAY_ACTION_LEASE")),
    ("log_level", "NBRELAY_LOG_LEVEL", _choice("NBRELAY_LOG_LEVEL", LOG_LEVELS)),
    ("log_format", "NBRELAY_LOG_FORMAT", _choice("NBRELAY_LOG_FORMAT", LOG_FORMATS)),
]
