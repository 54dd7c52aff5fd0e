# A newcomer needs only `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: export DJANGO_DEBUG ?= 1
run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@$(BIN)/python manage.py ensure_admin --url http://$(HOST):$(PORT)/admin/
	@echo "Spectator page: http://$(HOST):$(PORT)/boards/demo/   (Ctrl-C to stop)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) scoreboard.asgi:application

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not e2e"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
