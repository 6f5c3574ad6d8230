"""The pipeline, wired: source → render → validate → plan → apply → prune → wait → report. The CLI calls these;
each returns a result or raises a :class:`~gitops_job.errors.GitopsJobError`. Nothing here prints."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

from gitops_job import git
from gitops_job.config import load as cfg
from gitops_job.errors import (
    ApplyError,
    ErrorGroup,
    GitopsJobError,
    Interrupted,
    PlanError,
    PruneError,
    ValidationError,
    WaitError,
)
from gitops_job.identity import ObjectId
from gitops_job.kube import ApiError, Forbidden, Kube
from gitops_job.model import ANNOTATION_ADOPT, ANNOTATION_SSA, LABEL_STACK, LABEL_TARGET, RenderedObject, annotation
from gitops_job.outcomes import Action, HealthState, RunResult, Verdict, counts_text
from gitops_job.reconcile import inventory, ownership, prune
from gitops_job.reconcile.apply import apply_plan
from gitops_job.reconcile.health import status
from gitops_job.reconcile.lease import Lock, break_lease, holder_identity, lease_name
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.plan import plan
from gitops_job.reconcile.results import (
    Applied,
    ApplyResult,
    Health,
    Plan,
    Progress,
    Pruned,
    StackRun,
    counts_of,
    fail_if_failed,
    stray_message,
)
from gitops_job.reconcile.validate import builtin_scopes, crd_scopes, validate
from gitops_job.reconcile.wait import wait_for
from gitops_job.render.stack import render_stack


@dataclass(frozen=True)
class Settings:
    """What a run works on. Every field has the default the CLI documents."""

    repo: Path = Path()
    config_file: Path | None = None  # default: <repo>/gitops.yaml
    target: str | None = None  # default: the first target
    stacks: tuple[str, ...] = ()  # default: every stack of the target
    vars: Mapping[str, str] = field(default_factory=dict)  # --var k=v, override target and stack vars
    kubeconfig: str | None = None  # default: $KUBECONFIG or ~/.kube/config, else in-cluster
    concurrency: int = 16


@dataclass(frozen=True)
class Selection:
    """The loaded config, the target and the stacks a run works on."""

    config: cfg.RepoConfig
    target: cfg.Target
    stacks: tuple[cfg.Stack, ...]


@dataclass(frozen=True)
class Rendered:
    """Every selected stack of one target, rendered and validated; ``masker`` has learned every secret value of the
    target (see :func:`render`)."""

    selection: Selection
    objects: tuple[RenderedObject, ...]
    masker: Masker = field(default_factory=Masker, compare=False)


def select(settings: Settings) -> Selection:
    """Load the repo config and pick the target and stacks."""
    config = cfg.load_config(settings.repo.resolve(), settings.config_file)
    target = cfg.target(config, settings.target)
    return Selection(config, target, cfg.stacks_for(config, target.name, settings.stacks))


def render(
    selection: Selection, variables: Mapping[str, str], kube: Kube | None = None, masker: Masker | None = None
) -> Rendered:
    """Render and validate every selected stack; with ``kube``, unknown kinds are checked by discovery too.

    All stacks are rendered and validated before anything fails, so one run reports every problem. Before any
    error is raised, ``masker`` (a new one by default) learns every Secret of the target: those rendered here and
    those of the target's other stacks (rendered only to learn them; their failures are ignored), so an error —
    a Helm message echoing a value — is scrubbed with all of them.
    """
    masker = masker if masker is not None else Masker()
    scopes: Callable[[str, str], bool | None] = builtin_scopes
    if kube is not None:
        types = kube.resource_types()

        def scopes(api_version: str, kind: str) -> bool | None:
            rt = types.get((api_version, kind))
            return rt.namespaced if rt else None

    errors: list[GitopsJobError] = []
    per_stack: list[tuple[cfg.Stack, list[RenderedObject]]] = []
    for stack in selection.stacks:
        try:
            per_stack.append((stack, render_stack(selection.config, stack, selection.target, variables)))
        except GitopsJobError as e:
            errors.extend(e.errors if isinstance(e, ErrorGroup) else [e])
    masker.learn(o.body for _, rendered in per_stack for o in rendered)
    _learn_other_stacks(selection, variables, masker)
    # A CRD rendered by any selected stack makes its kinds known to every stack (the plan creates it first).
    crds = crd_scopes(o for _, rendered in per_stack for o in rendered)

    def known(api_version: str, kind: str) -> bool | None:
        return crds.get((api_version, kind), scopes(api_version, kind))

    objects: list[RenderedObject] = []
    for stack, rendered in per_stack:
        try:
            objects.extend(validate(rendered, stack, known, discovery=kube is not None))
        except GitopsJobError as e:
            errors.extend(e.errors if isinstance(e, ErrorGroup) else [e])
    errors.extend(_duplicates_across_stacks(objects))
    errors.extend(ownership.reserved(objects, selection.target.inventory_namespace))
    if errors:
        raise (errors[0] if len(errors) == 1 else ErrorGroup(errors)).scrubbed(masker.scrub)
    return Rendered(selection, tuple(_owned(o, selection.target.name) for o in objects), masker)


def _learn_other_stacks(selection: Selection, variables: Mapping[str, str], masker: Masker) -> None:
    """Learn the Secrets of the target's stacks that are not selected (``--stack B``: a value that is a Secret in
    stack A is masked in B's output too). Rendered only — not validated — and a stack that fails to render is
    skipped: it is not part of this run."""
    selected = {s.name for s in selection.stacks}
    for stack in cfg.stacks_for(selection.config, selection.target.name):
        if stack.name not in selected:
            with suppress(GitopsJobError):
                masker.learn(o.body for o in render_stack(selection.config, stack, selection.target, variables))


def _learn_live_secrets(
    kube: Kube, target: cfg.Target, inventories: Iterable[inventory.Inventory], masker: Masker
) -> None:
    """Learn the live Secrets the ``inventories`` of ``target`` list — of every stack, selected or not: what prunes
    would delete, and old values that may still appear elsewhere. One LIST per namespace, by our target label;
    what the identity may not read is skipped (planning it fails on its own, scrubbed)."""
    secret = kube.resource_type("v1", "Secret")
    listed = {oid for inv in inventories for oid in inv.objects if oid.group == "" and oid.kind == "Secret"}
    if secret is None or not listed:
        return
    for namespace in sorted({oid.namespace for oid in listed}):
        try:
            items = kube.list(secret, namespace, f"{LABEL_TARGET}={target.name}")
        except ApiError:
            continue
        masker.learn(item for item in items if ObjectId.of(item) in listed)


@contextmanager
def _scrubbing(masker: Masker) -> Iterator[None]:
    """Every :class:`GitopsJobError` leaving the block is scrubbed with ``masker`` (whatever it has learned by then)."""
    try:
        yield
    except GitopsJobError as e:
        raise e.scrubbed(masker.scrub) from None


def _owned(obj: RenderedObject, target: str) -> RenderedObject:
    """``obj`` with the ownership labels naming its target and stack (what prune checks before deleting)."""
    body = copy.deepcopy(obj.body)
    labels = body.setdefault("metadata", {}).setdefault("labels", {})
    labels.update({LABEL_TARGET: target, LABEL_STACK: obj.stack})
    return RenderedObject(obj.id, body, obj.source, obj.stack)


def _duplicates_across_stacks(objects: Sequence[RenderedObject]) -> list[GitopsJobError]:
    first: dict[ObjectId, RenderedObject] = {}
    errors: list[GitopsJobError] = []
    for obj in objects:
        other = first.setdefault(obj.id, obj)
        if other is not obj and other.stack != obj.stack:
            reason = f"duplicate object {obj.id}: stack {other.stack} at {other.source} and stack {obj.stack}"
            errors.append(ValidationError(reason, where=str(obj.source)))
    return errors


def connect(settings: Settings, target: cfg.Target) -> Kube:
    return Kube.connect(settings.kubeconfig, target.context, concurrency=settings.concurrency)


@contextmanager
def _connected(settings: Settings) -> Iterator[tuple[Selection, Kube]]:
    """The selection and a connection to its target's cluster, closed afterwards."""
    selection = select(settings)
    kube = connect(settings, selection.target)
    try:
        yield selection, kube
    finally:
        kube.close()


PLAN_FAILED = "could not be planned; nothing was written"


def _stored(kube: Kube, selection: Selection) -> dict[str, inventory.Inventory]:
    """Every stored inventory of the target (another repository's too), and an empty one for each selected stack
    never applied. An identity that may only get (not list) the inventories sees just this repository's stacks."""
    t, ns = selection.target, selection.target.inventory_namespace
    try:
        found = {i.stack: i for i in inventory.read_all(kube, ns, t.name)}
    except Forbidden:
        found = {s.name: inventory.read(kube, ns, t.name, s.name) for s in cfg.stacks_for(selection.config, t.name)}
    for s in selection.stacks:
        found.setdefault(s.name, inventory.Inventory(t.name, s.name, ns))
    return found


def _holders(
    kube: Kube, selection: Selection, rendered: Rendered, stored: Mapping[str, inventory.Inventory],
    variables: Mapping[str, str], masker: Masker,
) -> ownership.Holders:  # fmt: skip
    """Who owns what on the target, for this run; refuses (before any write) a selected stack whose inventory another
    repository owns, and an object a stack renders that another stack of this repository still renders.

    A stack that is not selected is rendered too when this run could take objects from it or hand objects to it
    (an id in its inventory is rendered here, or a selected stack leaves some of its own): else a move between
    stacks would look like a prune on one side and an adoption on the other."""
    t = selection.target
    repository = selection.config.name or git.repository(selection.config.root)
    errors: list[GitopsJobError] = []
    for s in selection.stacks:
        inv = stored[s.name]
        problem = ownership.claim_problem(inv.id, s.name, inv.repository, repository, t.name)
        if problem:
            errors.append(ValidationError(problem, where=str(inv.id)))
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
    ours = cfg.stacks_for(selection.config, t.name)
    selected = {s.name for s in selection.stacks}
    by_id = {o.id: o for o in rendered.objects}
    others = tuple(s for s in ours if s.name not in selected)
    leaving = any(stored[s].objects - {o.id for o in rendered.objects if o.stack == s} for s in selected)
    arriving = any(oid in by_id for s in others if s.name in stored for oid in stored[s.name].objects)
    if others and (leaving or arriving):
        elsewhere = render(Selection(selection.config, t, others), variables, kube, masker).objects
        for o in elsewhere:
            mine = by_id.get(o.id)
            if mine is not None:
                reason = (f"duplicate object {o.id}: stack {mine.stack} at {mine.source} and stack {o.stack} "
                          f"(not selected) at {o.source}; an object belongs to one stack: remove it from "
                          f"one")  # fmt: skip
                errors.append(ValidationError(reason, where=str(mine.source)))
        if errors:
            raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
        by_id = {o.id: o for o in elsewhere} | by_id
    return ownership.Holders(
        target=t.name,
        repository=repository,
        stacks=frozenset(s.name for s in ours),
        inventories={name: inv.objects for name, inv in stored.items()},
        repositories={name: inv.repository for name, inv in stored.items()},
        rendered={oid: o.stack for oid, o in by_id.items()},
    )


def stack_kube(kube: Kube, stack: cfg.Stack, target: cfg.Target) -> Kube:
    """The connection a stack's requests go through: impersonating its service account when it names one.

    The service account lives in the stack's ``namespace`` (else in the target's inventory namespace).
    """
    if not stack.service_account_name:
        return kube
    namespace = stack.namespace or target.inventory_namespace
    return kube.impersonating(f"system:serviceaccount:{namespace}:{stack.service_account_name}")


def _merge(target: str, plans: Sequence[Plan], requests: Mapping[str, int]) -> Plan:
    entries = tuple(e for p in plans for e in p.entries)
    failures = tuple(f for p in plans for f in p.failures)
    strays = tuple(s for p in plans for s in p.strays)
    return Plan(target, entries, failures, dict(requests), strays, tuple(s for p in plans for s in p.stacks))


def run_plan(settings: Settings, progress: Progress | None = None) -> tuple[Rendered, Plan]:
    """Render, validate (with discovery) and plan every selected stack against the target's cluster.

    Each stack is planned through its own identity (impersonation), with its inventory's objects as prune
    candidates, and the other stacks' CRDs and Namespaces counted as created first.
    """
    masker = Masker()
    with _connected(settings) as (selection, kube), _scrubbing(masker):
        stored = _stored(kube, selection)
        _learn_live_secrets(kube, selection.target, stored.values(), masker)  # first: before any diff or error
        rendered = render(selection, settings.vars, kube, masker)
        holders = _holders(kube, selection, rendered, stored, settings.vars, masker)
        inventories = {s.name: stored[s.name] for s in selection.stacks}
        plans = _plan_stacks(kube, selection, rendered, masker, settings, progress, inventories, holders=holders)
        return rendered, _merge(selection.target.name, plans, kube.requests)


def _plan_stacks(
    kube: Kube,
    selection: Selection,
    rendered: Rendered,
    masker: Masker,
    settings: Settings,
    progress: Progress | None = None,
    inventories: Mapping[str, inventory.Inventory] | None = None,
    revision: str | None = None,
    holders: ownership.Holders | None = None,
) -> list[Plan]:
    """One plan per stack, through the stack's identity; with ``inventories``, prunes are planned too (but not of
    what moved to another stack); with ``holders``, objects not ours are planned as adoptions."""
    plans = []
    for stack in selection.stacks:
        inv = inventories.get(stack.name) if inventories is not None else None
        moved = holders.moved_out(stack.name, inv.objects) if holders and inv else frozenset()
        mine = [o for o in rendered.objects if o.stack == stack.name]
        plans.append(
            plan(
                stack_kube(kube, stack, selection.target),
                selection.target.name,
                mine,
                {stack.name: stack},
                masker=masker,
                concurrency=settings.concurrency,
                progress=progress,
                previous={stack.name: inv.objects - moved} if inv is not None else None,
                revision=revision,
                context=[o for o in rendered.objects if o.stack != stack.name],
                holders=holders,
            )
        )
    return plans


# -- apply -------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplyOptions:
    revision: str | None = None  # default: the checked-out commit of the repo
    force_conflicts: bool = False
    allow_mass_prune: bool = False
    adopt: bool = False  # take over live objects that are not ours (else only those annotated gitops-job.io/adopt)
    wait: bool = True  # False: skip every stack's health wait
    lock_wait: float = 300.0  # seconds to wait for another applier
    lock_ttl: float = 30.0
    on_lock_wait: Callable[[str], None] | None = None
    #: Called with the whole preflight plan before the first write; raising refuses the run (nothing written).
    review: Callable[[Plan], None] | None = None


def run_apply(settings: Settings, options: ApplyOptions, progress: Progress | None = None) -> ApplyResult:
    """Render and validate every selected stack, check every stack's prune guards and dry-run every object (any
    error: nothing is written), then apply the stacks in dependsOn order, each under its lock: write-ahead
    inventory, staged apply, prune, wait, record. A stack whose dependency failed is skipped. A stack already in
    sync at this revision is only checked: no lock, no record, zero writes."""
    state = _ApplyState()
    try:
        return _run_apply(settings, options, progress, state)
    except KeyboardInterrupt:
        raise state.interrupted() from None


@dataclass
class _ApplyState:
    """How far a run got (mutable, filled as it goes): what Ctrl-C reports."""

    stacks: tuple[str, ...] = ()  # the selected stacks, in apply order, once known
    runs: list[StackRun] = field(default_factory=list)

    def interrupted(self) -> Interrupted:
        if not self.stacks:
            return Interrupted("Ctrl-C before any write: nothing was written")
        done = [r.stack for r in self.runs]
        current = self.stacks[len(done)] if len(done) < len(self.stacks) else None
        parts = [f"stack {current} may be partly applied (its inventory lists every object it may have written; its"
                 " lock was released)"] if current else []  # fmt: skip
        finished = [r.stack for r in self.runs if r.result is RunResult.SUCCEEDED]
        parts += [f"finished: {', '.join(finished)}"] if finished else []
        parts += (
            [f"failed or skipped: {', '.join(r.stack for r in self.runs if r.result is not RunResult.SUCCEEDED)}"]
            if len(finished) < len(done)
            else []
        )
        rest = self.stacks[len(done) + 1 :]
        parts += [f"not started: {', '.join(rest)}"] if rest else []
        return Interrupted(
            f"Ctrl-C during apply: {'; '.join(parts)}. Run `gitops-job apply` again to converge: it plans again"
            " from the cluster and finishes the work; what was written stays listed in the inventory, so nothing is"
            " orphaned"
        )


def _run_apply(settings: Settings, options: ApplyOptions, progress: Progress | None, state: _ApplyState) -> ApplyResult:
    masker = Masker()
    with _connected(settings) as (selection, kube), _scrubbing(masker):
        target = selection.target
        revision = options.revision or git.revision(selection.config.root)
        stored = _stored(kube, selection)
        _learn_live_secrets(kube, target, stored.values(), masker)  # first: before any diff or error is built
        rendered = render(selection, settings.vars, kube, masker)
        by_stack = {s.name: [o for o in rendered.objects if o.stack == s.name] for s in selection.stacks}
        holders = _holders(kube, selection, rendered, stored, settings.vars, masker)  # refuses before the first write
        inventories = {s.name: stored[s.name] for s in selection.stacks}
        _preflight(selection, inventories, by_stack, options, holders)  # refuses before the first write
        # Like Argo CD, dry-run everything first: an object the API server rejects stops the run before any write.
        # Each stack then applies this plan, unless its inventory changed before it took the lock.
        planned = _plan_stacks(kube, selection, rendered, masker, settings, progress, inventories, revision, holders)
        plans = dict(zip(by_stack, planned, strict=True))
        whole = _merge(target.name, planned, kube.requests)
        fail_if_failed(PlanError, whole.failures, PLAN_FAILED)
        if options.review is not None:
            options.review(whole)  # e.g. compare with the plan reviewed on the pull request; may refuse
        refuse_adoptions(whole, rendered.objects, options.adopt)
        runs, state.stacks = state.runs, tuple(s.name for s in selection.stacks)  # from here on, writes may happen
        failed: set[str] = set()
        namespace_ready = False
        for stack in selection.stacks:
            blocked = [d for d in stack.depends_on if d in failed]
            if blocked:
                why = f"dependency {', '.join(blocked)} did not succeed"
                runs.append(StackRun(stack.name, RunResult.SKIPPED, error=why))
                failed.add(stack.name)
                continue
            work = _StackWork(stack, by_stack[stack.name], plans[stack.name], inventories[stack.name], holders)
            if work.in_sync(revision):
                run = _check_stack(kube, selection, work, masker, options)
            else:
                if not namespace_ready:  # once, before the first stack that writes
                    inventory.ensure_namespace(kube, target.inventory_namespace)
                    namespace_ready = True
                run = _apply_stack(kube, selection, work, rendered, revision, masker, settings, options, progress)
            runs.append(run)
            if run.result is not RunResult.SUCCEEDED:
                failed.add(stack.name)
        return ApplyResult(target.name, revision, tuple(runs), dict(kube.requests), whole)


@dataclass(frozen=True)
class _StackWork:
    """One stack's share of a run: its rendered objects, and the plan and inventory of the run's preflight."""

    stack: cfg.Stack
    objects: Sequence[RenderedObject]
    plan: Plan
    inv: inventory.Inventory  # as read before the run took any lock
    holders: ownership.Holders

    @property
    def new(self) -> frozenset[ObjectId]:
        return _new_ids(self.objects)

    def moved(self, inv: inventory.Inventory) -> frozenset[ObjectId]:
        """What ``inv`` lists that another stack renders now: handed over (dropped from ``inv``), never pruned."""
        return self.holders.moved_out(self.stack.name, inv.objects)

    def in_sync(self, revision: str) -> bool:
        """Nothing to write: no change planned, nothing to prune or hand over, this revision already recorded as
        applied, and the inventory ours already."""
        inv = self.inv
        listed = inv.objects == self.new if self.stack.prune else self.new <= inv.objects  # no prune: old ids stay
        claimed = inv.repository == self.holders.repository
        return not self.plan.has_changes and listed and not self.moved(inv) and inv.revision == revision and claimed

    def strays(self, inv: inventory.Inventory) -> list[str]:
        """V10: objects labelled for this stack that are neither rendered nor listed — reported, never pruned."""
        return [stray_message(oid, self.stack.name) for _, oid in self.plan.strays if oid not in inv.objects]


def _new_ids(objects: Sequence[RenderedObject]) -> frozenset[ObjectId]:
    return frozenset(o.id for o in objects if annotation(o.body, ANNOTATION_SSA) != "Ignore")


def _preflight(
    selection: Selection,
    inventories: Mapping[str, inventory.Inventory],
    by_stack: Mapping[str, Sequence[RenderedObject]],
    options: ApplyOptions,
    holders: ownership.Holders,
) -> None:
    errors: list[GitopsJobError] = []
    for stack in selection.stacks:
        inv = inventories[stack.name]
        try:
            _guard(stack, inv.objects - holders.moved_out(stack.name, inv.objects), by_stack[stack.name], options)
        except GitopsJobError as e:
            errors.append(e)
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)


def _guard(
    stack: cfg.Stack, old: frozenset[ObjectId], objects: Sequence[RenderedObject], options: ApplyOptions
) -> None:
    """The prune guards, on ``old`` (the inventory, less what moved to another stack) and the render."""
    if stack.prune or not objects:  # an empty render is refused even where prune is off
        prune.guard(stack.name, old, _new_ids(objects), allow_mass_prune=options.allow_mass_prune)


def refuse_adoptions(p: Plan, objects: Sequence[RenderedObject], adopt: bool) -> None:
    """Refuse (before any write) to take over live objects that are not ours, unless ``adopt`` (``--adopt``) or the
    object is annotated ``gitops-job.io/adopt: enabled``."""
    if adopt:
        return
    asked = {o.id for o in objects if annotation(o.body, ANNOTATION_ADOPT) == "enabled"}
    refused = [e for e in p.entries if e.action is Action.ADOPT and e.id not in asked]
    if refused:
        lines = "\n".join(f"  {e.id} (stack {e.stack}): {e.note.split(';')[0]}" for e in refused)
        raise ValidationError(
            f"{len(refused)} object(s) already exist and are not ours; refusing to take them over (nothing was "
            f"written; a later prune would delete them):\n{lines}\nTo adopt them, re-run with --adopt, or annotate "
            f"each manifest {ANNOTATION_ADOPT}: enabled"
        )


_STAGE_ERRORS: dict[str, type[GitopsJobError]] = {
    "plan": PlanError, "apply": ApplyError, "prune": PruneError, "wait": WaitError,
}  # fmt: skip


def _staged(stage: str, e: GitopsJobError) -> GitopsJobError:
    """``e`` as an error of the pipeline stage it stopped (a deadline or lost connection is raised as "cluster")."""
    if e.phase in _STAGE_ERRORS or e.phase == "lock" or isinstance(e, ErrorGroup):
        return e
    return _STAGE_ERRORS[stage](e.reason, where=e.where)


def _stack_kube(kube: Kube, selection: Selection, stack: cfg.Stack) -> Kube:
    timeout = f"stack {stack.name}'s timeout ({stack.timeout:g}s)"
    return stack_kube(kube, stack, selection.target).with_deadline(stack.timeout, timeout)


def _check_stack(kube: Kube, selection: Selection, work: _StackWork, masker: Masker, options: ApplyOptions) -> StackRun:
    """A stack in sync: wait for health (reads only) and write nothing, not even a run record."""
    stack = work.stack
    health: dict[ObjectId, Health] = {}
    result, error = RunResult.SUCCEEDED, None
    if stack.wait and options.wait:
        skube = _stack_kube(kube, selection, stack)
        try:
            health = _wait(skube, selection, stack, work.objects)
        except GitopsJobError as e:
            result, error = RunResult.FAILED, masker.scrub(str(_staged("wait", e)))
    return StackRun(stack.name, result, work.plan, health=_scrub_health(health, masker), error=error, in_sync=True,
                    warnings=tuple(map(masker.scrub, work.strays(work.inv))))  # fmt: skip


def _scrub_health(health: Mapping[ObjectId, Health], masker: Masker) -> dict[ObjectId, Health]:
    """Health reasons quote what controllers wrote (a condition's message): scrubbed like any message."""
    return {oid: dc_replace(h, reason=masker.scrub(h.reason)) for oid, h in health.items()}


def _wait(
    skube: Kube, selection: Selection, stack: cfg.Stack, objects: Sequence[RenderedObject]
) -> dict[ObjectId, Health]:
    ours = f"{LABEL_STACK}={stack.name},{LABEL_TARGET}={selection.target.name}"
    return wait_for(skube, _typed(skube, objects), max(1.0, _left(skube)), label_selector=ours)


def _apply_stack(
    kube: Kube,
    selection: Selection,
    work: _StackWork,
    rendered: Rendered,
    revision: str,
    masker: Masker,
    settings: Settings,
    options: ApplyOptions,
    progress: Progress | None,
) -> StackRun:
    target, stack, objects = selection.target, work.stack, work.objects
    ns, where = target.inventory_namespace, f"stack {work.stack.name}"
    started = inventory.now()
    skube = _stack_kube(kube, selection, stack)
    holder = holder_identity()
    with Lock(kube, ns, lease_name(target.name, stack.name), holder, ttl=options.lock_ttl, wait=options.lock_wait,
              on_wait=options.on_lock_wait) as lock:  # fmt: skip
        inv = _read_claimed(kube, target, work)
        if isinstance(inv, StackRun):
            return inv  # another repository claimed the stack since the preflight: touch nothing, not even its record
        old = inv.objects - work.moved(inv)  # what moved to another stack is dropped from the inventory, not pruned
        stack_plan: Plan | None = None
        applied: list[Applied] = []
        pruned: list[Pruned] = []
        health: dict[ObjectId, Health] = {}
        stage = "plan"
        try:
            _guard(stack, old, objects, options)
            stack_plan = _replan(skube, selection, work, inv, rendered, masker, settings, revision, options.adopt)
            stage = "apply"
            new = work.new
            lock.check()
            if not new <= inv.objects:
                inv = inventory.write(kube, dc_replace(inv, objects=inv.objects | new))  # write-ahead: old + new
            bodies = {o.id: o for o in objects}
            applied = apply_plan(skube, stack_plan, bodies, revision, masker, force_conflicts=options.force_conflicts,
                                 concurrency=settings.concurrency, progress=progress,
                                 ignore_differences=stack.ignore_differences)  # fmt: skip
            fail_if_failed(ApplyError, [a for a in applied if not a.ok], "could not be applied; prune skipped", where)
            stage = "prune"
            if stack.prune and old - new:
                lock.check()
                # Ask the server, not the renewer's last view: a guarded write fails if another applier has
                # written this inventory since we read it (it took the lock), and then nothing is pruned.
                inv = inventory.write(kube, inv)
                pruned = prune.prune(skube, old - new, target=target.name, stack=stack.name, masker=masker)
            kept = {r.id for r in pruned if r.verdict is Verdict.FAILED}
            remaining = new | kept if stack.prune else old | new
            if remaining != inv.objects:
                inv = inventory.write(kube, dc_replace(inv, objects=remaining))
            failed = [p for p in pruned if p.verdict is Verdict.FAILED]
            fail_if_failed(PruneError, failed, "could not be deleted (they stay in the inventory)", where)
            stage = "wait"
            if stack.wait and options.wait:
                health = _wait(skube, selection, stack, objects)
            result, error = RunResult.SUCCEEDED, None
        except GitopsJobError as e:
            result, error = RunResult.FAILED, masker.scrub(str(_staged(stage, e)))
        counts = counts_of(stack_plan, applied, pruned)
        run = inventory.Run(revision, started, inventory.now(), result, counts, error or "")
        final = dc_replace(inv, revision=revision if result is RunResult.SUCCEEDED else inv.revision).with_run(run)
        try:
            final = _record(kube, lock, final, run)
        except GitopsJobError as e:
            result, error = RunResult.FAILED, (error + "\n" if error else "") + masker.scrub(str(e))
    warnings = tuple(map(masker.scrub, work.strays(final)))
    return StackRun(stack.name, result, stack_plan, tuple(applied), tuple(pruned), _scrub_health(health, masker), error,
                    warnings=warnings)  # fmt: skip


def _read_claimed(kube: Kube, target: cfg.Target, work: _StackWork) -> inventory.Inventory | StackRun:
    """The stack's inventory, claimed for this run's repository (stored with the next write); a failed run when
    another repository owns it."""
    stack, repository = work.stack.name, work.holders.repository
    inv = inventory.read(kube, target.inventory_namespace, target.name, stack)
    problem = ownership.claim_problem(inv.id, stack, inv.repository, repository, target.name)
    if problem:
        return StackRun(stack, RunResult.FAILED, error=str(ValidationError(problem, where=str(inv.id))))
    return dc_replace(inv, repository=repository)


def _replan(
    skube: Kube,
    selection: Selection,
    work: _StackWork,
    inv: inventory.Inventory,
    rendered: Rendered,
    masker: Masker,
    settings: Settings,
    revision: str,
    adopt: bool,
) -> Plan:
    """The preflight's plan if nobody applied this stack since (same inventory version), else a new one (which may
    not adopt what ``adopt`` does not allow)."""
    stack = work.stack
    if inv.resource_version == work.inv.resource_version:
        return work.plan
    fresh = plan(skube, selection.target.name, work.objects, {stack.name: stack}, masker=masker,
                 concurrency=settings.concurrency, revision=revision,
                 context=[o for o in rendered.objects if o.stack != stack.name], holders=work.holders)  # fmt: skip
    fail_if_failed(PlanError, fresh.failures, PLAN_FAILED, where=f"stack {stack.name}")
    refuse_adoptions(fresh, work.objects, adopt)
    return fresh


def _record(kube: Kube, lock: Lock, inv: inventory.Inventory, run: inventory.Run) -> inventory.Inventory:
    """Store the run in the inventory (still holding the lock) and announce it with an Event on it."""
    lock.check()
    stored = inventory.write(kube, inv)
    summary = counts_text(run.counts) or "nothing to do"
    ok = run.result is RunResult.SUCCEEDED
    message = f"revision {run.revision}: {summary}" + (f"\n{run.message}" if run.message else "")
    inventory.event(kube, stored, reason="ApplySucceeded" if ok else "ApplyFailed", message=message, warning=not ok)
    return stored


def _left(kube: Kube) -> float:
    return (kube.deadline - time.monotonic()) if kube.deadline is not None else 300.0


def _typed(kube: Kube, objects: Sequence[RenderedObject]) -> list[tuple[Any, ObjectId]]:
    found = []
    for o in objects:
        if annotation(o.body, ANNOTATION_SSA) == "Ignore":
            continue
        rt = kube.resource_type(str(o.body.get("apiVersion")), o.id.kind)
        if rt is not None:
            found.append((rt, o.id))
    return found


# -- status, history, break-lease ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StackStatus:
    stack: str
    inventory: inventory.Inventory
    health: Mapping[ObjectId, Health]

    @property
    def problems(self) -> list[str]:
        return [f"{oid}: {h.state.value}: {h.reason}" for oid, h in sorted(self.health.items())
                if h.state is not HealthState.CURRENT]  # fmt: skip

    def line(self) -> str:
        inv = self.inventory
        if not inv.runs:
            return f"{self.stack}: never applied"
        last = inv.runs[0]
        healthy = len(self.health) - len(self.problems)
        return (f"{self.stack}: revision {inv.revision or 'none applied in full'}; last run {last.result} at "
                f"{last.finished} ({last.revision[:12]}); {healthy}/{len(self.health)} objects healthy")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        inv = self.inventory
        last = inv.runs[0] if inv.runs else None
        return {
            "stack": self.stack,
            "revision": inv.revision,
            "lastRun": None if last is None else {"revision": last.revision, "finished": last.finished,
                                                  "result": last.result, "counts": dict(last.counts)},
            "objects": len(inv.objects),
            "unhealthy": self.problems,
        }  # fmt: skip


def run_status(settings: Settings) -> list[StackStatus]:
    """Each selected stack's inventory and the current health of every object it lists."""
    masker = Masker()
    with _connected(settings) as (selection, kube), _scrubbing(masker):
        stored = _stored(kube, selection)
        _learn_live_secrets(kube, selection.target, stored.values(), masker)
        rows = []
        for stack, inv in ((s.name, stored[s.name]) for s in selection.stacks):
            health: dict[ObjectId, Health] = {}
            for oid in sorted(inv.objects):
                rt = kube.type_of(oid.group, oid.kind)
                live = kube.get(rt, oid.name, oid.namespace or None) if rt else None
                health[oid] = (
                    status(live) if live is not None else Health(HealthState.NOT_FOUND, "missing from the cluster")
                )
            rows.append(StackStatus(stack, inv, _scrub_health(health, masker)))
        return rows


def run_history(settings: Settings) -> inventory.Inventory:
    """The inventory (with its run records) of the first selected stack."""
    with _connected(settings) as (selection, kube):
        t = selection.target
        return inventory.read(kube, t.inventory_namespace, t.name, selection.stacks[0].name)


def run_break_lease(settings: Settings) -> list[tuple[str, str | None]]:
    """Break each selected stack's lock; returns each stack with its former holder (None: it was not locked)."""
    with _connected(settings) as (selection, kube):
        t = selection.target
        ns = t.inventory_namespace
        return [(s.name, break_lease(kube, ns, lease_name(t.name, s.name))) for s in selection.stacks]
