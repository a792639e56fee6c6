"""podman as the smoke drives it: commands that fail loudly, image builds logged to files, and
podman-compose on the checkout's docker-compose.yml, unchanged, with deploy/smoke's additions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

SMOKE = Path(__file__).resolve().parent
ROOT = SMOKE.parents[1]
CACHE = Path(os.environ.get("RLPA_SMOKE_CACHE", "/var/tmp/rlpa-compose-smoke"))
LOGS = CACHE / "logs"
# The host's CA bundle, mounted over the image's while pip downloads: where the host's egress
# inspects TLS, its CA is in that bundle and in no image's.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PROJECT = "rlpa-smoke"  # never `rlpa`: a stack of the operator's own keeps its containers
PODMAN_ENV = os.environ | {"CONTAINERS_CONF": str(SMOKE / "containers.conf")}
STAND_IN_LABEL = "org.rlpa.smoke.stand-in"
# On every image the smoke builds, its cached layers included: what `podman image prune` may
# remove of what older runs left (compose_smoke.prune_build_cache).
BUILD_LABEL = "org.rlpa.smoke.build=1"


class SmokeError(Exception):
    """A step did not do what it must; the message says what was seen."""


def run(args: list[str], *, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, env=env or PODMAN_ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise SmokeError(f"`{' '.join(args)}` exited {done.returncode}:\n{output}")
    return done.stdout


def podman(*args: str, timeout: float = 600) -> str:
    return run(["podman", *args], timeout=timeout)


def image_exists(name: str) -> bool:
    found = subprocess.run(["podman", "image", "exists", name], env=PODMAN_ENV)
    return found.returncode == 0


def image_size_mb(name: str) -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", name)) / 1e6


def is_stand_in(name: str) -> bool:
    labels = podman("image", "inspect", "--format", "{{json .Labels}}", name)
    return STAND_IN_LABEL in (json.loads(labels) or {})


def build(
    tag: str,
    *,
    containerfile: Path,
    target: str | None = None,
    build_args: dict[str, str] | None = None,
    downloads: bool = False,
) -> tuple[float, str]:
    """Builds `tag` with podman's layer cache, in Docker's image format (OCI's has no
    HEALTHCHECK: podman drops it). `downloads`: pip reaches PyPI (the host's network and CA).
    Returns the seconds it took and how many of its steps ran; the log is in LOGS."""
    args = ["podman", "build", "--format", "docker", "--layers", "--tag", tag]
    args += ["--label", BUILD_LABEL]
    args += ["--file", str(containerfile)]
    if target:
        args += ["--target", target]
    for name, value in (build_args or {}).items():
        args += ["--build-arg", f"{name}={value}"]
    if downloads:
        args += ["--network", "host"]
        if HOST_CA.is_file():
            args += ["--volume", f"{HOST_CA}:{HOST_CA}:ro"]
    context = ROOT if containerfile.parent == ROOT else containerfile.parent
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"build-{tag.replace('/', '_').replace(':', '_')}.log"
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run([*args, str(context)], env=PODMAN_ENV, stdout=out, stderr=out)
    if done.returncode != 0:
        raise SmokeError(f"building {tag} failed ({log}):\n{log.read_text()[-4000:]}")
    seconds, output = time.monotonic() - started, log.read_text()
    steps = [step for step in _STEP.findall(output) if not step.upper().startswith("FROM")]
    ran = len(steps) - output.count("--> Using cache")
    if ran in (0, len(steps)):
        return seconds, f"all {len(steps)} steps {'run' if ran else 'cached'}"
    return seconds, f"{ran} of {len(steps)} steps run, the others cached"


# podman build's step lines: "[2/7] STEP 3/5: RUN ..." or "STEP 3/5: RUN ...".
_STEP = re.compile(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: (\S+)", re.M)


def remove_project() -> None:
    """Every container and volume of the smoke's project: what an interrupted run left."""
    label = f"label=io.podman.compose.project={PROJECT}"
    containers = podman("ps", "--all", "--quiet", "--filter", label).split()
    if containers:
        podman("rm", "--force", "--volumes", *containers)
    volumes = podman("volume", "ls", "--quiet", "--filter", label).split()
    if volumes:
        podman("volume", "rm", "--force", *volumes)


class Compose:
    """podman-compose on docker-compose.yml as it is, plus deploy/smoke/compose.smoke.yml (no
    pulls, no GPU reserved for the vLLM stand-in), through deploy/smoke/podman-health."""

    def __init__(self, podman_compose: Path, profile: str, env: dict[str, str]) -> None:
        self.profile = profile
        self.env = PODMAN_ENV | env
        # The anonymous volumes of every container `down` removed (see compose_smoke's down -v).
        self.anonymous: set[str] = set()
        self.prefix = [
            str(podman_compose),
            "--podman-path",
            str(SMOKE / "podman-health"),
            "--project-name",
            PROJECT,
            "--file",
            str(ROOT / "docker-compose.yml"),
            "--file",
            str(SMOKE / "compose.smoke.yml"),
            "--profile",
            profile,
        ]

    def __call__(self, *args: str, timeout: float = 900) -> str:
        return run([*self.prefix, *args], timeout=timeout, env=self.env)

    def down(self, *flags: str) -> None:
        for container in self.containers().values():
            for mount in container["Mounts"]:
                if mount["Type"] == "volume" and not mount["Name"].startswith(f"{PROJECT}_"):
                    self.anonymous.add(mount["Name"])
        self("down", *flags)

    def containers(self) -> dict[str, dict[str, Any]]:
        """Each service's container, as `podman inspect` shows it."""
        project = f"label=io.podman.compose.project={PROJECT}"
        names = podman("ps", "--all", "--filter", project, "--format", "{{.Names}}").split()
        if not names:
            return {}
        found = json.loads(podman("inspect", *names))
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in found}

    def logs(self, service: str, tail: int | None = 40) -> str:
        container = self.containers().get(service)
        if container is None:
            return f"(no container for {service})"
        last = [] if tail is None else ["--tail", str(tail)]
        done = subprocess.run(
            ["podman", "logs", *last, container["Name"]],
            env=PODMAN_ENV,
            capture_output=True,
            text=True,
        )
        return done.stdout + done.stderr

    def wait_ready(self, timeout: float = 300) -> str:
        """Every health check passes (run here: podman runs none without systemd) and every
        one-shot has exited 0. Returns what it saw."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        for service, container in self.containers().items():
            name = container["Name"]
            while True:
                state = podman("inspect", "--format", "{{json .State}}", name)
                status = json.loads(state)
                if container["Config"].get("Healthcheck") and status["Status"] == "running":
                    check = subprocess.run(
                        ["podman", "healthcheck", "run", name], env=PODMAN_ENV, capture_output=True
                    )
                    if check.returncode == 0:
                        seen[service] = "healthy"
                        break
                elif status["Status"] == "exited" and container["HostConfig"]["RestartPolicy"][
                    "Name"
                ] in ("", "no"):
                    if status["ExitCode"] != 0:
                        raise SmokeError(
                            f"{service} exited {status['ExitCode']}:\n" + self.logs(service)
                        )
                    seen[service] = "exited 0"
                    break
                if time.monotonic() > deadline:
                    raise SmokeError(
                        f"{service} not ready ({status['Status']}):\n" + self.logs(service)
                    )
                time.sleep(1)
        return ", ".join(f"{service} {what}" for service, what in sorted(seen.items()))
