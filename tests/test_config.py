import subprocess
import sys
from pathlib import Path

import pytest

from service.config import DEPLOYMENT_REQUIRED, ConfigError, Settings

VALID = {
    "NBRELAY_REDIS_URL": "redis://nbrelay:redis-password-42@127.0.0.1:6400/0",
    "LOSANT_API_URL": "https://api.losant.com/",
    "LOSANT_API_TOKEN": "tok-very-secret-value",
    "LOSANT_APPLICATION_ID": "575ec8687ae143cd83dc4a97",
    "NBRELAY_PUBLIC_URL": "https://relay.example.com/",
    "NBRELAY_SECRET": "first-secret-0123456789,second-secret-0123456789",
    "NBRELAY_API_TOKEN": "api-token-secret",
    "NBRELAY_INGEST_TOKEN": "ingest-token-secret",
    "NBRELAY_RETENTION_DAYS": "7",
}
SECRET_VALUES = [
    "tok-very-secret-value",
    "first-secret",
    "api-token-secret",
    "ingest-token-secret",
    "redis-password-42",
]


def test_valid_environment_is_parsed_and_typed():
    settings = Settings.from_env(VALID, dotenv_path=None)
    assert settings.losant_api_url == "https://api.losant.com"
    assert settings.public_url == "https://relay.example.com"
    assert settings.secrets == ("first-secret-0123456789", "second-secret-0123456789")
    assert settings.signing_secret == "first-secret-0123456789"
    assert settings.retention_days == 7
    assert settings.require(*DEPLOYMENT_REQUIRED) is settings


def test_event_pipeline_settings_are_parsed():
    settings = Settings.from_env(
        {
            "NBRELAY_WATCH": "report, 5c782b8d4f3a8e51c1db42e4,report",
            "NBRELAY_POLL_INTERVAL": "0.5",
            "NBRELAY_POLL_BUSY_INTERVAL": "0.25",
            "NBRELAY_POLL_BUSY_WINDOW": "90",
            "NBRELAY_SYNC_RETRY_INTERVALS": "1, 5,30",
        },
        dotenv_path=None,
    )
    assert settings.watch == ("report", "5c782b8d4f3a8e51c1db42e4")
    assert settings.poll_interval == 0.5
    assert settings.poll_busy_interval == 0.25 and settings.poll_busy_window == 90
    assert settings.sync_retry_intervals == (1, 5, 30)
    assert settings.describe()["NBRELAY_WATCH"] == "report,5c782b8d4f3a8e51c1db42e4"


def test_defaults_apply_when_nothing_is_set():
    settings = Settings.from_env({}, dotenv_path=None)
    assert settings.losant_api_url == "https://api.losant.com"
    assert settings.retention_days == 30
    assert settings.redis_url is None
    assert (settings.poll_interval, settings.poll_busy_interval) == (300, 10)
    assert settings.poll_busy_window == 300


def test_secrets_never_appear_in_repr_or_description():
    settings = Settings.from_env(VALID, dotenv_path=None)
    shown = repr(settings) + str(settings.describe())
    for secret in SECRET_VALUES:
        assert secret not in shown
    assert settings.describe()["LOSANT_API_TOKEN"] == "(set)"
    masked = "redis://nbrelay:****@127.0.0.1:6400/0"
    assert settings.describe()["NBRELAY_REDIS_URL"] == settings.shown_redis_url == masked
    assert masked in repr(settings)


def test_every_secret_value_is_registered_for_log_redaction():
    settings = Settings.from_env(VALID, dotenv_path=None)
    assert set(settings.log_secrets) == {
        "tok-very-secret-value",
        "first-secret-0123456789",
        "second-secret-0123456789",
        "api-token-secret",
        "ingest-token-secret",
        "redis-password-42",
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw-only@host:6379/1", "redis://:****@host:6379/1"),
        ("rediss://user:p%40ss@host", "rediss://user:****@host"),
        ("redis://user@host", "redis://user@host"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_a_redis_url_is_shown_without_its_password(url, shown):
    settings = Settings.from_env({"NBRELAY_REDIS_URL": url}, dotenv_path=None)
    assert settings.shown_redis_url == shown


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("NBRELAY_REDIS_URL", "localhost:6379", "must be a URL starting with redis://"),
        ("LOSANT_API_URL", "ftp://api.losant.com", "must be a URL starting with http://"),
        ("LOSANT_APPLICATION_ID", "not-an-id", "24-character hexadecimal"),
        ("NBRELAY_PUBLIC_URL", "relay.example.com", "must be a URL starting with http://"),
        ("NBRELAY_SECRET", "short", "at least 16 characters"),
        ("NBRELAY_SECRET", "a-long-enough-secret-1,,", "empty entry"),
        ("NBRELAY_RETENTION_DAYS", "thirty", "whole number"),
        ("NBRELAY_RETENTION_DAYS", "0", "at least 1"),
        ("NBRELAY_TRUSTED_PROXIES", "-1", "at least 0"),
        ("NBRELAY_TRUSTED_PROXIES", "one", "whole number"),
        ("NBRELAY_PIPELINES", "/nonexistent/pipelines.yaml", "file not found"),
        ("LOSANT_API_TOKEN", "has space", "white space"),
        ("NBRELAY_API_TOKEN", "fifteen-chars-x", "at least 16 characters"),
        ("NBRELAY_INGEST_TOKEN", "short", "at least 16 characters"),
        ("NBRELAY_METRICS_TOKEN", "short", "at least 16 characters"),
        ("NBRELAY_WATCH", "report,,etl", "empty entry"),
        ("NBRELAY_POLL_INTERVAL", "0", "positive number of seconds"),
        ("NBRELAY_POLL_INTERVAL", "often", "number of seconds"),
        ("NBRELAY_POLL_BUSY_INTERVAL", "0", "positive number of seconds"),
        ("NBRELAY_POLL_BUSY_WINDOW", "soon", "number of seconds"),
        ("NBRELAY_RECONCILE_INTERVAL", "-2", "positive number of seconds"),
        ("NBRELAY_SYNC_LEASE", "inf", "positive number of seconds"),
        ("NBRELAY_SYNC_RETRY_INTERVALS", "10,x", "whole numbers of seconds"),
        ("NBRELAY_SYNC_RETRY_INTERVALS", "10,-1", "must not be negative"),
    ],
)
def test_malformed_value_names_the_variable(variable, value, problem):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**VALID, variable: value}, dotenv_path=None)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert problem in str(info.value)


@pytest.mark.parametrize("variable", DEPLOYMENT_REQUIRED)
def test_missing_required_variable_names_it(variable):
    env = {k: v for k, v in VALID.items() if k != variable}
    with pytest.raises(ConfigError, match=f"^{variable}: is required but not set$"):
        Settings.from_env(env, dotenv_path=None).require(*DEPLOYMENT_REQUIRED)


def test_dotenv_fills_in_what_the_environment_lacks(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("NBRELAY_RETENTION_DAYS=9\nLOSANT_API_URL=http://from-dotenv:1\n")
    settings = Settings.from_env({"LOSANT_API_URL": "http://from-env:2"}, dotenv_path=dotenv)
    assert settings.retention_days == 9
    assert settings.losant_api_url == "http://from-env:2"


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    nbrelay = Path(sys.executable).with_name("nbrelay")
    return subprocess.run(
        [str(nbrelay), *args], env={"PATH": "/usr/bin:/bin", **env}, cwd=cwd,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("variable", DEPLOYMENT_REQUIRED)
def test_cli_reports_missing_variable_in_one_line_with_exit_2(variable, tmp_path):
    env = {k: v for k, v in VALID.items() if k != variable}
    result = run_cli("config", "check", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"nbrelay: error: {variable}: is required but not set\n"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NBRELAY_REDIS_URL", "nonsense"),
        ("LOSANT_APPLICATION_ID", "123"),
        ("NBRELAY_SECRET", "short"),
        ("NBRELAY_API_TOKEN", "short"),
        ("NBRELAY_RETENTION_DAYS", "-3"),
        ("NBRELAY_PUBLIC_URL", "not a url"),
    ],
)
def test_cli_reports_malformed_variable_in_one_line_with_exit_2(variable, value, tmp_path):
    result = run_cli("config", "check", env={**VALID, variable: value}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"nbrelay: error: {variable}: ")
    assert result.stderr.count("\n") == 1
    for secret in SECRET_VALUES:
        assert secret not in result.stderr + result.stdout


def test_cli_check_and_show_with_valid_configuration(tmp_path):
    result = run_cli("config", "check", env=VALID, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "configuration is valid\n")
    shown = run_cli("config", "show", env=VALID, cwd=tmp_path)
    assert shown.returncode == 0
    assert "LOSANT_APPLICATION_ID=575ec8687ae143cd83dc4a97" in shown.stdout
    assert "NBRELAY_SECRET=(set)" in shown.stdout
    for secret in SECRET_VALUES:
        assert secret not in shown.stdout
