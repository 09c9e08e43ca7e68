# Every target installs what it needs into a project-local virtual environment (.venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test conformance lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "batchstream needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
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

test: install
	$(BIN)/python -m pytest -q

# Checks against third-party software that CI does not install (tests/conformance, marked `conformance`,
# left out of `make test`): a real HTTP proxy, installed here from Debian where missing (needs root).
conformance: install
	@command -v tinyproxy >/dev/null 2>&1 || test -x /usr/sbin/tinyproxy || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y tinyproxy; }
	$(BIN)/python -m pytest -q -m conformance tests/conformance

lint: install
	$(BIN)/ruff check batchstream tests bench
	$(BIN)/ruff format --check batchstream tests bench

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) sample_inputs/*.results.jsonl sample_inputs/*.summary.jsonl
