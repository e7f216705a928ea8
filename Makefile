# factorysync — two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test services browser lint bench clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,test]'
	touch $@

install: $(VENV)/.installed

## make demo: generate the plant data set, sync 40+ sources into ./factorysync.db, keep serving;
## prints the console's address and a login (user admin, a new password at every start)
demo: install
	$(BIN)/factorysync demo $(DEMO_ARGS)

## make test: the whole suite, against SQLite and the local PostgreSQL server; the tests
## marked slow run in a second process beside the rest (scripts/test.sh)
test: install services browser
	TEST_PYTHON=$(BIN)/python bash scripts/test.sh $(PYTEST_ARGS)

## make screenshots: the console's pages at 1440×900 and 390×844 (NAME-phone.png), as the
## README shows them, into docs/screenshots (scripts/screenshots.py)
screenshots: install browser
	$(BIN)/python scripts/screenshots.py $(CURDIR)/docs/screenshots

## make browser: the system Chromium the console's browser tests drive (Debian package)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; \
	fi

## make services: start the local database servers the tests need, if they are down
services:
	@bash scripts/ensure-services.sh

## make lint: style (ruff), types (mypy, the project's settings in pyproject.toml) and
## the layers' import contracts (import-linter, .importlinter)
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m mypy src/factorysync
	$(BIN)/lint-imports
	$(BIN)/python -m factorysync.connectors.config_doc --check

## make bench-venv: the peer tools (dlt, sling, ingestr) in their own environment, never runtime deps
BENCH_VENV ?= .bench-venv
.PHONY: bench-venv
$(BENCH_VENV)/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -r bench/requirements.txt
	touch $@

bench-venv: $(BENCH_VENV)/.installed

## make bench: every peer comparison case (a–g), 1,000,000 rows, 3 alternating runs;
## tables on stdout, JSON and Markdown in bench/results, charts in docs/benchmarks
BENCH_ARGS ?=
PEER_CASES := peer_csv.py peer_json.py peer_pg_table.py peer_resync.py peer_incremental.py peer_memory.py
bench: install services bench-venv
	@status=0; for script in $(PEER_CASES); do \
	  $(BIN)/python bench/$$script --peers require --bench-venv $(BENCH_VENV) \
	    --chart-dir docs/benchmarks $(BENCH_ARGS) || status=1; \
	done; \
	$(BIN)/python bench/peer_report.py; exit $$status

clean:
	rm -rf $(VENV) factorysync.db factorysync.db-* factorysync.key factorysync-demo data/factorysync-demo .pytest_cache
