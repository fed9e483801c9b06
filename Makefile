# The commands people and CI share. Every target sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Development server: SQLite (./gatekeeper.db), the shipped policies/ and calendars/, and the
# development tokens of dev/tokens.yaml (documented in README.md).
run: $(STAMP)
	$(BIN)/gatekeeper db upgrade
	GATEKEEPER_TOKENS_FILE=$${GATEKEEPER_TOKENS_FILE:-dev/tokens.yaml} $(BIN)/gatekeeper serve

test: $(STAMP)
	dev/ensure-services
	$(BIN)/pytest -n 3 --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check gatekeeper tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	dev/ensure-services
	$(BIN)/python bench/calendar.py
	$(BIN)/python bench/gate.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/provenance.py
	$(BIN)/python bench/flux_windows.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
