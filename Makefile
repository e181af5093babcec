# driftsafe: `make lab` runs the drill, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab test lint typecheck bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==25.3"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/driftsafe lab run --dir $(CURDIR)/lab-run

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

bench: $(STAMP)
	$(BIN)/python bench/provider.py
	$(BIN)/python bench/server.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/faults.py --store sqlite
	@if [ -n "$$DRIFTSAFE_TEST_PG_URL" ]; then $(BIN)/python bench/faults.py --store pg; \
	else echo "bench/faults.py --store pg skipped: set DRIFTSAFE_TEST_PG_URL"; fi

clean:
	rm -rf $(VENV) lab-run .pytest_cache
