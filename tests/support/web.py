"""The settings the web's tests build their app with: the test's Redis, the callback secret and
API token below, a public URL, and a Losant that is either unreachable (`web_settings`) or the
sandbox (`make_components(**CONSOLE)`)."""

from __future__ import annotations

from service.config import Settings

API_TOKEN = "api-token-0123456789"
SECRET = "callback-secret-0123456789"
OLD_SECRET = "older-secret-0123456789"  # rotated out: NBRELAY_SECRET=f"{SECRET},{OLD_SECRET}"
APP = "575ec8687ae143cd83dc4a97"
NB = "5c782b8d4f3a8e51c1db42e4"
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens there: Losant is never reached

CONSOLE = {
    "NBRELAY_PUBLIC_URL": "https://relay.example.com",
    "NBRELAY_SECRET": SECRET,
    "NBRELAY_API_TOKEN": API_TOKEN,
}


def settings_for(redis_url: str, **env: str) -> Settings:
    """Settings of `env` alone on `redis_url` (no .env file); an empty value unsets one."""
    return Settings.from_env({"NBRELAY_REDIS_URL": redis_url, **env}, dotenv_path=None)


def web_settings(redis_url: str, **env: str) -> Settings:
    """The web's settings on `redis_url` with CONSOLE's and an unreachable Losant (application
    APP); keyword arguments override them (`NBRELAY_API_TOKEN=""` unsets the token)."""
    losant = {
        "LOSANT_API_URL": UNREACHABLE,
        "LOSANT_API_TOKEN": "losant-token",
        "LOSANT_APPLICATION_ID": APP,
    }
    return settings_for(redis_url, **{**losant, **CONSOLE, **env})
