"""Serving the app with gunicorn, configured from `service.web.gunicorn_settings`."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from service.config import Settings
from service.web import gunicorn_settings


class WebServer(BaseApplication):
    """gunicorn running `create_app(settings)` in each worker process, bound to host:port, and
    with `admin` (host, port) to a second, admin listener too (see `service.web.surfaces`)."""

    def __init__(
        self,
        settings: Settings,
        host: str,
        port: int,
        admin: tuple[str, int] | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings
        self.admin_port = admin[1] if admin else None
        binds = [_address(host, port)] + ([_address(*admin)] if admin else [])
        self.overrides = {**overrides, "bind": binds, "proc_name": "nbrelay-web"}
        super().__init__()

    def load_config(self) -> None:
        for name in self.cfg.settings:
            if name in self.overrides:
                self.cfg.set(name, self.overrides[name])
            elif hasattr(gunicorn_settings, name):
                self.cfg.set(name, getattr(gunicorn_settings, name))

    def load(self):  # noqa: ANN201 - gunicorn expects the WSGI app
        from service.web import create_app

        return create_app(self.settings, admin_port=self.admin_port)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
