# Two commands from a fresh machine: `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv browser test test-fast lint bench demo serve package clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium for the viewer's browser test (tests/e2e/test_viewer_browser.py), installed when
# missing and we are root; elsewhere the test skips and says why. Playwright only drives it.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the browser test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
		else echo "note: $(CHROMIUM) missing and not root: the browser test will skip"; fi; }

# The locked npm packages: axe-core for the browser test's accessibility check, and the packaging tools.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

test: venv browser $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The unit tests alone (nothing started: no database, no moto), for the edit-test loop; under a minute.
# `$(BIN)/python -m pytest --lf` reruns only what failed last time (pytest keeps its cache).
test-fast: venv
	$(BIN)/python -m pytest tests/unit -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

$(VENV)/.bench: $(STAMP) requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt -c constraints.txt
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python -m bench

# KEEP=1 keeps the stack (and the viewer) up after the checks, until Ctrl-C.
demo: venv
	$(BIN)/python -m archive demo $(if $(filter-out 0 no false,$(KEEP)),--keep)

serve: venv
	$(BIN)/python -m archive serve

clean:
	rm -rf $(VENV) .archive node_modules .serverless

# --- Deployment (deploy/README.md, docs/operations.md). Offline: dummy credentials, nothing is sent to AWS. ---
# Bytecode in the Lambda zips must come from the runtime's Python (3.12); PY312 finds one.
ifndef PY312
PY312 := $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
endif
DEPLOY_TOOLS := $(VENV)/deploy-tools
TEMPLATE     := .serverless/cloudformation-template-update-stack.json
OFFLINE_AWS  := AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_SESSION_TOKEN= AWS_PROFILE= \
	AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off

.PHONY: package deploy-check package-smoke

$(DEPLOY_TOOLS)/.installed: requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_TOOLS)
	$(DEPLOY_TOOLS)/bin/pip install --quiet -r requirements-deploy.txt
	touch $@

# The two function zips and the CloudFormation template, in .serverless/.
package: venv $(DEPLOY_TOOLS)/.installed
	@test -n "$(PY312)" || { echo "make package: no Python 3.12 found (the Lambda runtime's version); set PY312=/path/to/python3.12" >&2; exit 1; }
	npm ci --no-audit --no-fund
	$(OFFLINE_AWS) ARCHIVE_PYTHON=$(PY312) npx --no-install serverless package --stage dev

# What CI checks on the packaged service: cfn-lint (W3005 accepted, see deploy/README.md) and the
# template/artifact tests, which must not skip here.
deploy-check: venv $(DEPLOY_TOOLS)/.installed
	$(DEPLOY_TOOLS)/bin/cfn-lint --ignore-checks W3005 -- $(TEMPLATE)
	ARCHIVE_REQUIRE_PACKAGE=1 $(BIN)/python -m pytest tests/packaging/test_template.py \
		tests/integration/test_least_privilege.py::test_the_packaged_role_allows_every_call_too

# Import each handler from its zip and time it. The deployed zips are arm64, so this builds the same
# service for x86_64 (this machine) outside .serverless/. Packaging empties .serverless/, so run this
# before `make package`, not between it and `make deploy-check`.
SMOKE_DIR ?= /tmp/photonranch-archive-smoke
package-smoke: venv
	@test -n "$(PY312)" || { echo "make package-smoke: no Python 3.12 found; set PY312=/path/to/python3.12" >&2; exit 1; }
	npm ci --no-audit --no-fund
	rm -rf $(SMOKE_DIR)/package $(SMOKE_DIR)/Ingest* $(SMOKE_DIR)/Expire* $(SMOKE_DIR)/Render*
	$(OFFLINE_AWS) ARCHIVE_PYTHON=$(PY312) npx --no-install serverless package --stage dev \
		--param=architecture=x86_64 --package $(SMOKE_DIR)/package
	$(PY312) deploy/smoke_import.py $(SMOKE_DIR)/package $(SMOKE_DIR)
