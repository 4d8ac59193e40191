"""Who can reach what: from outside, only the public routes of the code (the ingress's webhook and
the ticketing service's desk API, through one Ingress with TLS, path by path), only our workloads
reach NATS and Postgres, and the few operators' namespaces that must reach something reach only
that."""

from __future__ import annotations

from tests.deploy.conftest import (
    PART_OF,
    Obj,
    app_container,
    deployment_name,
    is_ours,
    labels_match,
    of_kind,
    pod_labels,
    public_routes,
)

# Pods of the production dependencies (not rendered here: the NATS chart's release `nats` and the
# CloudNativePG cluster `pg`) as their charts/operators label them.
PROD_DEPENDENCY_PODS = {
    "nats": {
        "app.kubernetes.io/name": "nats",
        "app.kubernetes.io/instance": "nats",
        "app.kubernetes.io/component": "nats",
    },
    "postgres": {"cnpg.io/cluster": "pg", "cnpg.io/instanceName": "pg-1", "role": "primary"},
}
CLIENT_PORTS = {"nats": 4222, "postgres": 5432}

# Namespaces allowed in at all, and the ports each may reach (nothing else outside the namespace).
OUTSIDE_NAMESPACES = {
    "ingress-nginx": {"http"},  # the webhook and the desk API, only to their pods (below)
    "monitoring": {"http", 7777, 9187},  # /metrics, NATS exporter, Postgres exporter
    "keda": {8222},  # NATS monitoring: consumer lag
    "cnpg-system": {8000},  # the CloudNativePG operator to its instances
}
INGRESS_CONTROLLER_NAMESPACE = "ingress-nginx"
# Served on every service's HTTP port and never to the outside world.
INTERNAL_PATHS = {"/healthz", "/readyz", "/metrics"}
DESK_PREFIX = "/desk"  # the desk app (services/ticketing/desk_web.py), routed as a Prefix
CONSOLE_PREFIX = "/console"  # the operators' console (services/console/web.py), likewise
PREFIXES = {"ticketing": DESK_PREFIX, "console": CONSOLE_PREFIX}


def under(path: str, prefix: str) -> bool:
    """Kubernetes' Prefix match: by whole path elements."""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def policies(objects: tuple[Obj, ...]) -> list[Obj]:
    return list(of_kind(objects, "NetworkPolicy").values())


def selects(policy: Obj, labels: dict[str, str]) -> bool:
    return labels_match(policy["spec"]["podSelector"].get("matchLabels", {}), labels)


def rule_ports(rule: Obj) -> set[int | str] | None:
    """The ports a rule admits; None for all of them."""
    return {p["port"] for p in rule["ports"]} if "ports" in rule else None


def peer_namespace(peer: Obj) -> str | None:
    if "namespaceSelector" not in peer:
        return None
    return peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]


def dependency_pods(overlay: str, objects: tuple[Obj, ...]) -> dict[str, dict[str, str]]:
    if overlay == "prod":
        return PROD_DEPENDENCY_PODS
    sets = of_kind(objects, "StatefulSet")
    return {name: pod_labels(sets[name]) for name in ("nats", "postgres")}


def test_everything_is_denied_unless_allowed(objects: tuple[Obj, ...]) -> None:
    deny = [
        p
        for p in policies(objects)
        if p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
    ]
    assert len(deny) == 1 and "ingress" not in deny[0]["spec"]


def test_every_rule_names_its_sources_precisely(objects: tuple[Obj, ...]) -> None:
    for policy in policies(objects):
        assert "matchExpressions" not in policy["spec"]["podSelector"]
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: a rule without `from`"
            for peer in rule["from"]:
                assert "ipBlock" not in peer, policy["metadata"]["name"]
                assert set(peer) in ({"podSelector"}, {"namespaceSelector"}), peer
                selector = peer.get("podSelector") or peer.get("namespaceSelector")
                assert selector.get("matchLabels") and "matchExpressions" not in selector, peer
                if "namespaceSelector" in peer:
                    assert set(selector["matchLabels"]) == {"kubernetes.io/metadata.name"}


def test_from_outside_the_namespace_only_known_operators_reach_known_ports(
    objects: tuple[Obj, ...],
) -> None:
    seen = set()
    for policy in policies(objects):
        for rule in policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                namespace = peer_namespace(peer)
                if namespace is None:
                    continue
                seen.add(namespace)
                assert namespace in OUTSIDE_NAMESPACES, policy["metadata"]["name"]
                ports = rule_ports(rule)
                assert ports is not None and ports <= OUTSIDE_NAMESPACES[namespace]
    assert INGRESS_CONTROLLER_NAMESPACE in seen


def test_the_ingress_controller_reaches_exactly_the_pods_behind_the_ingress(
    objects: tuple[Obj, ...],
) -> None:
    deployments = [d for d in of_kind(objects, "Deployment").values() if is_ours(d)]
    reached = set()
    for policy in policies(objects):
        sources = {
            peer_namespace(peer)
            for rule in policy["spec"].get("ingress", [])
            for peer in rule["from"]
        }
        if INGRESS_CONTROLLER_NAMESPACE in sources:
            reached |= {
                d["metadata"]["name"] for d in deployments if selects(policy, pod_labels(d))
            }
    # The webhook edge and the desk API; never identity (its operator API) or another service.
    assert reached == {deployment_name(service) for service in public_routes()}


def test_only_our_workloads_reach_nats_and_postgres(overlay: str, objects: tuple[Obj, ...]) -> None:
    pods = dependency_pods(overlay, objects)
    for dependency, labels in pods.items():
        guarding = [p for p in policies(objects) if selects(p, labels)]
        admitted_by = []
        for policy in guarding:
            for rule in policy["spec"].get("ingress", []):
                ports = rule_ports(rule)
                if ports is not None and CLIENT_PORTS[dependency] not in ports:
                    continue
                for peer in rule["from"]:
                    assert "podSelector" in peer, f"{dependency}: only pods of this namespace"
                    admitted_by.append(peer["podSelector"]["matchLabels"])
        # Our workloads, and the dependency's own pods (cluster routes, replication).
        assert PART_OF in admitted_by, dependency
        for selector in admitted_by:
            assert selector == PART_OF or labels_match(selector, labels), (dependency, selector)


def test_every_workload_of_ours_is_one_the_dependency_policies_admit(
    objects: tuple[Obj, ...],
) -> None:
    for kind in ("Deployment", "Job"):
        for workload in of_kind(objects, kind).values():
            assert labels_match(PART_OF, pod_labels(workload)), workload["metadata"]["name"]


def test_the_ingress_exposes_exactly_the_public_routes_over_tls(objects: tuple[Obj, ...]) -> None:
    (ingress,) = of_kind(objects, "Ingress").values()
    tls_hosts = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
    assert all(tls["secretName"] for tls in ingress["spec"]["tls"])
    backends = {deployment_name(service): service for service in public_routes()}
    routed: dict[str, set[str]] = {service: set() for service in public_routes()}
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts
        for path in rule["http"]["paths"]:
            # Exact: a prefix would also expose what the service serves below it. The one
            # Prefix is the desk app's, below which the code serves only the app (its files
            # and /desk/api/): every route there is routed, and nothing else is.
            backend = path["backend"]["service"]
            service = backends[backend["name"]]
            if path["pathType"] == "Prefix":
                assert path["path"] == PREFIXES.get(service), path["path"]
                below = {p for p in public_routes()[service] if under(p, path["path"])}
                assert below and not below & INTERNAL_PATHS
                routed[service] |= below
            else:
                assert path["pathType"] == "Exact", path["path"]
                routed[service].add(path["path"])
            assert path["path"] not in INTERNAL_PATHS, path["path"]
            k8s_service = of_kind(objects, "Service")[backend["name"]]
            deployment = of_kind(objects, "Deployment")[backend["name"]]
            (port,) = [
                p for p in k8s_service["spec"]["ports"] if p["name"] == backend["port"]["name"]
            ]
            assert port["targetPort"] in {p["name"] for p in app_container(deployment)["ports"]}
    # Every public route of the code, and nothing else (a new desk route is routed on purpose).
    assert routed == {service: set(paths) for service, paths in public_routes().items()}


def test_the_public_routes_are_the_webhook_and_the_desk_api() -> None:
    # What the derivation above finds (so that it cannot silently find nothing).
    assert public_routes()["ingress"] == {"/webhook"}
    assert {"/tickets/public-key", "/tickets/verify", "/checkin"} <= public_routes()["ticketing"]
    assert {"/desk/", "/desk/api/enrol", "/desk/api/checkin"} <= public_routes()["ticketing"]
    assert not INTERNAL_PATHS & set().union(*public_routes().values())
