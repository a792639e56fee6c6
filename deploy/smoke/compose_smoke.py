"""`make compose-smoke`: docker-compose.yml run for real with podman, on a host that reaches
Debian and PyPI but no image registry (docs/deploy.md, "The stack, run for real").

1. Images. A Debian root filesystem from debootstrap, imported as a base image; on it a stand-in
   for the Dockerfile's Python base; the project's two images built from the Dockerfile with that
   base as PYTHON_IMAGE; stand-ins for the PostgreSQL, Redis and vLLM images, tagged with the
   names the compose file gives them. Sizes and build times go in the table.
2. The images: non-root, the embedded model and adapter inside, no llama.cpp in the lean
   target, and the image's own HEALTHCHECK passes.
3. The `cpu` profile: `up -d`, every health check, a chat turn through the published port stores
   a profile version, `down` and `up -d` again and the version is still there, the gateway's
   process killed and its restart policy starting it again, `down -v`.
4. The `gpu` profile without a GPU: the same up to the stored version, with llama.cpp's server
   in vLLM's place (deploy/smoke/vllm_standin.py), then `down -v`.

Each step is a row of the table printed at the end, failed or not. A second run reuses the base
image and podman's layer cache: only what changed is built again.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import yaml  # podman-compose's own dependency, in the smoke's virtualenv
from containers import PODMAN_ENV, PROJECT, ROOT, Compose, SmokeError, podman, remove_project
from http_client import chat_turn, served_models, stored_version
from images import build_images, check_images
from report import Table

GATEWAYS = {"cpu": "gateway-cpu", "gpu": "gateway"}
# What a user tells the model; turns go on until one stores a version.
LINES = ["Hi! I am a nurse in Seattle and I love hiking.", "I work night shifts.", "I have a cat."]
NOT_RUN = [
    "vLLM and the GPU it reserves: llama.cpp's server stood in, serving the adapter's GGUF export"
    " where vLLM serves the PEFT one, asked for `grammar` where vLLM is asked for"
    " `structured_outputs`",
    "the official python, postgres and redis images: Debian's Python 3.11.2, PostgreSQL 15 and"
    " Redis 7.0 stood in under their names",
    "Docker and BuildKit: the same Dockerfile, built by podman's builder",
]


def volume_exists(name: str) -> bool:
    return subprocess.run(["podman", "volume", "exists", name], env=PODMAN_ENV).returncode == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stack(table: Table, podman_compose: Path, profile: str) -> None:
    port, key = free_port(), secrets.token_hex(24)
    env = {
        "RLPA_ADMIN_API_KEY": key,
        "POSTGRES_PASSWORD": secrets.token_hex(12),
        "GATEWAY_PORT": str(port),
        "GATEWAY_PUBLISH_HOST": "127.0.0.1",
    }
    compose = Compose(podman_compose, profile, env)
    gateway = GATEWAYS[profile]
    remove_project()
    try:
        with table.step(f"{profile}: up -d") as row:
            compose("up", "--detach")
            row.result = ", ".join(sorted(compose.containers()))
        with table.step(f"{profile}: every health check passes") as row:
            row.result = compose.wait_ready()
        user = f"smoke-{secrets.token_hex(4)}"
        with table.step(
            f"{profile}: a chat turn through 127.0.0.1:{port} stores a profile version"
        ) as row:
            (model, *_) = served_models(port, key)
            version = turns = 0
            while not version and turns < len(LINES):
                reply = chat_turn(port, key, model, user, LINES[turns])
                turns += 1
                version = stored_version(port, key, user)
            if not version:
                raise SmokeError(f"{turns} turns stored no profile version")
            row.result = (
                f"{model}, {user}: version {version} after {turns} turn(s); {reply['rlpa']}"
            )
            if profile == "gpu":  # answered by the stand-in, not by a model in the gateway
                answered = compose.logs("vllm", tail=None).count("POST /v1/chat/completions")
                if not answered:
                    raise SmokeError("the vLLM stand-in answered no chat request")
                row.result += f"; the vLLM stand-in answered {answered} chat request(s)"
        if profile == "cpu":
            restarted_keeps_data(table, compose, port, key, user, version)
            killed_gateway_restarts(table, compose, gateway)
    finally:
        with table.step(f"{profile}: down -v") as row:
            compose.down("--volumes")
            label = f"label=io.podman.compose.project={PROJECT}"
            if left := podman("volume", "ls", "--quiet", "--filter", label).split():
                raise SmokeError(f"named volumes left: {left}")
            # docker compose's `down -v` removes the anonymous volumes of the images' VOLUMEs
            # (/app/data of the rlpa images) too; podman-compose's leaves them.
            anonymous = [name for name in compose.anonymous if volume_exists(name)]
            if anonymous:
                podman("volume", "rm", *anonymous)
            row.result = (
                "containers and named volumes removed; "
                f"{len(anonymous)} anonymous volumes podman-compose left, removed here"
            )


def restarted_keeps_data(
    table: Table, compose: Compose, port: int, key: str, user: str, version: int
) -> None:
    with table.step("cpu: down, up -d: the version is still there (volumes)") as row:
        compose.down()
        compose("up", "--detach")
        compose.wait_ready()
        found = stored_version(port, key, user)
        if found != version:
            raise SmokeError(f"{user} is at version {found} after down and up, not {version}")
        row.result = f"{user} still at version {found}"


def killed_gateway_restarts(table: Table, compose: Compose, gateway: str) -> None:
    with table.step(
        f"cpu: {gateway}'s process killed (SIGKILL): its restart policy starts it"
    ) as row:
        before = compose.containers()[gateway]
        os.kill(before["State"]["Pid"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (now := compose.containers()[gateway])["RestartCount"] == before["RestartCount"]:
            if time.monotonic() > deadline:
                raise SmokeError(f"{gateway} was not restarted:\n" + compose.logs(gateway))
            time.sleep(0.5)
        compose.wait_ready()
        policy = now["HostConfig"]["RestartPolicy"]["Name"]
        restarts = f"{before['RestartCount']} -> {now['RestartCount']}"
        row.result = f"restart: {policy}; restarts {restarts}, healthy again"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", choices=["cpu", "gpu"], help="default: both")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("The smoke runs podman as root (debootstrap too).", file=sys.stderr)
        return 2
    # netavark makes the containers' bridge network with iptables; without either, podman
    # fails at the first RUN step with "netavark: No such file or directory".
    tools = {tool: shutil.which(tool) for tool in ("podman", "runc", "debootstrap", "iptables")}
    for tool in ("netavark", "aardvark-dns"):
        tools[tool] = shutil.which(tool, path="/usr/lib/podman")
    missing = [tool for tool, path in tools.items() if path is None]
    if missing:
        print(f"missing: apt-get install {' '.join(missing)}", file=sys.stderr)
        return 2
    if (ROOT / ".env").exists():
        print("Note: .env exists; compose hands its RLPA_* settings to the gateways.")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    podman_compose = Path(sys.executable).parent / "podman-compose"
    table = Table()
    failed: Exception | None = None
    try:
        build_images(table, compose)
        check_images(table, compose)
        for profile in args.profile or ["cpu", "gpu"]:
            stack(table, podman_compose, profile)
    except Exception as exc:  # the table is printed whatever failed, then the failure
        failed = exc
    print("\n" + table.render())
    print("\nNot run by the smoke: " + "; ".join(NOT_RUN) + ".")
    if isinstance(failed, SmokeError):
        print(f"\nFAILED: {failed}", file=sys.stderr)
    elif failed is not None:
        print("\nFAILED:\n" + "".join(traceback.format_exception(failed)), file=sys.stderr)
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(main())
