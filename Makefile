# modscan: `make demo` runs a demo scan, `make test` runs lint, types and the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test lint unit services bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,demo]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/modscan demo

services:
	bash infra/services.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

unit: install
	$(PY) -m pytest tests/unit -q

# The suite in parallel (pytest-xdist, from the dev extra): each worker has its own PostgreSQL
# databases and Redis database numbers, and the longest tests start first (tests/conftest.py).
# loadgroup keeps tests marked xdist_group(name) on one worker. `make test PYTEST_WORKERS=0`
# runs it in one process.
PYTEST_WORKERS ?= 2

test: lint services
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

bench: install services
	$(VENV)/bin/modscan bench

clean:
	rm -rf $(VENV) demo modscan.db modscan.db-* .mypy_cache .ruff_cache .pytest_cache
