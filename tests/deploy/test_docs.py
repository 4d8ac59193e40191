"""deploy/README.md is the operator's manual: it names every service, every variable and secret the
manifests set, every values file and the commands the tests rely on; each values file says how to
install its chart."""

from __future__ import annotations

import re

import pytest
import yaml

from services.registry import SERVICES
from tests.deploy.conftest import (
    COMPOSE_FILE,
    DEPLOY,
    ROOT,
    Obj,
    compose,
    config,
    is_ours,
    read_env_file,
    render,
    workloads,
)

README = (DEPLOY / "README.md").read_text()
VALUES_FILES = sorted((DEPLOY / "helm").glob("*.yaml"))
WRITTEN_BY_A_RUN = {"deploy/compose/e2e.log"}


def documented(name: str) -> bool:
    return f"`{name}`" in README or f"`{name}`," in README


def secret_keys(objects: tuple[Obj, ...]) -> set[str]:
    keys = set()
    for workload in workloads(objects):
        if is_ours(workload):
            for env in workload["spec"]["template"]["spec"]["containers"][0]["env"]:
                keys.add(env["name"])
    return keys


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_variable_and_secret_of_the_manifests_is_explained(overlay: str) -> None:
    objects = render(overlay)
    missing = sorted(
        name for name in {*config(objects), *secret_keys(objects)} if not documented(name)
    )
    assert missing == []


def test_every_variable_of_the_compose_harness_is_explained() -> None:
    names = set(read_env_file(COMPOSE_FILE.parent / ".env.example"))
    names |= set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_FILE.read_text()))
    names |= set(compose()["x-vaksin"]["environment"])
    assert sorted(n for n in names if not documented(n)) == []


def test_every_service_is_named() -> None:
    for service in SERVICES:
        assert f"`{service}`" in README, service


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_each_values_file_is_documented_and_says_how_to_install_its_chart(values) -> None:
    assert f"deploy/helm/{values.name}" in README
    assert isinstance(yaml.safe_load(values.read_text()), dict)
    header = "".join(
        line for line in values.read_text().splitlines(keepends=True) if line.startswith("#")
    )
    assert "helm repo add" in header
    assert "helm upgrade --install" in header and f"-f deploy/helm/{values.name}" in header


def test_the_commands_the_readme_gives_exist() -> None:
    assert "make e2e-compose" in README
    assert re.search(r"^e2e-compose:", (ROOT / "Makefile").read_text(), re.MULTILINE)
    paths = set(re.findall(r"`(deploy/[\w./-]+)`", README)) - WRITTEN_BY_A_RUN
    assert len(paths) >= 5
    for path in paths:
        assert (ROOT / path).exists(), path
