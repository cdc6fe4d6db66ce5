# Every target bootstraps .venv by itself from the hashed lock requirements/dev.txt (runtime,
# sandbox and test packages) and then nbrelay without its dependencies; it is reinstalled when
# pyproject.toml or a lock changes. `make lock` updates the locks (needs uv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/dev.txt
RUNTIME_LOCK := requirements/runtime.txt
UV ?= uv
LOCK_FLAGS := --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock"

.PHONY: up test lint lock bench clean

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

# The runtime lock is resolved within the dev lock, so both pin the same versions.
# Versions already locked are kept; LOCK_ARGS="--upgrade" (or --upgrade-package NAME) moves them.
lock:
	$(UV) pip compile pyproject.toml requirements/build.in --extra sandbox --extra test \
		$(LOCK_FLAGS) $(LOCK_ARGS) -o $(LOCK)
	$(UV) pip compile pyproject.toml requirements/build.in \
		$(LOCK_FLAGS) $(LOCK_ARGS) -c $(LOCK) -o $(RUNTIME_LOCK)

clean:
	rm -rf $(VENV) .pytest_cache
