# The verbs a newcomer needs. Everything runs from .venv; no DATABASE_URL means an embedded PostgreSQL.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# Demo: ~200k visits over 30 days, then the whole pipeline over that window, locally.
DEMO_START ?= 2026-10-01
DEMO_END   ?= 2026-10-30
DEMO_VISITS ?= 200000

.PHONY: install test demo lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $@

test: install
	$(BIN)/pytest -q

demo: install
	$(BIN)/etl-pipeline db init
	$(BIN)/etl-pipeline seed --visits $(DEMO_VISITS) --start $(DEMO_START) --days 30 --replace
	$(BIN)/etl-pipeline plan --start $(DEMO_START) --end $(DEMO_END)
	$(BIN)/etl-pipeline run --local --start $(DEMO_START) --end $(DEMO_END) --max-concurrency 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .runs *.egg-info
