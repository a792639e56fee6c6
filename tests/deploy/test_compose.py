"""docker-compose.yml, the Dockerfile and .env.example, read as data: the wiring that only a real
`docker compose up` would otherwise check."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.fixtures.deploy import (
    PINNED_IMAGE,
    ROOT,
    Stage,
    compose_text,
    dockerfile_args,
    dockerfile_stages,
    dockerignore_patterns,
    env_example_variables,
    flag_value,
    image_command,
    image_targets,
    image_user,
    interpolate,
    interpolated_variables,
    service_env,
    service_target,
    services,
    setting_variables,
    stage_chain,
)

ADAPTER_NAME = "smollm2-135m-rlpa"
HF_ADAPTER = ROOT / "models" / ADAPTER_NAME / "hf-adapter"
ONE_SHOT = "migrate"
GATEWAYS = {"gateway": "gpu", "gateway-cpu": "cpu"}
HUB_COMMIT = re.compile(r"[0-9a-f]{40}")
MAKEFILE = ROOT / "Makefile"
SMOKE = ROOT / "deploy" / "smoke"


def _depends_on(service: str) -> dict[str, str]:
    raw = services()[service].get("depends_on") or {}
    return {name: spec["condition"] for name, spec in raw.items()}


def _wheel_stages(target: str) -> list[str]:
    """The stages whose wheels an image of `target` installs (`RUN --mount=...,from=STAGE`)."""
    runs = [run for stage in stage_chain(target) for run in stage.args("RUN")]
    return re.findall(r"--mount=type=bind,from=([\w-]+)", " ".join(runs))


def test_profiles_pick_the_gpu_or_the_cpu_stack() -> None:
    profiles = {name: spec.get("profiles", []) for name, spec in services().items()}
    assert profiles == {
        "postgres": [],
        "redis": [],
        "migrate": [],
        "vllm": ["gpu"],
        "gateway": ["gpu"],
        "gateway-cpu": ["cpu"],
    }


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, spec in services().items():
        if name == ONE_SHOT:
            assert spec["restart"] == "no"
            continue
        check = spec["healthcheck"]
        assert not check.get("disable") and check["test"][0] == "CMD", name
        assert spec["restart"] in ("unless-stopped", "always"), name


def test_gateways_start_after_the_migration_and_healthy_dependencies() -> None:
    assert _depends_on(ONE_SHOT) == {"postgres": "service_healthy"}
    needs = {"migrate": "service_completed_successfully"}
    needs |= {"postgres": "service_healthy", "redis": "service_healthy"}
    assert _depends_on("gateway-cpu") == needs
    assert _depends_on("gateway") == needs | {"vllm": "service_healthy"}
    for service in services():
        for dependency, condition in _depends_on(service).items():
            if condition == "service_healthy":
                assert "test" in services()[dependency]["healthcheck"], dependency


def test_gateway_healthchecks_hit_health() -> None:
    for name in [*GATEWAYS, "vllm"]:
        probe = " ".join(services()[name]["healthcheck"]["test"])
        assert "http://127.0.0.1:8000/health" in probe, name


def test_each_image_is_built_by_one_service_from_a_dockerfile_target() -> None:
    builders = [spec["image"] for spec in services().values() if "build" in spec]
    assert len(builders) == len(set(builders)) == len(image_targets())
    assert set(image_targets().values()) <= {stage.name for stage in dockerfile_stages()}
    for name in (ONE_SHOT, *GATEWAYS):
        assert service_target(name)  # runs an image this file builds
    # The image the GPU gateway runs is built by `migrate`, the one service every profile starts.
    assert services()["gateway"]["image"] == services()[ONE_SHOT]["image"]


def test_the_gpu_gateway_and_migrate_run_the_lean_image_without_llama_cpp() -> None:
    assert service_target("gateway") == service_target(ONE_SHOT) == "gateway"
    assert service_target("gateway-cpu") == "embedded"
    chain = stage_chain("gateway")
    runs = [run for stage in chain for run in stage.args("RUN")]
    assert not any("embedded" in run for run in runs)
    # Nor is llama.cpp compiled to build it: the wheels it installs come from a stage that
    # builds only the gateway's.
    for stage in dockerfile_stages():
        if stage.name in _wheel_stages("gateway"):
            assert not any("embedded" in run for run in stage.args("RUN")), stage.name
            assert not any("CMAKE_ARGS" in env for env in stage.args("ENV")), stage.name


def test_the_gateway_is_published_on_loopback_unless_told_otherwise() -> None:
    for name in GATEWAYS:
        (port,) = services()[name]["ports"]
        assert interpolate(port, {}) == "127.0.0.1:8000:8000", name
        assert interpolate(port, {"GATEWAY_PUBLISH_HOST": "0.0.0.0"}).startswith("0.0.0.0:")
    for name, spec in services().items():
        if name not in GATEWAYS:
            assert "ports" not in spec, f"{name} publishes a port"


def test_every_image_is_pinned_to_a_release() -> None:
    """Tags, not digests: a digest cannot be read offline (docs/deploy.md, "Pins")."""
    built = set(image_targets())
    for name, spec in services().items():
        if spec["image"] not in built:
            assert PINNED_IMAGE.fullmatch(spec["image"]), f"{name}: {spec['image']}"
    python = PINNED_IMAGE.fullmatch(dockerfile_args()["PYTHON_IMAGE"])
    assert python and re.fullmatch(r"\d+\.\d+\.\d+-slim-\w+", python[2]), python
    # Every stage starts from that image or from another stage.
    names = {stage.name for stage in dockerfile_stages()}
    assert all(stage.base in {"${PYTHON_IMAGE}", *names} for stage in dockerfile_stages())


def test_vllm_serves_the_base_model_at_a_pinned_hub_commit() -> None:
    raw = [str(word) for word in services()["vllm"]["command"]]
    command = [interpolate(word, {}) for word in raw]
    revision = flag_value(command, "--revision")
    assert HUB_COMMIT.fullmatch(revision), revision
    assert flag_value(command, "--tokenizer-revision") == revision
    chosen = [interpolate(word, {"BASE_MODEL_REVISION": "f" * 40}) for word in raw]
    assert flag_value(chosen, "--revision") == flag_value(chosen, "--tokenizer-revision")
    assert flag_value(chosen, "--revision") == "f" * 40


def test_every_rlpa_variable_in_the_deployment_files_is_a_setting() -> None:
    settings = setting_variables()
    in_compose = {key for spec in services().values() for key in spec.get("environment") or {}}
    in_compose |= interpolated_variables()
    in_image = {
        word.split("=", 1)[0]
        for stage in dockerfile_stages()
        for env in stage.args("ENV")
        for word in env.split()
        if "=" in word
    }
    for name in sorted(in_compose | in_image):
        if name.startswith("RLPA_"):
            assert name in settings, f"{name} is not a setting of server/settings.py"


def test_env_example_lists_every_setting_and_every_compose_variable() -> None:
    listed = env_example_variables()
    assert {name for name in listed if name.startswith("RLPA_")} == setting_variables()
    assert interpolated_variables() <= listed


def test_compose_needs_only_an_admin_key_from_the_operator() -> None:
    with pytest.raises(KeyError, match="RLPA_ADMIN_API_KEY"):
        interpolate(compose_text(), {})
    assert "${" not in interpolate(compose_text(), {"RLPA_ADMIN_API_KEY": "k" * 32})


def test_vllm_image_is_pinned_to_a_release() -> None:
    image = services()["vllm"]["image"]
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", image), image


def test_vllm_serves_the_base_and_the_rlpa_lora_under_distinct_names() -> None:
    vllm = services()["vllm"]
    command = [str(word) for word in vllm["command"]]
    assert command[0] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the image runs `vllm serve`
    assert "--enable-lora" in command
    name, path = flag_value(command, "--lora-modules").split("=", 1)
    assert name == ADAPTER_NAME != flag_value(command, "--served-model-name")
    card = json.loads((ROOT / "models" / ADAPTER_NAME / "rlpa.json").read_text())
    assert int(flag_value(command, "--max-lora-rank")) >= card["recipe"]["lora_r"]
    assert "./models:/models:ro" in vllm["volumes"]
    assert path == f"/models/{HF_ADAPTER.relative_to(ROOT / 'models')}"
    assert vllm["ipc"] == "host"
    assert "HF_TOKEN" in vllm["environment"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_gpu_gateway_asks_vllm_for_the_lora_in_its_contract() -> None:
    env = service_env("gateway", {"RLPA_ADMIN_API_KEY": "k" * 32})
    assert env["RLPA_BACKEND"] == "openai"
    assert env["RLPA_UPSTREAM_URLS"] == "http://vllm:8000/v1"
    assert env["RLPA_MODEL"] == ADAPTER_NAME
    # `rlpa export` writes the adapter's own card beside it; until then, the shipped one's.
    cards = [HF_ADAPTER / "rlpa.json", ROOT / "models" / ADAPTER_NAME / "rlpa.json"]
    card = json.loads(next(path for path in cards if path.is_file()).read_text())
    assert env["RLPA_CONTRACT_VERSION"] == str(card["contract_version"])
    assert service_env("gateway-cpu", {"RLPA_ADMIN_API_KEY": "k" * 32})["RLPA_BACKEND"] == (
        "llamacpp"
    )


def test_the_lora_adapter_vllm_serves_exists() -> None:
    """`rlpa export --formats hf-adapter` writes it; until then `--profile gpu` cannot start."""
    assert (HF_ADAPTER / "adapter_config.json").is_file(), f"{HF_ADAPTER} is missing"


@pytest.mark.parametrize("target", ["gateway", "embedded"])
def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck(target: str) -> None:
    chain = stage_chain(target)
    builder = dockerfile_stages()[0]
    assert len(dockerfile_stages()) >= 2 and builder not in chain
    assert any("build-essential" in run for run in builder.args("RUN"))
    assert all(name not in {stage.name for stage in chain} for name in _wheel_stages(target))
    assert image_user(target) not in ("root", "0")
    checks = [args for stage in chain for args in stage.args("HEALTHCHECK")]
    assert checks and "/health" in checks[-1]
    assert image_command(target) == ["rlpa", "serve"]


def test_image_holds_the_embedded_backend_and_the_shipped_adapter_but_no_training() -> None:
    chain = stage_chain(service_target("gateway-cpu"))
    assert any("rlpa[embedded]" in run for stage in chain for run in stage.args("RUN"))
    # The adapter is package data: the wheel the builder makes carries it.
    (builder,) = [stage for stage in dockerfile_stages() if stage.name == "builder"]
    assert ["models", "./models"] in [copy.split()[-2:] for copy in builder.args("COPY")]
    assert not any("RLPA_ADAPTER" in env for stage in chain for env in stage.args("ENV"))
    copies = " ".join(copy for stage in dockerfile_stages() for copy in stage.args("COPY"))
    for left_out in ("training", "checkpoints", "runs"):
        assert left_out not in copies.split()
        assert left_out in dockerignore_patterns()


def _stage(name: str) -> Stage:
    (found,) = [stage for stage in dockerfile_stages() if stage.name == name]
    return found


def test_llama_cpp_is_compiled_from_the_embedded_extra_alone_with_the_makefile_flags() -> None:
    """The compiling stage reads nothing but the `embedded` extra's requirements, so that a
    change to the code or to another part of pyproject.toml reuses the compiled wheel (minutes);
    and it builds llama.cpp as `make` does (portable kernels, no AMX)."""
    requirements = _stage("embedded-requirements")
    assert requirements.args("COPY") == ["pyproject.toml /src/"]
    assert any("['optional-dependencies']['embedded']" in run for run in requirements.args("RUN"))
    llama = _stage("llama-wheel")
    assert llama.args("COPY") == ["--from=embedded-requirements /embedded.txt /src/embedded.txt"]
    assert any("cmake" in run for run in llama.args("RUN"))
    (arg,) = [arg for arg in llama.args("ARG") if arg.startswith("CMAKE_ARGS=")]
    makefile = re.search(r"^export CMAKE_ARGS \?= (.+)$", MAKEFILE.read_text(), re.M)
    assert makefile and arg.partition("=")[2].strip('"') == makefile[1].strip()
    assert "builder-embedded" in _wheel_stages("embedded")
    assert any("from=llama-wheel" in run for run in _stage("builder-embedded").args("RUN"))


class _SmokeLoader(yaml.SafeLoader):
    """compose.smoke.yml as compose reads it: `!reset` drops what the file under it sets."""


_SmokeLoader.add_constructor("!reset", lambda loader, node: "!reset")


def test_the_smoke_runs_the_compose_file_unchanged_but_for_pulls_and_the_gpu() -> None:
    smoke = yaml.load((SMOKE / "compose.smoke.yml").read_text(), Loader=_SmokeLoader)
    assert set(smoke) == {"services"}
    additions = smoke["services"]
    assert set(additions) == set(services())
    for name, added in additions.items():
        expected = {"pull_policy": "never"} | ({"deploy": "!reset"} if name == "vllm" else {})
        assert added == expected, name


@pytest.mark.parametrize("service", ["postgres", "redis", "vllm"])
def test_every_pulled_image_has_a_stand_in_that_keeps_its_volumes(service: str) -> None:
    """The smoke tags a stand-in with each image's name (deploy/smoke/compose_smoke.py): each
    declares the paths the compose file mounts its named volumes on, where its data is kept."""
    spec = services()[service]
    assert spec["image"] not in image_targets()
    containerfile = (SMOKE / f"{service}.Containerfile").read_text()
    assert f"LABEL org.rlpa.smoke.stand-in={service}" in containerfile
    named = [volume.split(":")[1] for volume in spec.get("volumes", []) if volume[0] != "."]
    for path in named:
        if not path.startswith("/root/"):  # vLLM's download cache: nothing in it is kept
            assert f"VOLUME {path}" in containerfile, (service, path)


def test_the_vllm_stand_in_reads_the_compose_files_vllm_arguments() -> None:
    standin = _load(SMOKE / "vllm_standin.py")
    command = [interpolate(str(word), {}) for word in services()["vllm"]["command"]]
    args = standin.parse(command)
    assert args.served_model_name == flag_value(command, "--served-model-name")
    ((name, path),) = [module.split("=", 1) for module in args.lora_modules]
    assert name == ADAPTER_NAME
    # The compose file mounts ./models on /models: the stand-in finds the GGUF export beside it.
    local = ROOT / "models" / Path(path).relative_to("/models")
    assert standin.gguf_adapter(str(local)) == str(HF_ADAPTER.parent / "adapter.gguf")
    assert "--revision" in args.skipped and "--enable-lora" in args.skipped


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_step_that_mounts_a_stage_is_rebuilt_when_the_stage_changes() -> None:
    """podman's builder reuses a cached `RUN --mount=...,from=STAGE` although STAGE changed
    (buildah#6609): a COPY of STAGE's wheel checksums just before the step makes its cache
    follow STAGE's wheels."""
    mounts = 0
    for stage in dockerfile_stages():
        for index, (keyword, args) in enumerate(stage.instructions):
            if keyword != "RUN":
                continue
            for mounted in re.findall(r"--mount=type=bind,from=([\w-]+)", args):
                mounts += 1
                before = stage.instructions[index - 1]
                assert before[0] == "COPY" and before[1].startswith(f"--from={mounted} "), args
                assert "/wheels.sha256" in before[1]
                written = " ".join(_stage(mounted).args("RUN"))
                assert "sha256sum *.whl > /wheels.sha256" in written, mounted
    assert mounts == 3
