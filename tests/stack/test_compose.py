"""docker-compose.yml for users, checked without a container engine: valid against the Compose
Specification's JSON Schema, and coherent with the CLI, the Dockerfile, the worker's endpoints and .env.example."""

from __future__ import annotations

import json
import re
import shlex
from graphlib import TopologicalSorter

import jsonschema
import pytest
import typer
import yaml

from ops.cli import app
from ops.stack.kafka import kafka_version
from streamscore.settings import REPO_ROOT

SPEC = REPO_ROOT.parent / "shared" / "schemas" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def _defaults(text: str) -> str:
    """Compose interpolation with defaults applied, innermost first (defaults may nest): ``${X:-d}`` → d,
    ``${X:?msg}``/``${X}`` → a placeholder."""
    while True:
        done = re.sub(r"\$\{[A-Z_]+:-([^${}]*)\}", r"\1", text)
        done = re.sub(r"\$\{[A-Z_]+(:\?[^${}]*)?\}", "value", done)
        if done == text:
            return text
        text = done


def _cli_invocations(command: list[str] | str) -> list[list[str]]:
    """Every ``streamscore …`` in a service command, shell one-liners included."""
    parts = command if isinstance(command, list) else shlex.split(command)
    if parts[:2] == ["sh", "-c"]:
        return [
            shlex.split(_defaults(chunk))
            for chunk in re.split(r"&&|;", parts[2])
            if chunk.strip().startswith("streamscore")
        ]
    return [[_defaults(p) for p in parts]] if parts and parts[0] == "streamscore" else []


def _parse(args: list[str]) -> None:
    """Let the CLI parse ``args`` down to the leaf command: unknown commands or options raise a usage error.
    (Typer ships its own copy of click, so groups are recognised by behaviour, not by class.)"""
    command = typer.main.get_command(app)
    ctx = command.make_context("streamscore", list(args), resilient_parsing=False)
    while hasattr(command, "get_command"):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]  # click 8.2 keeps the subcommand here
        assert rest, f"{args}: no subcommand"
        name, *rest = rest
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{args}: unknown command {name!r}"
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)


def test_compose_file_matches_the_compose_specification(compose: dict) -> None:
    schema = json.loads(SPEC.read_text())
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(compose)
    ]
    assert errors == []
    broken = {**compose, "services": {"worker": {**compose["services"]["worker"], "comand": ["typo"]}}}
    assert any(True for _ in jsonschema.Draft7Validator(schema).iter_errors(broken))  # the schema does catch mistakes


def test_every_command_is_a_valid_cli_invocation(compose: dict) -> None:
    found = 0
    for service in compose["services"].values():
        for args in _cli_invocations(service.get("command", [])):
            _parse(args[1:])
            found += 1
    assert found >= 5  # migrate, topics, train, export, worker, worker-gpu
    with pytest.raises(Exception, match="No such option"):
        _parse(["worker", "--no-such-option"])
    with pytest.raises(AssertionError, match="unknown command"):
        _parse(["db", "no-such-command"])


def test_images_builds_and_dockerfile_targets(compose: dict) -> None:
    targets = set(re.findall(r"^FROM \S+ AS ([\w-]+)", (REPO_ROOT / "Dockerfile").read_text(), re.M))
    services = compose["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"  # the release the local stack runs
    assert services["postgres"]["image"].startswith("postgres:")
    for name, service in services.items():
        assert "image" in service, name
        if "build" in service:
            assert service["build"]["target"] in targets, name
    layers = {t for t in targets if t in ("base", "source") or t.endswith("-deps")}  # layers, never run
    assert {s["build"]["target"] for s in services.values() if "build" in s} == targets - layers
    gpu = services["worker-gpu"]["build"]
    assert gpu["target"] == "worker" and gpu["args"]["WORKER_DEPS"] in layers


def test_dockerfile_installs_dependencies_before_the_source_and_checks_health() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    default_deps = re.search(r"^ARG WORKER_DEPS=(\S+)", dockerfile, re.M)
    assert default_deps and default_deps.group(1) == "worker-deps"
    for stage in stages:
        name = stage.split()[2]
        if "COPY --from=source" in stage:
            parent = stage.split()[0].replace("${WORKER_DEPS}", default_deps.group(1))
            assert parent.endswith("-deps"), f"{name}: the source goes onto a dependency layer"
            assert "pip install --no-deps -e ." in stage, f"{name}: only the project itself after the source"
        if name == "worker":
            assert "HEALTHCHECK" in stage and "/ready" in stage, name
    source = next(s for s in stages if s.split()[2] == "source")
    assert all(f"COPY {package} ./{package}" in source for package in ("streamscore", "worker", "ops", "sql"))
    gpu = next(s for s in stages if s.split()[2] == "worker-gpu-deps")
    assert "requirements-of cuda" in gpu  # the CUDA libraries onnxruntime-gpu needs, as NVIDIA's wheels


def test_addresses_default_to_the_bundled_services_and_can_point_elsewhere(compose: dict) -> None:
    env = compose["x-app-env"]
    for name in (
        "STREAMSCORE_KAFKA_BOOTSTRAP",
        "DATABASE_URL",
        "STREAMSCORE_WRITER_DATABASE_URL",
        "STREAMSCORE_READER_DATABASE_URL",
        "STREAMSCORE_RETRAINER_DATABASE_URL",
    ):
        assert env[name].startswith("${" + name + ":-"), name
    assert _defaults(env["STREAMSCORE_KAFKA_BOOTSTRAP"]) == "kafka:9092"
    assert _defaults(env["DATABASE_URL"]) == "postgresql://streamscore:@postgres:5432/streamscore"
    kafka = compose["services"]["kafka"]
    assert "HOST://127.0.0.1:${KAFKA_HOST_PORT:-9094}" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert [_defaults(p) for p in kafka["ports"]] == ["127.0.0.1:9094:9094"]


def test_observability_profile_mounts_what_the_repository_ships(compose: dict) -> None:
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
    scrape = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    worker = services["worker"]["command"]
    port = int(worker[worker.index("--web-port") + 1])
    (sd,) = scrape["scrape_configs"][0]["dns_sd_configs"]
    assert sd["port"] == port and "worker" in sd["names"]


def test_dependency_order_and_healthchecks(compose: dict) -> None:
    services = compose["services"]
    graph = {name: set(s.get("depends_on", {})) for name, s in services.items()}
    order = list(TopologicalSorter(graph).static_order())  # raises on a cycle
    assert order.index("migrate") < order.index("topics") < order.index("worker")
    for name, service in services.items():
        for dep, rule in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which has no healthcheck"
            if rule["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is awaited as one-shot but restarts"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_worker_scales_and_reserves_a_gpu_in_its_profile(compose: dict) -> None:
    worker, gpu = compose["services"]["worker"], compose["services"]["worker-gpu"]
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N` needs both absent
    port = worker["command"][worker["command"].index("--web-port") + 1]
    assert f":{port}/ready" in " ".join(worker["healthcheck"]["test"])
    assert worker["environment"]["STREAMSCORE_WORKER_WEB_BIND"] == "0.0.0.0"
    assert compose["services"]["trainer"]["profiles"] == ["train"] and gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["command"] == worker["command"]


def test_required_variables_are_listed_in_env_example() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = (REPO_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.M))
    assert required and required <= listed
    assert not re.search(r"^(POSTGRES_PASSWORD|STREAMSCORE_\w+_PASSWORD)=\S", example, re.M), (
        "no secrets in .env.example"
    )
