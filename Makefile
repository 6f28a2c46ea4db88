# Quick start (see README.md):
#   make demo   set up, then start the dashboard (http://localhost:8501)
#   make test   set up, then run the whole test suite
.PHONY: setup demo test lint

VENV := .venv

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/domainvit dashboard

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
