"""Every object of every overlay is valid Kubernetes: built-in kinds against the API's own schemas
(kubernetes-validate, strict: unknown fields are errors), custom resources against ours."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.conftest import NAMESPACES, Obj, of_kind, render

# The oldest Kubernetes we support (deploy/README.md) and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM_RESOURCES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.keda.sh_v1alpha1.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cluster.postgresql.cnpg.io_v1.json",
}
CLUSTER_SCOPED = {"Namespace"}


def validate(obj: Obj, version: str) -> None:
    schema_file = CUSTOM_RESOURCES.get((obj["apiVersion"], obj["kind"]))
    if schema_file:
        jsonschema.validate(obj, json.loads((SCHEMAS / schema_file).read_text()))
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def problems(objects: tuple[Obj, ...], version: str) -> list[str]:
    found = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            validate(obj, version)
        except kubernetes_validate.utils.SchemaNotFoundError:
            found.append(f"{name}: no schema for {obj['apiVersion']} (add one in {SCHEMAS.name}/)")
        except jsonschema.ValidationError as exc:
            found.append(f"{name}: {exc.message} at {'/'.join(map(str, exc.absolute_path))}")
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_kubernetes(objects: tuple[Obj, ...], version: str) -> None:
    assert len(objects) > 10
    assert problems(objects, version) == []


def test_the_validation_catches_a_misspelled_field() -> None:
    deployment = copy.deepcopy(of_kind(render("dev"), "Deployment")["vaksin-identity"])
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    probe["httpGet"]["paht"] = probe["httpGet"].pop("path")
    assert len(problems((deployment,), KUBERNETES_VERSIONS[0])) == 1


def test_the_validation_catches_a_number_where_keda_wants_a_string() -> None:
    scaled = copy.deepcopy(next(iter(of_kind(render("prod"), "ScaledObject").values())))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 20
    assert len(problems((scaled,), KUBERNETES_VERSIONS[0])) == 1


def test_objects_are_unique_and_in_the_overlay_namespace(
    overlay: str, objects: tuple[Obj, ...]
) -> None:
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))
    namespace = NAMESPACES[overlay]
    assert of_kind(objects, "Namespace").keys() == {namespace}
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == namespace, obj["metadata"]["name"]
