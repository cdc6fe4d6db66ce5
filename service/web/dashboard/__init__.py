"""The dashboard: nbrelay's operator console, server-rendered pages for people signed in with
NBRELAY_API_TOKEN (`session` keeps the sign-in and guards every form against cross-site
requests; `throttle` brakes guessing).

One module per page (`overview`, `executions`, `pipelines`, `notebooks`, `alerts`, `actions`,
`dead_letters`), sign-in in `signin`, SVG charts in `charts`. Pages refresh themselves while
something is running: a page passes `live=True` and its `<main>` polls its own URL (htmx,
vendored under `static/vendor`). Every button is a POST form that asks for confirmation and
carries the session's CSRF token; `answer` sends the browser back with a notice.

It never shows tokens, callback URLs or configuration values. What users put in an execution's
`templateContext`, its `inputInfo` and the signed URLs of its outputs are hidden unless the
execution page is asked to reveal them (`?reveal=1`); output links go through
`/executions/<id>/outputs/<name>`, which redirects to the signed URL.
"""

from service.web.dashboard import (
    actions,
    alerts,
    dead_letters,
    executions,
    notebooks,
    overview,
    pipelines,
    signin,
)
from service.web.dashboard.blueprint import bp

__all__ = [
    "actions",
    "alerts",
    "bp",
    "dead_letters",
    "executions",
    "notebooks",
    "overview",
    "pipelines",
    "signin",
]
