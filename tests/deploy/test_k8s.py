"""deploy/k8s, each overlay rendered (tests/fixtures/k8s.py) and read as data: every object
valid against the Kubernetes OpenAPI schemas (kubernetes-validate ships them, so this runs
offline), and the wiring that only a cluster would otherwise check: ports, probes, references,
settings, the shutdown grace, images, and vLLM serving what the compose file serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from server.settings import Settings
from tests.fixtures.deploy import (
    PINNED_IMAGE,
    ROOT,
    dockerfile_stages,
    flag_value,
    interpolate,
    service_env,
    services,
    setting_variables,
    stage_chain,
)
from tests.fixtures.k8s import (
    K8S,
    OLDEST_KUBERNETES,
    OVERLAYS,
    Object,
    find,
    matches,
    pod_spec,
    render,
    workloads,
)

GATEWAY = "rlpa-gateway"
# Each overlay and the Dockerfile target its gateway image is built from.
TARGETS = {"cpu-embedded": "embedded", "gpu-vllm": "gateway"}
# What the gateway gets on top of the shutdown grace and the preStop pause before it is killed:
# pending profile writes and the process's exit.
EXIT_MARGIN_S = 5

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)


def _gateway(objects: list[Object]) -> Object:
    return find(objects, "Deployment", GATEWAY)


def _container(workload: Object) -> Object:
    (container,) = pod_spec(workload)["containers"]
    return dict(container)


def _environment(container: Object, objects: list[Object]) -> dict[str, str]:
    """What a container's environment holds: its ConfigMaps' and Secrets' keys (envFrom), then
    its own `env` (values from a reference read as the reference)."""
    found: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            found |= find(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            secret = find(objects, "Secret", source["secretRef"]["name"])
            found |= secret.get("stringData", {})
    for variable in container.get("env", []):
        found[variable["name"]] = variable.get("value", json.dumps(variable.get("valueFrom")))
    return found


def _image_uid(target: str) -> int:
    """The uid of the user the image runs as (`useradd --uid N`)."""
    runs = " ".join(run for stage in stage_chain(target) for run in stage.args("RUN"))
    match = re.search(r"useradd .*--uid (\d+)", runs)
    assert match, "the Dockerfile makes no user with a fixed uid"
    return int(match[1])


def _container_ports(workload: Object) -> dict[str | int, int]:
    """A workload's container ports, by name and by number."""
    ports: dict[str | int, int] = {}
    for container in pod_spec(workload)["containers"]:
        for port in container.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def test_every_object_is_valid_against_the_kubernetes_schemas(overlay: str) -> None:
    newest = kubernetes_validate.latest_version()
    objects = render(overlay)
    invalid = []
    for obj in objects:
        for version in (OLDEST_KUBERNETES, newest):
            # Strict: a misspelt or misplaced field fails instead of being ignored by the server.
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(str(part) for part in error.path)
                name = f"{obj['kind']}/{obj['metadata']['name']}"
                invalid.append(f"{name} on Kubernetes {version}: {where}: {error.message}")
    assert not invalid, "\n".join(invalid)
    names = [(obj["kind"], obj["metadata"]["name"]) for obj in objects]
    assert len(names) == len(set(names))


def test_the_renderer_renders_what_kubectl_kustomize_renders(overlay: str) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the renderer is checked where it is")
    printed = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    def by_name(objects: list[Object]) -> dict[tuple[str, str], Object]:
        return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}

    assert by_name(render(overlay)) == by_name(list(yaml.safe_load_all(printed)))


def test_services_select_one_workload_and_reach_its_ports(overlay: str) -> None:
    objects = render(overlay)
    for service in (obj for obj in objects if obj["kind"] == "Service"):
        selected = [
            w
            for w in workloads(objects)
            if matches(service["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        ports = _container_ports(selected[0])
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)


def test_probes_reach_a_container_port(overlay: str) -> None:
    for workload in workloads(render(overlay)):
        ports = _container_ports(workload)
        for container in pod_spec(workload)["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in ports, (container["name"], probe)


def test_the_gateway_is_ready_on_ready_and_alive_on_health(overlay: str) -> None:
    container = _container(_gateway(render(overlay)))
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    # /ready answers within 2 s whatever hangs behind it (server/health.py).
    assert container["readinessProbe"]["timeoutSeconds"] > 2


def test_rlpa_pods_run_as_the_image_user_without_privileges(overlay: str) -> None:
    objects = render(overlay)
    uid = _image_uid(TARGETS[overlay])
    for workload in (_gateway(objects), find(objects, "Job", "rlpa-migrate")):
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        assert pod["automountServiceAccountToken"] is False
        context = _container(workload)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]


def test_every_container_requests_cpu_and_memory_and_has_a_memory_limit(overlay: str) -> None:
    for workload in workloads(render(overlay)):
        for container in pod_spec(workload)["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), container["name"]
            assert "memory" in resources["limits"], container["name"]


def test_every_rlpa_variable_the_pods_get_is_a_setting(overlay: str) -> None:
    objects = render(overlay)
    for workload in (_gateway(objects), find(objects, "Job", "rlpa-migrate")):
        names = _environment(_container(workload), objects).keys()
        assert names, workload["metadata"]["name"]
        unknown = {name for name in names if name not in setting_variables()}
        assert not unknown, f"{workload['metadata']['name']}: not settings: {unknown}"


def test_every_referenced_config_map_secret_and_volume_claim_exists(overlay: str) -> None:
    objects = render(overlay)
    present = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    for workload in workloads(objects):
        pod = pod_spec(workload)
        wanted: list[tuple[str, str, bool]] = []
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if ref in source:
                        wanted.append(
                            (kind, source[ref]["name"], source[ref].get("optional", False))
                        )
            for variable in container.get("env", []):
                for ref, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if ref in variable.get("valueFrom", {}):
                        key = variable["valueFrom"][ref]
                        wanted.append((kind, key["name"], key.get("optional", False)))
                        if (kind, key["name"]) in present:
                            source = find(objects, kind, key["name"])
                            keys = {**source.get("data", {}), **source.get("stringData", {})}
                            assert key["key"] in keys, (kind, key["name"], key["key"])
            mounts = {mount["name"] for mount in container.get("volumeMounts", [])}
            assert mounts <= {volume["name"] for volume in pod.get("volumes", [])}
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                wanted.append(("PersistentVolumeClaim", claim, False))
        for kind, name, optional in wanted:
            assert optional or (kind, name) in present, (
                f"{workload['metadata']['name']}: {kind}/{name}"
            )


def test_the_gateway_settings_load_and_refuse_the_shipped_placeholder_key(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(overlay)
    for name in setting_variables():
        monkeypatch.delenv(name, raising=False)
    env = _environment(_container(_gateway(objects)), objects)
    fields = {name.removeprefix("RLPA_").lower(): value for name, value in env.items()}
    # An unedited Secret cannot serve: its admin key is one the gateway refuses off loopback.
    with pytest.raises(ValidationError, match="RLPA_ADMIN_API_KEY is a placeholder"):
        Settings(_env_file=None, **fields)  # type: ignore[call-arg]
    settings = Settings(_env_file=None, **fields | {"admin_api_key": "k" * 32})  # type: ignore[call-arg]
    assert not settings.is_loopback and not settings.should_auto_migrate
    assert settings.port in _container_ports(_gateway(objects)).values()


def test_the_pod_outlives_the_shutdown_grace(overlay: str) -> None:
    objects = render(overlay)
    gateway = _gateway(objects)
    env = _environment(_container(gateway), objects)
    grace = int(env.get("RLPA_SHUTDOWN_GRACE_S", Settings.model_fields["shutdown_grace_s"].default))
    pause = _container(gateway)["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    needed = int(pause[1]) + grace + EXIT_MARGIN_S
    assert pod_spec(gateway)["terminationGracePeriodSeconds"] >= needed


def test_the_autoscaler_and_disruption_budget_keep_a_replica_serving(overlay: str) -> None:
    objects = render(overlay)
    gateway = _gateway(objects)
    autoscaler = find(objects, "HorizontalPodAutoscaler", GATEWAY)
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", GATEWAY)
    assert "replicas" not in gateway["spec"]  # the autoscaler owns it
    # A CPU utilization target is a share of the CPU request.
    assert "cpu" in _container(gateway)["resources"]["requests"]
    budget = find(objects, "PodDisruptionBudget", GATEWAY)
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert matches(budget["spec"]["selector"]["matchLabels"], labels)
    assert budget["spec"]["maxUnavailable"] < autoscaler["spec"]["minReplicas"]
    # Rolling updates never go below the replicas there are.
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_migrate_runs_upgrade_head_with_the_gateway_image_and_settings(overlay: str) -> None:
    objects = render(overlay)
    job, gateway = find(objects, "Job", "rlpa-migrate"), _container(_gateway(objects))
    migrate = _container(job)
    assert migrate["command"] == ["rlpa", "db", "upgrade", "head"]
    assert migrate["image"] == gateway["image"]
    assert migrate["envFrom"] == gateway["envFrom"]
    assert pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")
    env = _environment(gateway, objects)
    assert env["RLPA_AUTO_MIGRATE"] == "false"  # replicas never race on DDL


def test_every_image_is_pinned_and_rlpa_runs_its_overlays_target(overlay: str) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    target = TARGETS[overlay]
    assert target in {stage.name for stage in dockerfile_stages()}
    for workload in workloads(render(overlay)):
        for container in pod_spec(workload)["containers"]:
            pinned = PINNED_IMAGE.fullmatch(container["image"])
            assert pinned, container["image"]
            if pinned[1].endswith("/rlpa"):
                assert pinned[2] == f"{version}-{target}", container["image"]


def test_vllm_serves_what_the_compose_file_serves(overlay: str) -> None:
    objects = render(overlay)
    if overlay != "gpu-vllm":
        assert not [w for w in workloads(objects) if w["metadata"]["name"] == "rlpa-vllm"]
        return
    vllm = _container(find(objects, "Deployment", "rlpa-vllm"))
    compose = services()["vllm"]
    assert vllm["image"] == compose["image"]
    assert vllm["args"] == [interpolate(str(word), {}) for word in compose["command"]]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    mounts = {mount["mountPath"] for mount in vllm["volumeMounts"]}
    lora_path = flag_value(vllm["args"], "--lora-modules").split("=", 1)[1]
    assert any(lora_path.startswith(mount + "/") for mount in mounts)
    assert "/dev/shm" in mounts


def test_the_gateway_asks_the_vllm_service_for_the_lora_as_compose_does(overlay: str) -> None:
    objects = render(overlay)
    env = _environment(_container(_gateway(objects)), objects)
    if overlay != "gpu-vllm":
        assert env["RLPA_BACKEND"] == "llamacpp"
        return
    compose = service_env("gateway", {"RLPA_ADMIN_API_KEY": "k" * 32})
    for name in ("RLPA_BACKEND", "RLPA_MODEL", "RLPA_SERVED_MODEL_NAME", "RLPA_CONTRACT_VERSION"):
        assert env[name] == compose[name], name
    (url,) = env["RLPA_UPSTREAM_URLS"].split(",")
    address = urlsplit(url)
    service = find(objects, "Service", str(address.hostname))
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == address.port]
    vllm = find(objects, "Deployment", "rlpa-vllm")
    assert matches(service["spec"]["selector"], vllm["spec"]["template"]["metadata"]["labels"])
    assert _container_ports(vllm)[port["targetPort"]] == 8000  # vLLM's default port
    args: list[str] = _container(vllm)["args"]
    assert flag_value(args, "--lora-modules").split("=", 1)[0] == env["RLPA_MODEL"]
