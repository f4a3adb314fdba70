"""docker-compose.yml and the Dockerfile, checked without a Docker engine: every command they run exists
in the project (``tbal`` verbs and their flags parse, ``python -c`` code compiles, files copied exist),
healthchecks are there, services start in the right order, and the ``gpu`` profile reserves an NVIDIA
device for a worker that consumes the ``gpu`` queue."""

from __future__ import annotations

import argparse
import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from worker.celery_app import GPU_QUEUE, QUEUES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROJECT_SERVICES = ("migrate", "api", "worker", "worker-gpu")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` with the defaults (the environment of a plain ``docker compose up``)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and "services" in data
    return dict(interpolate(data))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def tbal_parser() -> argparse.ArgumentParser:
    """The ``tbal`` command's parser with the service's verbs (from the installed entry point, or
    registered here when the package was installed before the entry point existed)."""
    from tbal.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "serve" not in subparsers.choices:
        from app.cli import register

        register(subparsers)
    return parser


def parse_tbal(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on an unknown verb or flag
        raise AssertionError(f"`tbal {' '.join(argv)}` does not parse (exit {exc.code})") from None
    assert getattr(args, "func", None) is not None, f"`tbal {' '.join(argv)}` has no handler"
    return args


def check_command(parser: argparse.ArgumentParser, command: list[str] | str) -> argparse.Namespace | None:
    """A command run inside our image exists: a ``tbal`` verb that parses, ``python -m`` a module that
    imports, or ``python -c`` code that compiles. Returns the parsed ``tbal`` arguments."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if argv and argv[0] in ("CMD", "CMD-SHELL"):
        argv = argv[1:] if argv[0] == "CMD" else shlex.split(argv[1])
    assert argv, "empty command"
    if argv[0] == "tbal":
        return parse_tbal(parser, argv[1:])
    if argv[0] in ("python", "python3"):
        if argv[1] == "-c":
            compile(argv[2], "<compose>", "exec")
            return None
        if argv[1] == "-m":
            import importlib.util

            assert importlib.util.find_spec(argv[2]) is not None, f"no module {argv[2]}"
            if argv[2] == "tbal.cli":
                return parse_tbal(parser, argv[3:])
            return None
    raise AssertionError(f"command {argv} is neither `tbal ...` nor `python -m/-c ...`")


def test_services_present(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", *PROJECT_SERVICES} <= set(services)


def test_project_commands_exist(
    services: dict[str, dict[str, Any]], tbal_parser: argparse.ArgumentParser
) -> None:
    verbs = {}
    for name in PROJECT_SERVICES:
        args = check_command(tbal_parser, services[name]["command"])
        assert args is not None
        verbs[name] = args.command
    assert verbs == {"migrate": "migrate", "api": "serve", "worker": "worker", "worker-gpu": "worker"}
    api = check_command(tbal_parser, services["api"]["command"])
    assert api is not None and api.host == "0.0.0.0"
    published = [str(p).split(":")[-1] for p in services["api"].get("ports", [])]
    assert str(api.port) in published


def test_workers_consume_known_queues(
    services: dict[str, dict[str, Any]], tbal_parser: argparse.ArgumentParser
) -> None:
    cpu = check_command(tbal_parser, services["worker"]["command"])
    gpu = check_command(tbal_parser, services["worker-gpu"]["command"])
    assert cpu is not None and gpu is not None
    assert set(cpu.queues.split(",")) == set(QUEUES)  # a CPU worker consumes both by default
    assert gpu.queues.split(",") == [GPU_QUEUE]


def test_healthchecks(services: dict[str, dict[str, Any]], tbal_parser: argparse.ArgumentParser) -> None:
    postgres = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(postgres)
    redis = services["redis"]["healthcheck"]["test"]
    assert "redis-cli" in redis and "ping" in redis
    api = services["api"]["healthcheck"]["test"]
    check_command(tbal_parser, api)
    assert "/health" in " ".join(api)
    for name in ("postgres", "redis", "api"):
        check = services[name]["healthcheck"]
        assert {"interval", "timeout", "retries"} <= set(check), f"{name}: incomplete healthcheck"


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    def conditions(name: str) -> dict[str, str]:
        depends = services[name].get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must name conditions"
        return {dep: spec["condition"] for dep, spec in depends.items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    assert services["migrate"]["restart"] == "no"  # one-shot
    for name in ("api", "worker", "worker-gpu"):
        assert conditions(name)["migrate"] == "service_completed_successfully"
        assert conditions(name)["redis"] == "service_healthy"
    for name in services:
        for dep, condition in conditions(name).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health, which has no check"


def test_environment_names_settings(services: dict[str, dict[str, Any]]) -> None:
    fields = set(Settings.model_fields)
    for name in PROJECT_SERVICES:
        env = services[name]["environment"]
        assert env["TBAL_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["TBAL_BROKER_URL"].startswith("redis://redis:")
        for var in env:
            assert var.startswith("TBAL_") and var[5:].lower() in fields, f"{name}: unknown setting {var}"
    # The database the services use is the one postgres creates.
    pg = services["postgres"]["environment"]
    url = services["api"]["environment"]["TBAL_DATABASE_URL"]
    assert url.endswith(f"@postgres:5432/{pg['POSTGRES_DB']}")
    assert f"//{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@" in url


def test_gpu_profile_reserves_an_nvidia_device(services: dict[str, dict[str, Any]]) -> None:
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and d["count"] == 1 and "gpu" in d["capabilities"] for d in devices), (
        devices
    )
    # Everything else runs without the profile.
    assert [n for n, s in services.items() if s.get("profiles")] == ["worker-gpu"]


def test_volumes_declared(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
    # The API (predictions) and the workers (which save model versions) share the artifacts volume.
    artifacts = {services[n]["environment"]["TBAL_ARTIFACTS_DIR"] for n in PROJECT_SERVICES}
    assert len(artifacts) == 1
    target = artifacts.pop()
    for name in ("api", "worker", "worker-gpu"):
        assert any(str(v).endswith(f":{target}") for v in services[name]["volumes"]), name


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_build_contexts_and_args(services: dict[str, dict[str, Any]]) -> None:
    declared_args = {rest.split("=")[0] for kw, rest in dockerfile_instructions() if kw == "ARG"}
    for name in PROJECT_SERVICES:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build["context"]
        assert (ROOT / context / "Dockerfile").is_file()
        args = {} if isinstance(build, str) else build.get("args", {})
        assert set(args) <= declared_args, f"{name}: build args {set(args) - declared_args} not in Dockerfile"


def test_dockerfile(tbal_parser: argparse.ArgumentParser) -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [rest for kw, rest in instructions if kw == "RUN"]
    args = dict(rest.split("=", 1) for kw, rest in instructions if kw == "ARG")
    # torch pinned and installed before the project (from the CPU wheel index by default).
    torch_run = next(i for i, r in enumerate(runs) if "torch==" in r)
    project_run = next(
        i for i, r in enumerate(runs) if re.search(r'pip install "?\.(\[[a-z,]+\])?"?(\s|$|&)', r)
    )
    assert torch_run < project_run
    assert '".[text]"' in runs[project_run], "the image must hold the default text encoder (the text extra)"
    assert args["TORCH_VERSION"] == "2.13.0"
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    # A non-root user runs the service.
    users = [rest for kw, rest in instructions if kw == "USER"]
    assert users and users[-1] not in ("root", "0")
    # The default command is `tbal serve`, reachable from outside the container.
    cmd = next(rest for kw, rest in reversed(instructions) if kw == "CMD")
    import json

    parsed = check_command(tbal_parser, json.loads(cmd))
    assert parsed is not None and parsed.command == "serve" and parsed.host == "0.0.0.0"


def test_dockerfile_copies_exist_and_are_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and "--from" not in rest:
            sources.extend(rest.split()[:-1])
    assert {"pyproject.toml", "tbal", "app", "worker", "migrations"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the project"
        for pattern in ignored:
            assert not fnmatch.fnmatch(source, pattern.rstrip("/")), f"COPY {source} is excluded by {pattern}"
    # The build context leaves out what the image must not carry.
    assert {".venv", ".git", "tests", "var"} <= set(ignored)
