"""The production overlay and its dependencies: KEDA scales every service that consumes JetStream
durables, on exactly those durables (taken from the code); CloudNativePG provides the database
URL, commits synchronously to a standby and has a connection for every pool; NATS's Helm values
give JetStream on 3 servers with file storage, and every service keeps its streams on all 3; the
image is pinned."""

from __future__ import annotations

import inspect
import re
from urllib.parse import urlsplit

import pytest
import yaml

from services.common.db import create_pool
from services.common.settings import Settings
from services.notifier.app import ENGINE_POOL_SIZE
from services.registry import SERVICES
from tests.deploy.conftest import (
    DEPLOY,
    IMAGE,
    NAMESPACES,
    OVERLAYS,
    Obj,
    app_container,
    compose,
    config,
    container_env,
    deployment_name,
    durable_consumers,
    is_ours,
    of_kind,
    render,
    service_host,
)

HELM = DEPLOY / "helm"


def prod() -> tuple[Obj, ...]:
    return render("prod")


def partitioned_settings(objects: tuple[Obj, ...]) -> Settings:
    data = config(objects)
    return Settings(
        dialog_partitions=int(data["DIALOG_PARTITIONS"]),
        notifier_partitions=int(data["NOTIFIER_PARTITIONS"]),
    )


def scaled_objects() -> dict[str, Obj]:
    return {
        s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(prod(), "ScaledObject").values()
    }


def nats_values() -> Obj:
    return yaml.safe_load((HELM / "nats-values.yaml").read_text())


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_with_durable_consumers_is_scaled_on_exactly_those(service: str) -> None:
    consumers = durable_consumers(service, partitioned_settings(prod()))
    scaled = scaled_objects().get(deployment_name(service))
    if not consumers:
        assert scaled is None, f"{service} consumes no JetStream durable: nothing to scale on"
        return
    assert scaled is not None, f"{service} consumes {sorted(consumers)}: add a ScaledObject"
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"nats-jetstream"}
    watched = [(t["metadata"]["stream"], t["metadata"]["consumer"]) for t in triggers]
    assert sorted(watched) == sorted(consumers)


def test_scaled_objects_target_our_deployments_which_leave_replicas_to_keda() -> None:
    deployments = of_kind(prod(), "Deployment")
    assert scaled_objects()
    for target in scaled_objects():
        assert target in deployments
        assert "replicas" not in deployments[target]["spec"], target


def test_scaling_uses_the_backlog_of_every_partition_and_no_more_replicas_than_partitions() -> None:
    data = config(prod())
    partitions = max(int(data["DIALOG_PARTITIONS"]), int(data["NOTIFIER_PARTITIONS"]))
    for name, scaled in scaled_objects().items():
        spec = scaled["spec"]
        names = [t["name"] for t in spec["triggers"]]
        if len(names) == 1:  # one consumer (the scheduler's): its own lag is the metric
            assert "scalingModifiers" not in spec.get("advanced", {}), name
            assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions, name
            continue
        modifiers = spec["advanced"]["scalingModifiers"]
        assert sorted(re.findall(r"[a-z][a-z0-9]*", modifiers["formula"])) == sorted(names)
        assert set(re.sub(r"[a-z][a-z0-9]*", "", modifiers["formula"]).split()) == {"+"}
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions, name


def test_the_webhook_edge_keeps_two_replicas() -> None:
    # The webhook stays up through the loss of a node (or a rollout).
    name = deployment_name("ingress")
    scaled = scaled_objects().get(name)
    replicas = of_kind(prod(), "Deployment")[name]["spec"].get("replicas", 0)
    assert (scaled["spec"]["minReplicaCount"] if scaled else replicas) >= 2


def test_keda_reads_lag_from_the_nats_release_monitoring_port() -> None:
    monitor = nats_values()["config"]["monitor"]
    assert monitor["enabled"] is True
    expected = f"nats-headless.{NAMESPACES['prod']}.svc.cluster.local:{monitor['port']}"
    for scaled in scaled_objects().values():
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["metadata"]["natsServerMonitoringEndpoint"] == expected
            assert trigger["metadata"]["account"] == "$G"
    nats_url = urlsplit(config(prod())["NATS_URL"])
    assert (nats_url.scheme, nats_url.hostname, nats_url.port) == ("nats", "nats", 4222)


def test_nats_values_run_jetstream_on_three_servers_with_file_storage() -> None:
    values = nats_values()["config"]
    assert values["cluster"] == {"enabled": True, "replicas": 3}
    assert values["jetstream"]["enabled"] is True
    assert values["jetstream"]["fileStore"]["enabled"] is True
    assert values["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    assert values["jetstream"]["memoryStore"]["enabled"] is False
    assert nats_values()["podDisruptionBudget"]["enabled"] is True


def nats_servers(overlay: str) -> int:
    """How many nats-servers the overlay's services talk to: production's Helm release, or the
    dev overlay's own StatefulSet."""
    if overlay == "prod":
        return int(nats_values()["config"]["cluster"]["replicas"])
    return int(of_kind(render(overlay), "StatefulSet")["nats"]["spec"]["replicas"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_keeps_its_streams_on_as_many_servers_as_there_are(overlay: str) -> None:
    objects = render(overlay)
    deployments = [d for d in of_kind(objects, "Deployment").values() if is_ours(d)]
    assert {d["metadata"]["name"] for d in deployments} >= {deployment_name(s) for s in SERVICES}
    for deployment in deployments:
        value = container_env(objects, app_container(deployment)).get("NATS_STREAM_REPLICAS")
        assert value is not None, deployment["metadata"]["name"]
        replicas = Settings(nats_stream_replicas=value).nats_stream_replicas  # as the code reads it
        # A stream cannot have more replicas than servers; fewer would leave a server idle.
        assert replicas == nats_servers(overlay), deployment["metadata"]["name"]


def test_production_streams_are_r3_on_three_nats_servers_with_jetstream_on_disk() -> None:
    assert nats_servers("prod") == 3
    assert config(prod())["NATS_STREAM_REPLICAS"] == "3"
    jetstream = nats_values()["config"]["jetstream"]
    assert jetstream["enabled"] is True and jetstream["fileStore"]["pvc"]["enabled"] is True


def test_postgres_commits_wait_for_a_standby_and_survive_the_loss_of_a_node() -> None:
    (cluster,) = of_kind(prod(), "Cluster").values()
    spec = cluster["spec"]
    synchronous = spec["postgresql"]["synchronous"]
    # Quorum: any of the standbys may confirm (the nearest does); never degraded to
    # asynchronous on its own (`preferred` would acknowledge commits no standby has).
    assert synchronous["method"] == "any"
    assert synchronous.get("dataDurability", "required") == "required"
    standbys = spec["instances"] - 1
    # At least one standby confirms every commit, and one instance down (a node drained or
    # lost) still leaves enough standbys for writes to go on.
    assert spec["instances"] >= 3
    assert 1 <= synchronous["number"] <= standbys - 1
    assert spec["affinity"]["podAntiAffinityType"] == "required"


def pool_sizes(service: str) -> int:
    """Connections one replica of the service may hold: its host's pool (create_pool's default
    size), and the notifier's send engine's own."""
    if not service_host(service, Settings()).uses_postgres:
        return 0
    size = int(inspect.signature(create_pool).parameters["max_size"].default)
    return size + (ENGINE_POOL_SIZE if service == "notifier" else 0)


def test_postgres_has_a_connection_for_every_pool_at_the_scaling_maxima() -> None:
    deployments = of_kind(prod(), "Deployment")
    needed = 0
    for service in SERVICES:
        name = deployment_name(service)
        scaled = scaled_objects().get(name)
        replicas = (
            scaled["spec"]["maxReplicaCount"] if scaled else deployments[name]["spec"]["replicas"]
        )
        surge = deployments[name]["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        needed += (replicas + surge) * pool_sizes(service)
    (cluster,) = of_kind(prod(), "Cluster").values()
    maximum = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    # Postgres keeps 3 for superusers (the operator's instance manager); the migration Job and an
    # operator's psql need a few more.
    assert needed + 3 + 10 <= maximum, f"{needed} pool connections at most"


def test_postgres_is_a_cloudnative_pg_cluster_whose_secret_the_services_read() -> None:
    (cluster,) = of_kind(prod(), "Cluster").values()
    assert cluster["spec"]["instances"] >= 3
    assert cluster["spec"]["affinity"]["enablePodAntiAffinity"] is True
    owner = cluster["spec"]["bootstrap"]["initdb"]["owner"]
    assert owner == cluster["spec"]["bootstrap"]["initdb"]["database"]
    for deployment in of_kind(prod(), "Deployment").values():
        env = {e["name"]: e for e in app_container(deployment)["env"]}
        reference = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        # CloudNativePG's application secret: <cluster>-app, key `uri`.
        assert reference == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}


def test_the_production_image_is_pinned_and_dev_runs_the_compose_build() -> None:
    def images(overlay: str) -> set[str]:
        return {app_container(d)["image"] for d in of_kind(render(overlay), "Deployment").values()}

    (prod_image,) = images("prod")
    repository, _, tag = prod_image.rpartition(":")
    assert "/" in repository and repository.rsplit("/", 1)[1] == IMAGE
    assert tag and tag not in ("latest", "local")
    compose_image = compose()["x-vaksin"]["image"]
    default = re.fullmatch(r"\$\{VAKSIN_IMAGE:-(.+)\}", compose_image)
    assert default and images("dev") >= {default.group(1)}


def test_the_production_webhook_gets_a_certificate() -> None:
    (ingress,) = of_kind(prod(), "Ingress").values()
    assert ingress["metadata"]["annotations"].get("cert-manager.io/cluster-issuer")
