"""Every tunable of the sandbox in one place: addresses, limits, timeouts and intervals."""

# Server (`nbrelay sandbox`)
HOST = "127.0.0.1"
PORT = 8081
DATA_DIR = ".nbrelay/sandbox"
MAX_RUN_MINUTES = 5.0  # maxAllowedRunMinutes of applications that set none: the per-run limit
# of a Losant plan (`notebookMinutesPerRun`) is not published; 5 is the value its examples show
PARALLEL_RUNS = 2  # runs in progress per application; the rest stay queued
EXPORT_INTERVAL = 15 * 60.0  # seconds; one input data export per notebook in this window, as
# Losant's throttle (1 per 15 minutes); `nbrelay sandbox --export-interval` changes it
JSON_BODY_LIMIT = 1024 * 1024  # bytes; larger JSON bodies get 413
UPLOAD_LIMIT = 16 * 1024 * 1024  # bytes; larger .ipynb uploads get 413
CALLBACK_WORKERS = 4
CALLBACK_TIMEOUT = 5.0  # seconds per attempt
# Guesses (guesses.py): Losant documents none of these; `/_sandbox/guesses` switches them, and
# the template, outputInfo, logs limit, export interval and run-time limit values here too
LOGS_SINCE = "queued"  # /logs `since` compares runQueuedAt (at or after)
CALLBACK_BODY = "triggerData"  # {"success", "notebook", "execution"}
CALLBACK_ATTEMPTS = 4  # 1 means no retries
CALLBACK_MAX_ATTEMPTS = 10
CALLBACK_BACKOFF = 0.5  # seconds; doubled after every failed attempt
CALLBACK_MAX_BACKOFF = 60.0  # seconds
POLL_INTERVAL = 0.1  # seconds between looks at running kernels
IDLE_WAIT = 1.0  # seconds the run loop sleeps at most, so changed application limits apply soon
STOP_TIMEOUT = 10.0  # seconds to wait for kernels to die on shutdown
STATS_NOTEBOOKS = 10_000  # notebooks whose request counts are kept; the least recent go first
STATS_PATCH_BODIES = 10_000  # distinct patch bodies journalled per notebook; the first go first
# What outputInfo lists (sandbox.outputs), as Losant does not document it: configured outputs,
# temporaryUrl outputs only, or also every file a run left.
OUTPUT_INFO_RULES = ("configured", "temporary-urls", "all")
OUTPUT_INFO = "configured"
DATA_TABLE_PAGE = 1000  # rows per page of /_sandbox/.../data-tables/<id>/rows, at most
DB_BUSY_TIMEOUT = 5.0  # seconds a write waits while another process holds sandbox.db's lock
# GET …/logs: Losant documents no largest `limit`; both values are guesses (guesses.py)
LOGS_LIMIT_CAP = 1000  # largest `limit` served
LOGS_ABOVE_CAP = "reject"  # a larger `limit`: "reject" (400 naming the cap) or "silent" (cap)

# Execution engine (engine.py, runner.py, inputs.py)
KERNEL_NAME = "python3"  # ipykernel's kernel of the interpreter that runs the sandbox
KERNEL_START_TIMEOUT = 60.0  # seconds for a fresh kernel to answer
RUN_OVERHEAD = 120.0  # seconds beyond maxAllowedRunMinutes for inputs, kernel start and
# artefacts, after which the engine kills a runner that has not finished by itself
INPUT_CONNECT_TIMEOUT = 5.0  # seconds; externalUrl inputs
INPUT_READ_TIMEOUT = 30.0  # seconds; externalUrl inputs
INPUT_MAX_BYTES = 256 * 1024 * 1024  # largest externalUrl input file; a larger one fails the run
INPUT_MAX_REDIRECTS = 5  # redirects an externalUrl input may take; one more fails the run
CONTEXT_MAX_LENGTH = 32767  # characters; templateContext limit, as Losant documents it
# Templates in input and output configuration (templates.py); Losant documents only `{{ }}` and the
# variables `notebook` and `execution`, so these are guesses, each switchable (`nbrelay sandbox`)
TEMPLATE_SYNTAX = "losant"  # "losant": only {{ path.to.value }} lookups; "jinja": sandboxed Jinja2
TEMPLATE_CONTEXT_NAME = "context"  # the variable that holds the templateContext
TEMPLATE_CONTEXT_KEYS = False  # also the context's top-level keys as variables
TEMPLATE_MISSING = "error"  # a path that leads nowhere: "error" fails the run, "empty" renders ""
SAMPLE_POINTS = 48  # rows per device in generated time-series inputs
# The only variables of the sandbox's environment that runners and kernels get (environment.py);
# a kernel needs none of them to start.
RUN_ENVIRONMENT = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "VIRTUAL_ENV",  # the venv the sandbox runs in, for tools a notebook starts
        "JUPYTER_RUNTIME_DIR",  # where the runner writes the kernel's connection file
        "SSL_CERT_FILE",  # certificate authorities for externalUrl inputs and notebooks
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    }
)
RUN_ENVIRONMENT_PREFIXES = ("LC_",)  # locale categories

# SandboxClient (client.py)
CLIENT_CONNECT_TIMEOUT = 5.0  # seconds
CLIENT_READ_TIMEOUT = 30.0  # seconds
