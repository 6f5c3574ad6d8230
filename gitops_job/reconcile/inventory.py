"""What a stack applied, kept in the cluster: one ConfigMap per target + stack (``gitops-job.<target>.<stack>``).

It holds the repository the stack belongs to, the ids of every object the stack owns, the revision last applied in
full, and the last :data:`KEEP_RUNS` runs. Apply writes it *before* its first write as old + new (write-ahead: a run
killed halfway leaves nothing unlisted) and shrinks it only after deletes are confirmed. Every write is guarded by the
resourceVersion read: if another applier wrote in between, the write fails and the run stops before prune.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gitops_job.errors import InventoryError, LeaseError
from gitops_job.identity import ObjectId
from gitops_job.kube import ApiError, Conflict, Kube, ResourceType, timestamp
from gitops_job.model import LABEL_TARGET
from gitops_job.outcomes import Origin, RunResult
from gitops_job.reconcile.results import Hold, Run

DEFAULT_NAMESPACE = "gitops-job-system"
KEEP_RUNS = 10
_KEY = "inventory.json"
_MANAGED_BY = {"app.kubernetes.io/managed-by": "gitops-job"}


@dataclass(frozen=True)
class Inventory:
    target: str
    stack: str
    namespace: str
    objects: frozenset[ObjectId] = frozenset()
    revision: str | None = None  # the last revision applied (and pruned) in full
    runs: tuple[Run, ...] = ()  # newest first
    resource_version: str | None = None  # None: not stored yet
    repository: str | None = None  # the repository whose stack this is (None: stored before repositories were)
    suspended: Hold | None = None  # `suspend STACK`: no run applies the stack until `resume`
    off_git: Hold | None = None  # `rollback --emergency`: runs leave the stack alone until a new commit

    @property
    def name(self) -> str:
        return inventory_name(self.target, self.stack)

    @property
    def id(self) -> ObjectId:
        return ObjectId("", "ConfigMap", self.namespace, self.name)

    def with_run(self, run: Run) -> Inventory:
        return replace(self, runs=(run, *self.runs)[:KEEP_RUNS])


def inventory_name(target: str, stack: str) -> str:
    return f"gitops-job.{target}.{stack}"


def now() -> str:
    return timestamp()


def _configmap_type(kube: Kube) -> ResourceType:
    rt = kube.resource_type("v1", "ConfigMap")
    assert rt is not None, "the API server serves no ConfigMaps"
    return rt


def _encode(inv: Inventory) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "target": inv.target,
        "stack": inv.stack,
        "repository": inv.repository,
        "revision": inv.revision,
        "objects": [[o.group, o.kind, o.namespace, o.name] for o in sorted(inv.objects)],
        "runs": [
            {"revision": r.revision, "started": r.started, "finished": r.finished, "result": r.result,
             "counts": dict(r.counts), "message": r.message, "origin": r.origin.value}
            | ({"drift": list(r.drift)} if r.drift else {}) | ({"source": r.source} if r.source else {})
            for r in inv.runs
        ],
    }  # fmt: skip
    for key, hold in (("suspended", inv.suspended), ("offGit", inv.off_git)):
        if hold is not None:
            doc[key] = {k: v for k, v in vars(hold).items() if v is not None}
    metadata: dict[str, Any] = {
        "name": inv.name,
        "namespace": inv.namespace,
        "labels": {LABEL_TARGET: inv.target, **_MANAGED_BY, "gitops-job.io/inventory-of": inv.stack},
    }
    if inv.resource_version:
        metadata["resourceVersion"] = inv.resource_version
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {_KEY: json.dumps(doc, indent=1)}}


def _decode(target: str, stack: str, namespace: str, cm: Mapping[str, Any]) -> Inventory:
    """The inventory stored in ``cm``; :class:`InventoryError` naming the ConfigMap and what is wrong when it cannot be
    read (a ConfigMap without the key holds an empty inventory)."""
    where = str(ObjectId("", "ConfigMap", namespace, inventory_name(target, stack)))
    try:
        try:
            doc = json.loads((cm.get("data") or {}).get(_KEY) or "{}")
        except ValueError as e:
            raise ValueError(f"{_KEY} is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"{_KEY} holds a JSON {type(doc).__name__}, not an object")
        runs = tuple(_run(r) for r in doc.get("runs") or [])
        objects = frozenset(_object_id(o) for o in doc.get("objects") or [])
        resource_version = str(cm["metadata"]["resourceVersion"])
        suspended, off_git = _hold(doc.get("suspended")), _hold(doc.get("offGit"))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        detail = f"no {e}" if isinstance(e, KeyError) else str(e)
        raise InventoryError(
            f"cannot read the stack's inventory ({detail}): it was changed by hand or by an incompatible version of "
            f"gitops-job. Restore it, or delete it: the next apply writes it anew (objects removed from git meanwhile "
            f"are then not pruned)",
            where=where,
        ) from None
    return Inventory(
        target=target,
        stack=stack,
        namespace=namespace,
        objects=objects,
        revision=doc.get("revision"),
        runs=runs,
        resource_version=resource_version,
        repository=doc.get("repository"),
        suspended=suspended,
        off_git=off_git,
    )


def _hold(entry: Any) -> Hold | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("user", "reason", "since")):
        raise ValueError(f"a hold is {_short(entry)}, not {{user, reason, since}}")
    return Hold(entry["user"], entry["reason"], entry["since"], entry.get("revision"), entry.get("head"))


_RUN_KEYS = ("revision", "started", "finished", "result")


def _run(entry: Any) -> Run:
    missing = [k for k in _RUN_KEYS if not isinstance(entry, dict) or k not in entry]
    if missing:
        raise ValueError(f"a run is {_short(entry)}, without {', '.join(missing)}")
    if entry["result"] not in [r.value for r in RunResult]:
        raise ValueError(f"a run's result is {_short(entry['result'])}, not one of {', '.join(RunResult)}")
    return Run(str(entry["revision"]), str(entry["started"]), str(entry["finished"]), RunResult(entry["result"]),
               dict(entry.get("counts") or {}), str(entry.get("message") or ""),
               Origin.read(entry.get("origin")), _lines(entry.get("drift") or []),
               str(entry.get("source") or ""))  # fmt: skip


def _lines(value: Any) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(line, str) for line in value)):
        raise ValueError(f"a run's drift is {_short(value)}, not a list of lines")
    return tuple(value)


def _object_id(entry: Any) -> ObjectId:
    if not (isinstance(entry, list) and len(entry) == 4 and all(isinstance(p, str) for p in entry)):
        raise ValueError(f"an object entry is {_short(entry)}, not [group, kind, namespace, name]")
    return ObjectId(*entry)


def _short(entry: Any) -> str:
    text = json.dumps(entry)
    return text if len(text) <= 120 else text[:117] + "..."


def read(kube: Kube, namespace: str, target: str, stack: str) -> Inventory:
    """The stack's inventory (an empty, unstored one when the stack was never applied)."""
    cm = kube.get(_configmap_type(kube), inventory_name(target, stack), namespace)
    if cm is None:
        return Inventory(target, stack, namespace)
    return _decode(target, stack, namespace, cm)


def read_all(kube: Kube, namespace: str, target: str) -> list[Inventory]:
    """Every stored inventory of ``target``, by stack name."""
    items = kube.list(_configmap_type(kube), namespace, label_selector=f"{LABEL_TARGET}={target}")
    found = []
    for cm in items:
        stack = ((cm.get("metadata") or {}).get("labels") or {}).get("gitops-job.io/inventory-of")
        if stack:
            found.append(_decode(target, stack, namespace, cm))
    return sorted(found, key=lambda i: i.stack)


def write(kube: Kube, inv: Inventory) -> Inventory:
    """Store ``inv``, guarded by its resourceVersion (created when it was never stored); returns the stored one."""
    rt = _configmap_type(kube)
    where = str(inv.id)
    try:
        if inv.resource_version is None:
            stored = kube.create(rt, _encode(inv), where=where)
        else:
            stored = kube.replace(rt, _encode(inv), where=where)
    except Conflict:
        stored = _ours_already(kube, rt, inv)
        if stored is not None:
            return replace(inv, resource_version=str(stored["metadata"]["resourceVersion"]))
        raise LeaseError(
            "the inventory was changed by someone else during this run (another applier?); "
            "stopping before prune — re-run to reconcile",
            where=where,
        ) from None
    return replace(inv, resource_version=str(stored["metadata"]["resourceVersion"]))


def _ours_already(kube: Kube, rt: ResourceType, inv: Inventory) -> Any:
    """After a create refused as AlreadyExists: the stored inventory when it is exactly what we wrote — the create
    went through and only its answer was lost (the request was retried) — else None (someone else wrote it)."""
    if inv.resource_version is not None:
        return None
    stored = kube.get(rt, inv.name, inv.namespace, where=str(inv.id))
    return stored if stored is not None and (stored.get("data") or {}) == _encode(inv)["data"] else None


def ensure_namespace(kube: Kube, namespace: str) -> None:
    """Create the inventory namespace when it is missing."""
    rt = kube.resource_type("v1", "Namespace")
    assert rt is not None
    if kube.get(rt, namespace) is None:
        with contextlib.suppress(Conflict):  # created meanwhile
            kube.create(rt, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace,
                                                                                 "labels": _MANAGED_BY}})  # fmt: skip


def event(kube: Kube, inv: Inventory, *, reason: str, message: str, warning: bool = False) -> None:
    """A Kubernetes Event on the inventory ConfigMap (``kubectl describe`` and ``kubectl events`` show it)."""
    rt = kube.resource_type("events.k8s.io/v1", "Event")
    if rt is None or inv.resource_version is None:
        return
    stamp = timestamp(micro=True)
    body = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{inv.name}-", "namespace": inv.namespace},
        "eventTime": stamp,
        "reportingController": "gitops-job.io/apply",
        "reportingInstance": "gitops-job",
        "action": "Apply",
        "reason": reason,
        "note": message[:1024],
        "type": "Warning" if warning else "Normal",
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": inv.namespace, "name": inv.name},
    }
    with contextlib.suppress(ApiError):  # an Event is a courtesy: failing to record one must not fail the run
        kube.request("POST", rt.path(inv.namespace), body=body, where=str(inv.id))
