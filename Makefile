# Berth: `make demo` runs it on the local stack, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE := .devstack
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := slapd ldap-utils samba docker-registry docker.io skopeo chromium nginx libnginx-mod-stream debootstrap
DIRECTORY ?= openldap
PYTEST_ARGS ?=
BASE ?= python:3.11-slim
IMAGE ?= berth:latest
BUILD_NETWORK ?= none

.PHONY: help deps system-deps demo test unit lint bench screenshots stack-up stack-down clean image wheels

help:
	@echo "make demo   - run Berth on the local stack at http://127.0.0.1:8000 (DIRECTORY=ad: Samba AD)"
	@echo "make test   - install what is missing, lint, then run every test against the real stack"
	@echo "make lint   - ruff (check, format) and mypy"
	@echo "make bench  - benchmarks: catalog (ratios against the raw registry), health, load, tokens"
	@echo "make image  - wheels into build/wheels, then docker build with no index (BASE=..., IMAGE=...)"

deps: system-deps $(VENV)/.installed

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

demo: deps
	@$(PY) -m devstack up --swarm --directory $(DIRECTORY) --state-dir $(STATE) >/dev/null || { \
	  echo "devstack: the Docker engine in Swarm mode did not start (reason above); running the registry as a plain process."; \
	  $(PY) -m devstack up --directory $(DIRECTORY) --state-dir $(STATE) >/dev/null; }
	@set -a; source $(STATE)/env; set +a; \
	trap '$(PY) -m devstack down --state-dir $(STATE)' EXIT; \
	echo; echo "  Berth: http://127.0.0.1:8000"; \
	echo "  Log in as alice / alice-pw (admin), olivia / olivia-pw (ops), dave / dave-pw (developer)."; \
	if [ "$(DIRECTORY)" = ad ]; then echo "  Active Directory LAB.TEST: also LAB\\dave, dave@lab.test; erin / erin-pw (ops via a nested group)."; fi; \
	echo "  Ctrl-C stops Berth and the local stack."; echo; \
	$(VENV)/bin/gunicorn --config gunicorn.conf.py --bind 127.0.0.1:8000 app:app

test: deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

unit: deps
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

screenshots: deps
	BERTH_SCREENSHOTS=docs $(PY) -m pytest tests/browser $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: deps
	$(PY) -m bench.catalog
	$(PY) -m bench.health
	$(PY) -m bench.load
	$(PY) -m bench.tokens

# The wheels come from the index (or pip's cache) on this host; the build itself reaches
# nothing (--network none): the Dockerfile installs with --no-index from build/wheels.
wheels: $(VENV)/.installed
	$(PY) -m pip wheel -q --disable-pip-version-check -r requirements.txt -w build/wheels

image: wheels
	docker build --network $(BUILD_NETWORK) --build-arg BASE=$(BASE) -t $(IMAGE) .
	@docker image inspect --format '$(IMAGE): {{.Size}} bytes' $(IMAGE)

stack-up: deps
	$(PY) -m devstack up --state-dir $(STATE)

stack-down:
	$(PY) -m devstack down --state-dir $(STATE)

clean: stack-down
	rm -rf $(VENV) instance .pytest_cache build
