"""Signing in to the dashboard as a browser does: read the form's CSRF token, post the API token."""

from __future__ import annotations

import re

import requests

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: str) -> str:
    match = CSRF.search(page)
    assert match, f"no CSRF field in the page: {page[:500]}"
    return match.group(1)


def sign_in(client, token: str, next_path: str | None = None):
    """Sign a Flask test client in; returns the answer to the sign-in POST."""
    form = client.get("/signin").get_data(as_text=True)
    data = {"token": token, "csrf_token": csrf_token(form)}
    if next_path is not None:
        data["next"] = next_path
    return client.post("/signin", data=data)


def signed_in_session(base_url: str, token: str) -> requests.Session:
    """A requests session signed in to the dashboard at `base_url`."""
    browser = requests.Session()
    form = browser.get(f"{base_url}/signin", timeout=10)
    answer = browser.post(
        f"{base_url}/signin",
        data={"token": token, "csrf_token": csrf_token(form.text)},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    return browser
