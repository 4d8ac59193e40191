"""The production overlay and its dependencies: KEDA scales every service that consumes JetStream
durables, on exactly those durables (taken from the code); CloudNativePG provides the database
URL; NATS's Helm values give JetStream on 3 servers with file storage; the image is pinned."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import yaml

from services.common.settings import Settings
from services.registry import SERVICES
from tests.deploy.conftest import (
    DEPLOY,
    IMAGE,
    NAMESPACES,
    Obj,
    app_container,
    compose,
    config,
    deployment_name,
    durable_consumers,
    of_kind,
    render,
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
