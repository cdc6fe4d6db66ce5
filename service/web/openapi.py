"""The OpenAPI 3.1 description of nbrelay's own HTTP endpoints (served at /api/openapi.json)."""

from __future__ import annotations

from typing import Any

from service import __version__, defaults
from service.events.records import STATUSES
from service.followups.pipeline_file.model import ACTION_KINDS


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_ACCEPTED = _json("Recorded; a sync of the notebook is queued", "Accepted")
_UNAUTHORIZED = _error("Missing or wrong bearer token")
_TOO_LARGE = _error(f"Body larger than {defaults.MAX_BODY_BYTES // 1024} KiB")
_UNAVAILABLE = _error("Redis (or, when starting a run, Losant) is unavailable")
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_SESSION: list[dict[str, list[str]]] = [{"dashboardSession": []}]
_HTML = {"description": "HTML page"}
_TO_SIGN_IN = {"description": "Not signed in: to the sign-in form"}
_PAGE = {"200": _HTML, "303": _TO_SIGN_IN}
_NEXT = {"name": "next", "in": "query", "schema": {"type": "string"}}


def _path(name: str) -> dict[str, Any]:
    """A text parameter of the path."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, description: str) -> dict[str, Any]:
    """A text parameter of the query string."""
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}}


_EXECUTION_ID = {
    "name": "executionId",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_JOB_ID = _path("jobId")
_BUTTON = {  # what a dashboard button's POST answers
    "204": {"description": "From htmx: done, or refused with a notice; HX-Redirect back"},
    "303": {"description": "Back to the page with a notice (or, not signed in, to sign-in)"},
    "403": _error("Cross-site request, missing or wrong CSRF token"),
}
_REQUESTED_BY = {"type": "string", "minLength": 1, "maxLength": defaults.REQUESTED_BY_MAX_LENGTH}

PATHS: dict[str, Any] = {
    "/callbacks/{token}": {
        "post": {
            "summary": "Receive a Losant callback",
            "description": "Target of the signed callbackUrl of every run nbrelay starts. Any "
            "body is accepted as a hint; the token says which notebook to sync.",
            "security": [],
            "parameters": [_path("token")],
            "requestBody": {"required": False, "content": {"*/*": {"schema": {}}}},
            "responses": {
                "202": _ACCEPTED,
                "404": _error("Unknown, forged or expired token (nothing is recorded)"),
                "413": _TOO_LARGE,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/hooks/losant": {
        "post": {
            "summary": "Relay for Losant workflows",
            "description": "A Notebook Trigger payload `{data: {success, notebook, execution}}` "
            "or a bare execution record. Authenticated with the ingest token as a bearer token "
            "or as the secret of a Standard Webhooks signature.",
            "security": [{"ingest": []}, {"standardWebhooks": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "202": _ACCEPTED,
                "400": _error("Malformed JSON, or the body names no notebook"),
                "401": _UNAUTHORIZED,
                "413": _TOO_LARGE,
                "415": _error("Not a JSON body"),
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/executions": {
        "get": {
            "summary": "List stored executions, newest first",
            "security": _BEARER,
            "parameters": [
                {
                    "name": "notebook",
                    "in": "query",
                    "description": "A notebook id",
                    "schema": {"type": "string", "pattern": "^[0-9A-Fa-f]{24}$"},
                },
                _query("status", "One status or several, comma-separated"),
                _query("since", "Queued at or after (ms since epoch or ISO 8601)"),
                _query("until", "Queued at or before (ms since epoch or ISO 8601)"),
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": defaults.API_MAX_PAGE_SIZE,
                        "default": defaults.API_PAGE_SIZE,
                    },
                },
                _query("cursor", "`nextCursor` of the previous page"),
            ],
            "responses": {
                "200": _json("One page of executions", "ExecutionPage"),
                "400": _error("Malformed filter or cursor"),
                "401": _UNAUTHORIZED,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/executions/{executionId}": {
        "get": {
            "summary": "One stored execution: Losant's record and nbrelay's metadata",
            "security": _BEARER,
            "parameters": [
                {
                    "name": "executionId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": _json("The execution", "Execution"),
                "401": _UNAUTHORIZED,
                "404": _error("Not stored"),
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/notebooks/{notebook}/executions": {
        "post": {
            "summary": "Start an execution (like `nbrelay run`)",
            "security": _BEARER,
            "parameters": [
                {
                    "name": "notebook",
                    "in": "path",
                    "required": True,
                    "description": "Notebook id or name",
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}
                },
            },
            "responses": {
                "201": _json("Queued by Losant and recorded", "Started"),
                "400": _error("Malformed request or JSON, or Losant rejected it"),
                "401": _UNAUTHORIZED,
                "404": _error("No such notebook"),
                "413": _TOO_LARGE,
                "415": _error("Not a JSON body"),
                "429": _error(
                    "Losant is rate limiting, or the notebook already has as many runs nbrelay "
                    "waits for as one /logs page shows (StartDeferred); see Retry-After"
                ),
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "security": _BEARER,
            "responses": {"200": {"description": "OpenAPI document"}, "401": _UNAUTHORIZED},
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness",
            "security": [],
            "responses": {"200": {"description": "The process answers"}},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: Redis is reachable",
            "security": [],
            "responses": {"200": {"description": "Ready"}, "503": _error("Redis unreachable")},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "description": "Needs NBRELAY_METRICS_TOKEN as a bearer token; without that "
            "setting, served only on the admin listener (nbrelay web --admin-bind).",
            "security": [{"metricsBearer": []}],
            "responses": {
                "200": {"description": "Prometheus text format"},
                "401": _error("Missing or wrong bearer token"),
                "403": _error(
                    "NBRELAY_METRICS_TOKEN is not set and this is not the admin listener"
                ),
            },
        }
    },
    "/signin": {
        "get": {
            "summary": "Dashboard sign-in form (HTML)",
            "security": [],
            "parameters": [_NEXT],
            "responses": {"200": _HTML, "403": {"description": "Sign-in is disabled"}},
        },
        "post": {
            "summary": "Sign in to the dashboard with NBRELAY_API_TOKEN (form)",
            "description": "Form fields `token`, `csrf_token` (from the form) and `next` (a "
            "local path). Sets the session cookie and redirects to `next`.",
            "security": [],
            "responses": {
                "303": {"description": "Signed in"},
                "401": {"description": "Wrong token (HTML form again)"},
                "403": _error("Cross-site request, missing or wrong CSRF token"),
                "429": {"description": "Too many failed sign-ins from this client"},
            },
        },
    },
    "/signout": {
        "post": {
            "summary": "Sign out of the dashboard (form with `csrf_token`)",
            "security": _SESSION,
            "responses": {
                "303": {"description": "Signed out"},
                "403": _error("Cross-site request, missing or wrong CSRF token"),
            },
        }
    },
    "/": {
        "get": {
            "summary": "Dashboard overview (HTML): queues, dead letters, the sync backlog, "
            "firing alerts, pipeline runs in progress, executions per status and hour over "
            "the last 24 h, recent executions and callbacks",
            "security": _SESSION,
            "responses": _PAGE,
        }
    },
    # dashboard: executions pages
    "/executions": {
        "get": {
            "summary": "Dashboard list of executions (HTML), filtered and paged",
            "description": "Newest first by queue time. A filter value that names no "
            "notebook, status or moment is explained on the page (200).",
            "security": _SESSION,
            "parameters": [
                _query("notebook", "A notebook id, or the name of a notebook nbrelay has seen"),
                _query("status", "Comma-separated statuses"),
                _query("since", "Queued at or after: ms since epoch or ISO 8601 (UTC if none)"),
                _query("until", "Queued at or before: ms since epoch or ISO 8601"),
                _query("cursor", "The next page's cursor, from the page's `Next page` link"),
            ],
            "responses": _PAGE,
        }
    },
    # dashboard: pipelines pages
    "/pipelines": {
        "get": {
            "summary": "Dashboard list of pipelines (HTML)",
            "description": "Each pipeline of the file in force: description, parameters, "
            "its steps as a graph and its recent runs.",
            "security": _SESSION,
            "responses": _PAGE,
        }
    },
    "/pipelines/{name}": {
        "get": {
            "summary": "Dashboard page of one pipeline, with the form that starts a run (HTML)",
            "security": _SESSION,
            "parameters": [_path("name")],
            "responses": {**_PAGE, "404": _error("No such pipeline")},
        }
    },
    "/pipelines/{name}/runs": {
        "post": {
            "summary": "Start a run of a pipeline (form), as POST /api/pipelines/{name}/runs",
            "description": "Form fields `params` (a JSON object, default `{}`) and "
            "`csrf_token`. Redirects to the run's page; a bad `params`, an unknown pipeline or "
            "parameter redirects back with an error notice and starts nothing. Requested by "
            "`dashboard`.",
            "security": _SESSION,
            "parameters": [_path("name")],
            "responses": {
                "303": {"description": "Started (to /runs/{runId}), or not (back, with why)"},
                "403": _error("Cross-site request, missing or wrong CSRF token"),
            },
        }
    },
    "/runs/{runId}": {
        "get": {
            "summary": "Dashboard page of one pipeline run (HTML)",
            "description": "The run's status (`#run-status`), its steps as a graph coloured "
            "by state, a Gantt of the steps' executions, attempts, retries and reasons.",
            "security": _SESSION,
            "parameters": [_path("runId")],
            "responses": {**_PAGE, "404": _error("No such run")},
        }
    },
    # dashboard: notebooks page
    "/notebooks": {
        "get": {
            "summary": "Dashboard health of each notebook (HTML)",
            "description": "Per notebook, over its newest DASHBOARD_NOTEBOOK_RUNS terminal runs "
            "stored: success rate, duration p50/p95 (run start to the end of its last phase), "
            "sparklines of durations and outcomes, the last failure; and the minutes used this "
            "month from Losant's `notebookMinuteCounts`, kept for a few minutes and shown as "
            "`unavailable` when Losant does not answer quickly. Refreshes itself while a run "
            "nbrelay started is pending.",
            "security": _SESSION,
            "responses": _PAGE,
        }
    },
    # dashboard: alerts page
    "/alerts": {
        "get": {
            "summary": "Dashboard alert episodes (HTML)",
            "description": "Firing (and pending) episodes, then resolved ones, newest first, "
            "each with the execution that caused it, its messages (event, channel, when) and "
            "their delivery (performed, failed, pending); then the notifications that failed "
            "for good, as `GET /api/alerts` lists them. Refreshes itself while an alert fires "
            "or a notification is pending. An alert a silence holds says so; the silences are "
            "listed with a button to end each, and a form creates one.",
            "security": _SESSION,
            "responses": _PAGE,
        }
    },
    "/alerts/silences": {
        "post": {
            "summary": "Dashboard form: silence alerts (form with `csrf_token`)",
            "description": "Does what `POST /api/silences` does, from the fields `matcher` "
            "(notebook, rule or alert), `value`, `duration` or `until`, `comment` and `author` "
            "(default `dashboard`); bad input is answered with an error notice.",
            "security": _SESSION,
            "responses": _BUTTON,
        }
    },
    "/alerts/silences/{silenceId}/end": {
        "post": {
            "summary": "Dashboard button: end a silence now (form with `csrf_token`)",
            "description": "Does what `DELETE /api/silences/{silenceId}` does; an unknown "
            "silence is answered with an error notice.",
            "security": _SESSION,
            "parameters": [_path("silenceId")],
            "responses": _BUTTON,
        }
    },
    # dashboard: actions pages
    "/actions": {
        "get": {
            "summary": "Dashboard follow-up actions (HTML)",
            "description": "Newest first; a patch with its fields before and after.",
            "security": _SESSION,
            "parameters": [{"name": "kind", "in": "query", "schema": {"type": "string"}}],
            "responses": _PAGE,
        }
    },
    "/actions/{key}/undo": {
        "post": {
            "summary": "Dashboard button: set back what a patch changed (form with `csrf_token`)",
            "description": "Does what `POST /api/actions/{key}/undo` does; an action that is "
            "not a patch that was applied is answered with an error notice.",
            "security": _SESSION,
            "parameters": [_path("key")],
            "responses": {**_BUTTON, "404": _error("No such route (a key with a line break)")},
        }
    },
    # dashboard: dead letters pages
    "/dead-letters": {
        "get": {
            "summary": "Dashboard dead letters (HTML)",
            "security": _SESSION,
            "responses": _PAGE,
        }
    },
    "/dead-letters/replay": {
        "post": {
            "summary": "Dashboard button: replay every dead letter (form with `csrf_token`)",
            "description": "Does what `POST /api/dead-letters/replay` without a body does.",
            "security": _SESSION,
            "responses": _BUTTON,
        }
    },
    "/dead-letters/{jobId}/replay": {
        "post": {
            "summary": "Dashboard button: replay one dead letter (form with `csrf_token`)",
            "description": "Does what `POST /api/dead-letters/{jobId}/replay` does; an unknown "
            "job is answered with an error notice.",
            "security": _SESSION,
            "parameters": [_JOB_ID],
            "responses": {**_BUTTON, "404": _error("No such route (a job id with a slash)")},
        }
    },
    "/api/dead-letters": {
        "get": {
            "summary": "Jobs that failed after their last retry, most recent failure first",
            "description": "Like `nbrelay dead-letters list`.",
            "security": _BEARER,
            "responses": {
                "200": _json("Dead letters", "DeadLetters"),
                "401": _UNAUTHORIZED,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/dead-letters/replay": {
        "post": {
            "summary": "Replay dead letters: those in `jobIds`, or all without a body",
            "description": "Like `nbrelay dead-letters replay`. A failed sync is replayed as a "
            "fresh sync of its notebook; any other job goes back on its queue as it was. When "
            "one of `jobIds` is not a dead letter, nothing is replayed (404).",
            "security": _BEARER,
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/DeadLetterReplayRequest"}
                    }
                },
            },
            "responses": {
                "200": _json("The ids replayed", "DeadLettersReplayed"),
                "400": _error("Malformed body, JSON or jobIds"),
                "401": _UNAUTHORIZED,
                "404": _error("One of jobIds is not a dead letter (none was replayed)"),
                "413": _TOO_LARGE,
                "415": _error("Not a JSON body"),
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/dead-letters/{jobId}/replay": {
        "post": {
            "summary": "Replay one dead letter",
            "security": _BEARER,
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json("The id replayed", "DeadLettersReplayed"),
                "401": _UNAUTHORIZED,
                "404": _error("No dead letter with that job id"),
                "503": _UNAVAILABLE,
            },
        }
    },
    "/executions/{executionId}": {
        "get": {
            "summary": "Dashboard page of one execution (HTML)",
            "description": "Its phases on a timeline drawn to scale, errors, outputs, the "
            "callbacks that named it, the pipeline run and step or the rule that started it. "
            "Context values, inputs and URLs are hidden unless `reveal=1`.",
            "security": _SESSION,
            "parameters": [
                _EXECUTION_ID,
                {"name": "reveal", "in": "query", "schema": {"type": "string", "enum": ["1"]}},
            ],
            "responses": {**_PAGE, "404": _error("Not stored")},
        }
    },
    "/executions/{executionId}/outputs/{name}": {
        "get": {
            "summary": "Redirect to the signed download URL of one output file",
            "security": _SESSION,
            "parameters": [
                _EXECUTION_ID,
                _path("name"),
            ],
            "responses": {
                "302": {"description": "To the signed URL"},
                "303": _TO_SIGN_IN,
                "404": _error("No such execution or output"),
            },
        }
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
    },
    "Accepted": {
        "type": "object",
        "properties": {"accepted": {"type": "boolean"}, "duplicate": {"type": "boolean"}},
    },
    "Execution": {
        "type": "object",
        "required": ["id", "applicationId", "notebookId", "status", "losant", "nbrelay"],
        "properties": {
            "id": {"type": "string"},
            "applicationId": {"type": "string"},
            "notebookId": {"type": "string"},
            "status": {"type": ["string", "null"], "enum": [*STATUSES, None]},
            "losant": {
                "type": ["object", "null"],
                "description": "Losant's notebookExecutionLogs entry, as the API returned it",
            },
            "nbrelay": {
                "type": "object",
                "properties": {
                    "requestedBy": {"type": ["string", "null"]},
                    "requestedAt": {"type": ["string", "null"]},
                    "requestContext": {"type": ["object", "null"]},
                    "relativeTo": {"type": ["string", "null"]},
                    "callbacksReceived": {"type": "integer"},
                    "lastCallbackAt": {"type": ["string", "null"]},
                    "firstSeenAt": {"type": ["string", "null"]},
                    "updatedAt": {"type": ["string", "null"]},
                    "terminalAt": {"type": ["string", "null"]},
                    "overdueAt": {"type": ["string", "null"]},
                    "pipeline": {
                        "type": ["object", "null"],
                        "properties": {
                            "run": {"type": "string"},
                            "step": {"type": "string"},
                            "attempt": {"type": "integer"},
                        },
                    },
                },
            },
        },
    },
    "ExecutionPage": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Execution"}},
            "nextCursor": {"type": ["string", "null"]},
            "warnings": {
                "type": "array",
                "items": {"type": "string"},
                "description": "With `notebook`: e.g. that up to N executions of it may not have "
                "been seen (Losant's /logs served a full page at its cap short of the cursor)",
            },
        },
    },
    "RunRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "context": {"type": "object", "description": "The run's templateContext"},
            "relativeTo": {
                "type": ["integer", "string"],
                "description": "Query Time: ms since epoch or ISO 8601",
            },
            "requestedBy": _REQUESTED_BY,
        },
    },
    "Started": {
        "type": "object",
        "properties": {
            "executionId": {"type": "string"},
            "applicationId": {"type": "string"},
            "notebookId": {"type": "string"},
            "notebookName": {"type": "string"},
            "requestedAt": {"type": "string"},
        },
    },
}


_NAME = _path("name")
_KEY = _path("key")

PATHS.update(
    {
        "/api/pipelines": {
            "get": {
                "summary": "Pipelines of the pipeline file in force, with their recent runs",
                "security": _BEARER,
                "responses": {"200": _json("The pipelines", "Pipelines"), "401": _UNAUTHORIZED},
            }
        },
        "/api/pipelines/{name}/runs": {
            "post": {
                "summary": "Start a run of a pipeline (like `nbrelay pipelines start`)",
                "security": _BEARER,
                "parameters": [_NAME],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PipelineRunRequest"}
                        }
                    },
                },
                "responses": {
                    "201": _json("Started; its first steps are being queued", "PipelineRun"),
                    "400": _error("Unknown or missing parameter, malformed body or JSON"),
                    "401": _UNAUTHORIZED,
                    "404": _error("No such pipeline"),
                    "413": _TOO_LARGE,
                    "415": _error("Not a JSON body"),
                    "503": _UNAVAILABLE,
                },
            },
            "get": {
                "summary": "The pipeline's most recent runs, newest first",
                "security": _BEARER,
                "parameters": [_NAME],
                "responses": {"200": _json("Runs", "PipelineRuns"), "401": _UNAUTHORIZED},
            },
        },
        "/api/runs/{run}": {
            "get": {
                "summary": "One pipeline run: each step's state, executions and timestamps",
                "security": _BEARER,
                "parameters": [_path("run")],
                "responses": {
                    "200": _json("The run", "PipelineRun"),
                    "401": _UNAUTHORIZED,
                    "404": _error("No such run"),
                },
            }
        },
        "/api/actions": {
            "get": {
                "summary": "Recent follow-up actions (claims and outcomes), newest first",
                "security": _BEARER,
                "parameters": [
                    {
                        "name": "kind",
                        "in": "query",
                        "schema": {"enum": list(ACTION_KINDS)},
                    }
                ],
                "responses": {
                    "200": _json("Actions", "Actions"),
                    "400": _error("Unknown kind"),
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/api/actions/{key}": {
            "get": {
                "summary": "One action: its spec, state, attempts and outcome (a patch's "
                "values before and after)",
                "security": _BEARER,
                "parameters": [_KEY],
                "responses": {
                    "200": _json("The action", "Action"),
                    "401": _UNAUTHORIZED,
                    "404": _error("No such action"),
                },
            }
        },
        "/api/actions/{key}/undo": {
            "post": {
                "summary": "Set back what a patch changed, as a new action `undo:<key>`",
                "security": _BEARER,
                "parameters": [_KEY],
                "responses": {
                    "202": _json("The undo action, queued", "Action"),
                    "401": _UNAUTHORIZED,
                    "404": _error("No such action"),
                    "409": _error("Not a patch that was applied"),
                },
            }
        },
        "/api/alerts": {
            "get": {
                "summary": "Alert states and notifications that failed for good",
                "security": _BEARER,
                "responses": {"200": _json("Alerts", "Alerts"), "401": _UNAUTHORIZED},
            }
        },
        "/api/alerts/{alertId}": {
            "get": {
                "summary": "One alert with its kept episodes, newest first: each one's timeline "
                "(opened, failed, messages with channel and outcome, resolved) and the "
                "executions that caused it",
                "security": _BEARER,
                "parameters": [_path("alertId")],
                "responses": {
                    "200": _json("The alert", "AlertDetail"),
                    "401": _UNAUTHORIZED,
                    "404": _error("No such alert"),
                },
            }
        },
        "/api/silences": {
            "get": {
                "summary": "Silences in force (ending soonest first), then those that ended "
                "within the retention (most recent first)",
                "security": _BEARER,
                "responses": {"200": _json("Silences", "Silences"), "401": _UNAUTHORIZED},
            },
            "post": {
                "summary": "Silence the alerts of a notebook, of a rule, or one alert until a "
                "time or for a duration: they keep their state but send nothing",
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/SilenceRequest"}
                        }
                    },
                },
                "responses": {
                    "201": {
                        **_json("The silence", "Silence"),
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    "400": _error("Malformed matcher, end, author or comment"),
                    "401": _UNAUTHORIZED,
                    "413": _TOO_LARGE,
                    "415": _error("Body not application/json"),
                },
            },
        },
        "/api/silences/{silenceId}": {
            "get": {
                "summary": "One silence",
                "security": _BEARER,
                "parameters": [_path("silenceId")],
                "responses": {
                    "200": _json("The silence", "Silence"),
                    "401": _UNAUTHORIZED,
                    "404": _error("No such silence"),
                },
            },
            "delete": {
                "summary": "End a silence now (one that ended already is left as it is)",
                "security": _BEARER,
                "parameters": [_path("silenceId")],
                "responses": {
                    "200": _json("The silence, ended", "Silence"),
                    "401": _UNAUTHORIZED,
                    "404": _error("No such silence"),
                },
            },
        },
    }
)

SCHEMAS.update(
    {
        "PipelineRunRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "params": {"type": "object", "description": "Run parameters"},
                "requestedBy": _REQUESTED_BY,
            },
        },
        "PipelineRun": {
            "type": "object",
            "required": ["id", "pipeline", "status", "steps"],
            "properties": {
                "id": {"type": "string"},
                "pipeline": {"type": "string"},
                "status": {"enum": ["running", "completed", "failed"]},
                "params": {"type": "object"},
                "requestedBy": {"type": "string"},
                "createdAt": {"type": "string", "format": "date-time"},
                "finishedAt": {"type": ["string", "null"], "format": "date-time"},
                "steps": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "state": {
                                "enum": ["pending", "running", "completed", "failed", "skipped"]
                            },
                            "notebook": {"type": "string"},
                            "attempt": {"type": "integer"},
                            "context": {"type": ["object", "null"]},
                            "startedAt": {"type": ["string", "null"]},
                            "finishedAt": {"type": ["string", "null"]},
                            "retryAt": {"type": ["string", "null"]},
                            "reason": {"type": ["string", "null"]},
                            "executions": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
        "PipelineRuns": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/PipelineRun"}}
            },
        },
        "Pipelines": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "file": {"type": ["object", "null"]},
            },
        },
        "Action": {
            "type": "object",
            "required": ["key", "kind", "state"],
            "properties": {
                "key": {"type": "string"},
                "kind": {"enum": list(ACTION_KINDS)},
                "state": {"enum": ["pending", "running", "done", "failed"]},
                "spec": {"type": "object"},
                "attempts": {"type": "integer"},
                "outcome": {"type": ["object", "null"]},
                "error": {"type": ["string", "null"]},
                "createdAt": {"type": "string"},
                "dueAt": {"type": "string"},
                "updatedAt": {"type": ["string", "null"]},
                "history": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Actions": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Action"}}
            },
        },
        "DeadLetter": {
            "type": "object",
            "required": ["jobId", "queue", "description", "error"],
            "properties": {
                "jobId": {"type": "string"},
                "queue": {"type": "string"},
                "failedAt": {"type": ["string", "null"], "format": "date-time"},
                "applicationId": {
                    "type": ["string", "null"],
                    "description": "For a sync: the application of the notebook it was to sync",
                },
                "notebookId": {
                    "type": ["string", "null"],
                    "description": "For a sync: the notebook it was to sync",
                },
                "description": {"type": "string"},
                "error": {"type": "string", "description": "The last line of its last error"},
            },
        },
        "DeadLetters": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}}
            },
        },
        "DeadLetterReplayRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "jobIds": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "description": "The dead letters to replay; all of them when absent",
                }
            },
        },
        "DeadLettersReplayed": {
            "type": "object",
            "required": ["replayed"],
            "properties": {"replayed": {"type": "array", "items": {"type": "string"}}},
        },
        "Alerts": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
                "failedDeliveries": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Alert": {
            "type": "object",
            "required": ["id", "state", "episode", "silencedBy"],
            "properties": {
                "id": {"type": "string"},
                "notebookId": {"type": "string"},
                "notebookName": {"type": ["string", "null"]},
                "failureClass": {"type": "string"},
                "state": {"enum": ["pending", "firing", "resolved"]},
                "episode": {"type": "integer"},
                "rules": {"type": "array", "items": {"type": "string"}},
                "silencedBy": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Ids of the silences in force that hold its messages back",
                },
            },
        },
        "AlertDetail": {
            "allOf": [
                {"$ref": "#/components/schemas/Alert"},
                {
                    "type": "object",
                    "required": ["episodes"],
                    "properties": {
                        "episodes": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/AlertEpisode"},
                        }
                    },
                },
            ]
        },
        "AlertEpisode": {
            "type": "object",
            "required": ["episode", "timeline", "executions"],
            "properties": {
                "episode": {"type": "integer"},
                "openedAt": {"type": ["string", "null"], "format": "date-time"},
                "resolvedAt": {"type": ["string", "null"], "format": "date-time"},
                "resolvedBy": {"type": ["string", "null"]},
                "executions": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The failed executions that opened and kept it firing",
                },
                "timeline": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["at", "event"],
                        "properties": {
                            "at": {"type": "string", "format": "date-time"},
                            "event": {"enum": ["opened", "failed", "message", "resolved"]},
                            "execution": {"type": ["string", "null"]},
                            "message": {"enum": ["firing", "resolved"]},
                            "channel": {"type": "string"},
                            "outcome": {"enum": ["delivered", "failed", "silenced"]},
                            "attempts": {"type": "integer"},
                            "error": {"type": "string"},
                            "silencedBy": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
        "SilenceRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["matcher", "author", "comment"],
            "properties": {
                "matcher": {
                    "type": "object",
                    "description": "Exactly one of `notebook` (id or name), `rule`, `alert` (id)",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "properties": {
                        "notebook": {"type": "string"},
                        "rule": {"type": "string"},
                        "alert": {"type": "string"},
                    },
                },
                "endsAt": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When it ends (with its zone); or give `duration`",
                },
                "duration": {"type": "string", "description": "How long, e.g. `2h`, `1h30m`"},
                "author": {"type": "string", "maxLength": defaults.SILENCE_TEXT_LENGTH},
                "comment": {"type": "string", "maxLength": defaults.SILENCE_TEXT_LENGTH},
            },
        },
        "Silence": {
            "type": "object",
            "required": ["id", "matcher", "state", "startsAt", "endsAt", "author", "comment"],
            "properties": {
                "id": {"type": "string"},
                "matcher": {"type": "object"},
                "state": {"enum": ["active", "ended"]},
                "startsAt": {"type": "string", "format": "date-time"},
                "endsAt": {"type": "string", "format": "date-time"},
                "author": {"type": "string"},
                "comment": {"type": "string"},
                "endedBy": {"type": ["string", "null"]},
            },
        },
        "Silences": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Silence"}}
            },
        },
    }
)


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "nbrelay", "version": __version__},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "NBRELAY_API_TOKEN",
                },
                "ingest": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "NBRELAY_INGEST_TOKEN",
                },
                "standardWebhooks": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": "Standard Webhooks signature made with NBRELAY_INGEST_TOKEN",
                },
                "metricsBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "NBRELAY_METRICS_TOKEN",
                },
                "dashboardSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "nbrelay_session",
                    "description": "Set by signing in at /signin with NBRELAY_API_TOKEN",
                },
            },
        },
    }
