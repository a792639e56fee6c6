# The two commands: `make serve` (the gateway on the embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[embedded,dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/rlpa serve

test: $(STAMP)
	$(BIN)/ruff check server training tests bench migrations
	$(BIN)/mypy
	$(BIN)/pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check server training tests bench migrations
	$(BIN)/ruff format --check server
	$(BIN)/mypy
