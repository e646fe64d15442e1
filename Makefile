# keydesk's two front-door commands (see README.md):
#   make up    set up, then run broker + worker + HTTP API on local defaults with a demo
#   make test  set up, then ruff, mypy and the whole test suite (real Kafka broker and PostgreSQL)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: up test setup test-setup system-packages bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

setup: $(VENV)/.installed
test-setup: $(VENV)/.installed-test system-packages

system-packages:
	bash .ci/install-system-packages

up: setup
	$(BIN)/keydesk up --demo

# lint, format check and type check first: they take seconds, the suite takes minutes
test: test-setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
