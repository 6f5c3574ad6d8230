"""The apply stage: staged server-side apply (field manager ``gitops-job``) of exactly what the plan says changed.

Unchanged objects get no request at all. Steps come from :mod:`gitops_job.reconcile.order`; the objects of one step are
written concurrently over the one connection pool. After the first step, new CRDs must be Established (and
discovery is refreshed) before their custom resources are applied. Then, before anything after them is written,
what the plan could not dry-run (an object in a Namespace, or of a CRD, that the run creates) is dry-run — and
everything else that changes, when the stack has just written Namespaces or CRDs.
Every written object is stamped with the run's revision (``gitops-job.io/revision``). Per-object annotations
(docs/apply.md, *Per-object annotations*):

* ``gitops-job.io/ssa: Merge`` — never take fields other managers own, even with ``--force-conflicts``: fields in
  conflict are left to their owners (and reported); ``IfNotPresent`` — create only; ``Ignore`` — never applied.
* ``gitops-job.io/force: enabled`` — an immutable-field change deletes the object and creates it again.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gitops_job.config.load import IgnoreDifference
from gitops_job.errors import ApplyError, GitopsJobError
from gitops_job.identity import ObjectId
from gitops_job.kube import ApiError, Conflict, Forbidden, Kube, ResourceType
from gitops_job.model import ANNOTATION_REVISION, ANNOTATION_SSA, RenderedObject, annotation
from gitops_job.outcomes import WRITES, Action, Verdict
from gitops_job.reconcile import order
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.normalize import ignored_pointers, respecting_ignored
from gitops_job.reconcile.plan import refusal
from gitops_job.reconcile.prune import delete_owned
from gitops_job.reconcile.results import Applied, Plan, PlanEntry, Progress
from gitops_job.reconcile.wait import wait_for

CRD_ESTABLISHED_TIMEOUT = 60.0
RECREATE_TIMEOUT = 60.0


#: What an applied entry is called once done: in reports, counts and run records.
#: The entries apply writes (everything else is unchanged, or pruned later).


def apply_plan(
    kube: Kube,
    plan: Plan,
    objects: Mapping[ObjectId, RenderedObject],
    revision: str,
    masker: Masker,
    *,
    force_conflicts: bool = False,
    take_back: frozenset[ObjectId] = frozenset(),
    concurrency: int = 16,
    progress: Progress | None = None,
    ignore_differences: Sequence[IgnoreDifference] = (),
) -> list[Applied]:
    """Write every CREATE / UPDATE / RECREATE / ADOPT entry of ``plan``, step by step; stops after a step with a
    failure. A RECREATE deletes only an object that is still ours (labelled for ``plan.target`` and its stack).
    The objects in ``take_back`` are written as with ``force_conflicts`` (their drifted fields are taken back).

    A field ``ignore_differences`` names keeps its live value on update (:func:`~.normalize.respecting_ignored`).
    """
    todo = [e for e in plan.entries if e.action in WRITES]
    results: list[Applied] = []
    done = 0
    steps = order.steps(todo, lambda e: e.id)
    after_first = next((i for i, step in enumerate(steps) if order.stage(step[0].id) > order.FIRST_STAGE), None)
    for i, step in enumerate(steps):
        if i == after_first:
            # The Namespaces and CRDs exist now: dry-run the rest before writing any of it — what the plan could not
            # dry-run, and everything when this stack just wrote Namespaces or CRDs (a CRD's new schema, a
            # Namespace's new labels may refuse what the plan's dry-run accepted). A recreate cannot be dry-run.
            rest = [
                e for later in steps[i:] for e in later if e.deferred or (i > 0 and e.action is not Action.RECREATE)
            ]
            with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
                checked = pool.map(
                    lambda e: _check(kube, e, objects[e.id], revision, masker, force_conflicts or e.id in take_back),
                    rest,
                )
                refused = [r for r in checked if r is not None]
            if refused:
                results.extend(refused)
                break

        def write(entry: PlanEntry) -> Applied:
            pointers = ignored_pointers(ignore_differences, entry.id)
            force = force_conflicts or entry.id in take_back
            return _write(kube, plan.target, entry, objects[entry.id], revision, masker, force, pointers)

        pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        try:
            for result in pool.map(write, step):
                results.append(result)
                done += 1
                if progress:
                    progress("applied", done, len(todo))
        finally:  # Ctrl-C: writes not started yet are dropped, not sent (the run stops as soon as it can)
            pool.shutdown(cancel_futures=True)
        if any(not r.ok for r in results):
            break  # later steps build on this one
        crds = [objects[e.id] for e in step if e.id.kind == "CustomResourceDefinition"]
        if crds:
            _established(kube, crds)
    return results


def _established(kube: Kube, crds: Sequence[RenderedObject]) -> None:
    """Until every CRD is Established and discovery serves each of its served versions' kind: the API server
    publishes a CRD in discovery from its own informer and queue only after it has seen Established, so a client
    that saw Established first may, for a moment, find the kind not served yet. Discovery has no watch: it is read
    again until it serves them, within the same deadline."""
    rt = kube.resource_type("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert rt is not None
    deadline = time.monotonic() + CRD_ESTABLISHED_TIMEOUT
    wait_for(kube, [(rt, o.id) for o in crds], CRD_ESTABLISHED_TIMEOUT)
    wanted = {(f"{spec.get('group')}/{v.get('name')}", str((spec.get("names") or {}).get("kind")))
              for spec in (o.body.get("spec") or {} for o in crds)
              for v in spec.get("versions") or () if isinstance(v, dict) and v.get("served")}  # fmt: skip
    while True:
        kube.invalidate_discovery()
        missing = sorted(wanted - set(kube.resource_types()))
        if not missing:
            return
        if time.monotonic() >= deadline:
            shown = ", ".join(f"{api}/{kind}" for api, kind in missing)
            raise ApplyError(f"Established, but discovery does not serve {shown} after {CRD_ESTABLISHED_TIMEOUT:g}s",
                             where=", ".join(str(o.id) for o in crds))  # fmt: skip
        time.sleep(0.1)


def _check(
    kube: Kube, entry: PlanEntry, obj: RenderedObject, revision: str, masker: Masker, force_conflicts: bool
) -> Applied | None:
    """Dry-run one entry as it will be written (ignored fields aside: they only matter as conflicts, which the write
    reports); the refusal, or None."""
    body = _body(obj, revision)
    rt = kube.resource_type(str(body.get("apiVersion")), entry.id.kind)
    if rt is None:
        return Applied(entry.id, entry.action, False, "its kind is not served (was its CRD applied?)")
    try:
        kube.apply(rt, body, dry_run=True, force=force_conflicts, where=str(entry.id))
    except Conflict:
        return None  # the write reports it, with the fields and managers
    except GitopsJobError as e:
        reason = refusal(e) if isinstance(e, ApiError) else e.reason
        message = f"refused by the dry-run made after this run's Namespaces and CRDs were written: {reason}"
        return Applied(entry.id, entry.action, False, masker.scrub(f"{message}; nothing after them was written"))
    return None


def _body(obj: RenderedObject, revision: str) -> dict[str, Any]:
    """The manifest as written: stamped with the run's revision."""
    body = copy.deepcopy(obj.body)
    body.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION_REVISION] = revision
    return body


def _write(
    kube: Kube,
    target: str,
    entry: PlanEntry,
    obj: RenderedObject,
    revision: str,
    masker: Masker,
    force_conflicts: bool,
    ignore: list[list[str]],
) -> Applied:
    body = _body(obj, revision)
    merge = annotation(body, ANNOTATION_SSA) == "Merge"
    rt = kube.resource_type(str(body.get("apiVersion")), entry.id.kind)
    where = str(entry.id)
    if rt is None:
        return Applied(entry.id, entry.action, False, "its kind is not served (was its CRD applied?)")
    try:
        if ignore and entry.action in (Action.UPDATE, Action.ADOPT):  # ignored fields keep their live values
            body = respecting_ignored(
                body, kube.get(rt, entry.id.name, entry.id.namespace or None, where=where), ignore
            )
        if entry.action is Action.RECREATE:
            _delete_and_wait(kube, rt, entry.id, target, entry.stack)
        try:
            kube.apply(rt, body, force=force_conflicts and not merge, where=where)
        except Conflict as e:
            if not merge:
                fields = "; ".join(f"{f} ({m})" for f, m in e.conflicts)
                hint = "take them with --force-conflicts" if not force_conflicts else "conflict"
                return Applied(entry.id, entry.action, False, f"conflict with other field managers: {fields}; {hint}")
            kept = _without(body, [f for f, _ in e.conflicts])
            kube.apply(rt, kept, where=where)
            left = ", ".join(f for f, _ in e.conflicts)
            return Applied(
                entry.id, entry.action, True, f"fields left to their managers ({ANNOTATION_SSA}: Merge): {left}"
            )
    except Forbidden as e:
        return Applied(entry.id, entry.action, False, masker.scrub(f"forbidden: {e.reason}"))
    except ApiError as e:
        return Applied(entry.id, entry.action, False, masker.scrub(f"{e.reason} (HTTP {e.status})"))
    except GitopsJobError as e:  # the cluster went away or the stack's deadline passed: keep every other result
        return Applied(entry.id, entry.action, False, masker.scrub(e.reason))
    return Applied(entry.id, entry.action, True)


def _delete_and_wait(kube: Kube, rt: ResourceType, oid: ObjectId, target: str, stack: str) -> None:
    done = delete_owned(kube, rt, oid, target=target, stack=stack, propagation="Foreground")
    if done.verdict is Verdict.NOT_OURS:
        raise ApplyError(f"refusing to delete it to recreate it: {done.message.removeprefix('left alone: ')}; "
                         f"nothing of it was written", where=str(oid))  # fmt: skip
    deadline = time.monotonic() + RECREATE_TIMEOUT
    while kube.get(rt, oid.name, oid.namespace or None, where=str(oid)) is not None:
        if time.monotonic() > deadline:
            raise ApplyError("deleted to be recreated, but it is still there", where=str(oid))
        time.sleep(0.2)


def _without(body: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """``body`` without the conflicting fields (server paths like ``.spec.replicas``); list items cannot be cut."""
    out = copy.deepcopy(body)
    for path in fields:
        keys = path.lstrip(".").split(".")
        if any("[" in k for k in keys):
            raise ApplyError(
                f"cannot leave {path} to its manager: it is inside a list item", where=str(ObjectId.of(body))
            )
        node: Any = out
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(keys[-1], None)
    return out
