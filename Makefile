# The two commands of the README: `make run` (set up and serve the embedded demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 4000
WORKERS ?= 1
CONFIG ?= gateway/demo_config.yaml
# The demo's master key; set your own for anything but a local try-out.
TOLLGATE_MASTER_KEY ?= sk-tollgate-demo-3f9a6c1e8b2d4f70a5c9e1b3d7f2a8c4
export TOLLGATE_MASTER_KEY

.PHONY: install setup run test lint superuser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt

# The data folder (var/ or TOLLGATE_VAR_DIR) and the embedded default's secret key: settings only name them.
setup: install
	$(BIN)/python manage.py setup

run: setup
	$(BIN)/python manage.py migrate --noinput
	@echo "Master key: $$TOLLGATE_MASTER_KEY   Admin: make superuser, then http://$(HOST):$(PORT)/admin/"
	$(BIN)/python manage.py serve --config $(CONFIG) --host $(HOST) --port $(PORT) --workers $(WORKERS)

superuser: install
	$(BIN)/python manage.py createsuperuser

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

test: setup lint
	$(BIN)/python -m pytest -q
