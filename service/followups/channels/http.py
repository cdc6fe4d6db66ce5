"""One HTTP POST for the HTTP-based channels, and the rule that turns its result into success,
a transient failure or a permanent one. Errors name the host only: a Slack webhook's path and a
webhook's query string can be secrets; the receiver's answer is quoted with every channel secret
taken out."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from service import __version__, defaults, logs
from service.followups.channels.base import ChannelError

USER_AGENT = f"nbrelay/{__version__}"
TRANSIENT_STATUSES = {408, 425, 429}


def require_http_url(url: str, what: str = "an http(s) URL") -> None:
    """Raise ValueError (a pipeline file problem) unless `url` is an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be {what}")


def host_of(url: str) -> str:
    """The host (and port) of `url`: the only part of it an error message may show."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def post(
    kind: str, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> requests.Response:
    """POST `body` to `url` and return the 2xx response, or raise ChannelError.

    Redirects are not followed (a 3xx is a misconfigured endpoint). 408, 425, 429 and 5xx are
    transient; any other status is permanent.
    """
    host = host_of(url)
    try:
        response = requests.post(
            url,
            data=body,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise ChannelError(f"{kind}: no answer from {host} within {timeout:g}s") from None
    except requests.RequestException as exc:
        raise ChannelError(f"{kind}: cannot reach {host} ({type(exc).__name__})") from None
    if 200 <= response.status_code < 300:
        return response
    status = response.status_code
    # A receiver may echo what it was sent (a routing key, an API key): the secrets go.
    excerpt = logs.redact(" ".join(response.text[: defaults.CHANNEL_REPLY_EXCERPT].split()))
    message = f"{kind}: HTTP {status} from {host}" + (f": {excerpt}" if excerpt else "")
    permanent = status not in TRANSIENT_STATUSES and status < 500
    raise ChannelError(message, permanent=permanent, retry_after=_retry_after(response))


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
