"""The dashboard as a browser uses it: signing in (read the form's CSRF token, post the API
token), reading a page, pressing a page's button."""

from __future__ import annotations

import re

import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.support.web import API_TOKEN

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


def signed_in(app: Flask, token: str = API_TOKEN) -> FlaskClient:
    """A test client of `app`, signed in with `token`."""
    client = app.test_client()
    answer = sign_in(client, token)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    return client


def page(client, path: str) -> str:
    """The text of the page at `path`, which must answer 200."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def press(client, page_path: str, action: str, data: dict | None = None, **headers: str):
    """Press the button (a form) on the page that posts to `action`, as a browser does: with
    the page's CSRF token and the form's further `data`; returns the answer."""
    text = page(client, page_path)
    assert f'action="{action}"' in text, f"no button posting to {action}"
    form = {"csrf_token": csrf_token(text), **(data or {})}
    return client.post(action, data=form, headers=headers)


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
