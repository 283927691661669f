# Agent Chat: `make run` serves the app on http://127.0.0.1:8000, `make test` runs the whole gate.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
HOST_PORT ?= 127.0.0.1:8000

.PHONY: run serve dev test lint typecheck security migrations-check deploy-check pytest install install-dev \
        migrate bench evidence live-local browser-deps axe scans schema-check clean-var help mcp-test-servers

help:
	@echo "make run    install, migrate, load config/agentchat.toml (made from the example), create the operator, serve on $(HOST_PORT)"
	@echo "make test   ruff, format check, mypy, bandit, migrations check, deploy check, pytest"
	@echo "make bench  benchmarks (prints a table, writes bench/results.json)"
	@echo "make live-local  real turns against a local model server (llama.cpp + SmolLM2-135M), no key needed"
	@echo "make evidence  run every gate and append a row to .buildprint/evidence/evidence-ledger.jsonl"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

$(VENV)/.base-installed: requirements/base.lock | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/base.lock
	@touch $@

$(VENV)/.dev-installed: requirements/dev.lock requirements/base.lock | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	@touch $(VENV)/.base-installed $@

install: $(VENV)/.base-installed
install-dev: $(VENV)/.dev-installed

var/secret_key: | $(VENV)/.base-installed
	$(PY) -c "from pathlib import Path; from agentchat_site.envconfig import ensure_key_file; ensure_key_file(Path('var/secret_key'))"

var/static/.collected: $(VENV)/.base-installed
	$(MANAGE) collectstatic --noinput --verbosity 0
	@touch $@

migrate: install var/secret_key
	$(MANAGE) migrate --noinput

# Your configuration: config/agentchat.toml (git-ignored), created from the tracked example the
# first time; `make run` loads it and the app serves with it (AGENTCHAT_CONFIG).
USER_CONFIG := config/agentchat.toml
$(USER_CONFIG):
	cp config/agentchat.example.toml $@
	@echo "created $@ from config/agentchat.example.toml: edit it to configure Agent Chat"

# Everything before `serve` is idempotent. The port is checked first: a second `make run` while a
# server is listening stops there, before recover_runs could touch the first server's live turns. A configuration
# file with problems does not stop it: load_config prints every problem, records them for the
# admin and the bootstrap, changes nothing, and the app serves with the last good configuration.
run: export AGENTCHAT_CONFIG ?= $(CURDIR)/$(USER_CONFIG)
run: | $(USER_CONFIG)
	@$(PYTHON) scripts/port_free.py $(HOST_PORT)
	$(MAKE) --no-print-directory migrate var/static/.collected
	$(MANAGE) recover_runs
	$(MANAGE) load_config || echo "make run: $$AGENTCHAT_CONFIG has the problems above; serving with the last good configuration"
	$(MANAGE) ensure_operator
	$(MAKE) --no-print-directory serve

# The ASGI server (uvicorn) and AGENTCHAT_WORKERS (default 2) supervised worker processes that
# run the turns; Ctrl-C or SIGTERM stops them all (running turns finish within the grace, or end
# `interrupted`). Nothing is installed or migrated here: scripts serve a database they prepared.
serve:
	@$(PYTHON) scripts/port_free.py $(HOST_PORT)
	@echo "Agent Chat on http://$(HOST_PORT)/  (admin: /admin/, API: /api/, docs: /api/docs/)"
	$(MANAGE) serve $(HOST_PORT)

# Django's development server, for development only (no workers: run `manage.py worker` beside it).
dev:
	@$(PYTHON) scripts/port_free.py $(HOST_PORT)
	$(MANAGE) runserver $(HOST_PORT)

test: install-dev var/secret_key mcp-test-servers axe lint typecheck security migrations-check deploy-check schema-check scans pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy .

# Bandit logs a WARNING for every `# nosec` whose line raised nothing at this severity and for every
# word after `nosec` that is not a test id; they are noise, not findings, so they are filtered out
# (pipefail keeps bandit's exit status). Findings and errors still print.
BANDIT_NOISE := ^\[(tester|manager)\][[:space:]]+WARNING[[:space:]]+(nosec encountered|Test in comment)
security:
	@set -o pipefail; $(VENV)/bin/bandit -q -c pyproject.toml -r agentchat_site core memory telemetry runtime web scripts \
	    --severity-level medium 2>&1 | { grep -Ev '$(BANDIT_NOISE)' || true; }
	@echo "bandit: no issues at medium severity or above"

migrations-check:
	$(MANAGE) makemigrations --check --dry-run

# check --deploy as production would run: DEBUG off, a real key, HTTPS settings on.
deploy-check:
	DEBUG=false AGENTCHAT_HTTPS=true ALLOWED_HOSTS=agentchat.example.com \
	SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	$(MANAGE) check --deploy --fail-level WARNING

# The OpenAPI schema generates without a single drf-spectacular warning and validates.
schema-check:
	$(MANAGE) spectacular --validate --fail-on-warn --file /dev/null

# No stubs, TODOs, hollow tests or reason-less skips; no key-shaped value in any tracked file.
scans:
	$(PY) scripts/no_fake_scan.py
	$(PY) scripts/secret_scan.py

# The MCP servers the tests run against (the reference server, the conformance suite), from the npm
# registry into var/npm/, pinned by tests/mcp/npm/package-lock.json; does nothing when installed.
mcp-test-servers:
	bash scripts/mcp-test-servers

# Debian's Chromium for the browser check (root, apt-get), and axe-core for the chat pages' accessibility
# check (npm, into var/axe); each does nothing when it is installed.
browser-deps: axe
	bash scripts/install-browser

# axe-core (npm, pinned, into var/axe) for the chat pages' accessibility check, which `make test` runs.
axe:
	bash scripts/install-axe

# -q and the classic progress style: a dot per test, no percentage counter; -ra (pyproject) keeps
# the reason of every skip in the summary.
pytest:
	$(VENV)/bin/pytest -q -o console_output_style=classic $(PYTEST_ARGS)

bench: install-dev var/secret_key mcp-test-servers
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/bench.lock
	$(PY) -m bench

# Real turns against a real model server with no key: llama.cpp's OpenAI-compatible server and the
# SmolLM2-135M-Instruct model, installed into var/live-local by the script (the first build takes
# minutes), through an `openai_compatible` route (tests/live).
live-local: install-dev var/secret_key
	bash scripts/live-local

evidence: install-dev var/secret_key browser-deps mcp-test-servers
	$(PY) scripts/evidence.py

clean-var:
	rm -rf var
