"""The Dockerfile, read as text (no Docker engine here): multi-stage on a slim Python, the package
installed with pip in the build stage only, a non-root runtime whose entrypoint is `vaksin`, and a
.dockerignore that sends only what the build copies."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field

from tests.deploy.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "apt-get", "apk add", "pip install")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def stages() -> list[Stage]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    found: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not found and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
        elif keyword == "FROM":
            base, _, name = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest).partition(
                " AS "
            )
            found.append(Stage(base.strip(), name.strip()))
        else:
            found[-1].instructions.append((keyword, rest.strip()))
    return found


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_multi_stage_on_a_slim_python() -> None:
    build, runtime = stages()
    for stage in (build, runtime):
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", stage.base), stage.base
    minimum = pyproject()["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, runtime.base[7:].split("-")[0].split("."))) >= tuple(
        map(int, minimum.split("."))
    )
    assert any(copy.startswith(f"--from={build.name} ") for copy in runtime.all("COPY"))


def test_the_build_stage_installs_the_package_with_what_pyproject_needs() -> None:
    build, _ = stages()
    assert any(re.search(r"pip install \.( |$)", run) for run in build.all("RUN"))
    copied = {
        part.rstrip("/").removeprefix("./") for c in build.all("COPY") for part in c.split()[:-1]
    }
    project = pyproject()["project"]
    needed = {"pyproject.toml", project["readme"], *project["license-files"]}
    packages = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    needed |= {p.rstrip("*") for p in packages}
    assert needed <= copied


def test_the_runtime_stage_is_non_root_and_holds_no_build_tools() -> None:
    _, runtime = stages()
    (user,) = runtime.all("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) > 0 and int(gid) > 0  # numeric, so Kubernetes' runAsNonRoot can verify it
    for run in runtime.all("RUN"):
        for tool in BUILD_TOOLS:
            assert tool not in f"{run} ", f"runtime stage runs {tool!r}"
    env = " ".join(runtime.all("ENV"))
    assert "DATA_DIR=/tmp/" in env  # under the tmpfs / emptyDir of compose and Kubernetes


def test_the_entrypoint_is_the_vaksin_command() -> None:
    _, runtime = stages()
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["vaksin"]
    assert "vaksin" in pyproject()["project"]["scripts"]


def excluded(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or a parent of it."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines()]
    result = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in (p for p in patterns if p and not p.startswith("#")):
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            result = not negated
    return result


def test_the_build_context_is_only_what_the_build_copies() -> None:
    for path in (
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "services/cli.py",
        "services/ingress/migrations/0001_ingress.sql",
    ):
        assert not excluded(path), path
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".data/secrets.json",
        "tests/conftest.py",
        "deploy/compose/.env",
        "services/common/__pycache__/db.cpython-311.pyc",
        "bench/ingest.py",
    ):
        assert excluded(path), path
