# A newcomer needs only `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The limits of deploy/systemd/daphne@.service (tests/test_transport.py checks they match).
DAPHNE_OPTIONS := --websocket-max-message-size 4096 --websocket-max-frame-size 4096 --ping-interval 15 --ping-timeout 10

# Django 6.x needs Python 3.12+: the first such interpreter found runs `make test-django6`.
PYTHON_NEW ?= $(firstword $(foreach p,python3.14 python3.13 python3.12 $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3),\
	$(shell $(p) -c 'import sys; assert sys.version_info >= (3, 12); print("$(p)")' 2>/dev/null)))

.PHONY: run test test-fast test-postgres test-django6 lint format screenshot system-packages clean bench bench-quick bench-big-board bench-import

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# The development settings every manage.py command reads, in any terminal (git-ignored):
# DEBUG on and a secret key generated once (scoreboard/settings.py reads it).
.env:
	@umask 077 && printf 'DJANGO_DEBUG=1\nDJANGO_SECRET_KEY=%s\n' \
		"$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "Wrote .env (DEBUG on, a generated secret key)"

run: $(VENV)/.runtime .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@$(BIN)/python manage.py ensure_admin --url http://$(HOST):$(PORT)/admin/
	@echo "Spectator page: http://$(HOST):$(PORT)/boards/demo/   (Ctrl-C to stop)"
	@echo "Moving scores:  .venv/bin/python manage.py simulate   (in a second terminal)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) $(DAPHNE_OPTIONS) scoreboard.asgi:application

$(VENV)/.bench: requirements.txt requirements-dev.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@

# Real Daphne, Redis and client processes; writes bench/results/, docs/BENCHMARKS.md and the plot.
bench: $(VENV)/.bench
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.multiplex

bench-quick: $(VENV)/.bench
	$(BIN)/python -m bench.run --quick

# A board of 1,000 players with long Unicode names: snapshot, connect and page update times.
bench-big-board: $(VENV)/.dev
	$(BIN)/python -m bench.big_board

# A 1,000-row players import through the admin's preview and confirm: time, frames, bytes.
bench-import: $(VENV)/.dev
	$(BIN)/python -m bench.import_cost

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Everything, including the end-to-end tests (real Chromium, Daphne and Redis processes).
test: lint system-packages
	$(BIN)/python -m pytest --cov --cov-report=term

# Skips the end-to-end and fault-injection tests (marked e2e, faults): well under a minute.
test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not e2e and not faults"

# The admin's two-staff tests (tests/test_no_lost_edits.py) again, on PostgreSQL: pytest-django
# creates and drops its own database on the server of TEST_POSTGRES_URL.
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
test-postgres: $(VENV)/.dev
	DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/test_no_lost_edits.py tests/test_admin.py tests/test_private_boards.py

test-django6:
	@if [ -z "$(PYTHON_NEW)" ]; then echo "test-django6: no Python 3.12+ found, skipped"; exit 0; fi; \
	set -e; [ -x .venv-django6/bin/python ] || $(PYTHON_NEW) -m venv .venv-django6; \
	.venv-django6/bin/pip install --quiet -r requirements-dev.txt "Django>=6.0,<6.2"; \
	.venv-django6/bin/python -m django --version; \
	.venv-django6/bin/python -m pytest -q -p no:cacheprovider -m "not e2e and not faults"

# Re-takes docs/img/scoreboard-{phone,laptop,tv}.png (needs chromium and redis-server).
screenshot: $(VENV)/.dev
	$(BIN)/python -m harness.screenshot docs/img

# redis-server and chromium, installed with apt-get when missing (as root).
system-packages:
	@bash .ci/system-packages

clean:
	rm -rf $(VENV) .venv-django6 .pytest_cache .ruff_cache staticfiles
