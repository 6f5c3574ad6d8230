"""The schema check for objects that cannot be dry-run yet (issue 11 item 7), table-driven: Kubernetes' OpenAPI
extensions and what the API server refuses, against a CRD's structural schema and a built-in-style document."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_job.reconcile.schema import Schemas, crd_schemas
from tests.kube import crd

SPEC = {
    "type": "object",
    "required": ["size"],
    "properties": {
        "size": {"type": "integer", "minimum": 1},
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "bare": {"x-kubernetes-int-or-string": True},
        "mode": {"type": "string", "enum": ["a", "b"]},
        "note": {"type": "string", "nullable": True},
        "free": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"x": {"type": "string"}},
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "child": {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {"spec": {"type": "object"}}},
    },
}
CRD = crd("example.com", "Gizmo", {"type": "object", "properties": {"spec": SPEC}})

# A stand-in for one group-version document of the API server's /openapi/v3, in its shape.
OPENAPI = {"components": {"schemas": {
    "io.example.v1.Widget": {
        "type": "object",
        "x-kubernetes-group-version-kind": [{"group": "example.org", "version": "v1", "kind": "Widget"}],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "metadata": {"allOf": [{"$ref": "#/components/schemas/io.example.v1.Meta"}], "default": {}},
                       "spec": {"allOf": [{"$ref": "#/components/schemas/io.example.v1.WidgetSpec"}], "default": {}}},
    },
    "io.example.v1.Meta": {"type": "object", "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                                            "labels": {"type": "object",
                                                                       "additionalProperties": {"type": "string"}}}},
    "io.example.v1.WidgetSpec": {
        "type": "object", "required": ["replicas"],
        "properties": {"replicas": {"type": "integer"}, "policy": {"type": "string", "enum": ["Always"]},
                       "surge": {"type": "string", "format": "int-or-string"},
                       "cpu": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                       "type": {"type": "string"}},
    },
}}}  # fmt: skip


def gizmo(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g", "labels": {"a": "b"}},
            "spec": spec}  # fmt: skip


def widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w", "labels": None}, "spec": spec}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (gizmo(size=1, port=80, bare="x", mode="a", note=None, free={"x": "1", "y": 2}, labels={"k": "v"},
               child={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "spec": {}}), []),
        (gizmo(size=1, port="http", bare=3), []),
        (gizmo(size="big"), ["spec.size: 'big' is not of type 'integer'"]),
        (gizmo(size=0), ["spec.size: 0 is less than the minimum of 1"]),
        (gizmo(), ["spec: 'size' is a required property"]),
        (gizmo(size=1, port=1.5), ["spec.port: 1.5 is not valid under any of the given schemas"]),
        (gizmo(size=1, bare=[1]), ["spec.bare: [1] is not of type 'integer', 'string'"]),
        (gizmo(size=1, mode="c"), ["spec.mode: 'c' is not one of ['a', 'b']"]),
        (gizmo(size=None), ["spec.size: None is not of type 'integer'"]),  # not nullable: the server refuses null
        (gizmo(size=1, bogus=1), ["spec: bogus: field not declared in the schema"]),
        (gizmo(size=1, labels={"k": 1}), ["spec.labels.k: 1 is not of type 'string'"]),
        (gizmo(size=1, free={"x": 1}), ["spec.free.x: 1 is not of type 'string'"]),
        ({**gizmo(size=1), "extra": 1}, ["(root): extra: field not declared in the schema"]),
    ],
)  # fmt: skip
def test_item07_custom_resources_against_their_crds_structural_schema(
    body: dict[str, Any], expected: list[str]
) -> None:
    schemas = Schemas(lambda _: pytest.fail("a rendered CRD's schema needs no request"), [CRD])
    assert schemas.problems(body) == expected
    assert schemas.source(body) == "the schema of its CRD in this run"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (widget(replicas=2, surge="25%", cpu=1), []),
        (widget(surge=1, cpu="500m", policy="", type="x"), []),  # required and enum are left to the server
        (widget(replicas=None, cpu=None), []),  # null is unset for server-side apply
        (widget(replicas="many"), ["spec.replicas: 'many' is not of type 'integer'"]),
        (widget(surge=1.5), ["spec.surge: 1.5 is not of type 'integer', 'string'"]),
        (widget(cpu=[1]), ["spec.cpu: [1] is not valid under any of the given schemas"]),
        (widget(replicas=1, bogus=True), ["spec: bogus: field not declared in the schema"]),
    ],
)  # fmt: skip
def test_item07_other_kinds_against_the_api_servers_openapi_document(body: dict[str, Any], expected: list[str]) -> None:
    asked: list[str] = []

    def fetch(api_version: str) -> dict[str, Any] | None:
        asked.append(api_version)
        return OPENAPI if api_version == "example.org/v1" else None

    schemas = Schemas(fetch)
    assert schemas.problems(body) == expected
    assert schemas.problems(body) == expected
    assert asked == ["example.org/v1"], "each group-version is fetched once"


def test_item07_no_schema_known_means_no_refusal_and_messages_are_capped() -> None:
    schemas = Schemas(lambda _: None, [CRD])
    assert schemas.problems({"apiVersion": "other.io/v1", "kind": "Thing", "spec": {"x": 1}}) == []
    assert schemas.source({"apiVersion": "other.io/v1", "kind": "Thing"}) is None
    many = gizmo(size="a", port=[1], bare=[2], mode=3)
    assert len(schemas.problems(many)) == 3
    (long,) = schemas.problems(gizmo(size=1, mode="x" * 1000))
    assert len(long) < 260 and long.endswith("…")


def test_crd_schemas_reads_every_served_version() -> None:
    both = crd("example.com", "Gizmo", {"type": "object"})
    both["spec"]["versions"].append({"name": "v2", "served": False, "storage": False,
                                     "schema": {"openAPIV3Schema": {"type": "object"}}})  # fmt: skip
    assert set(crd_schemas([both, {"apiVersion": "v1", "kind": "ConfigMap"}])) == {("example.com/v1", "Gizmo")}


def test_item07_a_schema_python_cannot_evaluate_refuses_nothing() -> None:
    """An RE2-only pattern, an unknown type: left to the dry-run apply makes once the CRD exists."""
    odd = crd("example.com", "Odd", {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "a": {"type": "string", "pattern": "(?P<x"}, "b": {"type": "wat"}}}}})  # fmt: skip
    schemas = Schemas(lambda _: None, [odd])
    for spec in ({"a": "q"}, {"b": "q"}):
        assert schemas.problems({"apiVersion": "example.com/v1", "kind": "Odd", "spec": spec}) == []
