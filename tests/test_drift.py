"""Drift (issue 14, item 3), the pure core: managedFields decoded to paths, paths from deepdiff named by merge key,
who owns each field, which differences count as drift, masking, and the text and JSON reports. Tables, no cluster."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gitops_job.identity import ObjectId
from gitops_job.outcomes import Action
from gitops_job.reconcile.drift import (
    Key,
    Member,
    decode_fields,
    differences,
    drift_of,
    keyed,
    owner_of,
    owners,
    path_text,
    plain,
    value_text,
)
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.results import DriftFinding, FieldConflict, Manager, Plan, PlanEntry, correctable
from gitops_job.report.json import json_text
from gitops_job.report.text import drift_lines
from gitops_job.report.text import text as plan_text

SCHEMA = json.loads((Path(__file__).parent.parent / "gitops_job/report/schemas/plan.schema.json").read_text())
WEB = Key((("name", "web"),))
OID = ObjectId("apps", "Deployment", "ns", "web")


@pytest.mark.parametrize(
    ("fields", "paths"),
    [
        ({"f:spec": {"f:replicas": {}}}, {("spec", "replicas")}),
        (
            {"f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}}}}},
            {("spec", "containers", WEB), ("spec", "containers", WEB, "image")},
        ),
        (
            {"f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {"f:name": {}}}},
            {("ports", Key((("containerPort", 80), ("protocol", "TCP"))), "name")},
        ),
        ({"f:metadata": {"f:finalizers": {'v:"a/b"': {}}}}, {("metadata", "finalizers", Member("a/b"))}),
        ({"f:args": {"i:0": {}}}, {("args", 0)}),
        (
            {"f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}}}},
            {("metadata", "labels", "app.kubernetes.io/name")},
        ),
        ({"x:unknown": {}, "k:not json": {}}, set()),  # what it cannot read, it leaves out
    ],
)
def test_managed_fields_decode_to_paths(fields: dict[str, Any], paths: set[tuple[Any, ...]]) -> None:
    assert decode_fields(fields) == paths


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("spec", "replicas"), "spec.replicas"),
        (("spec", "template", "spec", "containers", WEB, "image"), "spec.template.spec.containers[name=web].image"),
        (
            ("spec", "containers", WEB, "env", Key((("name", "LOG"),)), "value"),
            "spec.containers[name=web].env[name=LOG].value",
        ),
        (("ports", Key((("containerPort", 80), ("protocol", "TCP")))), "ports[containerPort=80,protocol=TCP]"),
        (("metadata", "labels", "app.kubernetes.io/name"), 'metadata.labels["app.kubernetes.io/name"]'),
        (("metadata", "finalizers", Member("a/b")), "metadata.finalizers[=a/b]"),
        (("spec", "args", 1), "spec.args[1]"),
    ],
)
def test_paths_read_like_kubectl_explain(path: tuple[Any, ...], text: str) -> None:
    assert path_text(path) == text


def pod_spec(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": list(containers)}}}}


def live_with(spec: dict[str, Any], *entries: tuple[str, dict[str, Any]], op: str = "Update") -> dict[str, Any]:
    managed = [{"manager": m, "operation": "Apply" if m == "gitops-job" else op, "fieldsV1": f} for m, f in entries]
    return {**spec, "metadata": {"name": "web", "managedFields": managed}}


CONTAINERS = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}}}}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"spec": {"replicas": 5}}, {"spec": {"replicas": 3}}, [("spec.replicas", 5, 3)]),
        # a container inserted ahead of web: web is still compared with web, by name, not by position
        (
            pod_spec({"name": "sidecar", "image": "s:1"}, {"name": "web", "image": "w:2"}),
            pod_spec({"name": "web", "image": "w:1"}),
            [
                ("spec.template.spec.containers[name=sidecar]", {"image": "s:1", "name": "sidecar"}, None),
                ("spec.template.spec.containers[name=web].image", "w:2", "w:1"),
            ],
        ),
        (
            pod_spec({"name": "web", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "x"}]}),
            pod_spec({"name": "web", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}),
            [("spec.template.spec.containers[name=web].env[name=B].value", "x", "2")],
        ),
        (
            pod_spec({"name": "web", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "h"}]}),
            pod_spec({"name": "web", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]}),
            [("spec.template.spec.containers[name=web].ports[containerPort=80,protocol=TCP].name", "h", "http")],
        ),
        ({"spec": {"args": ["a", "b"]}}, {"spec": {"args": ["a", "c"]}}, [("spec.args[1]", "b", "c")]),
        ({"data": {}}, {"data": {"k": "v"}}, [("data.k", None, "v")]),
    ],
)
def test_differences_are_named_by_merge_key(before: Any, after: Any, expected: list[tuple[str, Any, Any]]) -> None:
    found = differences(before, after, {})
    got = [(path_text(d.path), _value(d.live), _value(d.intended)) for d in found]
    assert got == expected


def _value(v: Any) -> Any:
    return None if value_text(v) == "(absent)" else plain(v)


def test_keyed_uses_the_key_the_api_server_recorded_and_plain_undoes_it() -> None:
    """A list whose managedFields key it by a field outside the table (here ``id``) is keyed by that field."""
    owned = owners(live_with({}, ("m", {"f:items": {'k:{"id":7}': {"f:v": {}}}})))
    node = {"items": [{"id": 7, "v": 1}, {"id": 8, "v": 2}]}
    assert keyed(node, owned) == {"items": {Key((("id", 7),)): {"id": 7, "v": 1}, Key((("id", 8),)): {"id": 8, "v": 2}}}
    assert plain(keyed(node, owned)) == node
    # no key fits (a duplicate name): by position
    assert keyed({"l": [{"name": "a"}, {"name": "a"}]}) == {"l": [{"name": "a"}, {"name": "a"}]}


@pytest.mark.parametrize(
    ("path", "managers"),
    [
        (("spec", "replicas"), ["kubectl-edit"]),  # exact
        (("spec", "template", "spec", "containers", WEB, "image"), ["gitops-job"]),
        (("spec", "selector", "matchLabels", "app"), ["gitops-job"]),  # inside an atomic field owned whole
        (("spec", "template"), ["gitops-job"]),  # a field inside it is owned
        (("spec", "paused"), []),
    ],
)
def test_who_owns_a_field(path: tuple[Any, ...], managers: list[str]) -> None:
    live = live_with(
        {},
        ("gitops-job", {"f:spec": {**CONTAINERS["f:spec"], "f:selector": {}}}),
        ("kubectl-edit", {"f:spec": {"f:replicas": {}}}),
    )
    assert [m.name for m in owner_of(path, owners(live))] == managers


def test_drift_is_what_another_manager_owns_now_not_what_git_changed() -> None:
    """replicas (kubectl-edit's now) and the image (git changed it: still ours) differ; only replicas drifted. A
    field nobody owns counts only when the object was applied at the revision planned."""
    live = live_with(
        {},
        ("gitops-job", CONTAINERS),
        ("kubectl-edit", {"f:spec": {"f:replicas": {}}}),
    )
    before = {"spec": {"replicas": 5, **pod_spec({"name": "web", "image": "w:1"})["spec"]}, "metadata": {"labels": {}}}
    after = {"spec": {"replicas": 3, **pod_spec({"name": "web", "image": "w:2"})["spec"]},
             "metadata": {"labels": {"team": "a"}}}  # fmt: skip
    found = drift_of(OID, before, after, live, "gitops-job", applied_here=False)
    assert [str(f) for f in found] == ["spec.replicas: 3 → 5 (manager: kubectl-edit)"]
    here = drift_of(OID, before, after, live, "gitops-job", applied_here=True)
    assert [str(f) for f in here] == ['metadata.labels.team: a → (absent) (manager: unknown)',
                                      "spec.replicas: 3 → 5 (manager: kubectl-edit)"]  # fmt: skip


def test_a_scale_subresource_manager_is_named_with_it() -> None:
    live = {"metadata": {"managedFields": [{"manager": "kubectl", "operation": "Update", "subresource": "scale",
                                            "fieldsV1": {"f:spec": {"f:replicas": {}}}}]}}  # fmt: skip
    (f,) = drift_of(OID, {"spec": {"replicas": 5}}, {"spec": {"replicas": 3}}, live, "gitops-job", applied_here=False)
    assert f.manager == "kubectl (/scale)" and f.managers == (Manager("kubectl", "Update", "scale"),)


def test_long_values_are_cut_to_one_line() -> None:
    assert value_text({"b": [1, 2], "a": "x"}) == '{"a":"x","b":[1,2]}'
    assert len(value_text("x" * 500)) == 120 and value_text("x" * 500).endswith("…")


def test_a_planted_secret_value_never_appears_in_drift_text_or_json() -> None:
    """The plan masks before and after before drift sees them: a Secret's value changed by hand shows as tokens."""
    planted = "hunter2-planted-" + "q" * 8
    masker = Masker()
    ours = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"},
            "data": {"password": "b3Vycw=="}}  # fmt: skip
    theirs = {**ours, "data": {"password": base64.b64encode(planted.encode()).decode()}}
    masker.learn([ours, theirs])
    live = {**theirs, "metadata": {**theirs["metadata"], "managedFields": [
        {"manager": "gitops-job", "operation": "Apply", "fieldsV1": {"f:metadata": {"f:labels": {}}}},
        {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:data": {"f:password": {}}}}]}}  # fmt: skip
    oid = ObjectId("", "Secret", "ns", "s")
    found = drift_of(oid, masker.mask(theirs), masker.mask(ours), live, "gitops-job", applied_here=True)
    assert [str(f) for f in found] == ["data.password: <secret #1> → <secret #2> (manager: kubectl-edit)"]
    plan = Plan("t", (), drift=found, drift_checked=True)
    outputs = [plan_text(plan), json_text(plan), "\n".join(drift_lines(plan))]
    for out in outputs:
        for form in (planted, base64.b64encode(planted.encode()).decode(), "hunter2"):
            assert form not in out


def test_reports_text_and_json() -> None:
    findings = (
        DriftFinding(OID, "spec.replicas", "3", "5", (Manager("kubectl-edit", "Update"),)),
        DriftFinding(OID, "spec.template.spec.containers[name=web].image", '"w:1"', '"w:2"', ()),
    )
    plan = Plan("t", (), drift=findings, drift_checked=True)
    assert plan.drift_count == 1 and plan.drifted == (OID,)
    assert drift_lines(plan) == [
        "drift: 1 object",
        "  Deployment/ns/web",
        "    spec.replicas: 3 → 5 (manager: kubectl-edit)",
        '    spec.template.spec.containers[name=web].image: "w:1" → "w:2" (manager: unknown)',
    ]
    doc = json.loads(json_text(plan))
    jsonschema.validate(doc, SCHEMA)
    assert doc["drift"]["objects"] == 1
    assert doc["drift"]["findings"][0] == {
        "id": "Deployment/ns/web", "path": "spec.replicas", "before": "3", "after": "5",
        "managers": [{"name": "kubectl-edit", "operation": "Update", "subresource": None}],
    }  # fmt: skip
    # a plan not asked for drift says nothing about it
    assert "drift" not in json.loads(json_text(Plan("t", ())))
    assert "drift" not in plan_text(Plan("t", ()))
    assert drift_lines(Plan("t", (), drift_checked=True)) == ["drift: 0 objects (none found)"]


def _conflicted(name: str, *managers: str) -> PlanEntry:
    return PlanEntry(ObjectId("", "ConfigMap", "ns", name), "app", Action.UPDATE,
                     conflicts=tuple(FieldConflict(f".data.{m}", m) for m in managers))  # fmt: skip


def _found(name: str, *managers: str) -> DriftFinding:
    return DriftFinding(ObjectId("", "ConfigMap", "ns", name), "data.v", "1", "2", tuple(Manager(m) for m in managers))


@pytest.mark.parametrize(
    ("entries", "drift", "taken"),
    [
        ([_conflicted("a", "kubectl-edit")], [_found("a", "kubectl-edit")], {"a"}),
        ([_conflicted("a", "kubectl-edit", "hpa")], [_found("a", "kubectl-edit"), _found("a", "hpa")], {"a"}),
        ([_conflicted("a", "kubectl-edit", "other")], [_found("a", "kubectl-edit")], set()),  # one is not drift
        ([_conflicted("a", "kubectl-edit")], [], set()),  # drifted nowhere: a conflict stays a conflict
        ([_conflicted("a", "kubectl-edit")], [_found("b", "kubectl-edit")], set()),  # another object's drift
        ([_conflicted("a")], [_found("a", "kubectl-edit")], set()),  # no conflict: nothing to force
        ([_conflicted("a", "x"), _conflicted("b", "y")], [_found("a", "x"), _found("b", "z")], {"a"}),
    ],
    ids=["drift", "two-managers", "one-not-drift", "no-drift", "other-object", "no-conflict", "per-object"],
)
def test_correctable_is_objects_whose_every_conflict_is_drift(
    entries: list[PlanEntry], drift: list[DriftFinding], taken: set[str]
) -> None:
    plan = Plan("t", tuple(entries), drift=tuple(drift), drift_checked=True)
    assert {oid.name for oid in correctable(plan)} == taken
