# Every target bootstraps .venv by itself from the hashed lock requirements/dev.txt (runtime,
# sandbox and test packages) and then nbrelay without its dependencies; it is reinstalled when
# pyproject.toml or a lock changes. `make lock` updates the locks (needs uv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/dev.txt
RUNTIME_LOCK := requirements/runtime.txt
BENCH_LOCK := requirements/bench.txt
BENCH_STAMP := $(VENV)/.bench-installed
UV ?= uv
LOCK_FLAGS := --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock"

.PHONY: up test lint lock bench chaos clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/nbrelay up

test: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || echo "make test:" \
		"no chromium/chromedriver, so the browser tests are skipped" \
		"(apt-get install chromium chromium-driver)"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check service workers sandbox tests bench
	$(BIN)/ruff format --check service workers sandbox tests bench
	$(BIN)/mypy

# The benchmark suite's own packages (matplotlib for its chart) on top of the dev lock; wrk comes
# from the system. QUICK=1 runs the short suite (under 5 minutes).
$(BENCH_STAMP): $(STAMP) $(BENCH_LOCK)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(BENCH_LOCK)
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null || { echo "make bench: wrk is missing — apt-get install wrk"; exit 2; }
	$(BIN)/python -m bench $(if $(QUICK),--quick)

# The fault soak (not part of `make test`): about 8 minutes; LONG=1 for the hour-long soak,
# MINUTES=N for N minutes of load and faults. Exits 1 when a "must" fails.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(if $(LONG),--long) $(if $(MINUTES),--minutes $(MINUTES))

# The runtime and bench locks are resolved within the dev lock, so all pin the same versions.
# Versions already locked are kept; LOCK_ARGS="--upgrade" (or --upgrade-package NAME) moves them.
lock:
	$(UV) pip compile pyproject.toml requirements/build.in --extra sandbox --extra test \
		$(LOCK_FLAGS) $(LOCK_ARGS) -o $(LOCK)
	$(UV) pip compile pyproject.toml requirements/build.in \
		$(LOCK_FLAGS) $(LOCK_ARGS) -c $(LOCK) -o $(RUNTIME_LOCK)
	$(UV) pip compile requirements/bench.in $(LOCK_FLAGS) $(LOCK_ARGS) -c $(LOCK) -o $(BENCH_LOCK)

clean:
	rm -rf $(VENV) .pytest_cache
