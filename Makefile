# Every target installs what it needs into a project-local virtual environment (.venv), from the lock file:
# exact, hashed versions of every runtime and test dependency (see `make lock`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.installed
# The tools that build the environments, pinned too.
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
# `make lock` resolves against PyPI only, whatever this machine's pip or uv configuration says.
LOCK_INDEX_URL ?= https://pypi.org/simple
TOOLS_VENV := .venv-tools
UV := $(TOOLS_VENV)/bin/uv
UV_STAMP := $(TOOLS_VENV)/.uv-$(UV_VERSION)
LATEST_VENV := .venv-latest
LATEST_BIN := $(LATEST_VENV)/bin

.PHONY: install demo test test-latest conformance lint bench lock lock-upgrade clean sdk-fixtures

check-python = $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "batchstream needs Python >= 3.11")'

# A changed lock (or pyproject) rebuilds .venv from scratch, so it holds exactly the lock: nothing left over.
$(STAMP): $(LOCK) pyproject.toml
	$(check-python)
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@$(BIN)/python -m pip check || { echo 'pyproject.toml and $(LOCK) disagree: run `make lock`'; exit 1; }
	touch $(STAMP)

install: $(STAMP)

demo: install
	@echo '== batchstream validate sample_inputs/broken.jsonl (deliberate errors; exit code 2 expected)'
	-$(BIN)/batchstream validate sample_inputs/broken.jsonl
	@echo '== batchstream run on the built-in simulator, with some overloads and dropped streams injected'
	$(BIN)/batchstream run sample_inputs/prompts.jsonl --simulate -c 8 --progress-interval 1 \
		--sim ttft_s=0.3 --sim tokens_per_s=150 --sim p_529=0.05 --sim p_drop=0.05 --sim retry_after_s=0
	@echo '== run again: everything is recorded, so nothing is sent'
	$(BIN)/batchstream run sample_inputs/prompts.jsonl --simulate -q
	@echo '== first result line of sample_inputs/prompts.results.jsonl:'
	@head -n 1 sample_inputs/prompts.results.jsonl

# The tests spread over the machine's cores (at most 4): most of their time is waiting on a simulator or a child.
PYTEST_PARALLEL := -n auto --maxprocesses=4

test: install
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# The suite on the newest versions pyproject.toml allows, in a separate, freshly built venv: drift, seen early.
test-latest:
	$(check-python)
	$(PYTHON) -m venv --clear $(LATEST_VENV)
	$(LATEST_BIN)/python -m pip install --quiet --upgrade pip
	$(LATEST_BIN)/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	@$(LATEST_BIN)/python .ci/lock_drift.py $(LOCK)
	$(LATEST_BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# Checks against third-party software that CI does not install (tests/conformance, marked `conformance`,
# left out of `make test`): a real HTTP proxy, installed here from Debian where missing (needs root).
conformance: install
	@command -v tinyproxy >/dev/null 2>&1 || test -x /usr/sbin/tinyproxy || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y tinyproxy; }
	$(BIN)/python -m pytest -q -m conformance tests/conformance

lint: install
	$(BIN)/ruff check batchstream tests bench .ci
	$(BIN)/ruff format --check batchstream tests bench .ci

# Re-extract the SDK's recorded streams (tests/sdk_fixtures) from its sdist: make sdk-fixtures SDK_VERSION=x.y.z
sdk-fixtures: install
	$(BIN)/python tests/sdk_fixtures/refresh.py $(or $(SDK_VERSION),$(shell $(BIN)/python -c 'import anthropic; print(anthropic.__version__)'))

bench: install
	$(BIN)/python -m bench

$(UV_STAMP):
	$(check-python)
	$(PYTHON) -m venv --clear $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)
	touch $(UV_STAMP)

# Regenerate the lock from pyproject.toml (runtime deps and the [test] extra) for Python 3.11 on Linux x86_64.
# `make lock` keeps the locked versions that pyproject.toml still allows; `make lock-upgrade` takes the newest.
# An unchanged result leaves the file (and so .venv) alone.
LOCK_COMPILE = $(UV) pip compile pyproject.toml --extra test --generate-hashes --no-config \
	--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	--index-url $(LOCK_INDEX_URL) --custom-compile-command 'make lock' --quiet --output-file $(LOCK).new
LOCK_REPLACE = if cmp -s $(LOCK).new $(LOCK); then rm $(LOCK).new; echo '$(LOCK) unchanged'; \
	else mv $(LOCK).new $(LOCK); echo '$(LOCK) updated'; fi

lock: $(UV_STAMP)
	rm -f $(LOCK).new; if [ -f $(LOCK) ]; then cp $(LOCK) $(LOCK).new; fi
	$(LOCK_COMPILE)
	@$(LOCK_REPLACE)

lock-upgrade: $(UV_STAMP)
	rm -f $(LOCK).new
	$(LOCK_COMPILE) --upgrade
	@$(LOCK_REPLACE)

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(TOOLS_VENV) sample_inputs/*.results.jsonl sample_inputs/*.summary.jsonl
