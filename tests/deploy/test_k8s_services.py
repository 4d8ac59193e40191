"""Invariants of our services on Kubernetes, in every overlay: each service of services/registry.py
has its Deployment, Service and PodDisruptionBudget; probes, limits, non-root, read-only root,
secrets from Secrets, a shutdown longer than the drain, and a migration Job."""

from __future__ import annotations

import pytest

from services.registry import SERVICES
from tests.deploy.conftest import (
    IMAGE,
    REQUIRED_SECRETS,
    SECRET_NAMES,
    SETTINGS_VARIABLES,
    Obj,
    app_container,
    config,
    deployment_name,
    drain_seconds,
    is_ours,
    labels_match,
    of_kind,
    pod_labels,
    pod_spec,
    quantity,
    service_port_variable,
    workloads,
)


def our_deployments(objects: tuple[Obj, ...]) -> dict[str, Obj]:
    return {name: d for name, d in of_kind(objects, "Deployment").items() if is_ours(d)}


def migration_job(objects: tuple[Obj, ...]) -> Obj:
    (job,) = [
        j for j in of_kind(objects, "Job").values() if app_container(j)["args"][0] == "migrate"
    ]
    return job


def test_every_service_and_only_those_has_a_deployment(objects: tuple[Obj, ...]) -> None:
    assert set(our_deployments(objects)) == {deployment_name(s) for s in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_its_own_command(objects: tuple[Obj, ...], service: str) -> None:
    container = app_container(our_deployments(objects)[deployment_name(service)])
    assert container["args"] == ["service", service]
    assert "command" not in container  # the image's ENTRYPOINT is `vaksin`


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_service_and_a_pdb_selecting_its_pods(
    objects: tuple[Obj, ...], service: str
) -> None:
    name = deployment_name(service)
    deployment = our_deployments(objects)[name]
    labels = pod_labels(deployment)
    assert labels_match(deployment["spec"]["selector"]["matchLabels"], labels)
    k8s_service = of_kind(objects, "Service")[name]
    assert labels_match(k8s_service["spec"]["selector"], labels)
    port_names = {p["name"] for p in app_container(deployment)["ports"]}
    assert {p["targetPort"] for p in k8s_service["spec"]["ports"]} <= port_names
    pdb = of_kind(objects, "PodDisruptionBudget")[name]
    assert labels_match(pdb["spec"]["selector"]["matchLabels"], labels)
    # maxUnavailable, not minAvailable: a drain proceeds even when KEDA has scaled down to one.
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}


def test_no_service_selects_another_services_pods(objects: tuple[Obj, ...]) -> None:
    deployments = our_deployments(objects)
    for name, svc in of_kind(objects, "Service").items():
        if name in deployments:
            selected = [
                d
                for d in deployments
                if labels_match(svc["spec"]["selector"], pod_labels(deployments[d]))
            ]
            assert selected == [name]


def test_every_workload_runs_the_one_image(objects: tuple[Obj, ...]) -> None:
    images = {
        c["image"] for w in workloads(objects) if is_ours(w) for c in pod_spec(w)["containers"]
    }
    assert len(images) == 1
    (image,) = images
    repository, _, tag = image.rpartition(":")
    assert repository.rsplit("/", 1)[-1] == IMAGE and tag


@pytest.mark.parametrize("service", SERVICES)
def test_probes_liveness_healthz_readiness_readyz_on_the_service_port(
    objects: tuple[Obj, ...], service: str
) -> None:
    container = app_container(our_deployments(objects)[deployment_name(service)])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert ports[get["port"]] == int(config(objects)[service_port_variable(service)])
        paths[probe] = get["path"]
    # Liveness never depends on NATS or Postgres (/healthz); readiness does (/readyz).
    assert paths == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }


def test_every_container_has_requests_within_limits(objects: tuple[Obj, ...]) -> None:
    for workload in workloads(objects):
        for container in pod_spec(workload)["containers"]:
            resources = container["resources"]
            name = workload["metadata"]["name"]
            for resource in ("cpu", "memory"):
                request = quantity(resources["requests"][resource])
                assert 0 < request <= quantity(resources["limits"][resource]), name


def test_every_pod_runs_as_non_root_on_a_read_only_root(objects: tuple[Obj, ...]) -> None:
    for workload in workloads(objects):
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context.get("privileged", False) is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name


def test_data_dir_is_the_only_writable_place_and_an_empty_dir(objects: tuple[Obj, ...]) -> None:
    data_dir = config(objects)["DATA_DIR"]
    for workload in workloads(objects):
        if not is_ours(workload):
            continue
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        mounts = app_container(workload)["volumeMounts"]
        assert [m for m in mounts if f"{data_dir}/".startswith(m["mountPath"].rstrip("/") + "/")]
        for mount in mounts:
            assert "emptyDir" in volumes[mount["name"]]


@pytest.mark.parametrize("service", SERVICES)
def test_shutdown_grace_outlasts_pre_stop_and_drain(objects: tuple[Obj, ...], service: str) -> None:
    deployment = our_deployments(objects)[deployment_name(service)]
    pre_stop = app_container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = float(pre_stop[1]) + drain_seconds()
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= needed + 10
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_every_secret_comes_from_a_secret_and_none_is_in_the_manifests(
    objects: tuple[Obj, ...],
) -> None:
    assert of_kind(objects, "Secret") == {}, "secrets are created in the cluster, never in git"
    assert not SECRET_NAMES & set(config(objects))
    for workload in workloads(objects):
        if not is_ours(workload):
            continue
        env = {e["name"]: e for e in app_container(workload)["env"]}
        for name in SECRET_NAMES:
            assert "value" not in env[name], name
            reference = env[name]["valueFrom"]["secretKeyRef"]
            # Missing required secret: the pod does not start (rather than invent its own).
            assert reference.get("optional", False) is (name not in REQUIRED_SECRETS), name


def test_every_variable_given_to_a_service_is_a_setting(objects: tuple[Obj, ...]) -> None:
    assert set(config(objects)) <= SETTINGS_VARIABLES
    for workload in workloads(objects):
        if is_ours(workload):
            assert {e["name"] for e in app_container(workload)["env"]} <= SETTINGS_VARIABLES


def test_migration_job_runs_once_with_what_it_needs_labelled_for_the_pre_deploy_step(
    objects: tuple[Obj, ...],
) -> None:
    job = migration_job(objects)
    assert app_container(job)["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert 1 <= job["spec"]["backoffLimit"] <= 6
    assert job["spec"].get("parallelism", 1) == 1
    # `kubectl apply -k <overlay> -l vaksin-nakes/phase=pre-deploy` must bring its ConfigMaps.
    pre_deploy = {"vaksin-nakes/phase": "pre-deploy"}
    assert labels_match(pre_deploy, job["metadata"]["labels"])
    labelled = {
        o["metadata"]["name"]
        for o in objects
        if labels_match(pre_deploy, o["metadata"].get("labels", {}))
    }
    used = {e["configMapRef"]["name"] for e in app_container(job)["envFrom"]}
    assert used and used <= labelled
