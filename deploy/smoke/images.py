"""The images the smoke runs: a Debian base from debootstrap, the stand-in for the
Dockerfile's Python base, the project's images from the Dockerfile, stand-ins for the images the
compose file pulls; then what the project's images must be (non-root, the model inside, no
llama.cpp in the lean one, a HEALTHCHECK that passes)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from containers import (
    BUILD_LABEL,
    CACHE,
    PODMAN_ENV,
    PROJECT,
    ROOT,
    SMOKE,
    SmokeError,
    build,
    image_exists,
    image_size_mb,
    is_stand_in,
    podman,
    run,
)
from report import Table

DEBIAN_IMAGE = "localhost/rlpa-smoke/debian:bookworm"
PYTHON_IMAGE = "localhost/rlpa-smoke/python:3.11-bookworm"
MIRROR = os.environ.get("RLPA_SMOKE_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def debian_base(table: Table) -> None:
    with table.step(f"base image {DEBIAN_IMAGE}: debootstrap, podman import") as row:
        if image_exists(DEBIAN_IMAGE):
            row.result = f"cached, {image_size_mb(DEBIAN_IMAGE):.0f} MB"
            return
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            rootfs = Path(tmp) / "rootfs"
            run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR], timeout=900)
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (rootfs / cache).glob("*"):
                    if item.is_file():
                        item.unlink()
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                ["podman", "import", "--change", 'CMD ["bash"]', "-", DEBIAN_IMAGE],
                stdin=tar.stdout,
                env=PODMAN_ENV,
                capture_output=True,
            )
            if tar.wait() != 0 or imported.returncode != 0:
                raise SmokeError(f"podman import failed: {imported.stderr.decode()[-2000:]}")
        row.result = f"built, {image_size_mb(DEBIAN_IMAGE):.0f} MB"


def built_step(table: Table, name: str, tag: str, **kwargs: Any) -> None:
    with table.step(name) as row:
        seconds, steps = build(tag, **kwargs)
        row.result = f"{tag}: {image_size_mb(tag):.0f} MB, built in {seconds:.0f} s ({steps})"


def stand_in(table: Table, service: str, image: str, **kwargs: Any) -> None:
    """The stand-in for a service's image, tagged with the compose file's name for it, unless
    an image of that name that is not a stand-in is already here: that one is used."""
    if image_exists(image) and not is_stand_in(image):
        with table.step(f"{service}: {image}") as row:
            row.result = "the image present is used (not a stand-in)"
        return
    local = f"localhost/rlpa-smoke/{service}:stand-in"
    built_step(table, f"{service}: a stand-in for {image}", local, **kwargs)
    podman("tag", local, image)


def build_images(table: Table, compose: dict[str, Any]) -> None:
    debian_base(table)
    debian = {"DEBIAN_IMAGE": DEBIAN_IMAGE}
    built_step(
        table,
        "stand-in for the Dockerfile's PYTHON_IMAGE: Debian's Python 3.11",
        PYTHON_IMAGE,
        containerfile=SMOKE / "python.Containerfile",
        build_args=debian,
    )
    build_args = {"PYTHON_IMAGE": PYTHON_IMAGE}
    if os.environ.get("CMAKE_ARGS"):  # the Makefile's: the image's llama.cpp is built as make's
        build_args["CMAKE_ARGS"] = os.environ["CMAKE_ARGS"]
    targets = {
        spec["image"]: spec["build"]["target"] for spec in compose.values() if "build" in spec
    }
    for image, target in sorted(targets.items(), key=lambda item: item[1] != "gateway"):
        built_step(
            table,
            f"Dockerfile, target {target}",
            image,
            containerfile=ROOT / "Dockerfile",
            target=target,
            build_args=build_args,
            downloads=True,
        )
    for service in ("postgres", "redis"):
        image = compose[service]["image"]
        stand_in(
            table,
            service,
            image,
            containerfile=SMOKE / f"{service}.Containerfile",
            build_args=debian,
        )
    embedded = next(image for image, target in targets.items() if target == "embedded")
    stand_in(
        table,
        "vllm",
        compose["vllm"]["image"],
        containerfile=SMOKE / "vllm.Containerfile",
        build_args={"RLPA_IMAGE": embedded},
        downloads=True,
    )
    prune_build_cache(table, build_args)


def prune_build_cache(table: Table, build_args: dict[str, str]) -> None:
    """Every stage of the Dockerfile tagged (all cached: seconds), then the untagged images
    older builds left removed. A tagged image keeps its layers, so the compiled
    llama-cpp-python wheel stays cached; without this, every change to the code would leave
    another image's worth of layers behind."""
    with table.step("Dockerfile stages tagged, stale build cache pruned") as row:
        dockerfile = ROOT / "Dockerfile"
        stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I)
        for stage in stages:
            tag = f"localhost/rlpa-smoke/stage:{stage}"
            build(
                tag, containerfile=dockerfile, target=stage, build_args=build_args, downloads=True
            )
        pruned = podman("image", "prune", "--force", "--filter", f"label={BUILD_LABEL}").split()
        row.result = f"{len(stages)} stages tagged, {len(pruned)} stale images removed"


def in_image(image: str, code: str) -> str:
    return podman("run", "--rm", image, "python", "-c", code, timeout=120).strip()


def check_images(table: Table, compose: dict[str, Any]) -> None:
    targets = {
        spec["build"]["target"]: spec["image"] for spec in compose.values() if "build" in spec
    }
    embedded, lean = targets["embedded"], targets["gateway"]
    with table.step(f"{embedded}: non-root, the embedded model and adapter inside") as row:
        row.result = in_image(
            embedded,
            "import os, pwd; from pathlib import Path;"
            "from server.backends import SHIPPED_ADAPTER, default_gguf_path;"
            "model = Path(default_gguf_path());"
            "print(f'uid {os.getuid()} ({pwd.getpwuid(os.getuid()).pw_name}),',"
            " f'{model.name} {model.stat().st_size / 1e6:.0f} MB,',"
            " f'{SHIPPED_ADAPTER.name} {SHIPPED_ADAPTER.stat().st_size / 1e6:.1f} MB')",
        )
        if row.result.startswith("uid 0 "):
            raise SmokeError(f"{embedded} runs as root")
    with table.step(f"{lean}: non-root, no llama.cpp") as row:
        code = (
            "import os, importlib.util as u; print(os.getuid(), u.find_spec('llama_cpp') is None)"
        )
        uid, no_llama = in_image(lean, code).split()
        if uid == "0" or no_llama != "True":
            raise SmokeError(f"{lean}: uid {uid}, llama_cpp importable: {no_llama != 'True'}")
        row.result = f"uid {uid}, llama_cpp not importable"
    with table.step(f"{embedded}: its HEALTHCHECK passes (SQLite in its volume)") as row:
        name = f"{PROJECT}-healthcheck"
        subprocess.run(["podman", "rm", "--force", name], env=PODMAN_ENV, capture_output=True)
        key = f"RLPA_ADMIN_API_KEY={secrets.token_hex(24)}"
        podman("run", "--detach", "--name", name, "--env", key, embedded)
        try:
            test = podman("inspect", "--format", "{{json .Config.Healthcheck.Test}}", name).strip()
            if "/health" not in test:
                raise SmokeError(f"{embedded}'s HEALTHCHECK is not the /health probe: {test}")
            row.result = f"healthy after {wait_healthy(name):.0f} s (GET /health)"
        finally:
            podman("rm", "--force", "--volumes", name)


def wait_healthy(name: str, timeout: float = 180) -> float:
    started = time.monotonic()
    while subprocess.run(
        ["podman", "healthcheck", "run", name], env=PODMAN_ENV, capture_output=True
    ).returncode:
        if time.monotonic() - started > timeout:
            logs = subprocess.run(
                ["podman", "logs", name], env=PODMAN_ENV, capture_output=True, text=True
            )
            raise SmokeError(f"{name} not healthy in {timeout} s:\n{logs.stderr[-3000:]}")
        time.sleep(1)
    return time.monotonic() - started
