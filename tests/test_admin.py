"""The admin surface is locked: only callbacks, the relay and the health probes answer without
credentials; the dashboard needs a sign-in (session cookie, CSRF-protected forms, a brake on
guessing), /metrics its own bearer token, and with an admin listener the public one serves the
public routes alone. View logic through Flask's test client; the listener split with a real
`nbrelay web --admin-bind`."""

import base64
import json
import os
import re
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from service import defaults, keys
from service.config import ConfigError, Settings
from service.runtime.processes import free_port
from service.runtime.supervisor import nbrelay_command
from service.web import create_app
from service.web.resources import EXTENSION
from service.web.session import COOKIE, SessionCodec, signing_keys
from tests.support.dashboard import csrf_token, sign_in, signed_in_session
from tests.support.web import API_TOKEN, APP, NB, OLD_SECRET, SECRET, web_settings

METRICS_TOKEN = "metrics-token-0123456789"
EXECUTION = "5c7d3f9cd32c87a49f04c260"
CUSTOMER = "ACME Customer Holdings"
SIGNED_URL = "https://files.example.com/out/report.html?X-Amz-Signature=deadbeef0123"
INPUT_URL = "https://files.example.com/in/data.csv?X-Amz-Signature=cafebabe4567"
PUBLIC_RULES = {"/callbacks/<token>", "/hooks/losant", "/healthz", "/readyz"}


def make_settings(redis_url: str, **extra: str) -> Settings:
    """The web's settings with a plain-HTTP public URL and a rotated-out secret still accepted."""
    plain = {
        "NBRELAY_PUBLIC_URL": "http://relay.example.com",
        "NBRELAY_SECRET": f"{SECRET},{OLD_SECRET}",
    }
    return web_settings(redis_url, **{**plain, **extra})


@pytest.fixture
def settings(redis, redis_server):
    return make_settings(redis_server.url)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def stored(app):
    components = app.extensions[EXTENSION]
    fence = components.syncs.begin(APP, NB, "job", 0).fence
    record = {
        "id": EXECUTION,
        "notebookId": NB,
        "applicationId": APP,
        "status": "completed",
        "runQueuedAt": "2026-01-01T10:00:00.000Z",
        "templateContext": json.dumps({"customer": CUSTOMER, "region": "north-7"}),
        "inputInfo": {"data.csv": {"url": INPUT_URL}},
        "outputInfo": {"report.html": {"url": SIGNED_URL, "size": 1234}},
    }
    components.store.upsert(APP, NB, [record], fence=fence)
    return record


def placeholder(variable: str) -> str:
    return EXECUTION if variable == "execution_id" else "x"


def goes_to_sign_in(response) -> bool:
    return response.status_code == 303 and urlsplit(response.headers["Location"]).path == "/signin"


def session_cookie(response) -> str:
    (header,) = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]
    return header


# nothing but the public routes answers without credentials


def test_every_route_but_the_public_ones_needs_credentials(app, client, stored):
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "dashboard.static") or rule.rule in PUBLIC_RULES:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: placeholder(m[1]), rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method)
            text = response.get_data(as_text=True)
            if rule.rule == "/signin" and method == "GET":  # the form where credentials go in
                assert response.status_code == 200 and 'name="token"' in text
                assert EXECUTION not in text and "Recent executions" not in text
            else:
                refused = response.status_code in (401, 403) or goes_to_sign_in(response)
                assert refused, (method, path, response.status_code, text[:300])
            checked += 1
    assert checked >= 18


def test_unauthenticated_pages_go_to_the_sign_in_form_and_show_nothing(client, stored):
    for path in ("/", f"/executions/{EXECUTION}", f"/executions/{EXECUTION}/outputs/report.html"):
        response = client.get(path)
        assert goes_to_sign_in(response), path
        shown = response.get_data(as_text=True) + response.headers["Location"]
        assert CUSTOMER not in shown and "X-Amz-Signature" not in shown and "completed" not in shown
    response = client.get(f"/executions/{EXECUTION}?reveal=1")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["next"] == [f"/executions/{EXECUTION}?reveal=1"]


def test_a_page_polling_after_its_session_ended_goes_to_the_sign_in_form_whole(client):
    """htmx would put a redirected answer inside the page; it is told to load the form."""
    response = client.get("/executions", headers={"HX-Request": "true"})
    assert response.status_code == 204 and not response.get_data()
    target = urlsplit(response.headers["HX-Redirect"])
    assert target.path == "/signin" and parse_qs(target.query)["next"] == ["/executions"]


def test_metrics_need_their_own_token(redis, redis_server):
    without = create_app(make_settings(redis_server.url)).test_client()
    refused = without.get("/metrics")
    assert refused.status_code == 403 and refused.mimetype == "application/json"
    assert refused.get_json()["type"] == "Forbidden"
    assert "NBRELAY_METRICS_TOKEN" in refused.get_json()["message"]
    assert (
        without.get("/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 403
    )

    client = create_app(
        make_settings(redis_server.url, NBRELAY_METRICS_TOKEN=METRICS_TOKEN)
    ).test_client()
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {API_TOKEN}"},
    ):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 401 and answer.get_json()["type"] == "Unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    good = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert good.status_code == 200 and "nbrelay_executions" in good.get_data(as_text=True)


# signing in and out


def test_sign_in_and_out(client, stored):
    signed = sign_in(client, API_TOKEN, next_path=f"/executions/{EXECUTION}")
    assert signed.status_code == 303 and signed.headers["Location"] == f"/executions/{EXECUTION}"
    assert client.get(f"/executions/{EXECUTION}").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and EXECUTION in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # `no-referrer` would make browsers send `Origin: null` with the page's forms, which the
    # CSRF check refuses; `same-origin` still tells other sites nothing
    assert page.headers["Referrer-Policy"] == "same-origin"

    copied = client.get_cookie(COOKIE).value
    form = csrf_token(page.get_data(as_text=True))
    out = client.post("/signout", data={"csrf_token": form})
    assert out.status_code == 303 and urlsplit(out.headers["Location"]).path == "/signin"
    assert "Max-Age=0" in session_cookie(out) or "Expires=Thu, 01 Jan 1970" in session_cookie(out)
    assert goes_to_sign_in(client.get("/"))
    # a copy of the cookie taken before signing out is refused too
    client.set_cookie(COOKIE, copied)
    assert goes_to_sign_in(client.get("/"))


def test_the_overview_warns_of_executions_logs_could_not_show(app, client, stored):
    other = "6" * 24
    app.extensions[EXTENSION].unseen.add(APP, NB, 40, gap=1000)
    app.extensions[EXTENSION].unseen.add(APP, other, 3, gap=1000)
    sign_in(client, API_TOKEN)
    page = client.get("/").get_data(as_text=True)
    assert f"up to 3 executions of notebook {other} may not have been seen" in page
    assert f"up to 40 executions of notebook {NB} may not have been seen" in page
    assert page.index(other) < page.index(f"notebook {NB}")  # the latest warning first


def test_wrong_token_is_refused_with_a_message(client):
    form = client.get("/signin").get_data(as_text=True)
    answer = client.post(
        "/signin", data={"token": "api-token-guess", "csrf_token": csrf_token(form)}
    )
    assert answer.status_code == 401
    assert "Wrong token" in answer.get_data(as_text=True)
    assert "api-token-guess" not in answer.get_data(as_text=True)
    assert goes_to_sign_in(client.get("/"))


def test_session_cookie_flags(client, redis, redis_server):
    header = session_cookie(sign_in(client, API_TOKEN))
    attributes = [part.strip() for part in header.split(";")]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes and "Path=/" in attributes
    assert f"Max-Age={defaults.DASHBOARD_SESSION_LIFETIME}" in attributes
    assert any(a.startswith("Expires=") for a in attributes)
    assert "Secure" not in attributes  # http public URL, http request

    over_https = create_app(make_settings(redis_server.url)).test_client()
    secure = session_cookie(over_https.get("/signin", base_url="https://localhost"))
    assert "Secure" in [part.strip() for part in secure.split(";")]
    https_public = make_settings(redis_server.url, NBRELAY_PUBLIC_URL="https://relay.example.com")
    behind_proxy = create_app(https_public).test_client()
    assert "Secure" in [p.strip() for p in session_cookie(behind_proxy.get("/signin")).split(";")]


def test_tampered_forged_and_expired_cookies_are_refused(client, settings, stored):
    anonymous = client.get("/signin")
    value = session_cookie(anonymous).split(";")[0].split("=", 1)[1]
    body, signature = value.split(".")
    claims = json.loads(_unb64(body))
    claims["in"] = True
    promoted = f"{_b64(json.dumps(claims).encode())}.{signature}"

    lifetime = defaults.DASHBOARD_SESSION_LIFETIME
    keys_now = signing_keys(settings)
    expired = SessionCodec(keys_now, clock=lambda: time.time() - lifetime - 1)
    other_token = signing_keys(
        make_settings(settings.redis_url, NBRELAY_API_TOKEN="another-token-123")
    )
    for cookie in (
        promoted,
        value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
        "not-a-session",
        expired.encode(expired.new(signed_in=True)),
        SessionCodec(other_token).encode(SessionCodec(other_token).new(signed_in=True)),
    ):
        client.set_cookie(COOKIE, cookie)
        assert goes_to_sign_in(client.get("/")), cookie

    old_secret_only = SessionCodec(keys_now[1:])  # signed before NBRELAY_SECRET was rotated
    client.set_cookie(COOKIE, old_secret_only.encode(old_secret_only.new(signed_in=True)))
    assert client.get("/").status_code == 200


def test_the_console_serves_its_stylesheet_and_htmx_to_anyone(client):
    """The sign-in form needs them too; the dashboard's `/static` is not shadowed by the app."""
    for path, kind in (
        ("/static/console.css", "text/css"),
        ("/static/vendor/htmx-2.0.11.min.js", "text/javascript"),
    ):
        answer = client.get(path)
        assert answer.status_code == 200 and answer.content_type.startswith(kind), path


# CSRF and redirects


def test_forms_need_the_csrf_token_and_the_same_origin(client):
    token = csrf_token(client.get("/signin").get_data(as_text=True))
    for data, headers in (
        ({"token": API_TOKEN}, {}),
        ({"token": API_TOKEN, "csrf_token": "x" * 43}, {}),
        ({"token": API_TOKEN, "csrf_token": token}, {"Origin": "https://evil.example"}),
        ({"token": API_TOKEN, "csrf_token": token}, {"Origin": "null"}),
        ({"token": API_TOKEN, "csrf_token": token}, {"Origin": "http://[::1"}),
        ({"token": API_TOKEN, "csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        answer = client.post("/signin", data=data, headers=headers)
        assert answer.status_code == 403, (data, headers)
        assert answer.get_json()["type"] == "Forbidden"
        assert goes_to_sign_in(client.get("/"))
    same_origin = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    answer = client.post(
        "/signin", data={"token": API_TOKEN, "csrf_token": token}, headers=same_origin
    )
    assert answer.status_code == 303

    # signed in: sign-out needs the new session's token (the old one was replaced at sign-in)
    assert client.post("/signout", data={"csrf_token": token}).status_code == 403
    assert client.post("/signout").status_code == 403
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
     "/\r\nLocation: https://evil.example", "http:/evil.example", ""],
)  # fmt: skip
def test_next_only_goes_to_local_paths(client, target):
    answer = sign_in(client, API_TOKEN, next_path=target)
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    again = client.get("/signin", query_string={"next": target})
    assert again.status_code == 303 and again.headers["Location"] == "/"


def test_failed_sign_ins_are_throttled_per_client(client, redis):
    form = csrf_token(client.get("/signin").get_data(as_text=True))
    for _ in range(defaults.SIGN_IN_MAX_FAILURES):
        assert (
            client.post("/signin", data={"token": "guess", "csrf_token": form}).status_code == 401
        )
    blocked = client.post("/signin", data={"token": API_TOKEN, "csrf_token": form})
    assert blocked.status_code == 429 and "Too many" in blocked.get_data(as_text=True)
    assert 0 < int(blocked.headers["Retry-After"]) <= defaults.SIGN_IN_FAILURE_WINDOW
    assert 0 < redis.ttl(keys.sign_in_failures("127.0.0.1")) <= defaults.SIGN_IN_FAILURE_WINDOW

    elsewhere = {"REMOTE_ADDR": "10.1.2.3"}
    other = client.application.test_client()
    token = csrf_token(other.get("/signin", environ_base=elsewhere).get_data(as_text=True))
    signed = other.post(
        "/signin", data={"token": API_TOKEN, "csrf_token": token}, environ_base=elsewhere
    )
    assert signed.status_code == 303


def fail_sign_ins(client, times: int, **environ: str) -> None:
    form = csrf_token(client.get("/signin", environ_base=environ).get_data(as_text=True))
    for _ in range(times):
        wrong = client.post(
            "/signin", data={"token": "guess", "csrf_token": form}, environ_base=environ
        )
        assert wrong.status_code == 401


def test_a_forwarded_for_header_is_ignored_unless_proxies_are_trusted(client):
    fail_sign_ins(client, defaults.SIGN_IN_MAX_FAILURES)
    spoofed = {"HTTP_X_FORWARDED_FOR": "198.51.100.99"}
    form = csrf_token(client.get("/signin", environ_base=spoofed).get_data(as_text=True))
    again = client.post(
        "/signin", data={"token": API_TOKEN, "csrf_token": form}, environ_base=spoofed
    )
    assert again.status_code == 429


def test_behind_trusted_proxies_failures_count_per_forwarded_client(redis, redis_server):
    app = create_app(make_settings(redis_server.url, NBRELAY_TRUSTED_PROXIES="1"))
    via_proxy = {"REMOTE_ADDR": "10.0.0.2"}
    attacker = {**via_proxy, "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    fail_sign_ins(app.test_client(), defaults.SIGN_IN_MAX_FAILURES, **attacker)
    assert int(redis.get(keys.sign_in_failures("203.0.113.7"))) == defaults.SIGN_IN_MAX_FAILURES
    assert redis.get(keys.sign_in_failures("10.0.0.2")) is None

    operator = app.test_client()
    colleague = {**via_proxy, "HTTP_X_FORWARDED_FOR": "203.0.113.8"}
    form = csrf_token(operator.get("/signin", environ_base=colleague).get_data(as_text=True))
    signed = operator.post(
        "/signin", data={"token": API_TOKEN, "csrf_token": form}, environ_base=colleague
    )
    assert signed.status_code == 303


def test_without_api_token_sign_in_is_disabled(redis, redis_server, stored):
    client = create_app(make_settings(redis_server.url, NBRELAY_API_TOKEN="")).test_client()
    assert goes_to_sign_in(client.get("/"))
    page = client.get("/signin")
    assert page.status_code == 403 and "Sign-in is disabled" in page.get_data(as_text=True)
    assert EXECUTION not in page.get_data(as_text=True)
    assert client.post("/signin", data={"token": ""}).status_code == 403


# what the execution page shows


def test_context_inputs_and_signed_urls_hidden_unless_revealed(client, stored):
    sign_in(client, API_TOKEN)
    page = client.get(f"/executions/{EXECUTION}").get_data(as_text=True)
    assert "customer" in page and "region" in page  # the keys
    for secret in (CUSTOMER, "north-7", "X-Amz-Signature", "files.example.com", "deadbeef"):
        assert secret not in page, secret
    assert f"/executions/{EXECUTION}/outputs/report.html" in page

    revealed = client.get(f"/executions/{EXECUTION}?reveal=1").get_data(as_text=True)
    assert CUSTOMER in revealed and "north-7" in revealed and INPUT_URL.split("?")[0] in revealed

    output = client.get(f"/executions/{EXECUTION}/outputs/report.html")
    assert output.status_code == 302 and output.headers["Location"] == SIGNED_URL
    assert client.get(f"/executions/{EXECUTION}/outputs/other.csv").status_code == 404


# settings


def test_metrics_token_is_a_secret_and_admin_bind_is_checked():
    settings = Settings.from_env(
        {"NBRELAY_METRICS_TOKEN": METRICS_TOKEN, "NBRELAY_ADMIN_BIND": "127.0.0.1:8090"},
        dotenv_path=None,
    )
    assert settings.describe()["NBRELAY_METRICS_TOKEN"] == "(set)"
    assert METRICS_TOKEN not in repr(settings)
    assert settings.admin_bind == "127.0.0.1:8090"
    for wrong in ("8090", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", ":8090"):
        with pytest.raises(ConfigError, match="NBRELAY_ADMIN_BIND"):
            Settings.from_env({"NBRELAY_ADMIN_BIND": wrong}, dotenv_path=None)


def test_admin_bind_setting_splits_the_app_by_listening_port(redis, redis_server):
    settings = make_settings(redis_server.url, NBRELAY_ADMIN_BIND="127.0.0.1:8090")
    client = create_app(settings).test_client()
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    admin = {"SERVER_PORT": "8090"}
    assert client.get("/api/executions", headers=bearer).status_code == 404
    assert client.get("/metrics").status_code == 404
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/executions", headers=bearer, environ_overrides=admin).status_code == 200
    assert client.get("/metrics", environ_overrides=admin).status_code == 200


# the admin listener, with a real gunicorn


def test_admin_listener_serves_what_the_public_one_refuses(stack_factory):
    admin_port = free_port()
    stack = stack_factory(
        workers=0,
        scheduler=False,
        env={"NBRELAY_METRICS_TOKEN": ""},
        web_options=("--admin-bind", f"127.0.0.1:{admin_port}"),
    )
    public, admin = stack.url, f"http://127.0.0.1:{admin_port}"
    bearer = {"Authorization": f"Bearer {stack.env['NBRELAY_API_TOKEN']}"}

    def get(url: str, **kwargs) -> requests.Response:
        return requests.get(url, timeout=10, allow_redirects=False, **kwargs)

    assert get(f"{public}/healthz").status_code == 200
    assert get(f"{public}/readyz").status_code == 200
    callback = stack.callback_url(NB)
    assert requests.post(callback, json={}, timeout=10).status_code == 202
    for path in ("/", "/signin", f"/executions/{EXECUTION}", "/metrics", "/api/executions"):
        refused = get(public + path, headers=bearer)
        assert refused.status_code == 404 and refused.json()["type"] == "NotFound", path
    # the Host header does not choose the listener: the socket does
    spoofed = {**bearer, "Host": f"127.0.0.1:{admin_port}"}
    assert get(f"{public}/api/executions", headers=spoofed).status_code == 404

    assert get(f"{admin}/api/executions", headers=bearer).status_code == 200
    assert get(f"{admin}/api/executions").status_code == 401
    assert goes_to_sign_in(get(f"{admin}/"))
    metrics = get(f"{admin}/metrics")  # no NBRELAY_METRICS_TOKEN: open on the private listener
    assert metrics.status_code == 200 and "nbrelay_callbacks_received_total" in metrics.text
    browser = signed_in_session(admin, stack.env["NBRELAY_API_TOKEN"])
    assert "Recent executions" in browser.get(f"{admin}/", timeout=10).text


def test_web_refuses_an_admin_listener_on_its_own_port(tmp_path):
    env = {
        **os.environ,
        "NBRELAY_REDIS_URL": "redis://127.0.0.1:9/0",
        "LOSANT_API_TOKEN": "losant-token",
        "LOSANT_APPLICATION_ID": APP,
        "NBRELAY_PUBLIC_URL": "http://relay.example.com",
        "NBRELAY_SECRET": SECRET,
        "NBRELAY_API_TOKEN": API_TOKEN,
        "NBRELAY_ADMIN_BIND": "127.0.0.1:8080",
    }
    result = subprocess.run(
        nbrelay_command("web", "--port", "8080"),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "port of its own" in result.stderr


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
