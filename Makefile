# The two commands: `make serve` (the gateway on the embedded defaults) and `make test`.
# One virtualenv, filled as far as the command needs: `serve` installs the `embedded` extra only;
# `test` (and `install`, for training) adds the `train` and `dev` extras. A stamp per extra set
# reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.installed-serve
TEST_STAMP := $(VENV)/.installed-test
# llama.cpp's -march=native build enables AMX kernels that crash (SIGSEGV in
# ggml_backend_amx_mul_mat) on virtual machines that report AMX without granting it; build for
# portable AVX2 instead.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: serve test lint install compose-smoke

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[embedded]'
	touch $@

# The test set holds the serve set: one install satisfies both stamps.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[embedded,train,dev]'
	touch $@ $(SERVE_STAMP)

install: $(TEST_STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/rlpa serve

test: $(TEST_STAMP)
	$(BIN)/ruff check server training tests bench migrations
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -ra

lint: $(TEST_STAMP)
	$(BIN)/ruff check server training tests bench migrations
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# docker-compose.yml run for real, with podman, on a host that reaches Debian and PyPI but no image
# registry: the images built, the cpu and gpu stacks brought up, used, restarted and removed
# (deploy/smoke/compose_smoke.py; docs/deploy.md). Needs root, podman (with netavark, aardvark-dns
# and iptables), runc and debootstrap (.ci/run installs them). Its state (the base image's cache,
# build logs, podman-compose) is kept in RLPA_SMOKE_CACHE between runs.
export RLPA_SMOKE_CACHE ?= /var/tmp/rlpa-compose-smoke
SMOKE_BIN := $(RLPA_SMOKE_CACHE)/venv/bin

$(SMOKE_BIN)/podman-compose:
	$(PYTHON) -m venv $(RLPA_SMOKE_CACHE)/venv
	$(SMOKE_BIN)/pip install -q 'podman-compose==1.5.0'

compose-smoke: $(SMOKE_BIN)/podman-compose
	$(SMOKE_BIN)/python deploy/smoke/compose_smoke.py
