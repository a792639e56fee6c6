# The two commands: `make serve` (the gateway on the embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama.cpp's -march=native build enables AMX kernels that crash (SIGSEGV in
# ggml_backend_amx_mul_mat) on virtual machines that report AMX without granting it; build for
# portable AVX2 instead.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: serve test lint install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[embedded,train,dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/rlpa serve

test: $(STAMP)
	$(BIN)/ruff check server training tests bench migrations
	$(BIN)/mypy
	$(BIN)/pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check server training tests bench migrations
	$(BIN)/ruff format --check server
	$(BIN)/mypy
