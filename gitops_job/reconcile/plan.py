"""The plan: for every rendered object, exactly what a server-side apply (field manager ``gitops-job``) would do.

Requests: discovery (2), one LIST per type (per namespace when the objects sit in few namespaces, else cluster-wide),
then a server-side dry-run only for what the fast path (:mod:`~.fastpath`) cannot prove unchanged, run
concurrently over one connection pool. Everything shown to a person is normalised (server noise removed, rules as
data), filtered by ``ignoreDifferences`` and masked before it leaves this module: a :class:`Plan` holds no secret.

Over 400 lines: finding the live objects, the fast path, dry-runs, the schema check of what cannot be dry-run yet,
ownership and prune candidates are one decision per object; normalising, admission rules and the digest live in
their own modules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

from gitops_job.config.load import IgnoreDifference, Stack
from gitops_job.identity import ObjectId
from gitops_job.kube import (
    CLUSTER_WIDE_LIST_ABOVE,
    FIELD_MANAGER,
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    Kube,
    ResourceType,
)
from gitops_job.model import (
    ANNOTATION_ADOPT,
    ANNOTATION_FORCE,
    ANNOTATION_REVISION,
    ANNOTATION_SSA,
    LABEL_STACK,
    LABEL_TARGET,
    RenderedObject,
    annotation,
    label,
)
from gitops_job.outcomes import Action
from gitops_job.reconcile.admission import AdmissionRule, mutating_rules
from gitops_job.reconcile.fastpath import proven_unchanged
from gitops_job.reconcile.health import status
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.normalize import (
    display,
    ignored_pointers,
    respecting_ignored,
)
from gitops_job.reconcile.ownership import OURS, Claim, Holders, Standing, not_ours
from gitops_job.reconcile.prune import held_by_flux
from gitops_job.reconcile.results import DriftFinding, FieldConflict, Health, Plan, PlanEntry, PlanFailure, Progress
from gitops_job.reconcile.schema import Schemas
from gitops_job.reconcile.validate import crd_scopes
from gitops_job.reconcile.wait import NO_STATUS


def _conflicts(err: Conflict) -> tuple[FieldConflict, ...]:
    found = []
    for fld, message in err.conflicts:
        manager = message.split('"')[1] if message.count('"') >= 2 else message
        found.append(FieldConflict(fld, manager))
    return tuple(found)


# -- the plan ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Work:
    obj: RenderedObject
    rt: ResourceType | None
    live: dict[str, Any] | None


def _respected(w: _Work, stacks: Mapping[str, Stack]) -> _Work:
    """``w`` with its manifest as apply will write it (:func:`respecting_ignored`)."""
    body = respecting_ignored(w.obj.body, w.live, ignored_pointers(_rules(stacks, w.obj.stack), w.obj.id))
    return w if body is w.obj.body else _Work(RenderedObject(w.obj.id, body, w.obj.source, w.obj.stack), w.rt, w.live)


@dataclass(frozen=True)
class PlanOptions:
    """How :func:`plan` plans, beyond what (the objects) and where (the cluster, the target)."""

    #: Learns every value it must hide; the plan's texts are masked with it.
    masker: Masker = field(default_factory=Masker)
    concurrency: int = 16
    #: Prove "unchanged" without a dry-run where the live object allows it (:mod:`~gitops_job.reconcile.fastpath`).
    fast: bool = True
    #: Each planned stack's inventory: what it applied last time.
    previous: Mapping[str, Iterable[ObjectId]] | None = None
    progress: Progress | None = None
    revision: str | None = None
    #: The run's other objects: a CRD or Namespace there counts as created before these.
    context: Sequence[RenderedObject] = ()
    holders: Holders | None = None
    #: Also report drift (:mod:`~.drift`): the fields of each object we applied before, planned as an update, that
    #: another field manager changed.
    drift: bool = False
    #: The revision being planned, when known: a field nobody owns counts as drift only in an object applied at it.
    drift_revision: str | None = None


def plan(
    kube: Kube,
    target: str,
    objects: Sequence[RenderedObject],
    stacks: Mapping[str, Stack],
    options: PlanOptions | None = None,
) -> Plan:
    """Plan ``objects`` (rendered and validated, namespaces defaulted) against the cluster behind ``kube``.

    With :class:`PlanOptions`: ``previous`` maps a stack name to the ids it applied last time (its inventory): those
    no longer rendered are planned as prunes (where the stack prunes), and live objects labelled for the stack
    outside it are strays.
    Per-object failures are collected in :attr:`Plan.failures`; everything else is still planned.
    ``context`` holds the other objects of the run: a CRD or Namespace there counts as created before these.
    With ``revision``, objects are compared as if stamped with it — keeping a live object's own revision stamp, so
    a new commit alone changes nothing (apply stamps only the objects it writes).
    With ``holders`` (who owns what on the target), a live object that is not ours is planned as ADOPT (its live
    content not shown), one another stack of this repository handed over says so ("moved from stack A"), and a
    recreate of an object not labelled ours fails.
    """
    o = options or PlanOptions()
    masker, previous, revision, context, holders = o.masker, o.previous, o.revision, o.context, o.holders
    types = kube.resource_types()
    created_crds = crd_scopes([*objects, *context])
    created_namespaces = {o.id.name for o in (*objects, *context) if o.id.kind == "Namespace" and not o.id.group}

    work, failures, live_index = _gathered(kube, types, objects, created_crds, target, stacks, masker)

    # The fast path proves "unchanged" from the live object alone: not for a kind a mutating webhook or policy may
    # change on apply (its change would only show in a dry-run).
    mutators = mutating_rules(kube, types) if o.fast and any(w.live is not None for w in work) else None
    rendered = {o.id for o in objects}
    # Every value is learned before the first diff is built (on this thread: the learning order numbers the
    # tokens), the live objects to prune included: a pruned Secret's values may appear in other objects.
    prunes = _prune_candidates(kube, types, target, stacks, previous or {}, rendered)
    masker.learn([*(w.obj.body for w in work), *(w.live for w in work if w.live), *(live for _, _, live in prunes)])
    claims = _claims(work, holders)
    by_id = {w.obj.id: w for w in _stamp(work, revision)}
    entries: list[PlanEntry] = []
    to_dry_run: list[_Work] = []
    not_yet: list[_Work] = []  # cannot be dry-run before this plan's CRDs and namespaces exist
    for w in by_id.values():
        ssa = annotation(w.obj.body, ANNOTATION_SSA)
        if ssa == "Ignore" or (ssa == "IfNotPresent" and w.live is not None):
            note = f"not applied ({ANNOTATION_SSA}: {ssa})"
            entries.append(PlanEntry(w.obj.id, w.obj.stack, Action.UNCHANGED, w.obj.source, note=note))
        elif w.rt is None or (w.live is None and w.rt.namespaced and w.obj.id.namespace in created_namespaces):
            not_yet.append(w)  # checked against its schema instead
        elif (
            w.live is not None
            and claims.get(w.obj.id, OURS).standing is Standing.OURS  # else the dry-run shows what taking it over does
            and _provable(w, mutators)
            and proven_unchanged(w.obj.body, w.live, FIELD_MANAGER)
        ):
            entries.append(PlanEntry(w.obj.id, w.obj.stack, Action.UNCHANGED, w.obj.source, proven=True))
        else:
            to_dry_run.append(w)

    for result in chain(
        _schema_checked(kube, not_yet, [*objects, *context], stacks, masker),
        (
            _judged(r, claims.get(r.id), by_id[r.id], target, stacks, masker)
            for r in _dry_runs(kube, to_dry_run, stacks, masker, o.concurrency, o.progress)
        ),
    ):
        if isinstance(result, PlanEntry):
            entries.append(result)
        else:
            failures.append(result)

    held = held_by_flux(kube, strict=False) if prunes else {}
    entries.extend(PlanEntry(oid, stack, Action.PRUNE, before=display(live, [], masker), note=_held(held.get(oid)))
                   for stack, oid, live in prunes)  # fmt: skip
    entries.sort(key=lambda e: (e.stack, e.id))
    failures.sort(key=lambda f: (f.stack, f.id))
    strays = strays_of(live_index.values(), target, stacks, rendered, previous or {})
    drift = _drift(entries, by_id, claims, o, masker) if o.drift else ()
    health = {w.obj.id: _scrubbed(status(w.live), masker) for w in work if w.live and w.obj.id.kind not in NO_STATUS}
    return Plan(target, tuple(entries), tuple(failures), dict(kube.requests), strays, tuple(stacks), drift, o.drift,
                health)  # fmt: skip


def _scrubbed(h: Health, masker: Masker) -> Health:
    return replace(h, reason=masker.scrub(h.reason))


def _drift(
    entries: Sequence[PlanEntry],
    by_id: Mapping[ObjectId, _Work],
    claims: Mapping[ObjectId, Claim],
    o: PlanOptions,
    masker: Masker,
) -> tuple[DriftFinding, ...]:
    """What drifted in each object we applied before (ours, written by our field manager) that the plan updates."""
    from gitops_job.reconcile.drift import drift_of  # here: deepdiff is imported only for a drift report

    found: list[DriftFinding] = []
    for e in entries:
        w = by_id.get(e.id)
        if e.action is not Action.UPDATE or w is None or w.live is None or e.before is None or e.after is None:
            continue
        if claims.get(e.id, OURS).standing is not Standing.OURS or not _applied_by_us(w.live):
            continue
        here = o.drift_revision is not None and annotation(w.live, ANNOTATION_REVISION) == o.drift_revision
        for f in drift_of(e.id, e.before, e.after, w.live, FIELD_MANAGER, applied_here=here):
            found.append(replace(f, path=masker.scrub(f.path), before=masker.scrub(f.before),
                                 after=masker.scrub(f.after)))  # fmt: skip
    return tuple(found)


def _applied_by_us(live: Mapping[str, Any]) -> bool:
    fields = (live.get("metadata") or {}).get("managedFields") or ()
    return any(isinstance(m, Mapping) and m.get("manager") == FIELD_MANAGER for m in fields)


def _gathered(
    kube: Kube,
    types: Mapping[tuple[str, str], ResourceType],
    objects: Sequence[RenderedObject],
    created_crds: Mapping[tuple[str, str], bool],
    target: str,
    stacks: Mapping[str, Stack],
    masker: Masker,
) -> tuple[list[_Work], list[PlanFailure], dict[ObjectId, dict[str, Any]]]:
    """Each object with its type and live counterpart (LISTs by type), the objects that cannot be planned, and
    every live object found (strays included)."""
    failures: list[PlanFailure] = []
    work: list[_Work] = []
    by_type: dict[ResourceType, list[RenderedObject]] = defaultdict(list)
    for obj in objects:
        rt = types.get((str(obj.body.get("apiVersion")), obj.id.kind))
        if rt is None and (str(obj.body.get("apiVersion")), obj.id.kind) not in created_crds:
            reason = "unknown kind: the API server does not serve it"
            failures.append(PlanFailure(obj.id, obj.stack, obj.source, reason))
            continue
        if rt is not None:
            by_type[rt].append(obj)
        else:
            work.append(_Work(obj, None, None))

    live_index: dict[ObjectId, dict[str, Any]] = {}
    ours = f"{LABEL_TARGET}={target},{LABEL_STACK} in ({','.join(sorted(stacks))})"
    for rt, objs in by_type.items():
        denied = _find_live(kube, rt, objs, ours, live_index)
        for o in objs:
            if o.id.namespace in denied:  # the identity may not read there: that object fails, the rest is planned
                reason = masker.scrub(f"may not list {rt.plural} (HTTP 403): {denied[o.id.namespace].reason}")
                failures.append(PlanFailure(o.id, o.stack, o.source, reason))
            else:
                work.append(_respected(_Work(o, rt, live_index.get(o.id)), stacks))
    return work, failures, live_index


def _claims(work: Iterable[_Work], holders: Holders | None) -> dict[ObjectId, Claim]:
    """Where each rendered object that exists stands (none without ``holders``: everything counts as ours)."""
    if holders is None:
        return {}
    return {w.obj.id: holders.claim(w.obj.id, w.obj.stack, w.live) for w in work if w.live is not None}


def _judged(
    entry: PlanEntry | PlanFailure,
    claim: Claim | None,
    w: _Work,
    target: str,
    stacks: Mapping[str, Stack],
    masker: Masker,
) -> PlanEntry | PlanFailure:
    """``entry`` (an existing object's dry-run verdict) as its ownership makes it: a foreign object is adopted (shown
    as its manifest alone: the live content of an object not ours is never shown), a moved one says where from, and
    only an object still labelled ours may be deleted to be recreated."""
    if isinstance(entry, PlanFailure) or w.live is None or claim is None:
        return entry
    if entry.action is Action.RECREATE:
        why = not_ours(w.live, target, w.obj.stack)
        if why or claim.standing is not Standing.OURS:
            foreign = claim.standing in (Standing.FOREIGN, Standing.FLUX)
            owner = f"owned by {claim.holder}" if foreign else why or ""
            reason = (f"an immutable field changed, but it is not ours to delete and create again ({owner}); "
                      f"change it back, or delete it by hand and re-run")  # fmt: skip
            return PlanFailure(entry.id, entry.stack, entry.source, masker.scrub(reason))
        return entry
    if claim.standing is Standing.MOVED:
        note = "; ".join(n for n in (entry.note, f"moved from stack {claim.holder}") if n)
        return replace(entry, note=note)
    if claim.standing is Standing.FLUX:
        after = display(w.obj.body, ignored_pointers(_rules(stacks, w.obj.stack), w.obj.id), masker)
        note = masker.scrub(f"adopt (from kustomize-controller): {claim.holder} applied it; field manager "
                            f"kustomize-controller -> gitops-job (apply takes it with --adopt-from-flux); its live "
                            f"content is not shown")  # fmt: skip
        return PlanEntry(entry.id, entry.stack, Action.ADOPT, entry.source, after=after, conflicts=entry.conflicts,
                         note=note, from_flux=True)  # fmt: skip
    if claim.standing is Standing.FOREIGN:
        asked = (
            f" (adopted: {ANNOTATION_ADOPT}: enabled)" if annotation(w.obj.body, ANNOTATION_ADOPT) == "enabled" else ""
        )
        after = display(w.obj.body, ignored_pointers(_rules(stacks, w.obj.stack), w.obj.id), masker)
        note = masker.scrub(f"owned by {claim.holder}; it exists, its live content is not shown{asked}")
        return PlanEntry(entry.id, entry.stack, Action.ADOPT, entry.source, after=after, conflicts=entry.conflicts,
                         note=note)  # fmt: skip
    return entry


def _held(holder: str | None) -> str:
    """What a prune candidate's entry says when a live Flux Kustomization still lists it (prune leaves it)."""
    if holder is None:
        return ""
    return (f"held by flux: {holder} still lists it in its inventory; apply leaves it (it stays in the stack's "
            "inventory) until that Kustomization is suspended or gone")  # fmt: skip


def strays_of(
    live: Iterable[Mapping[str, Any]],
    target: str,
    stacks: Iterable[str],
    rendered: set[ObjectId],
    inventories: Mapping[str, Iterable[ObjectId]],
) -> tuple[tuple[str, ObjectId], ...]:
    """``(stack, id)`` of each live object labelled for ``target`` and one of ``stacks`` that is neither rendered
    nor in that stack's inventory (V10: such an object is left alone and reported, never pruned)."""
    known = {name: rendered | set(inventories.get(name, ())) for name in stacks}
    found = []
    for item in live:
        stack = label(item, LABEL_STACK)
        if stack in known and label(item, LABEL_TARGET) == target:
            oid = ObjectId.of(item)
            if oid not in known[stack]:
                found.append((stack, oid))
    return tuple(sorted(found))


def _dry_runs(
    kube: Kube,
    todo: Sequence[_Work],
    stacks: Mapping[str, Stack],
    masker: Masker,
    concurrency: int,
    progress: Progress | None,
) -> Iterator[PlanEntry | PlanFailure]:
    """Dry-run ``todo`` concurrently over the one connection pool."""

    def dry_run(w: _Work) -> PlanEntry | PlanFailure:
        assert w.rt is not None
        try:
            return _dry_run(kube, w.rt, w.obj, w.live, stacks, masker)
        except ApiError as e:
            return PlanFailure(w.obj.id, w.obj.stack, w.obj.source, masker.scrub(refusal(e)))

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for done, result in enumerate(pool.map(dry_run, todo), 1):
            if progress:
                progress("dry-runs", done, len(todo))
            yield result


def refusal(e: ApiError) -> str:
    """Why a dry-run was refused, and what to do."""
    if e.status == 400 and "does not support dry run" in e.reason:  # F7: the cluster's webhook, not the manifest
        return (
            f"cannot be dry-run, because of the cluster, not the manifest: {e.reason} (HTTP 400) — that admission"
            " webhook declares sideEffects other than None or NoneOnDryRun, so the API server refuses to dry-run"
            " what it intercepts and this object's change cannot be shown (it is not reported unchanged); ask the"
            " webhook's owner to set sideEffects: None (or NoneOnDryRun), or to exclude this namespace or kind"
            " from its rules"
        )
    hint = f"; to delete and recreate it, annotate it {ANNOTATION_FORCE}: enabled" if _immutable(e) else ""
    return f"{e.reason} (HTTP {e.status}){hint}"


def _prune_candidates(
    kube: Kube,
    types: Mapping[tuple[str, str], ResourceType],
    target: str,
    stacks: Mapping[str, Stack],
    previous: Mapping[str, Iterable[ObjectId]],
    rendered: set[ObjectId],
) -> list[tuple[str, ObjectId, dict[str, Any]]]:
    """``(stack, id, live)`` of the objects a stack that prunes applied last time and no longer renders, that still
    exist and are still labelled ours (prune leaves any other alone: :func:`~.ownership.not_ours`)."""
    found = []
    for stack_name, ids in previous.items():
        if stack_name in stacks and not stacks[stack_name].prune:
            continue
        for oid in sorted(set(ids) - rendered):
            rt = kube.type_of(oid.group, oid.kind)
            live = kube.get(rt, oid.name, oid.namespace or None, where=str(oid)) if rt else None
            if live is not None and not_ours(live, target, stack_name) is None:
                found.append((stack_name, oid, live))
    return found


def _find_live(
    kube: Kube, rt: ResourceType, objs: Sequence[RenderedObject], ours: str, index: dict[ObjectId, dict[str, Any]]
) -> dict[str, Forbidden]:
    """Add the live objects of ``rt`` that ``objs`` name to ``index``; return the namespaces that may not be listed.

    What this stack applied before carries its labels: list just that (cluster-wide when it spans many namespaces:
    the selector keeps the answer to our own objects). Objects not found that way (new, or not labelled ours yet)
    are looked for again without the selector, namespace by namespace: a cluster-wide LIST without a selector would
    return every object of the type in the cluster.
    """
    items, denied = _list_live(kube, rt, {o.id.namespace for o in objs}, ours)
    for item in items:
        index.setdefault(ObjectId.of(item), item)
    unseen = {o.id.namespace for o in objs if o.id not in index} - set(denied)
    if unseen:
        items, more = _list_live(kube, rt, unseen, cluster_wide=False)
        for item in items:
            index.setdefault(ObjectId.of(item), item)
        denied |= more
    return denied


def _list_live(
    kube: Kube, rt: ResourceType, namespaces: set[str], selector: str | None = None, *, cluster_wide: bool = True
) -> tuple[list[Any], dict[str, Forbidden]]:
    """The live objects of ``rt`` in ``namespaces`` (one cluster-wide LIST when there are many and ``cluster_wide``),
    and the namespaces (``""`` for a cluster-scoped type) the identity may not list, with the refusal."""
    if not rt.namespaced or (cluster_wide and len(namespaces) > CLUSTER_WIDE_LIST_ABOVE):
        try:
            return kube.list(rt, label_selector=selector), {}
        except Forbidden as e:
            if not rt.namespaced:
                return [], {"": e}
            # the plan credentials may list only their own namespaces: ask each
    items: list[Any] = []
    denied: dict[str, Forbidden] = {}
    for ns in sorted(namespaces):
        try:
            items.extend(kube.list(rt, ns, selector))
        except Forbidden as e:
            denied[ns] = e
    return items, denied


def _provable(w: _Work, mutators: list[AdmissionRule] | None) -> bool:
    return mutators is not None and w.rt is not None and not any(r.may_mutate(w.rt) for r in mutators)


def _schema_checked(
    kube: Kube, todo: Sequence[_Work], run: Sequence[RenderedObject], stacks: Mapping[str, Stack], masker: Masker
) -> Iterator[PlanEntry | PlanFailure]:
    """Objects that cannot be dry-run yet (their CRD or namespace is created by this run, among ``run``), checked
    against the schema the API server will hold them to (:mod:`~.schema`); apply dry-runs them later."""
    schemas = Schemas(kube.openapi, (o.body for o in run))
    for w in todo:
        reason = "its CRD is created by this plan" if w.rt is None else "its namespace is created by this plan"
        problems, schema = schemas.problems(w.obj.body), schemas.source(w.obj.body)
        if problems:
            message = f"not valid against {schema} (not dry-run: {reason}): {'; '.join(problems)}; fix the manifest"
            yield PlanFailure(w.obj.id, w.obj.stack, w.obj.source, masker.scrub(message))
            continue
        checked = f"checked against {schema}" if schema else "no schema published to check it against"
        after = display(w.obj.body, ignored_pointers(_rules(stacks, w.obj.stack), w.obj.id), masker)
        note = f"not dry-run: {reason}; {checked}"
        yield PlanEntry(w.obj.id, w.obj.stack, Action.CREATE, w.obj.source, after=after, note=note, deferred=True)


def _rules(stacks: Mapping[str, Stack], name: str) -> tuple[IgnoreDifference, ...]:
    stack = stacks.get(name)
    return stack.ignore_differences if stack else ()


def _dry_run(
    kube: Kube,
    rt: ResourceType,
    obj: RenderedObject,
    live: dict[str, Any] | None,
    stacks: Mapping[str, Stack],
    masker: Masker,
    attempts: int = 3,
) -> PlanEntry:
    conflicts: tuple[FieldConflict, ...] = ()
    ignore = ignored_pointers(_rules(stacks, obj.stack), obj.id)
    try:
        try:
            result = kube.apply(rt, obj.body, dry_run=True, where=str(obj.id))
        except Conflict as e:
            conflicts = _conflicts(e)
            result = kube.apply(rt, obj.body, dry_run=True, force=True, where=str(obj.id))
    except Invalid as e:
        if live is None or not _immutable(e) or annotation(obj.body, ANNOTATION_FORCE) != "enabled":
            raise
        note = f"an immutable field changed: deleted and created again ({ANNOTATION_FORCE}: enabled)"
        before, after = display(live, ignore, masker), display(obj.body, ignore, masker)
        return PlanEntry(obj.id, obj.stack, Action.RECREATE, obj.source, before=before, after=after, note=note)
    after = display(result, ignore, masker)
    if live is None:
        return PlanEntry(obj.id, obj.stack, Action.CREATE, obj.source, after=after, conflicts=conflicts)
    seen = (result.get("metadata") or {}).get("resourceVersion")
    if seen != (live.get("metadata") or {}).get("resourceVersion"):
        # The object moved on (a controller wrote to it) between our LIST and the dry-run, which applied to the
        # newer version: compare against that version, never a stale one (else a controller's write looks like ours).
        fresh = kube.get(rt, obj.id.name, obj.id.namespace or None, where=str(obj.id))
        if fresh is not None and (fresh.get("metadata") or {}).get("resourceVersion") == seen:
            live = fresh
        elif fresh is not None and attempts > 1:
            return _dry_run(kube, rt, obj, fresh, stacks, masker, attempts - 1)
    before = display(live, ignore, masker)
    action = Action.UNCHANGED if before == after and not conflicts else Action.UPDATE
    return PlanEntry(obj.id, obj.stack, action, obj.source, before=before, after=after, conflicts=conflicts)


def _stamp(work: list[_Work], revision: str | None) -> list[_Work]:
    """Stamp each object as apply would: the live object's own revision, else ``revision`` (none: leave it)."""
    out = []
    for w in work:
        live_revision = annotation(w.live, ANNOTATION_REVISION) if w.live else None
        stamp = live_revision or revision
        out.append(_Work(stamped(w.obj, live_revision, stamp), w.rt, w.live) if stamp else w)
    return out


def _immutable(e: ApiError) -> bool:
    return isinstance(e, Invalid) and "immutable" in e.reason


def stamped(obj: RenderedObject, live_revision: str | None, revision: str) -> RenderedObject:
    """``obj`` with the revision annotation: the live object's own when it has one (see :func:`plan`)."""
    meta = obj.body.get("metadata") or {}  # copied along the path it changes only: bodies are never changed in place
    annotations = {**(meta.get("annotations") or {}), ANNOTATION_REVISION: live_revision or revision}
    body = {**obj.body, "metadata": {**meta, "annotations": annotations}}
    return RenderedObject(obj.id, body, obj.source, obj.stack)
