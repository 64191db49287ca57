# Two commands set everything up on a fresh machine:
#   make demo   virtualenv + install + ingest the bundled corpus + answer three questions
#   make test   virtualenv + install + lint + the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ENV := ARAG_DATA_DIR=.arag/demo

.PHONY: install demo test lint format browser sandbox openwebui eval-scifact clean

$(BIN)/arag: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU build (an unpinned torch pulls gigabytes of CUDA).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The ONNX export of the bundled model (default backend), into ~/.cache/arag/models (about 3 s).
	$(BIN)/python -m tools.onnx_export
	# Byte-code for the project's own modules, as pip writes it for installed packages (an editable
	# install does not, and with PYTHONDONTWRITEBYTECODE set every command would compile them again).
	$(BIN)/python -m compileall -q agents tools graphs evals
	touch $@

install: $(BIN)/arag

demo: install
	$(DEMO_ENV) $(BIN)/arag ingest examples/corpus --source demo \
	  --description "Short notes on space flight, bees, coral reefs, chemistry, inventions and Egyptology"
	$(DEMO_ENV) $(BIN)/arag sources
	$(DEMO_ENV) $(BIN)/arag ask "When did Apollo 11 land on the Moon?"
	$(DEMO_ENV) $(BIN)/arag ask "What does the waggle dance tell other bees?"
	$(DEMO_ENV) $(BIN)/arag ask "Who deciphered the Egyptian hieroglyphs?"

# Lint first: ruff and the type checker fail CI like a failing test does. The sandbox's escape
# suite needs bubblewrap and fails (it does not skip) without it.
test: lint sandbox
	$(BIN)/python -m pytest -q

# Debian's Chromium for the browser test of the chat page (which skips, saying why, without it).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium || command -v chromium-browser

# Debian's bubblewrap: the OS boundary of code mode's sandbox (tools/sandbox/_isolation.py).
sandbox:
	@command -v bwrap >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq bubblewrap >/dev/null; }
	@bwrap --version

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Open WebUI from PyPI in a virtualenv of its own (about 2.9 GB, 3-4 minutes), for the integration
# test tests/test_open_webui.py, which skips, saying so, without it. Versions: the constraints file.
OPENWEBUI_VENV ?= .openwebui/venv
OPENWEBUI_CONSTRAINTS := tests/open_webui/constraints.txt

$(OPENWEBUI_VENV)/bin/open-webui: $(OPENWEBUI_CONSTRAINTS)
	$(PYTHON) -m venv $(OPENWEBUI_VENV)
	$(OPENWEBUI_VENV)/bin/python -m pip install -qq --upgrade pip
	$(OPENWEBUI_VENV)/bin/python -m pip install -qq -c $(OPENWEBUI_CONSTRAINTS) torch open-webui
	touch $@

openwebui: $(OPENWEBUI_VENV)/bin/open-webui
	@$(OPENWEBUI_VENV)/bin/python -c 'import importlib.metadata as m; print("open-webui", m.version("open-webui"), "in $(OPENWEBUI_VENV)")'

eval-scifact: install
	$(BIN)/arag eval retrieval --dataset ../shared/data/beir_scifact --json runs/scifact-retrieval.json

clean:
	rm -rf $(VENV) .openwebui .arag .pytest_cache .mypy_cache .ruff_cache *.egg-info
