# Two commands do all the set-up on a fresh machine:
#   make demo   creates the environment, starts the service (SQLite, in-process work) and drives a project over HTTP
#               (make demo ARGS=--keep-running leaves the server up; DATA=FILE.npz, FILE.csv or DIR/ of class folders)
#   make test   creates the environment if needed and runs ruff, mypy and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?=
LINTED := tbal client/tbal_client app worker migrations tests bench examples

.PHONY: env browser test lint typecheck pytest soak demo serve clean

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned torch would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	# The HTTP client is a distribution of its own (client/); the demo and the tests use it, so both.
	$(BIN)/pip install --quiet -e ./client -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

# The browser tests use Debian's Chromium (Playwright never downloads a browser here). Installed when
# missing and when we may (root); otherwise those tests say what is missing.
browser:
	@test -x /usr/bin/chromium || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)

lint: env
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# bench/ apart: its scripts import each other by file name (python bench/x.py puts bench/ on the path)
typecheck: env
	$(BIN)/mypy tbal client/tbal_client app worker examples tests
	cd bench && $(abspath $(BIN))/mypy *.py

# Two pytest processes (pytest-xdist), each test file whole in one of them (the Label Studio and browser
# files start their servers once): about 0.6 times the serial time on two cores. The suite's services are
# per process (a PostgreSQL schema, a Redis database each), so the processes never share state.
PYTEST_WORKERS ?= 2
pytest: env browser
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck pytest

# Too slow for CI: schemathesis with many examples per operation (SQLite, then PostgreSQL) and whatever
# else is under tests/soak (those tests skip unless TBAL_SOAK=1), then the 60 s load test of BENCHMARKS.md
# (exit 1 on any error). Needs PostgreSQL and Redis like CI.
soak: env
	TBAL_FUZZ_EXAMPLES=100 $(BIN)/pytest -q tests/app/test_fuzz.py
	TBAL_SOAK=1 $(BIN)/pytest -q tests/soak
	$(BIN)/python bench/load_test.py --clients 50 --duration 60

demo: env
	$(BIN)/python -m examples.demo $(if $(DATA),--data $(DATA),) $(ARGS)

serve: env
	$(BIN)/tbal serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
