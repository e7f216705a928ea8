# factorysync — two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test services browser lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

## make demo: generate the plant data set, sync 40+ sources into ./factorysync.db, keep serving
demo: install
	$(BIN)/factorysync demo $(DEMO_ARGS)

## make test: the whole suite, against SQLite and the local PostgreSQL server
test: install services browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make browser: the system Chromium the console's browser tests drive (Debian package)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; \
	fi

## make services: start the local database servers the tests need, if they are down
services:
	@bash scripts/ensure-services.sh

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

clean:
	rm -rf $(VENV) factorysync.db factorysync.db-* factorysync.key factorysync-demo .pytest_cache
