# Everything a newcomer needs, set-up included: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
N ?= 20000
DEMO_EXPLORATIONS ?= 3000

.PHONY: install demo test bench stop clean

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

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench.run --entities $(N)

stop: install
	$(BIN)/beam-jobs emulator stop

clean: stop
	rm -rf .beam-jobs
