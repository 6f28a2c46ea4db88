# Quick start (see README.md):
#   make demo   set up, then start the dashboard (http://localhost:8501)
#   make test   set up, then run the whole test suite
#   make test-fast   the suite without the slow tests (pytest -m 'not slow'), for day-to-day work
.PHONY: setup demo test test-fast lint

VENV := .venv

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/domainvit dashboard

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
