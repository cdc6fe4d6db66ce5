"""Every tunable of nbrelay in one place: timeouts, intervals, limits and retention."""

# Losant API client
LOSANT_API_URL = "https://api.losant.com"
LOSANT_ACCEPT_VERSION = "^1.29.3"
LOSANT_CONNECT_TIMEOUT = 5.0  # seconds
LOSANT_READ_TIMEOUT = 30.0  # seconds
LOSANT_MAX_RETRIES = 4  # retries after the first attempt, for requests safe to repeat
LOSANT_BACKOFF_BASE = 0.5  # seconds; doubled on every retry, with full jitter
LOSANT_BACKOFF_MAX = 30.0  # seconds; cap for one wait, Retry-After included
LOSANT_RETRY_DEADLINE = 120.0  # seconds after the first attempt; no retry starts later
LOSANT_PAGE_SIZE = 100
LOSANT_POOL_SIZE = 10  # kept-alive connections per client

# Storage
RETENTION_DAYS = 30

# Web
HOST = "127.0.0.1"
PORT = 8080

# Embedded Redis (used by `nbrelay up` and by the test suite)
EMBEDDED_REDIS_START_TIMEOUT = 10.0  # seconds
DATA_DIR = ".nbrelay"

# Pipelines, actions and alerts
PIPELINES_CURRENT_CHECK = 1.0  # seconds a process uses the pipeline file in force unchecked
PIPELINES_RECHECK_INTERVAL = 30.0  # seconds before a changed file whose notebooks Losant could
# not check (Losant down) is checked again
ACTION_LEASE = 120.0  # seconds a worker may hold an action before it is presumed dead
ACTION_RECOVERY_LOGS_LIMIT = 1000  # executions read from /logs when looking for a lost execute
ALERT_GROUP_WAIT = 30.0  # seconds an alert waits for more failures before it is first sent
ALERT_REPEAT_INTERVAL = 4 * 3600.0  # seconds before a still-firing alert is sent again

# Channels
CHANNEL_TIMEOUT = 10.0  # seconds for one delivery attempt (HTTP request or SMTP session)
# Attempts of one notification before a transient failure is final: with the backoff below,
# the retries of one message span at least 30 s of a receiver's outage.
CHANNEL_MAX_ATTEMPTS = 8
CHANNEL_MAX_ELAPSED = 60.0  # seconds after which no further attempt is started
CHANNEL_BACKOFF_BASE = 1.0  # seconds; doubled after every failed attempt
CHANNEL_BACKOFF_MAX = 15.0  # seconds; cap for one wait, Retry-After included
ACTION_MAX_ATTEMPTS = 6  # attempts of one action (transient failures, dead workers) before it fails
ACTION_RETRY_BASE = 2.0  # seconds before the second attempt after a transient failure; doubles
ACTION_RETRY_MAX = 300.0  # seconds; cap of that wait
ACTION_UNKNOWN_WAIT = 10.0  # seconds before an execute whose outcome is unknown is looked up
MISSING_CALLBACK_GRACE = (
    120.0  # seconds after an execution ended before its callback counts as missing
)

# Event pipeline: ingress, syncs, reconciler, web
OVERDUE_QUEUE_SLACK = 180  # seconds a run may wait in Losant's queue beyond its run limit
OVERDUE_OUTPUT_SLACK = 120  # seconds a run may take to publish its outputs after its run limit
OVERDUE_SLACK = OVERDUE_QUEUE_SLACK + OVERDUE_OUTPUT_SLACK  # seconds past maxAllowedRunMinutes
# before a run counts as overdue (the pipeline file's `alerts: overdue:` sets its own for alerts)
ASSUMED_MAX_RUN_MINUTES = 60  # for runs whose record has not been read yet
CALLBACK_TOKEN_MARGIN = 3600  # seconds a callback URL outlives its run's deadline (the run's
# maxAllowedRunMinutes plus OVERDUE_SLACK after it was requested)
CALLBACK_TOKEN_TTL = ASSUMED_MAX_RUN_MINUTES * 60 + OVERDUE_SLACK + CALLBACK_TOKEN_MARGIN
# seconds a callback URL stays valid when its notebook's run limit is not known (2 h 5 min)
CALLBACK_TOKEN_LOOKBACK = 10  # newest executions of a notebook searched for its run limit
CALLBACK_TOKEN_MAX_LENGTH = 300  # characters; the callbackUrl as a whole must stay under 1024
MAX_BODY_BYTES = 256 * 1024  # largest callback or relay body accepted (413 above)
HINT_RATE = 1.0  # hints per second and notebook recorded in the event stream, on average
HINT_BURST = 60  # hints of one notebook recorded at once before HINT_RATE applies (429 beyond)
EVENT_BODY_KEEP = 256  # bytes (UTF-8) of a body kept in the event stream: enough to show its shape
EVENT_TEXT_KEEP = 128  # bytes (UTF-8) kept of a body's claimed status and of the content type
EVENT_ENTRY_BYTES = 1792  # Redis memory one event stream entry takes at most: the kept body
# and texts, ids, times, a pipeline run and step (255 bytes each) and Redis's own overhead
EVENT_STREAM_BYTES = 32 * 1024 * 1024  # Redis memory the event stream may take in all
STREAM_NODE_ENTRIES = 100  # Redis's stream-node-max-entries: `MAXLEN ~` trims whole nodes
EVENT_STREAM_MAXLEN = EVENT_STREAM_BYTES // EVENT_ENTRY_BYTES - STREAM_NODE_ENTRIES  # 18,624
TRANSITION_STREAM_MAXLEN = 100_000  # entries kept in the stream of terminal transitions
WEBHOOK_TOLERANCE = 300  # seconds a Standard Webhooks timestamp may differ from our clock
SYNC_LEASE = 30.0  # seconds a sync holds its notebook before it is presumed dead
SYNC_JOB_TIMEOUT = 600  # seconds RQ lets one sync job run
SYNC_RETRY_INTERVALS = (10, 30, 120, 600)  # seconds between attempts of a failing sync
SYNC_MAX_ROUNDS = 5  # re-reads inside one job before it yields to other notebooks
NOTEBOOK_LOOKUP_TTL = 60.0  # seconds a start reuses the notebook a name or id was found to be
NOTEBOOK_LOOKUP_ENTRIES = 1024  # notebooks remembered so by one process (all forgotten beyond)
SYNC_SPACING = 1.0  # seconds after a read of a notebook that a hint may wait for others to join
SYNC_BATCH = 5  # hints since the last read that start the next read without waiting
SYNC_DUE_INTERVAL = 0.05  # seconds between a worker's looks for syncs whose wait is over
SYNC_FIRST_LIMIT = 10  # smallest `limit` of a sync's first /logs request (see sync.first_limit)
SYNC_LIMIT_GROWTH = 4  # factor by which `limit` grows while /logs keeps returning full pages
SYNC_MAX_LIMIT = 1000  # largest `limit` a sync asks for. Losant documents no maximum; a
# smaller cap it reveals (a 400 naming it, or fewer runs than asked while more exist) is used
# instead and remembered per application for LOGS_CAP_TTL (service.events.logs_limit)
LOGS_CAP_TTL = 24 * 3600  # seconds a discovered `/logs` cap is remembered
START_DEFER_RETRY = 5  # seconds after which a start deferred by the `/logs` cap may be retried
START_LOCK_TTL = 60  # seconds a start may hold its notebook's lock (check, execute, record)
START_LOCK_WAIT = 10.0  # seconds a start waits for that lock before it is deferred
SYNC_FIRST_LOOKBACK = 24 * 3600  # seconds of history read when a notebook is synced first
SYNC_SINCE_MARGIN = 60  # seconds read before the cursor while Losant's clock is not known
SYNC_SKEW_MARGIN = 2.0  # seconds read before the cursor beyond the clock difference observed
POLL_INTERVAL = 300.0  # seconds between polls of a watched notebook that is idle
POLL_BUSY_INTERVAL = 10.0  # seconds between polls of a watched notebook with a run in flight
POLL_BUSY_WINDOW = 300.0  # seconds after a run of a watched notebook ended that polls stay busy
POLL_ACTIVITY_RUNS = 10  # newest executions of a watched notebook looked at to tell it is busy
RECONCILE_INTERVAL = 15.0  # seconds between reconciler passes; first check of a started run
PENDING_CHECK_MAX = 600.0  # seconds; cap of the doubling interval between checks of a run
SCHEDULER_LEADER_TTL = 3  # reconciler intervals a scheduler leads without renewing
API_PAGE_SIZE = 50  # executions per page of GET /api/executions
API_MAX_PAGE_SIZE = 500
DASHBOARD_ROWS = 50
DASHBOARD_EVENTS = 20  # newest callbacks and relay requests shown on the dashboard
DASHBOARD_RECENT = 10  # newest executions shown on the dashboard's overview
DASHBOARD_CHART_HOURS = 24  # hours of the overview's chart of executions per status
DASHBOARD_CALLBACK_SCAN = 1000  # events read, from its queue time on, to find those naming an
# execution for its page (the event stream holds up to EVENT_STREAM_MAXLEN)
DASHBOARD_NOTEBOOK_RUNS = 50  # newest terminal runs of a notebook its health is computed over
NOTEBOOK_MINUTES_TTL = 300  # seconds a notebook's minutes used this month are kept from Losant
MINUTES_UNAVAILABLE_TTL = 30  # seconds nobody asks Losant for minutes after it did not answer
MINUTES_CONNECT_TIMEOUT = 1.0  # seconds; minute counts are asked without retries
MINUTES_READ_TIMEOUT = 1.5  # seconds
MINUTES_FETCH_BUDGET = 2.0  # seconds one page spends asking Losant for minutes at most
DASHBOARD_SESSION_LIFETIME = 8 * 3600  # seconds a dashboard sign-in lasts
SIGN_IN_MAX_FAILURES = 10  # failed dashboard sign-ins per client within the window; then 429
SIGN_IN_FAILURE_WINDOW = 300  # seconds over which failed sign-ins of one client are counted
WAIT_POLL_INTERVAL = 0.5  # seconds between looks at the store while `nbrelay run --wait` waits
SHUTDOWN_TIMEOUT = 30.0  # seconds `nbrelay up` gives a child to stop before killing it
UP_START_TIMEOUT = 60.0  # seconds `nbrelay up` waits for a child to become ready
WEB_WORKERS = 2  # gunicorn worker processes (WEB_CONCURRENCY overrides)
WEB_THREADS = 4  # threads per gunicorn worker
WEB_TIMEOUT = 30  # seconds
WEB_GRACEFUL_TIMEOUT = 25  # seconds in-flight requests get to finish on shutdown
UP_WORKERS = 2  # worker processes started by `nbrelay up`
ALERT_REPAIR_WINDOW = 3600.0  # seconds back the scheduler checks that sent alerts' messages exist

# Redis connections
REDIS_SOCKET_TIMEOUT = 10.0  # seconds; a Redis that does not answer is an outage, not a wait
REDIS_CONNECT_TIMEOUT = 3.0  # seconds
REDIS_HEALTH_CHECK_INTERVAL = 30  # seconds an idle connection may sit before it is checked

# Queued jobs
TEMPLATE_CONTEXT_MAX_LENGTH = 32767  # characters: Losant's maxLength of an execution's context

# The scheduler
TRIM_INTERVAL = 300.0  # seconds between retention passes
WATCH_RESOLVE_INTERVAL = 600.0  # seconds before a watched notebook's name is looked up again
PENDING_CHECK_BATCH = 500  # started runs looked at in one reconciler pass
DUE_BATCH = 100  # due actions and alert messages taken in one pass
OVERDUE_BATCH = 500  # queued or in-progress executions of each status the overdue pass reads
ALERT_DUE_HOLD = 60.0  # seconds a taken alert is held before it could come due again

# Follow-up records
FAILED_DELIVERIES_KEPT = 200  # notifications that failed for good, newest first
HISTORY_SEEN_KEPT = 200  # execution ids remembered per notebook to count a transition once
ALERT_OBSERVED_KEPT = 50  # execution ids an alert remembers to count a transition once
ALERT_EPISODES_KEPT = 20  # episodes of an alert whose timeline is kept (GET /api/alerts/<id>)
ALERT_EPISODE_EVENTS_KEPT = 200  # events kept in one episode's timeline, the latest
SILENCE_LONGEST = 366 * 86400.0  # seconds a silence may last at most
SILENCE_TEXT_LENGTH = 1000  # characters of a silence's comment, matcher value or author at most

# Management API pages
API_RECENT_RUNS = 10  # runs listed with each pipeline in GET /api/pipelines
API_RUNS_PAGE = 50  # runs of GET /api/pipelines/<name>/runs
API_ACTIONS_PAGE = 100  # actions of GET /api/actions
CLI_ACTIONS_PAGE = 50  # actions of `nbrelay actions list` unless --limit says otherwise
CLI_EXECUTIONS_PAGE = 20  # executions of `nbrelay executions` unless --limit says otherwise

# Lengths of what is kept or shown of errors and replies
MIN_SECRET_LENGTH = 16  # characters of each NBRELAY_SECRET
MIN_TOKEN_LENGTH = 16  # characters of each bearer token nbrelay checks (API, ingest, metrics)
ERROR_SUMMARY_LENGTH = 500  # characters of an error kept with a failed sync or action
STEP_REASON_LENGTH = 300  # characters of an execution's first error in a failed step's reason
LOSANT_ERROR_LENGTH = 300  # characters of Losant's error message kept in a LosantError
CHANNEL_REPLY_EXCERPT = 200  # characters of a channel's failed reply kept in the error
ALERT_ERRORS_SHOWN = 5  # executionErrors listed in an alert message
ALERT_ERROR_LENGTH = 500  # characters of one executionErrors message in an alert

# Local processes (nbrelay up, tests, benchmarks)
PROBE_TIMEOUT = 1.0  # seconds for one look at whether a process answers (readiness, ping)
REAP_TIMEOUT = 5.0  # seconds to wait for a killed process group to be gone
REDIS_WAIT_INTERVAL = 1.0  # seconds between two pings of a worker waiting for Redis to return
# Seconds between two rounds of RQ's upkeep in a worker (RQ's default: 600). A round also takes
# over RQ's scheduler, which moves retried jobs back to their queue, when the worker that ran it
# died: its lock expires 61 s after its last renewal, so retries usually wait about 100 s at
# most (a worker busy with a long job looks only when the job ends).
RQ_MAINTENANCE_INTERVAL = 15
# Seconds an RQ worker's registration lives without a heartbeat (RQ's default: 420). An idle
# worker wakes every RQ_WORKER_TTL - 15 s to renew it, and only then looks at its upkeep.
RQ_WORKER_TTL = 35
EMBEDDED_REDIS_STOP_TIMEOUT = 10.0  # seconds Redis gets to write its append-only file and exit

# Input from outside (request bodies, callback hints, command-line values)
JSON_MAX_DEPTH = 64  # levels of nested arrays and objects accepted in a JSON document
REQUESTED_BY_MAX_LENGTH = 200  # characters of `requestedBy` in the API's request bodies

# nbrelay doctor
DOCTOR_REQUEST_TIMEOUT = 10.0  # seconds for one request of a check (Losant, the public URL)
DOCTOR_PROBE_TTL = 60  # seconds a probe token is valid, and its nonce is kept once it arrived
DOCTOR_PROBE_WAIT = 10.0  # seconds doctor waits to see its probe arrive through the public URL
DOCTOR_CLOCK_SKEW_WARN = 30.0  # seconds between our clock and Losant's Date before a warning;
# half of SYNC_SINCE_MARGIN, which absorbs skew when reading /logs
DOCTOR_MEMORY_WARN = 0.75  # share of Redis's maxmemory in use before a warning
DOCTOR_MEMORY_FAIL = 0.9  # share in use that fails the check (noeviction refuses writes at 1)
