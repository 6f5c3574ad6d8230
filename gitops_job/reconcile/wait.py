"""The wait stage: until every applied object is current (:func:`gitops_job.reconcile.health.status`), or the deadline.

One LIST per type (per namespace, or cluster-wide by the stack's ownership labels when the objects spread over
many namespaces) gives the starting state and a resourceVersion; then a watch from there delivers each change as
it happens — no polling. An object that turns FAILED ends the wait at once; on timeout the error names every
object that is not ready and why.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

from gitops_job.errors import WaitError
from gitops_job.identity import ObjectId
from gitops_job.kube import CLUSTER_WIDE_LIST_ABOVE, Forbidden, Gone, Kube, ResourceType
from gitops_job.outcomes import HealthState
from gitops_job.reconcile.health import status
from gitops_job.reconcile.results import Health

# Kinds that have no status to wait for: they are current as soon as they exist, which apply has just confirmed.
NO_STATUS = frozenset({"ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                       "ClusterRoleBinding", "ResourceQuota", "LimitRange", "NetworkPolicy", "Endpoints",
                       "PriorityClass", "StorageClass", "IngressClass", "RuntimeClass"})  # fmt: skip


def wait_for(
    kube: Kube,
    objects: Iterable[tuple[ResourceType, ObjectId]],
    timeout: float,
    *,
    label_selector: str | None = None,
    known: Mapping[ObjectId, Health] | None = None,
) -> dict[ObjectId, Health]:
    """Wait until every object is current; returns each one's health. Raises :class:`WaitError` otherwise.

    ``known``: health already read in this run (the plan's LIST): a type whose objects are all current there is
    not listed again."""
    deadline = time.monotonic() + timeout
    by_type: dict[ResourceType, set[ObjectId]] = defaultdict(set)
    for rt, oid in objects:
        if oid.kind not in NO_STATUS:
            by_type[rt].add(oid)
    health: dict[ObjectId, Health] = {oid: Health(HealthState.NOT_FOUND, "not seen yet") for ids in by_type.values()
                                      for oid in ids}  # fmt: skip
    for rt, ids in by_type.items():
        if known is not None and all(oid in known and known[oid].state is HealthState.CURRENT for oid in ids):
            health.update({oid: known[oid] for oid in ids})
            continue
        namespaces = sorted({oid.namespace for oid in ids})
        scopes: list[str | None] = (
            [None] if not rt.namespaced or len(namespaces) > CLUSTER_WIDE_LIST_ABOVE else [*namespaces]
        )
        for ns in scopes:
            selector = label_selector if ns is None else None
            mine = {oid for oid in ids if ns is None or oid.namespace == ns}
            try:
                _watch_until_current(kube, rt, ns, selector, mine, health, deadline)
            except Forbidden:
                if ns is not None:
                    raise
                for each in sorted({oid.namespace for oid in mine}):
                    part = {oid for oid in mine if oid.namespace == each}
                    _watch_until_current(kube, rt, each, None, part, health, deadline)
    return health


def _watch_until_current(
    kube: Kube,
    rt: ResourceType,
    namespace: str | None,
    selector: str | None,
    ids: set[ObjectId],
    health: dict[ObjectId, Health],
    deadline: float,
) -> None:
    def settled() -> bool:
        failed = {oid: h for oid, h in health.items() if oid in ids and h.state is HealthState.FAILED}
        if failed:
            raise WaitError(_not_ready(failed, "failed"))
        return all(health[oid].state is HealthState.CURRENT for oid in ids)

    while True:
        items, version = kube.list_at(rt, namespace, selector)
        seen = {ObjectId.of(item): item for item in items}
        for oid in ids:
            health[oid] = status(seen.get(oid)) if oid in seen else Health(HealthState.NOT_FOUND, "not found")
        if settled():
            return
        try:
            while (left := deadline - time.monotonic()) > 0:
                for kind, obj in kube.watch(rt, namespace, resource_version=version, label_selector=selector,
                                            timeout=min(left, 300)):  # fmt: skip
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    oid = ObjectId.of(obj)
                    if oid in ids:
                        health[oid] = Health(HealthState.NOT_FOUND, "deleted") if kind == "DELETED" else status(obj)
                        if settled():
                            return
                    if time.monotonic() >= deadline:
                        break
        except Gone:
            continue  # the watch's starting point expired: list again
        raise WaitError(_not_ready({oid: health[oid] for oid in ids if health[oid].state is not HealthState.CURRENT},
                                   "not ready before the stack's timeout"))  # fmt: skip


def _not_ready(health: Mapping[ObjectId, Health], what: str) -> str:
    lines = "\n".join(f"  {oid}: {h.state.value}: {h.reason}" for oid, h in sorted(health.items()))
    return f"{len(health)} object(s) {what}:\n{lines}"
