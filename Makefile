# The verbs a newcomer needs. Everything runs from .venv; no DATABASE_URL means an embedded PostgreSQL.
PYTHON ?= python3
# Another Python in its own venv: make install PYTHON=$$(pyenv prefix 3.13.0)/bin/python3 VENV=.venv313
VENV   ?= .venv
BIN    := $(VENV)/bin

# Demo: ~200k visits over 30 days, then the whole pipeline over that window, locally.
DEMO_START ?= 2026-10-01
DEMO_END   ?= 2026-10-30
DEMO_VISITS ?= 200000

.PHONY: install install-python test demo lint bench clean

# The deploy tests' Node tools (an ASL validator) come from tests/deploy/package-lock.json when npm exists;
# without Node.js those tests skip and say why.
NODE_TOOLS := $(if $(shell command -v npm 2>/dev/null),tests/deploy/node_modules/.package-lock.json)

install: $(VENV)/.installed $(NODE_TOOLS)

# What `make demo` needs: the Python environment alone (no Node.js: only the deploy tests use it).
install-python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $@

tests/deploy/node_modules/.package-lock.json: tests/deploy/package.json tests/deploy/package-lock.json
	npm ci --prefix tests/deploy --no-audit --no-fund --loglevel=error

test: install
	$(BIN)/pytest -q

demo: install-python
	$(BIN)/etl-pipeline db init
	$(BIN)/etl-pipeline seed --visits $(DEMO_VISITS) --start $(DEMO_START) --days 30 --replace
	$(BIN)/etl-pipeline plan --start $(DEMO_START) --end $(DEMO_END) --max-concurrency 2
	$(BIN)/etl-pipeline run --local --start $(DEMO_START) --end $(DEMO_END) --max-concurrency 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --strict -p chunking -p handlers
	$(SAM) validate --lint
	$(SAM) build

# Benchmark (docs/benchmarks.md): its own database on $$DATABASE_URL's server (else the embedded one), dropped
# afterwards; a Markdown report on stdout and JSON under bench/results/. Sizes: BENCH_ARGS, e.g.
#   make bench BENCH_ARGS="--windows 7,30,60,90 --repeats 3 --explain"
BENCH_ARGS ?=
# The change-aware runs' figures (docs/freshness.md): FRESHNESS_BENCH_ARGS, e.g. "--repeats 1".
FRESHNESS_BENCH_ARGS ?=
bench: install
	$(BIN)/python -m bench.run_bench $(BENCH_ARGS)
	$(BIN)/python -m bench.freshness_bench $(FRESHNESS_BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv313 .pytest_cache .mypy_cache .ruff_cache .hypothesis .runs *.egg-info

# --- AWS SAM ------------------------------------------------------------------------------------------------
# `sam build` (BuildMethod: makefile, build_in_source in samconfig.toml) runs the build-<LogicalId> targets
# below with ARTIFACTS_DIR set. Every function gets the same code, copied (no tests, no caches); the
# third-party packages go once into DependenciesLayer as CPython 3.13 / arm64 wheels, whatever this
# machine's Python and CPU (boto3 is in the Lambda runtime). See README, "Deploy to AWS".
SAM := SAM_CLI_TELEMETRY=0 $(BIN)/sam
LAMBDA_CODE         := handlers chunking sql
LAMBDA_PYTHON       := 3.13
# Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34): manylinux wheels up to 2_28 are fine.
LAMBDA_PLATFORMS    := manylinux2014_aarch64 manylinux_2_28_aarch64
LAMBDA_REQUIREMENTS := psycopg2-binary==2.9.13 aws-lambda-powertools[parser]==3.37.0 pydantic==2.13.5
# Powertools Tracer's X-Ray SDK, without its botocore (the runtime has it): installed with --no-deps.
LAMBDA_TRACING      := aws-xray-sdk==2.15.0 wrapt==2.5.2
LAMBDA_FUNCTIONS    := ValidateConfigFunction StageVisitsFunction PlanChunksFunction ReconcileRunFunction \
                       ChunkWorkerFunction

.PHONY: $(addprefix build-,$(LAMBDA_FUNCTIONS)) build-DependenciesLayer

$(addprefix build-,$(LAMBDA_FUNCTIONS)):
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: run sam build" >&2; exit 2; }
	mkdir -p "$(ARTIFACTS_DIR)"
	tar -cf - --exclude=__pycache__ --exclude='*.pyc' $(LAMBDA_CODE) | tar -xf - -C "$(ARTIFACTS_DIR)"

build-DependenciesLayer:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: run sam build" >&2; exit 2; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --no-warn-conflicts \
		--target "$(ARTIFACTS_DIR)/python" --implementation cp --python-version $(LAMBDA_PYTHON) \
		$(addprefix --platform ,$(LAMBDA_PLATFORMS)) --only-binary=:all: $(foreach r,$(LAMBDA_REQUIREMENTS),'$(r)')
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --no-warn-conflicts --no-deps \
		--target "$(ARTIFACTS_DIR)/python" --implementation cp --python-version $(LAMBDA_PYTHON) \
		$(addprefix --platform ,$(LAMBDA_PLATFORMS)) --only-binary=:all: $(LAMBDA_TRACING)
	rm -rf "$(ARTIFACTS_DIR)/python/bin"
