# Every target installs what it needs into a project-local virtual environment (.venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

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
	@echo '== batchstream run sample_inputs/prompts.jsonl --simulate'
	$(BIN)/batchstream run sample_inputs/prompts.jsonl --simulate
	@echo '== first result line:'
	@head -n 1 sample_inputs/prompts.results.jsonl

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check batchstream tests bench
	$(BIN)/ruff format --check batchstream tests bench

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) sample_inputs/*.results.jsonl sample_inputs/*.summary.jsonl
