# Everything a newcomer needs, set-up included: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
N ?= 20000
# The export benchmark's larger size; HUGE=1000000 also reads an export of a
# million explorations alone (about 13 GB written under /tmp, then removed).
EXPORT_N ?= 100000
HUGE ?= 0
# Before-images and reverts: the issue's size (about 4 minutes a round here).
BACKUP_N ?= 100000
# Four namespaces of a quarter each against one of this many (issue 31).
NAMESPACES_N ?= 100000
DEMO_EXPLORATIONS ?= 3000

.PHONY: install demo test browser screenshots bench stop clean

$(INSTALLED): requirements.txt requirements-dev.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(INSTALLED)

install: $(INSTALLED)

# Starts the project's emulator (left running, so `beam-jobs runs`, `status`
# and `output` answer at once afterwards; `make stop` stops it), loads the
# sample explorations and runs the interaction audit.
demo: install
	$(BIN)/beam-jobs emulator start
	$(BIN)/python -m pipelines.sample_data --explorations $(DEMO_EXPLORATIONS)
	$(BIN)/beam-jobs run InteractionAuditOneOffJob --preview 160
	@echo "The emulator is still running: try '$(BIN)/beam-jobs runs'; 'make stop' stops it."
	@echo "The console: run '$(BIN)/beam-jobs serve', then open http://127.0.0.1:8080/ (Ctrl-C stops it)."

# The console's browser tests drive Debian's Chromium (Playwright's own
# browser download needs the internet). Installed here when missing; where
# that cannot be done, `make test` stops and says what to install.
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make: the console's browser tests need Chromium at $(CHROMIUM): install Debian's chromium package (sudo apt-get install -y chromium), then run make test again." >&2; exit 1; fi; \
	  command -v apt-get >/dev/null || { echo "make: no apt-get here: install Chromium so that $(CHROMIUM) runs it, then run make test again." >&2; exit 1; }; \
	  echo "Installing Debian's chromium for the console's browser tests (about a minute)..."; \
	  $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null \
	    || { echo "make: apt-get install chromium failed: install Debian's chromium package, then run make test again." >&2; exit 1; }; }
	@test -x $(CHROMIUM) || { echo "make: $(CHROMIUM) is still missing after installing chromium: install it, then run make test again." >&2; exit 1; }

# lint-imports checks the layers and rooms declared in pyproject.toml; mypy
# the types ([tool.mypy]: every module's bodies, and the lifecycle, records
# and IO strictly).
test: install browser
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Refreshes the console's screenshots in docs/console from the browser tests.
screenshots: install browser
	BEAM_JOBS_SCREENSHOTS=docs/console $(BIN)/python -m pytest -q tests/scenarios/test_console_browser.py

bench: install
	$(BIN)/python -m bench.run --entities $(N)
	$(BIN)/python -m bench.exports --sizes $(N),$(EXPORT_N) --huge $(HUGE)
	$(BIN)/python -m bench.shapes --shapes-n $(N)
	$(BIN)/python -m bench.guide --sizes $(N),$(EXPORT_N)
	$(BIN)/python -m bench.backups --entities $(BACKUP_N)
	$(BIN)/python -m bench.estimates --small 10000 --large $(EXPORT_N)
	$(BIN)/python -m bench.namespaces --entities $(NAMESPACES_N) --parts 4 --rounds 2

stop: install
	$(BIN)/beam-jobs emulator stop

clean: stop
	rm -rf .beam-jobs
