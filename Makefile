# Two entry points for a fresh machine (Python 3.11+, Node.js): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STUBS := .stubs

.PHONY: run test typecheck pytest lint-firmware bench bench-settle load simulate-20 clean openscad chromium systemd

# Each step says what it does: the first install takes minutes, and pip lists what it fetches.
$(BIN)/activate:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ est nécessaire")'
	@echo "==> Environnement Python dans $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	@echo "==> Installation de la caisse et de ses dépendances (quelques minutes la première fois)"
	$(BIN)/python -m pip install --progress-bar off -e .
	@touch $@
	@echo "==> Installation terminée"

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The ESP32 stubs are made for pyright, so they live in their own folder (see pyrightconfig.json).
$(STUBS)/.installed: $(BIN)/activate
	$(BIN)/python -m pip install --quiet --target $(STUBS) 'micropython-esp32-stubs>=1.22'
	touch $@

# The enclosure test renders hardware/enclosure/enclosure.scad headless; installed only when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
openscad:
	@command -v openscad >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openscad; }

# The console's browser tests drive Debian's Chromium with Playwright (never Playwright's own download).
chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# The systemd units (deploy/systemd) are checked with systemd-analyze; installed only when missing.
systemd:
	@command -v systemd-analyze >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq systemd; }

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Seed a demo caisse on the embedded SQLite database and serve it.
run: $(VENV)/.installed
	@echo "==> Démonstration : préparation de la base, puis le serveur (Ctrl-C pour arrêter)"
	$(BIN)/caisse demo

## Every test: lint, type checks, backend (SQLite, plus PostgreSQL when CI is set), firmware under MicroPython.
test: $(VENV)/.installed-dev $(STUBS)/.installed node_modules/.installed openscad chromium systemd
	$(BIN)/ruff check .
	PYTHONPATH=firmware $(BIN)/lint-imports
	@# The type checks take the second core while the tests run; either failing fails the target.
	$(MAKE) --no-print-directory -j2 typecheck pytest

## pyright: the firmware against the ESP32 stubs, then the backend, provisioning and common (standard mode).
typecheck:
	$(BIN)/pyright -p pyrightconfig.json
	$(BIN)/pyright -p pyright.backend.json

pytest:
	$(BIN)/python -m pytest

## Twenty seeds of the market simulation with every fault and adversary; prints how long (docs/simulation.md).
simulate-20: $(VENV)/.installed
	$(BIN)/caisse simulate --seeds 20 --terminals 6 --members 24 --days 2

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/ingest.py

## Nightly settlement of 10^6 records, SQLite then PostgreSQL at 127.0.0.1:5432, against its goals.
bench-settle: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/settle.py

## 500 terminals uploading at once to uvicorn (several workers) on PostgreSQL at 127.0.0.1:5432.
load: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/load.py

clean:
	rm -rf $(VENV) $(STUBS) node_modules
