"""reconcile/fastpath.py's :func:`proven_unchanged`, table-driven over hand-written managedFields: it answers True only
when applying would change nothing, and "not proven" for anything it cannot match exactly. Pure; against a real API
server the same function is checked by tests/test_fastpath_property.py."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from gitops_job.reconcile.fastpath import proven_unchanged

ME = "gitops-job"
Obj = dict[str, Any]


def entry(fields: Obj, *, manager: str = ME, operation: str = "Apply", api: str = "apps/v1", **extra: Any) -> Obj:
    return {"manager": manager, "operation": operation, "apiVersion": api, "fieldsType": "FieldsV1",
            "fieldsV1": fields, **extra}  # fmt: skip


CONTAINERS = [{"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]
DESIRED: Obj = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "apps", "labels": {"tier": "web"}},
    "spec": {"replicas": 2, "paused": False, "template": {"spec": {"containers": CONTAINERS}}},
}
FIELDS: Obj = {
    "f:metadata": {"f:labels": {".": {}, "f:tier": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:paused": {},
        "f:template": {"f:spec": {"f:containers": {
            'k:{"name":"app"}': {".": {}, "f:name": {}, "f:image": {}},
            'k:{"name":"side"}': {".": {}, "f:name": {}, "f:image": {}},
        }}},
    },
}  # fmt: skip


def live(fields: Obj | None = None, *entries: Obj, **changes: Callable[[Obj], None]) -> Obj:
    """The live Deployment as the server stores DESIRED (plus defaults and status), managed by ``entries``."""
    obj = copy.deepcopy(DESIRED)
    obj["metadata"].update(uid="u", resourceVersion="9", generation=1)
    obj["spec"]["strategy"] = {"type": "RollingUpdate"}  # defaulted: nobody's applied config
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    obj["status"] = {"replicas": 2}
    managed = list(entries) or [entry(FIELDS if fields is None else fields)]
    managed.append(entry({"f:status": {"f:replicas": {}}}, manager="kube-controller-manager", operation="Update",
                         subresource="status"))  # fmt: skip
    obj["metadata"]["managedFields"] = managed
    for change in changes.values():
        change(obj)
    return obj


def desired_with(change: Callable[[Obj], None]) -> Obj:
    obj = copy.deepcopy(DESIRED)
    change(obj)
    return obj


def test_the_common_case_is_proven() -> None:
    assert proven_unchanged(DESIRED, live(), ME) is True


def _containers(o: Obj) -> list[Obj]:
    return list(o["spec"]["template"]["spec"]["containers"])


NOT_PROVEN: dict[str, tuple[Obj, Obj]] = {
    # the value differs
    "a-value-differs": (DESIRED, live(r=lambda o: o["spec"].update(replicas=3))),
    "string-vs-number": (desired_with(lambda o: o["spec"].update(replicas="2")), live()),
    "float-vs-int": (desired_with(lambda o: o["spec"].update(replicas=2.0)), live()),
    "bool-vs-int": (desired_with(lambda o: o["spec"].update(paused=0)), live()),
    "a-label-differs": (desired_with(lambda o: o["metadata"]["labels"].update(tier="db")), live()),
    "null-in-the-manifest": (  # apply removes the field: even a live null is no proof
        desired_with(lambda o: o["spec"].update(replicas=None)), live(m=lambda o: o["spec"].update(replicas=None))
    ),
    # the field sets differ: the apply would remove a field or take one
    "we-own-a-field-the-manifest-dropped": (desired_with(lambda o: o["spec"].pop("paused")), live()),
    "the-manifest-sets-a-field-we-do-not-own": (
        desired_with(lambda o: o["spec"].update(minReadySeconds=5)),
        live(m=lambda o: o["spec"].update(minReadySeconds=5)),
    ),
    "a-new-label": (
        desired_with(lambda o: o["metadata"]["labels"].update(app="web")),
        live(m=lambda o: o["metadata"]["labels"].update(app="web")),
    ),
    "a-scalar-where-we-own-sub-fields": (
        desired_with(lambda o: o["spec"].update(template="x")), live(m=lambda o: o["spec"].update(template="x"))
    ),
    "a-field-absent-live": (DESIRED, live(m=lambda o: o["spec"].pop("paused"))),
    "an-unknown-fields-key": (DESIRED, live({**FIELDS, "i:odd": {}})),
    # our managedFields entry is not one clean Apply
    "never-applied-by-us": (DESIRED, live(None, entry(FIELDS, manager="kubectl"))),
    "written-by-us-with-update": (DESIRED, live(None, entry(FIELDS, operation="Update"))),
    "applied-and-updated-by-us": (DESIRED, live(None, entry(FIELDS), entry({"f:spec": {}}, operation="Update"))),
    "applied-at-another-api-version": (DESIRED, live(None, entry(FIELDS, api="apps/v1beta2"))),
    "another-fields-type": (DESIRED, live(None, {**entry(FIELDS), "fieldsType": "FieldsV2"})),
    "no-managed-fields": (DESIRED, live(m=lambda o: o["metadata"].pop("managedFields"))),
    # lists
    "containers-reordered-live": (
        DESIRED, live(m=lambda o: o["spec"]["template"]["spec"].update(containers=_containers(o)[::-1]))
    ),
    "containers-reordered-in-the-manifest": (
        desired_with(lambda o: o["spec"]["template"]["spec"].update(containers=CONTAINERS[::-1])), live()
    ),
    "a-container-removed": (
        desired_with(lambda o: o["spec"]["template"]["spec"].update(containers=CONTAINERS[:1])), live()
    ),
    "an-image-differs": (DESIRED, live(m=lambda o: _containers(o)[1].update(image="side:2"))),
    "a-keyed-item-missing-live": (
        DESIRED, live(m=lambda o: o["spec"]["template"]["spec"].update(containers=_containers(o)[:1]))
    ),
    "a-list-where-live-has-a-map": (DESIRED, live(m=lambda o: o["spec"]["template"]["spec"].update(containers={}))),
}  # fmt: skip


@pytest.mark.parametrize(("desired", "live_obj"), list(NOT_PROVEN.values()), ids=list(NOT_PROVEN))
def test_not_proven(desired: Obj, live_obj: Obj) -> None:
    assert proven_unchanged(desired, live_obj, ME) is False


PROVEN: dict[str, tuple[Obj, Obj]] = {
    "the-common-case": (DESIRED, live()),
    "another-managers-fields-beside-ours": (
        DESIRED,
        live(None, entry(FIELDS), entry({"f:spec": {"f:minReadySeconds": {}}}, manager="kubectl", operation="Update"),
             m=lambda o: o["spec"].update(minReadySeconds=5)),
    ),
    "defaults-and-status-ignored": (DESIRED, live(m=lambda o: o["spec"].update(revisionHistoryLimit=10))),
    "a-container-added-by-someone-else-live": (
        DESIRED,
        live(m=lambda o: o["spec"]["template"]["spec"].update(containers=[*_containers(o), {"name": "mesh"}])),
    ),
    "identity-metadata-not-in-fields": (desired_with(lambda o: o["metadata"].update(namespace="apps")), live()),
    "no-labels-and-no-metadata-fields": (
        desired_with(lambda o: o["metadata"].pop("labels")),
        live({k: v for k, v in FIELDS.items() if k != "f:metadata"}, m=lambda o: o["metadata"].pop("labels")),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("desired", "live_obj"), list(PROVEN.values()), ids=list(PROVEN))
def test_proven(desired: Obj, live_obj: Obj) -> None:
    assert proven_unchanged(desired, live_obj, ME) is True


SET_FIELDS = {"f:spec": {"f:finalizers": {".": {}, 'v:"a"': {}, 'v:"b"': {}}}}


def namespaced(finalizers: list[Any], live_finalizers: list[Any] | None = None, fields: Obj = SET_FIELDS) -> bool:
    desired = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {"finalizers": finalizers}}
    obj = copy.deepcopy(desired)
    obj["spec"]["finalizers"] = finalizers if live_finalizers is None else live_finalizers
    obj["metadata"]["managedFields"] = [entry(fields, api="v1")]
    return proven_unchanged(desired, obj, ME)


@pytest.mark.parametrize(
    ("finalizers", "live_finalizers", "proven"),
    [
        pytest.param(["a", "b"], None, True, id="same-set"),
        pytest.param(["b", "a"], None, True, id="same-set-manifest-order"),
        pytest.param(["a", "b"], ["b", "a"], False, id="live-in-another-order"),
        pytest.param(["a"], ["a"], False, id="we-own-one-more"),
        pytest.param(["a", "b", "c"], None, False, id="one-more-in-the-manifest"),
        pytest.param(["a", "c"], None, False, id="another-value"),
    ],
)
def test_a_set_of_scalars(finalizers: list[str], live_finalizers: list[str] | None, proven: bool) -> None:
    assert namespaced(finalizers, live_finalizers) is proven


def test_a_list_owned_whole_is_compared_whole() -> None:
    atomic = {"f:spec": {"f:finalizers": {}}}
    assert namespaced(["a", "b"], fields=atomic) is True
    assert namespaced(["a", "b"], ["a", "b", "c"], fields=atomic) is False
