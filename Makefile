# Two commands from a fresh machine: `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test lint bench demo serve package clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .

$(VENV)/.bench: $(STAMP) requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt -c constraints.txt
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python -m bench

demo: venv
	$(BIN)/python -m archive demo

serve: venv
	$(BIN)/python -m archive serve

clean:
	rm -rf $(VENV) .archive node_modules .serverless
