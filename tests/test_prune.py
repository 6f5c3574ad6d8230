"""reconcile/prune.py's guards, table-driven: the empty-render and mass-prune refusal (:func:`guard`), what a delete
does to an object that is or is no longer ours (:func:`delete_owned`, over a dict-backed Kube), the reverse apply order
of :func:`prune`, and the error failed deletes give (``results.fail_if_failed``). No cluster; tests/test_apply.py
prunes against a real one."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_job.errors import PruneError
from gitops_job.identity import ObjectId
from gitops_job.kube import ApiError, NotFound
from gitops_job.model import ANNOTATION_PRUNE, LABEL_STACK, LABEL_TARGET
from gitops_job.outcomes import Verdict
from gitops_job.reconcile import prune
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.results import Pruned, fail_if_failed
from tests.fakekube import FakeKube, rt_of


def ids(*names: str) -> list[ObjectId]:
    return [ObjectId("", "ConfigMap", "apps", n) for n in names]


# -- guard: before the first write -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "allow", "threshold"),
    [
        pytest.param(ids("a", "b", "c", "d"), ids("a", "b", "c", "d"), False, 0.5, id="nothing-leaves"),
        pytest.param(ids("a", "b", "c", "d"), ids("a", "b"), False, 0.5, id="two-leave-below-the-minimum"),
        pytest.param(ids("a", "b", "c", "d", "e", "f"), ids("a", "b", "c"), False, 0.5, id="exactly-half-is-allowed"),
        pytest.param(ids("a", "b", "c", "d"), ids("a"), False, 0.8, id="three-of-four-under-a-higher-threshold"),
        pytest.param(ids("a", "b", "c", "d"), [], True, 0.5, id="empty-render-allowed"),
        pytest.param(ids("a", "b", "c", "d"), ids("x"), True, 0.5, id="mass-prune-allowed"),
        pytest.param([], ids("a"), False, 0.5, id="first-apply"),
        pytest.param(ids("a", "b"), ids("c", "d", "e"), False, 0.5, id="everything-replaced-but-only-two-old"),
    ],
)
def test_guard_lets_through(old: list[ObjectId], new: list[ObjectId], allow: bool, threshold: float) -> None:
    prune.guard("app", old, new, allow_mass_prune=allow, threshold=threshold)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            ids("a", "b", "c", "d", "e"),
            [],
            "empty render: stack app rendered no objects; refusing to apply (it would delete all 5 object(s) the "
            "stack owns). If that is intended, re-run with --allow-mass-prune",
            id="empty-render",
        ),
        pytest.param(
            [],
            [],
            "empty render: stack app rendered no objects; refusing to apply (it would delete all 0 object(s) the "
            "stack owns). If that is intended, re-run with --allow-mass-prune",
            id="empty-render-of-a-new-stack",
        ),
        pytest.param(
            ids("a", "b", "c", "d"),
            ids("a"),
            "mass prune: 3 of the 4 objects stack app owns left the render (more than 50%); refusing to delete "
            "them. If that is intended, re-run with --allow-mass-prune",
            id="three-of-four",
        ),
        pytest.param(
            ids("a", "b", "c", "d", "e", "f", "g"),
            ids("a", "b", "c"),
            "mass prune: 4 of the 7 objects stack app owns left the render (more than 50%); refusing to delete "
            "them. If that is intended, re-run with --allow-mass-prune",
            id="just-over-half",
        ),
        pytest.param(
            ids("a", "b", "c", "d"),
            ids("a", "x", "y", "z", "w"),
            "mass prune: 3 of the 4 objects stack app owns left the render (more than 50%); refusing to delete "
            "them. If that is intended, re-run with --allow-mass-prune",
            id="new-objects-do-not-dilute",
        ),
        pytest.param(
            ids("a", "a", "b", "c", "d"),
            ids("a"),
            "mass prune: 3 of the 4 objects stack app owns left the render (more than 50%); refusing to delete "
            "them. If that is intended, re-run with --allow-mass-prune",
            id="ids-counted-once",
        ),
    ],
)
def test_guard_refuses(old: list[ObjectId], new: list[ObjectId], message: str) -> None:
    with pytest.raises(PruneError) as err:
        prune.guard("app", old, new, allow_mass_prune=False)
    assert (err.value.reason, err.value.where, err.value.phase) == (message, "stack app", "prune")


def test_guard_threshold_is_a_fraction_printed_as_percent() -> None:
    with pytest.raises(PruneError, match=r"\(more than 25%\)"):
        prune.guard("app", ids("a", "b", "c", "d"), ids("a"), allow_mass_prune=False, threshold=0.25)


# -- delete_owned: only what still carries our labels ------------------------------------------------------------------
def live(kind: str, name: str, *, owner: tuple[str, str] | None = ("t", "app"), setting: str | None = None) -> Any:
    api = {"Namespace": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1", "Deployment": "apps/v1",
           "CustomResourceDefinition": "apiextensions.k8s.io/v1"}[kind]  # fmt: skip
    meta: dict[str, Any] = {"name": name}
    if kind not in ("Namespace", "CustomResourceDefinition"):
        meta["namespace"] = "apps"
    if owner:
        meta["labels"] = {LABEL_TARGET: owner[0], LABEL_STACK: owner[1], "keep": "me"}
    if setting:
        meta["annotations"] = {ANNOTATION_PRUNE: setting}
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def oid_of(obj: Any) -> ObjectId:
    return ObjectId.of(obj)


DISOWN = {"metadata": {"labels": {LABEL_TARGET: None, LABEL_STACK: None}}}


@pytest.mark.parametrize(
    ("obj", "retain", "verdict", "message", "write"),
    [
        pytest.param(live("ConfigMap", "c"), True, Verdict.PRUNED, "", "DELETE", id="ours-deleted"),
        pytest.param(live("Deployment", "d"), False, Verdict.PRUNED, "", "DELETE", id="ours-deleted-no-retain"),
        pytest.param(
            live("ConfigMap", "c", owner=("t", "other")),
            True,
            Verdict.NOT_OURS,
            "left alone: now labelled for stack other",
            None,
            id="another-stacks-now",
        ),
        pytest.param(
            live("ConfigMap", "c", owner=("prod", "app")),
            True,
            Verdict.NOT_OURS,
            "left alone: now labelled for stack app",
            None,
            id="another-targets-same-stack-name",
        ),
        pytest.param(
            live("ConfigMap", "c", owner=None),
            True,
            Verdict.NOT_OURS,
            "left alone: it does not carry this stack's ownership labels",
            None,
            id="unlabelled",
        ),
        pytest.param(
            live("Namespace", "apps"),
            True,
            Verdict.RETAINED,
            "retained (a Namespace is never pruned by default); no longer managed",
            "PATCH",
            id="namespace-retained",
        ),
        pytest.param(
            live("PersistentVolumeClaim", "data"),
            True,
            Verdict.RETAINED,
            "retained (a PersistentVolumeClaim is never pruned by default); no longer managed",
            "PATCH",
            id="pvc-retained",
        ),
        pytest.param(
            live("CustomResourceDefinition", "widgets.example.com"),
            True,
            Verdict.RETAINED,
            "retained (a CustomResourceDefinition is never pruned by default); no longer managed",
            "PATCH",
            id="crd-retained",
        ),
        pytest.param(
            live("Namespace", "apps", setting="enabled"),
            True,
            Verdict.PRUNED,
            "",
            "DELETE",
            id="namespace-prune-enabled",
        ),
        pytest.param(
            live("ConfigMap", "c", setting="disabled"),
            True,
            Verdict.RETAINED,
            "retained (gitops-job.io/prune: disabled); no longer managed",
            "PATCH",
            id="annotated-disabled",
        ),
        pytest.param(
            live("Namespace", "apps", setting="disabled"),
            True,
            Verdict.RETAINED,
            "retained (gitops-job.io/prune: disabled); no longer managed",
            "PATCH",
            id="namespace-annotated-disabled",
        ),
        pytest.param(live("Namespace", "apps"), False, Verdict.PRUNED, "", "DELETE", id="recreate-deletes-namespace"),
        pytest.param(
            live("ConfigMap", "c", setting="disabled"),
            False,
            Verdict.PRUNED,
            "",
            "DELETE",
            id="recreate-ignores-prune-disabled",
        ),
    ],
)
def test_delete_owned(obj: Any, retain: bool, verdict: Verdict, message: str, write: str | None) -> None:
    kube = FakeKube([obj])
    path = kube.path_of(obj)
    oid = oid_of(obj)
    result = prune.delete_owned(kube, rt_of(oid.kind), oid, target="t", stack="app", retain=retain)
    assert result == Pruned(oid, verdict, message)
    if write is None:
        assert kube.writes_made() == []
    elif write == "DELETE":
        [(method, at, body, _)] = [c for c in kube.calls if c[0] != "GET"]
        assert (method, at) == ("DELETE", path)
        assert body["preconditions"] == {"uid": obj["metadata"].get("uid", f"uid-{oid.name}")}
        assert body["propagationPolicy"] == "Background"
        assert path not in kube.objects
    else:
        [(method, at, body, content_type)] = [c for c in kube.calls if c[0] != "GET"]
        assert (method, at, body, content_type) == ("PATCH", path, DISOWN, "application/merge-patch+json")
        assert path in kube.objects


def test_delete_owned_of_an_object_already_gone() -> None:
    kube = FakeKube()
    oid = ObjectId("", "ConfigMap", "apps", "c")
    result = prune.delete_owned(kube, rt_of("ConfigMap"), oid, target="t", stack="app")
    assert result == Pruned(oid, Verdict.GONE, "already deleted")
    assert kube.writes_made() == []


def test_delete_owned_that_the_server_finds_gone_at_delete_time() -> None:
    obj = live("ConfigMap", "c")
    kube = FakeKube([obj])
    kube.fail[("DELETE", kube.path_of(obj))] = NotFound(404, "not found")  # deleted between our read and delete
    oid = oid_of(obj)
    assert prune.delete_owned(kube, rt_of("ConfigMap"), oid, target="t", stack="app") == Pruned(oid, Verdict.GONE)


# -- prune: the candidates, in reverse apply order ---------------------------------------------------------------------
def test_prune_deletes_in_reverse_apply_order_and_reports_each() -> None:
    ns, cm, deploy = live("Namespace", "apps", setting="enabled"), live("ConfigMap", "c"), live("Deployment", "d")
    kube = FakeKube([ns, cm, deploy])
    candidates = [oid_of(ns), oid_of(cm), oid_of(deploy), oid_of(cm)]
    results = prune.prune(kube, candidates, target="t", stack="app", masker=Masker())
    assert [(r.id.kind, r.verdict) for r in results] == [
        ("Deployment", Verdict.PRUNED), ("ConfigMap", Verdict.PRUNED), ("Namespace", Verdict.PRUNED),
    ]  # fmt: skip
    assert [m for m, _ in kube.writes_made()] == ["DELETE", "DELETE", "DELETE"]
    assert [p.rsplit("/", 2)[-2] for _, p in kube.writes_made()] == ["deployments", "configmaps", "namespaces"]


def test_prune_of_a_kind_no_longer_served_is_gone() -> None:
    widget = ObjectId("example.com", "Widget", "apps", "w")
    results = prune.prune(FakeKube(), [widget], target="t", stack="app", masker=Masker())
    assert results == [Pruned(widget, Verdict.GONE, "its kind is no longer served")]


def test_prune_reports_a_failed_delete_scrubbed_and_goes_on() -> None:
    masker = Masker()
    masker.token("hunter2-secret")
    failing, fine = live("ConfigMap", "a"), live("ConfigMap", "b")
    kube = FakeKube([failing, fine])
    kube.fail[("DELETE", kube.path_of(failing))] = ApiError(500, "etcd said hunter2-secret")
    results = prune.prune(kube, [oid_of(failing), oid_of(fine)], target="t", stack="app", masker=masker)
    assert results == [
        Pruned(oid_of(failing), Verdict.FAILED, "etcd said <secret #1> (HTTP 500)"),
        Pruned(oid_of(fine), Verdict.PRUNED),
    ]


# -- fail_if_failed: what run.py raises with the failed ones ---------------------------------------------------------
A, B = ids("a", "b")
PRUNE_FAILED = "could not be deleted (they stay in the inventory)"


def test_fail_if_failed_of_nothing_passes() -> None:
    fail_if_failed(PruneError, [], PRUNE_FAILED, "stack app")


@pytest.mark.parametrize(
    ("failed", "message"),
    [
        pytest.param(
            [Pruned(A, Verdict.FAILED, "Forbidden (HTTP 403)")],
            "1 object(s) could not be deleted (they stay in the inventory):\n  ConfigMap/apps/a: Forbidden (HTTP 403)",
            id="one",
        ),
        pytest.param(
            [Pruned(A, Verdict.FAILED, "x (HTTP 500)"), Pruned(B, Verdict.FAILED, "y")],
            "2 object(s) could not be deleted (they stay in the inventory):\n  ConfigMap/apps/a: x (HTTP 500)\n"
            "  ConfigMap/apps/b: y",
            id="each-on-its-line",
        ),
    ],
)
def test_fail_if_failed_raises_one_error_listing_each(failed: list[Pruned], message: str) -> None:
    with pytest.raises(PruneError) as err:
        fail_if_failed(PruneError, failed, PRUNE_FAILED, "stack app")
    assert (err.value.reason, err.value.where, err.value.phase) == (message, "stack app", "prune")
