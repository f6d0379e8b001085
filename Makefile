# Tether: `make demo` and `make test` work on a fresh clone (they create .venv and install).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/dagster_home

.PHONY: install demo test test-unit services dev bench clean

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV) || { apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

## Generate a synthetic LA and run every asset through Dagster on a SQLite file, then summarise.
demo: install
	$(BIN)/tether demo

## Start the local services the integration tests need (OpenSSH SFTP, unixODBC + psqlODBC,
## PostgreSQL, SMTP) on loopback; safe to run twice.
services:
	bash infra/services.sh

## The whole suite: unit tests, then integration tests against real local services. Two workers,
## each taking whole modules (--dist loadscope), so a module's fixtures are built in one process.
test: install services
	source infra/services.env && $(BIN)/python -m pytest -n 2 --dist loadscope -q tests

test-unit: install
	$(BIN)/python -m pytest -q tests -m "not integration"

## dagster dev on dagster_home with the demo deployment (made first if there is none yet).
dev: install var/demo/tether.env
	$(BIN)/tether dev

var/demo/tether.env:
	$(BIN)/tether demo

bench: install services
	source infra/services.env && $(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf var demo
