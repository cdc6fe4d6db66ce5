"""The download of an `externalUrl` input: an HTTP(S) GET of its `sourceUrl` into INPUT_DIR.

Every download is bounded: it follows at most `defaults.INPUT_MAX_REDIRECTS` redirects, writes at
most `defaults.INPUT_MAX_BYTES` bytes (counted as written, after any content decoding, so a small
compressed body cannot unpack into a huge file) and gives up when connecting or waiting for the
next bytes takes longer than its timeouts. Every failure is an `InputError` naming the input;
the URL shown in it has no credentials, query or fragment, which may carry secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from sandbox import __version__, defaults
from sandbox.errors import InputError

CHUNK_SIZE = 64 * 1024  # bytes read and written at a time


def download(spec: dict[str, Any], target: Path) -> None:
    """GET the input's `sourceUrl` into `target`."""
    url = str(spec["sourceUrl"])
    prefix = f"externalUrl input {spec['fileName']!r}: GET {_redacted(url)}"
    limit = defaults.INPUT_MAX_BYTES
    try:
        with requests.Session() as session:
            session.max_redirects = defaults.INPUT_MAX_REDIRECTS
            with session.get(
                url,
                stream=True,
                timeout=(defaults.INPUT_CONNECT_TIMEOUT, defaults.INPUT_READ_TIMEOUT),
                headers={"User-Agent": f"nbrelay-sandbox/{__version__}"},
            ) as response:
                if response.status_code >= 400:
                    raise InputError(f"{prefix} answered HTTP {response.status_code}")
                written = 0
                with target.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=CHUNK_SIZE):
                        written += len(chunk)
                        if written > limit:
                            raise InputError(
                                f"{prefix} failed: the file is larger than the limit of "
                                f"{limit} bytes"
                            )
                        out.write(chunk)
    except requests.RequestException as exc:
        raise InputError(f"{prefix} failed: {_describe(exc)}") from None


def _redacted(url: str) -> str:
    """The URL without credentials, query or fragment, which may carry secrets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else "(invalid URL)"


def _describe(exc: requests.RequestException) -> str:
    """What went wrong, without echoing the URL (requests puts the full URL in its messages)."""
    if isinstance(exc, requests.TooManyRedirects):
        return f"it redirected more than {defaults.INPUT_MAX_REDIRECTS} times"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema)):
        return "only http and https URLs are supported"
    if isinstance(exc, requests.exceptions.InvalidURL):
        return "the URL is not valid"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect"
    return type(exc).__name__
