# xnode: two commands on a fresh machine.
#   make run   - create .venv, install, initialise ./data (first admin), serve on :8080
#   make test  - install test dependencies (incl. Debian chromium), run the whole suite

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ./data
LISTEN ?= 127.0.0.1:8080
# apt-get needs root; use sudo when not root and sudo exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: run test install test-deps chromium lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

test-deps: $(VENV)/.test-installed chromium

run: install
	@if [ ! -f $(DATA)/xnode.toml ]; then \
	  $(BIN)/xnode init --data $(DATA) --domain localhost --http --port 8080 \
	    --listen $(LISTEN) --admin admin; \
	fi
	$(BIN)/xnode serve --data $(DATA)

# Browser tests drive Debian's Chromium through Playwright (no browser download).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; \
	fi

lint: $(VENV)/.test-installed
	$(BIN)/ruff check xnode federation tests bench

test: test-deps lint
	$(BIN)/pytest -n auto -q -p no:cacheprovider

bench: $(VENV)/.test-installed
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
