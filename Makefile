# The two commands of the README: `make run` (set up and serve the embedded demo) and `make test`; while it serves,
# `make key` and `make superuser` in a second shell (same HOST, PORT and TOLLGATE_VAR_DIR).
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

# make superuser: the admin login, made without a prompt (DJANGO_SUPERUSER_PASSWORD is required).
DJANGO_SUPERUSER_USERNAME ?= admin
DJANGO_SUPERUSER_EMAIL ?= admin@example.com
export DJANGO_SUPERUSER_USERNAME DJANGO_SUPERUSER_EMAIL
# make key: a virtual key with this alias (and, if set, this team_id), made through the running server's API.
KEY_ALIAS ?= my-app
KEY_TEAM ?=
export KEY_ALIAS KEY_TEAM

.PHONY: install setup run test lint superuser key

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

superuser: $(BIN)/python
	@test -n "$$DJANGO_SUPERUSER_PASSWORD" || { echo "Set DJANGO_SUPERUSER_PASSWORD (and DJANGO_SUPERUSER_USERNAME, default admin)."; exit 2; }
	$(BIN)/python manage.py createsuperuser --noinput
	@echo "Log in at http://$(HOST):$(PORT)/admin/ as $$DJANGO_SUPERUSER_USERNAME"

# Prints the new key's secret and nothing else, for KEY=$$(make -s key).
key: $(BIN)/python
	@$(BIN)/python -c 'import json, os, sys, urllib.request; \
	body = {"key_alias": os.environ["KEY_ALIAS"], **({"team_id": os.environ["KEY_TEAM"]} if os.environ["KEY_TEAM"] else {})}; \
	request = urllib.request.Request(sys.argv[1], json.dumps(body).encode(), method="POST", \
	    headers={"Authorization": "Bearer " + os.environ["TOLLGATE_MASTER_KEY"], "Content-Type": "application/json"}); \
	print(json.load(urllib.request.urlopen(request, timeout=30))["key"])' "http://$(HOST):$(PORT)/key/generate"

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

test: setup lint
	$(BIN)/python -m pytest -q
