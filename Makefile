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

# The independent ActivityPub peer for interop tests lives in ../shared; it is
# installed in a copy (never inside shared/) with its own Node 22 from npm.
PEER_SRC := ../shared/interop/fedify-peer
PEER_DIR := .cache/fedify-peer

# Front-end assets (icons; axe-core for the accessibility tests) come from the npm
# registry, pinned in assets/package-lock.json, and are built into templates/static.
ICONS := templates/static/icons.svg

.PHONY: run test install test-deps assets chromium interop-peer postgres lint bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed assets

assets: $(ICONS)

$(ICONS): assets/package.json assets/package-lock.json assets/build_icons.mjs
	@command -v npm >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs npm; }
	cd assets && npm ci --no-audit --no-fund --loglevel=error && node build_icons.mjs

test-deps: $(VENV)/.test-installed assets chromium interop-peer postgres

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

# PostgreSQL for the second pass of the suite and the benchmarks: Debian's package, whose
# binaries tools/pg_cluster.py runs as throwaway clusters in temporary directories (one
# per test worker). The createcluster.d file stops the package from creating (and
# starting) a system cluster of its own: nothing here uses one.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  $(SUDO) mkdir -p /etc/postgresql-common/createcluster.d && \
	  echo "create_main_cluster = false" | $(SUDO) tee /etc/postgresql-common/createcluster.d/xnode.conf >/dev/null && \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y postgresql; \
	fi

# Copies the peer, installs its npm dependencies, maps the test host names to
# 127.0.0.x in /etc/hosts and issues certificates from a local test CA.
interop-peer:
	@if [ -d $(PEER_SRC) ]; then \
	  mkdir -p $(PEER_DIR) && \
	  install -m 644 $(PEER_SRC)/package.json $(PEER_SRC)/package-lock.json $(PEER_SRC)/peer.mjs $(PEER_DIR)/ && \
	  install -m 755 $(PEER_SRC)/make-ca.sh $(PEER_SRC)/hosts.sh $(PEER_DIR)/ && \
	  { [ -x $(PEER_DIR)/node_modules/.bin/node ] || (cd $(PEER_DIR) && npm ci --no-audit --no-fund --loglevel=error); } && \
	  $(SUDO) $(PEER_DIR)/hosts.sh 127.0.0.12=fedify.test 127.0.0.21=xnode-a.test 127.0.0.22=xnode-b.test >/dev/null && \
	  { [ -s $(PEER_DIR)/certs/xnode-a.test.crt ] || (cd $(PEER_DIR) && ./make-ca.sh -d certs fedify.test xnode-a.test xnode-b.test >/dev/null); }; \
	else echo "interop peer: $(PEER_SRC) absent, interop tests will be skipped"; fi

lint: $(VENV)/.test-installed
	$(BIN)/ruff check xnode federation tests bench tools
	$(BIN)/mypy

# The whole suite twice: on the embedded SQLite, then with every node on PostgreSQL
# (tests/database_backend.py).
test: test-deps lint
	$(BIN)/pytest -n auto --dist loadfile -q -p no:cacheprovider
	XNODE_TEST_DATABASE=postgres $(BIN)/pytest -n auto --dist loadfile -q -p no:cacheprovider

bench: $(VENV)/.test-installed
	$(BIN)/python bench/startup.py

# The user guide's pictures (docs/screenshots): a demo node, Chromium at 1280 and 390 px.
# A colour emoji font, or reactions and the boost marker show as empty boxes.
screenshots: $(VENV)/.test-installed assets chromium
	@fc-list | grep -qi "color emoji" || { $(SUDO) apt-get update && $(SUDO) apt-get install -y fonts-noto-color-emoji; }
	$(BIN)/python tools/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache assets/node_modules $(ICONS)
