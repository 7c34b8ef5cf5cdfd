# One command to run the app, one to test it. Both set up what they need first.
#   make run    sets up a virtualenv and serves the app on embedded defaults
#   make test   sets up test services and the virtualenv, then runs the checks and tests
#   make dist   builds the wheel (assets and translations included) into dist/

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# Tests run on every core: each worker starts its own servers on free ports.
PYTEST_ARGS ?= -n auto --dist worksteal

.PHONY: run test setup services lint clean assets translations dist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

VENDOR_STAMP := tracker/static/vendor/.built

$(VENDOR_STAMP): package.json package-lock.json scripts/build-assets
	bash scripts/build-assets
	touch $@

assets: $(VENDOR_STAMP)

translations: $(VENV)/.installed
	$(BIN)/pybabel compile -d tracker/translations

setup: $(VENV)/.installed assets translations

# A wheel with the built front-end libraries and compiled translations in it.
dist: setup
	$(BIN)/pip wheel --no-deps --quiet -w dist .

run: setup
	$(BIN)/python manage.py run --host $(HOST) --port $(PORT)

services:
	bash scripts/install-services

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: services setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) instance
