"""The compose harness: valid against the compose specification (the schema shipped by the
check-jsonschema dev dependency, so no network), every service of services/registry.py with a
readiness healthcheck and ordered start, the same locked-down containers and settings as
Kubernetes, secrets only from an env file that git ignores."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from importlib import resources
from typing import Any

import jsonschema
import pytest

from services.cli import _parser
from services.registry import SERVICES
from services.ticketing.token import load_signing_key
from tests.deploy.conftest import (
    COMPOSE_FILE,
    IMAGE,
    REQUIRED_SECRETS,
    ROOT,
    SECRET_NAMES,
    SETTINGS_VARIABLES,
    compose,
    config,
    drain_seconds,
    public_routes,
    read_env_file,
    render,
    service_port_variable,
)

ENV_EXAMPLE = COMPOSE_FILE.parent / ".env.example"
INFRASTRUCTURE = ("nats", "postgres", "migrate", "fake-graph")


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def ours() -> dict[str, dict[str, Any]]:
    """Our containers: those built from the repository's image."""
    return {
        n: s
        for n, s in compose()["services"].items()
        if s.get("image") == compose()["x-vaksin"]["image"]
    }


def test_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_the_specification_check_rejects_a_misspelled_key() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["identity"]["helthcheck"] = broken["services"]["identity"].pop("healthcheck")
    assert len(schema_errors(broken)) == 1


def test_every_service_and_only_those_run_from_our_image() -> None:
    assert set(ours()) == {*SERVICES, "migrate", "fake-graph"}
    assert set(compose()["services"]) == {*SERVICES, *INFRASTRUCTURE}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_starts_after_migration_and_reports_readiness(service: str) -> None:
    spec = compose()["services"][service]
    assert spec["command"] == ["service", service]
    assert spec["depends_on"]["nats"] == {"condition": "service_healthy"}
    assert spec["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert spec["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    port = spec["environment"][service_port_variable(service)]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(spec["healthcheck"]["test"])


def test_nats_postgres_and_migration_are_wired_like_production() -> None:
    services = compose()["services"]
    nats = services["nats"]
    assert {"-js", "-sd", "-m"} <= set(nats["command"])
    assert "/healthz?js-enabled-only=true" in " ".join(nats["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    environment = compose()["x-vaksin"]["environment"]
    assert environment["NATS_URL"] == "nats://nats:4222"
    assert "@postgres:5432/" in environment["DATABASE_URL"]


def test_the_fake_graph_api_plays_meta_for_the_notifier_and_the_webhook() -> None:
    services = compose()["services"]
    fake = services["fake-graph"]
    assert "healthcheck" in fake
    assert services["notifier"]["depends_on"]["fake-graph"] == {"condition": "service_healthy"}
    assert "http://fake-graph:9090/" in compose()["x-vaksin"]["environment"]["WHATSAPP_API_BASE"]
    assert fake["environment"]["FAKE_GRAPH_WEBHOOK_URL"] == "http://ingress:8080/webhook"
    # `vaksin fake-graph` on every interface of its container, at the port the others use.
    assert fake["command"] == ["fake-graph", "--host", "0.0.0.0", "--port", "9090"]
    args = _parser().parse_args(fake["command"])
    assert (args.host, args.port) == ("0.0.0.0", 9090)


def test_our_containers_are_locked_down_like_in_kubernetes() -> None:
    data_dir = compose()["x-vaksin"]["environment"]["DATA_DIR"]
    for name, spec in ours().items():
        user, _, group = spec["user"].partition(":")
        assert int(user) > 0 and int(group) > 0, name
        assert spec["read_only"] is True, name
        assert any(f"{data_dir}/".startswith(f"{t.rstrip('/')}/") for t in spec["tmpfs"]), name
        assert spec["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in spec["security_opt"], name
        grace = re.fullmatch(r"(\d+)s", spec["stop_grace_period"])
        assert grace and int(grace.group(1)) > drain_seconds(), name


def test_compose_and_kubernetes_agree_on_image_ports_and_data_dir() -> None:
    image = compose()["x-vaksin"]["image"]
    assert re.fullmatch(rf"\$\{{VAKSIN_IMAGE:-{IMAGE}:[\w.-]+\}}", image)
    environment = compose()["x-vaksin"]["environment"]
    k8s = config(render("prod"))
    for key in ("INGRESS_PORT", "HEALTH_PORT", "DATA_DIR", "LOG_JSON"):
        assert environment[key] == k8s[key], key
    assert set(environment) <= SETTINGS_VARIABLES


def test_secrets_come_only_from_the_env_file() -> None:
    for name, spec in ours().items():
        assert spec["env_file"] == "${VAKSIN_ENV_FILE:-.env}", name
        # DATABASE_URL is composed from POSTGRES_PASSWORD of the env file, never written here.
        literal = SECRET_NAMES - {"DATABASE_URL"}
        assert not literal & set(spec["environment"]), name
    assert "${POSTGRES_PASSWORD" in compose()["x-vaksin"]["environment"]["DATABASE_URL"]


def test_the_example_env_file_lists_every_secret_a_service_needs() -> None:
    example = read_env_file(ENV_EXAMPLE)
    assert REQUIRED_SECRETS - {"DATABASE_URL"} <= set(example)
    assert set(example) - {"POSTGRES_PASSWORD"} <= SETTINGS_VARIABLES


def test_the_example_signing_key_is_a_valid_one() -> None:
    # `make e2e-compose` runs with the example file as it is: ticketing must start with it.
    load_signing_key(read_env_file(ENV_EXAMPLE)["TICKET_SIGNING_KEY"])


def test_only_the_webhook_and_the_desk_api_are_published_and_on_localhost_only() -> None:
    for name, spec in compose()["services"].items():
        for port in spec.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    published = {name for name, spec in ours().items() if spec.get("ports")} - {"fake-graph"}
    # Those with routes for someone outside, as in Kubernetes's Ingress: the webhook (Meta) and the
    # desk API (ticketing); identity's operator API is reached with `exec`, never published.
    assert published == set(public_routes())
    for service in published:
        spec = compose()["services"][service]
        (port,) = spec["ports"]
        host, _, container = port.rpartition(":")
        assert re.fullmatch(r"127\.0\.0\.1:\$\{[A-Z_]+_HOST_PORT:-\d+\}", host), port
        assert container == spec["environment"][service_port_variable(service)], service


def test_git_ignores_the_real_env_file_but_not_the_example() -> None:
    def ignored(path: str) -> bool:
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        return done.returncode == 0

    assert ignored("deploy/compose/.env")
    assert not ignored("deploy/compose/.env.example")
