"""reconcile/prune.py: the empty-render and mass-prune refusal (:func:`guard`) and the error failed deletes give
(``results.fail_if_failed``), table-driven and pure; what a delete does to an object that is or is no longer ours
(:func:`delete_owned`) and the reverse apply order of :func:`prune`, against the real API server — writes read in its
audit log, request bodies at the fault proxy, which also answers what a server will not on demand (a 500) and holds a
delete while someone else removes or replaces the object. tests/test_apply.py prunes through whole runs."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from gitops_job.errors import PruneError
from gitops_job.identity import ObjectId
from gitops_job.kube import Kube, ResourceType
from gitops_job.model import ANNOTATION_PRUNE, LABEL_STACK, LABEL_TARGET
from gitops_job.outcomes import Verdict
from gitops_job.reconcile import prune
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.results import Pruned, fail_if_failed
from tests.faultproxy import Call, FaultProxy, RequestInfo, Respond, at_nth
from tests.kube import AuditLog, crd


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


# -- delete_owned: only what still carries our labels, against the real API server ----------------------------------
@dataclass(frozen=True)
class Wire:
    """A gitops-job connection through the fault proxy to the test cluster, and every write it sent (in order)."""

    kube: Kube
    proxy: FaultProxy
    sent: list[RequestInfo]

    def writes(self) -> list[tuple[str, str, Any, str | None]]:
        """``(method, path, decoded body, content type)`` of each write the client sent (answered or not)."""
        return [(r.method, r.path, json.loads(r.body) if r.body else None, r.header("content-type"))
                for r in self.sent if r.is_write]  # fmt: skip


@pytest.fixture
def wire(kubeconfig: Path) -> Iterator[Wire]:
    """The audit log records no request bodies: what a delete or a disown sent is read at the proxy on the way."""
    with FaultProxy(kubeconfig) as proxy:
        sent: list[RequestInfo] = []
        proxy.on_request(sent.append)  # records, and lets the request through (or a later hook act)
        kube = Kube.connect(str(proxy.kubeconfig))
        try:
            yield Wire(kube, proxy, sent)
        finally:
            kube.close()


def server_writes(audit: AuditLog, mark: int) -> list[tuple[str, str, str, int]]:
    """The writes by gitops-job that reached the API server since ``mark``: ``(verb, resource, name, status)``."""
    return [(e["verb"], e["objectRef"]["resource"], e["objectRef"]["name"], e["responseStatus"]["code"])
            for e in audit.writes(mark)]  # fmt: skip


API_VERSIONS = {"Namespace": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1", "Deployment": "apps/v1",
                "CustomResourceDefinition": "apiextensions.k8s.io/v1"}  # fmt: skip
CLUSTER_SCOPED = frozenset({"Namespace", "CustomResourceDefinition"})


def live(kind: str, name: str, *, owner: tuple[str, str] | None = ("t", "app"), setting: str | None = None) -> Any:
    """The manifest of a ``kind`` object as a stack left it (labels, annotations); :func:`made` places it."""
    meta: dict[str, Any] = {"name": name, "labels": {"keep": "me"}}
    if owner:
        meta["labels"] |= {LABEL_TARGET: owner[0], LABEL_STACK: owner[1]}
    if setting:
        meta["annotations"] = {ANNOTATION_PRUNE: setting}
    return {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": meta}


@pytest.fixture
def made(dyn: DynamicClient, namespace: str) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """Create an object of :func:`live` for real (not as gitops-job), returning it as stored: a namespaced one in the
    test's namespace; a Namespace or CRD under a name of the test's own, deleted afterwards."""
    made_here: list[tuple[Any, str]] = []

    def make(obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        kind, meta = obj["kind"], obj["metadata"]
        if kind == "Namespace":
            meta["name"] = f"{namespace}-{meta['name']}"
        elif kind == "CustomResourceDefinition":
            obj = crd(f"{namespace}.example.com", "Widget", {"type": "object"}) | {"metadata": meta}
            meta["name"] = f"widgets.{namespace}.example.com"
        else:
            meta["namespace"] = namespace
        if kind == "Deployment":
            labels = {"app": meta["name"]}
            obj["spec"] = {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "example.com/c"}]},
                },
            }
        elif kind == "PersistentVolumeClaim":
            obj["spec"] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}
        resource = dyn.resources.get(api_version=obj["apiVersion"], kind=kind)
        stored: dict[str, Any] = resource.create(body=obj, namespace=meta.get("namespace")).to_dict()
        if kind in CLUSTER_SCOPED:
            made_here.append((resource, meta["name"]))
        return stored

    yield make
    for resource, name in made_here:
        with contextlib.suppress(ApiException):  # deleted by the test (or still terminating)
            resource.delete(name=name, body={"propagationPolicy": "Background"})


def current(dyn: DynamicClient, obj: dict[str, Any]) -> dict[str, Any] | None:
    """``obj`` as the API server has it now (None once it is gone)."""
    resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    try:
        found: dict[str, Any] = resource.get(name=obj["metadata"]["name"],
                                             namespace=obj["metadata"].get("namespace")).to_dict()  # fmt: skip
    except NotFoundError:
        return None
    return found


def deleted(obj: dict[str, Any] | None) -> bool:
    """Gone, or on its way (a Namespace terminates while its contents go)."""
    return obj is None or bool(obj["metadata"].get("deletionTimestamp"))


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
            live("CustomResourceDefinition", "widgets"),
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
def test_delete_owned(
    obj: Any,
    retain: bool,
    verdict: Verdict,
    message: str,
    write: str | None,
    made: Callable[[dict[str, Any]], dict[str, Any]],
    wire: Wire,
    audit: AuditLog,
    dyn: DynamicClient,
) -> None:
    before = made(obj)
    oid = ObjectId.of(before)
    rt = wire.kube.type_of(oid.group, oid.kind)
    assert rt is not None
    path, name = rt.path(oid.namespace or None, oid.name), oid.name
    mark = audit.mark()
    result = prune.delete_owned(wire.kube, rt, oid, target="t", stack="app", retain=retain)
    assert result == Pruned(oid, verdict, message)
    after = current(dyn, before)
    if write is None:
        assert wire.writes() == []
        assert server_writes(audit, mark) == []
        assert after is not None and not deleted(after)
    elif write == "DELETE":
        [(method, at, body, _)] = wire.writes()
        assert (method, at) == ("DELETE", path)
        assert body["preconditions"] == {"uid": before["metadata"]["uid"]}
        assert body["propagationPolicy"] == "Background"
        assert server_writes(audit, mark) == [("delete", rt.plural, name, 200)]
        assert deleted(after), after
    else:
        assert wire.writes() == [("PATCH", path, DISOWN, "application/merge-patch+json")]
        assert server_writes(audit, mark) == [("patch", rt.plural, name, 200)]
        assert after is not None and not deleted(after)
        labels, annotations = after["metadata"]["labels"], after["metadata"].get("annotations") or {}
        assert LABEL_TARGET not in labels and LABEL_STACK not in labels
        kept = {k: v for k, v in before["metadata"]["labels"].items() if k not in (LABEL_TARGET, LABEL_STACK)}
        assert kept.items() <= labels.items(), labels  # nothing else of ours changed (controllers may add theirs)
        assert (before["metadata"].get("annotations") or {}).items() <= annotations.items(), annotations
        assert after["metadata"]["uid"] == before["metadata"]["uid"]


def configmaps(kube: Kube) -> ResourceType:
    rt = kube.resource_type("v1", "ConfigMap")
    assert rt is not None
    return rt


def test_delete_owned_of_an_object_already_gone(kube: Kube, namespace: str, audit: AuditLog) -> None:
    oid = ObjectId("", "ConfigMap", namespace, "c")
    mark = audit.mark()
    result = prune.delete_owned(kube, configmaps(kube), oid, target="t", stack="app")
    assert result == Pruned(oid, Verdict.GONE, "already deleted")
    assert server_writes(audit, mark) == []


def test_delete_owned_that_the_server_finds_gone_at_delete_time(
    made: Callable[[dict[str, Any]], dict[str, Any]], wire: Wire, audit: AuditLog, api_client: client.ApiClient
) -> None:
    """Deleted by someone else between our read and our delete: the proxy holds our DELETE until it has gone."""
    oid = ObjectId.of(made(live("ConfigMap", "c")))
    core = client.CoreV1Api(api_client)
    theirs = Call(lambda: core.delete_namespaced_config_map(oid.name, oid.namespace))
    wire.proxy.on_request(at_nth(1, theirs, where=lambda req: req.method == "DELETE"))
    mark = audit.mark()
    result = prune.delete_owned(wire.kube, configmaps(wire.kube), oid, target="t", stack="app")
    assert result == Pruned(oid, Verdict.GONE)
    assert server_writes(audit, mark) == [("delete", "configmaps", "c", 404)]


def test_delete_owned_of_an_object_replaced_meanwhile_leaves_the_new_one(
    made: Callable[[dict[str, Any]], dict[str, Any]], wire: Wire, audit: AuditLog, api_client: client.ApiClient
) -> None:
    """Deleted and created anew (same name, same labels) between our read and our delete: the uid precondition
    keeps the delete from taking the new object; prune reports it failed, and it stays in the inventory."""
    obj = live("ConfigMap", "c")
    first = made(obj)
    oid = ObjectId.of(first)
    core = client.CoreV1Api(api_client)

    def replace_it() -> None:
        core.delete_namespaced_config_map(oid.name, oid.namespace)
        core.create_namespaced_config_map(oid.namespace, obj)

    wire.proxy.on_request(at_nth(1, Call(replace_it), where=lambda req: req.method == "DELETE"))
    mark = audit.mark()
    [result] = prune.prune(wire.kube, [oid], target="t", stack="app", masker=Masker())
    assert (result.id, result.verdict) == (oid, Verdict.FAILED)
    assert "the UID in the precondition" in result.message and result.message.endswith("(HTTP 409)"), result
    assert server_writes(audit, mark) == [("delete", "configmaps", "c", 409)]
    new = core.read_namespaced_config_map(oid.name, oid.namespace).metadata
    assert new.uid != first["metadata"]["uid"] and new.labels == obj["metadata"]["labels"]


# -- prune: the candidates, in reverse apply order ---------------------------------------------------------------------
def test_prune_deletes_in_reverse_apply_order_and_reports_each(
    made: Callable[[dict[str, Any]], dict[str, Any]], kube: Kube, audit: AuditLog
) -> None:
    ns, cm, deploy = (ObjectId.of(made(o)) for o in (live("Namespace", "apps", setting="enabled"),
                                                      live("ConfigMap", "c"), live("Deployment", "d")))  # fmt: skip
    candidates = [ns, cm, deploy, cm]
    mark = audit.mark()
    results = prune.prune(kube, candidates, target="t", stack="app", masker=Masker())
    assert [(r.id.kind, r.verdict) for r in results] == [
        ("Deployment", Verdict.PRUNED), ("ConfigMap", Verdict.PRUNED), ("Namespace", Verdict.PRUNED),
    ]  # fmt: skip
    assert server_writes(audit, mark) == [
        ("delete", "deployments", "d", 200), ("delete", "configmaps", "c", 200), ("delete", "namespaces", ns.name, 200),
    ]  # fmt: skip


def test_prune_of_a_kind_no_longer_served_is_gone(kube: Kube, namespace: str, audit: AuditLog) -> None:
    widget = ObjectId(f"{namespace}.example.com", "Widget", namespace, "w")  # no CRD serves it
    mark = audit.mark()
    results = prune.prune(kube, [widget], target="t", stack="app", masker=Masker())
    assert results == [Pruned(widget, Verdict.GONE, "its kind is no longer served")]
    assert server_writes(audit, mark) == []


def test_prune_reports_a_failed_delete_scrubbed_and_goes_on(
    made: Callable[[dict[str, Any]], dict[str, Any]], wire: Wire, audit: AuditLog, dyn: DynamicClient
) -> None:
    """The API server answers the first delete 500 with a message that carries a secret (the proxy answers it)."""
    masker = Masker()
    masker.token("hunter2-secret")
    failing, fine = made(live("ConfigMap", "a")), made(live("ConfigMap", "b"))
    rt = configmaps(wire.kube)
    at = rt.path(failing["metadata"]["namespace"], "a")
    boom = Respond.kube_status(500, "InternalError", "etcd said hunter2-secret")
    wire.proxy.on_request(lambda req: boom if (req.method, req.path) == ("DELETE", at) else None)
    mark = audit.mark()
    results = prune.prune(wire.kube, [ObjectId.of(failing), ObjectId.of(fine)], target="t", stack="app", masker=masker)
    assert results == [
        Pruned(ObjectId.of(failing), Verdict.FAILED, "etcd said <secret #1> (HTTP 500)"),
        Pruned(ObjectId.of(fine), Verdict.PRUNED),
    ]
    assert [m for m, *_ in wire.writes()] == ["DELETE", "DELETE"]  # the failed delete was sent once, not retried
    assert server_writes(audit, mark) == [("delete", "configmaps", "b", 200)]
    assert current(dyn, failing) is not None


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
