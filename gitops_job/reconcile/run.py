"""The recipes, wired: source → render → validate → plan → apply → prune → wait → report. The CLI and the GitHub
glue call :func:`run_plan` and :func:`run_apply`; each returns a result (:mod:`~gitops_job.reconcile.results`) or
raises a :class:`~gitops_job.errors.GitopsJobError`. Nothing here prints. What a run works on (settings, the
rendered selection, the connection) is :mod:`~gitops_job.reconcile.context`.

Over 400 lines because the apply recipe is one transaction per stack (lease, write-ahead inventory, staged apply,
guarded prune, wait, run record) whose steps must be read in order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
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
    HistoryError,
    Interrupted,
    PlanError,
    PruneError,
    ValidationError,
    WaitError,
)
from gitops_job.identity import ObjectId
from gitops_job.kube import Kube
from gitops_job.model import ANNOTATION_ADOPT, ANNOTATION_SSA, LABEL_STACK, LABEL_TARGET, RenderedObject, annotation
from gitops_job.outcomes import POD_NAMESPACE_FILE, Action, Origin, RunResult, Verdict, counts_text, detect_origin
from gitops_job.reconcile import inventory, ownership, prune
from gitops_job.reconcile.apply import apply_plan
from gitops_job.reconcile.context import (
    Rendered,
    Selection,
    Settings,
    connected,
    holders_of,
    learn_live_secrets,
    render,
    scrub_health,
    scrubbing,
    selected_stack_kube,
    stack_kube,
    stored_inventories,
)
from gitops_job.reconcile.lease import Lease, holder_identity, lease_name
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.plan import PlanOptions, plan
from gitops_job.reconcile.results import (
    Applied,
    ApplyResult,
    Health,
    Hold,
    Plan,
    Progress,
    Pruned,
    Run,
    StackRun,
    StackSource,
    correctable,
    counts_of,
    fail_if_failed,
    findings_text,
    flux_adoptions,
    stray_message,
)
from gitops_job.reconcile.wait import wait_for
from gitops_job.render import gitrepo

PLAN_FAILED = "could not be planned; nothing was written"


def _merge(target: str, plans: Sequence[Plan], requests: Mapping[str, int], rendered: Rendered | None = None) -> Plan:
    entries = tuple(e for p in plans for e in p.entries)
    failures = tuple(f for p in plans for f in p.failures)
    strays = tuple(s for p in plans for s in p.strays)
    drift = tuple(f for p in plans for f in p.drift)
    checked = any(p.drift_checked for p in plans)
    sources = tuple(stack_source(name, c) for name, c in (rendered.checkouts if rendered else {}).items())
    unplanned = dict(rendered.unfetched) if rendered else {}
    return Plan(target, entries, failures, dict(requests), strays, tuple(s for p in plans for s in p.stacks), drift,
                checked, sources=sources, unplanned=unplanned)  # fmt: skip


def _source_label(ctx: _ApplyRun, stack: str) -> str:
    checkout = ctx.rendered.checkouts.get(stack)
    return checkout.label if checkout else ""


def stack_source(stack: str, checkout: gitrepo.Checkout) -> StackSource:
    """What the plan and the run record say about a stack's source that is another repository."""
    return StackSource(stack, str(checkout.source.ref), checkout.url, checkout.ref, checkout.commit, checkout.label)


def run_plan(settings: Settings, progress: Progress | None = None, *, drift: bool = False) -> tuple[Rendered, Plan]:
    """Render, validate (with discovery) and plan every selected stack against the target's cluster; with ``drift``,
    also what drifted (:attr:`Plan.drift`) in the objects we applied before.

    Each stack is planned through its own identity (impersonation), with its inventory's objects as prune
    candidates, and the other stacks' CRDs and Namespaces counted as created first.
    """
    masker = Masker()
    with connected(settings) as (selection, kube), scrubbing(masker):
        stored = stored_inventories(kube, selection)
        learn_live_secrets(kube, selection.target, stored.values(), masker)  # first: before any diff or error
        rendered = render(selection, settings.vars, kube, masker, on_note=settings.on_note)
        holders = holders_of(kube, selection, rendered, stored, settings.vars, masker)
        inventories = {s.name: stored[s.name] for s in selection.stacks}
        at = git.revision(selection.config.root) if drift else None
        plans = _plan_stacks(kube, selection, rendered, masker, settings, progress, inventories, holders=holders,
                             drift=drift, drift_revision=at)  # fmt: skip
        return rendered, _merge(selection.target.name, plans, kube.requests, rendered)


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
    drift: bool = False,
    drift_revision: str | None = None,
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
                PlanOptions(
                    masker=masker,
                    concurrency=settings.concurrency,
                    progress=progress,
                    previous={stack.name: inv.objects - moved} if inv is not None else None,
                    revision=revision,
                    context=[o for o in rendered.objects if o.stack != stack.name],
                    holders=holders,
                    drift=drift,
                    drift_revision=drift_revision,
                ),
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
    adopt_from_flux: bool = False  # take over what Flux's kustomize-controller applied (its fields, with force)
    wait: bool = True  # False: skip every stack's health wait
    lock_wait: float = 300.0  # seconds to wait for another applier
    lock_ttl: float = 30.0
    on_lock_wait: Callable[[str], None] | None = None
    #: Called with the whole preflight plan before the first write; raising refuses the run (nothing written). Called
    #: again with the whole plan as it then is whenever a stack's plan is made again under its lock (another apply
    #: changed the stack since the preflight): raising then fails that stack before its first write.
    review: Callable[[Plan], None] | None = None
    #: Where this run comes from, for its run record; None: detected from the environment (:func:`detect_origin`).
    origin: Origin | None = None
    #: Apply a commit that does not descend from the one a stack last applied (a force-push, an older commit).
    allow_non_descendant: bool = False
    #: How git reaches the checkout's remote when the descendant check must fetch history (reconcile's clone).
    source_auth: git.Auth | None = None
    #: Correct drift (``reconcile --drift correct``): find what drifted (the plan's field-level drift), take back the
    #: drifted fields another manager changed (force, for exactly the objects whose every conflict is drift), and
    #: list what was corrected in the run record.
    correct_drift: bool = False
    #: ``rollback --emergency``: this run applies an earlier revision on purpose (held stacks are applied too) and
    #: marks each stack it applies off-git with this hold; runs then leave the stack alone until a new commit.
    off_git: Hold | None = None


def run_apply(settings: Settings, options: ApplyOptions, progress: Progress | None = None) -> ApplyResult:
    """Render and validate every selected stack, check every stack's prune guards and dry-run every object (any
    error: nothing is written), then apply the stacks in dependsOn order, each under its lock: write-ahead
    inventory, staged apply, prune, wait, record. A stack whose dependency failed is skipped. A stack already in
    sync at this revision is only checked: no lock, no record, zero writes."""
    state = _ApplyState()
    if options.origin is None:
        options = dc_replace(options, origin=detect_origin(os.environ, Path(POD_NAMESPACE_FILE).is_file()))
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
    with connected(settings) as (chosen, kube), scrubbing(masker):
        target = chosen.target
        revision = options.revision or git.revision(chosen.config.root)
        stored = stored_inventories(kube, chosen)
        order = [s.name for s in chosen.stacks]
        held = [StackRun(s.name, RunResult.SKIPPED, held=why) for s in chosen.stacks
                if (why := held_by(stored[s.name], revision, options))]  # fmt: skip
        selection = dc_replace(chosen, stacks=tuple(s for s in chosen.stacks if s.name not in {h.stack for h in held}))
        refuse_non_descendant(selection, stored, revision, options)  # before any write, before rendering
        learn_live_secrets(kube, target, stored.values(), masker)  # first: before any diff or error is built
        rendered = render(selection, settings.vars, kube, masker, on_note=settings.on_note)
        by_stack = {s.name: [o for o in rendered.objects if o.stack == s.name] for s in selection.stacks}
        holders = holders_of(kube, selection, rendered, stored, settings.vars, masker)  # refuses before the first write
        inventories = {s.name: stored[s.name] for s in selection.stacks}
        _preflight(selection, inventories, by_stack, options, holders)  # refuses before the first write
        # Like Argo CD, dry-run everything first: an object the API server rejects stops the run before any write.
        # Each stack then applies this plan, unless its inventory changed before it took the lock.
        planned = _plan_stacks(kube, selection, rendered, masker, settings, progress, inventories, revision, holders,
                               drift=options.correct_drift, drift_revision=revision)  # fmt: skip
        plans = dict(zip(by_stack, planned, strict=True))
        whole = _merge(target.name, planned, kube.requests, rendered)
        fail_if_failed(PlanError, whole.failures, PLAN_FAILED)
        if options.review is not None:
            options.review(whole)  # e.g. compare with the plan reviewed on the pull request; may refuse
        refuse_adoptions(whole, rendered.objects, options.adopt, options.adopt_from_flux)
        runs, state.stacks = state.runs, tuple(s.name for s in selection.stacks)  # from here on, writes may happen
        failed: set[str] = set()
        namespace_ready = False
        shared = _ApplyRun(kube, selection, rendered, revision, masker, settings, options, progress,
                           review_again=_reviewing(options, target.name, plans, kube))  # fmt: skip
        for stack in selection.stacks:
            blocked = [d for d in stack.depends_on if d in failed]
            if blocked:
                why = f"dependency {', '.join(blocked)} did not succeed"
                runs.append(StackRun(stack.name, RunResult.SKIPPED, error=why))
                failed.add(stack.name)
                continue
            work = _StackWork(stack, by_stack[stack.name], plans[stack.name], inventories[stack.name], holders)
            if work.in_sync(revision) and options.off_git is None:
                run = _check_stack(shared, work)
            else:
                if not namespace_ready:  # once, before the first stack that writes
                    inventory.ensure_namespace(kube, target.inventory_namespace)
                    namespace_ready = True
                run = _apply_stack(shared, work)
            runs.append(run)
            if run.result is not RunResult.SUCCEEDED:
                failed.add(stack.name)
        every = sorted([*runs, *held], key=lambda r: order.index(r.stack))
        return ApplyResult(target.name, revision, tuple(every), dict(kube.requests), whole)


def held_by(inv: inventory.Inventory, revision: str, options: ApplyOptions) -> str | None:
    """Why a run leaves the stack of ``inv`` alone (None: it does not): suspended, or off-git after an emergency
    rollback while the branch has no new commit. The emergency rollback itself applies regardless."""
    if options.off_git is not None:
        return None
    if (hold := inv.suspended) is not None:
        why = f": {hold.reason}" if hold.reason else ""
        return f"suspended by {hold.user} at {hold.since}{why}; `gitops-job resume {inv.stack}` resumes it"
    hold = inv.off_git
    if hold is not None and not hold.ends_at(revision.removesuffix("-dirty")):
        why = f": {hold.reason}" if hold.reason else ""
        return (f"off-git: rolled back to {hold.revision} by {hold.user} at {hold.since}{why}; the next commit on the"
                f" branch returns it to git (or `gitops-job resume {inv.stack}`)")  # fmt: skip
    return None


def _reviewing(
    options: ApplyOptions, target: str, plans: dict[str, Plan], kube: Kube
) -> Callable[[str, Plan], None] | None:
    """What a stack calls with the plan it made again under its lock: the whole plan with that stack's share
    replaced, passed to ``options.review`` (every plan that will be applied is checked, not only the preflight's)."""
    review = options.review
    if review is None:
        return None

    def again(stack: str, fresh: Plan) -> None:
        plans[stack] = fresh
        review(_merge(target, list(plans.values()), kube.requests))

    return again


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


def refuse_non_descendant(
    selection: Selection, stored: Mapping[str, inventory.Inventory], revision: str, options: ApplyOptions
) -> None:
    """Refuse (before any write) to apply a commit that does not descend from the commit a selected stack last
    applied, as its inventory records it: history never goes backwards by accident (a force-push, rewritten
    history, a CronJob or CI job still pointing at an older commit). Checked only between commits of this
    checkout's repository; ``--revision`` labels that are not commit ids, and ``unversioned`` runs, are not."""
    new = revision.removesuffix("-dirty")
    root = selection.config.root
    if options.allow_non_descendant or not git.is_sha(new) or not git.is_checkout(root):
        return
    ours = selection.config.name or git.repository(root)
    olds: dict[str, list[str]] = {}
    for stack in selection.stacks:
        inv = stored[stack.name]
        old = (inv.revision or "").removesuffix("-dirty")
        if git.is_sha(old) and old != new and (inv.repository is None or inv.repository == ours):
            olds.setdefault(old, []).append(stack.name)
    refused = {old: names for old, names in olds.items() if not git.is_ancestor(root, old, new, options.source_auth)}
    if not refused:
        return
    lines = "\n".join(
        f"  stack {', '.join(names)}: last applied {old} (inventories in {selection.target.inventory_namespace})"
        for old, names in refused.items()
    )
    raise HistoryError(
        f"commit {new} is not a descendant of the commit last applied; nothing was written:\n{lines}\n"
        "The branch was force-pushed or rewritten, or this run is of an older commit. If that is intended, re-run"
        " once with --allow-non-descendant (the commit applied becomes the new base); to go back on purpose,"
        " revert in git (a new commit) instead",
        where=f"target {selection.target.name}",
    )


def _taken_back(plan: Plan, options: ApplyOptions) -> frozenset[ObjectId]:
    """The objects written with force: what drifted (:func:`correctable`), and with ``--adopt-from-flux`` what Flux
    applied whose every conflict is with kustomize-controller (:func:`flux_adoptions`)."""
    return correctable(plan) | (flux_adoptions(plan) if options.adopt_from_flux else frozenset())


def refuse_adoptions(p: Plan, objects: Sequence[RenderedObject], adopt: bool, from_flux: bool = False) -> None:
    """Refuse (before any write) to take over live objects that are not ours, unless ``adopt`` (``--adopt``) or the
    object is annotated ``gitops-job.io/adopt: enabled``; what Flux applied only with ``from_flux``
    (``--adopt-from-flux``)."""
    flux = [e for e in p.entries if e.action is Action.ADOPT and e.from_flux]
    if flux and not from_flux:
        lines = "\n".join(f"  {e.id} (stack {e.stack}): {e.note.split(';')[0]}" for e in flux)
        raise ValidationError(
            f"{len(flux)} object(s) were applied by Flux (kustomize-controller); refusing to take them over (nothing "
            f"was written):\n{lines}\nTo migrate them from Flux, re-run with --adopt-from-flux (their fields move "
            "from the field manager kustomize-controller to gitops-job); suspend the Flux Kustomization first, or Flux "
            "takes them back"
        )
    if adopt:
        return
    asked = {o.id for o in objects if annotation(o.body, ANNOTATION_ADOPT) == "enabled"}
    refused = [e for e in p.entries if e.action is Action.ADOPT and not e.from_flux and e.id not in asked]
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
    if e.phase in _STAGE_ERRORS or e.phase in ("lock", "review", "history") or isinstance(e, ErrorGroup):
        return e
    return _STAGE_ERRORS[stage](e.reason, where=e.where)


@dataclass(frozen=True)
class _ApplyRun:
    """What every stack of one apply shares."""

    kube: Kube
    selection: Selection
    rendered: Rendered
    revision: str
    masker: Masker
    settings: Settings
    options: ApplyOptions
    progress: Progress | None
    #: Checks a stack's plan made again under its lock (see ``ApplyOptions.review``); None without a review.
    review_again: Callable[[str, Plan], None] | None = None


def _check_stack(ctx: _ApplyRun, work: _StackWork) -> StackRun:
    """A stack in sync: wait for health (reads only) and write nothing, not even a run record."""
    kube, selection, masker, options = ctx.kube, ctx.selection, ctx.masker, ctx.options
    stack = work.stack
    health: dict[ObjectId, Health] = {}
    result, error = RunResult.SUCCEEDED, None
    if stack.wait and options.wait:
        skube = selected_stack_kube(kube, selection, stack)
        try:
            health = _wait(skube, selection, stack, work.objects, known=work.plan.health)  # nothing was written since
        except GitopsJobError as e:
            result, error = RunResult.FAILED, masker.scrub(str(_staged("wait", e)))
    return StackRun(stack.name, result, work.plan, health=scrub_health(health, masker), error=error, in_sync=True,
                    warnings=tuple(map(masker.scrub, work.strays(work.inv))))  # fmt: skip


def _wait(
    skube: Kube,
    selection: Selection,
    stack: cfg.Stack,
    objects: Sequence[RenderedObject],
    known: Mapping[ObjectId, Health] | None = None,
) -> dict[ObjectId, Health]:
    ours = f"{LABEL_STACK}={stack.name},{LABEL_TARGET}={selection.target.name}"
    return wait_for(skube, _typed(skube, objects), max(1.0, _left(skube)), label_selector=ours, known=known)


def _apply_stack(ctx: _ApplyRun, work: _StackWork) -> StackRun:
    """One stack, under its lease: write-ahead inventory, staged apply, prune, wait, run record."""
    kube, selection, revision, masker, options = ctx.kube, ctx.selection, ctx.revision, ctx.masker, ctx.options
    target, stack, objects = selection.target, work.stack, work.objects
    ns, where = target.inventory_namespace, f"stack {work.stack.name}"
    started = inventory.now()
    skube = selected_stack_kube(kube, selection, stack)
    with Lease(kube, ns, lease_name(target.name, stack.name), holder_identity(), ttl=options.lock_ttl,
              wait=options.lock_wait, on_wait=options.on_lock_wait) as lock:  # fmt: skip
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
            stack_plan = _replan(ctx, skube, work, inv)
            stage = "apply"
            new = work.new
            lock.check()
            if not new <= inv.objects:
                inv = inventory.write(kube, dc_replace(inv, objects=inv.objects | new))  # write-ahead: old + new
            applied = apply_plan(skube, stack_plan, {o.id: o for o in objects}, revision, masker,
                                 force_conflicts=options.force_conflicts, take_back=_taken_back(stack_plan, options),
                                 concurrency=ctx.settings.concurrency, progress=ctx.progress,
                                 ignore_differences=stack.ignore_differences)  # fmt: skip
            fail_if_failed(ApplyError, [a for a in applied if not a.ok], "could not be applied; prune skipped", where)
            stage = "prune"
            if stack.prune and old - new:
                lock.check()
                # Ask the server, not the renewer's last view: a guarded write fails if another applier has
                # written this inventory since we read it (it took the lock), and then nothing is pruned.
                inv = inventory.write(kube, inv)
                pruned = prune.prune(skube, old - new, target=target.name, stack=stack.name, masker=masker)
            kept = {r.id for r in pruned if r.verdict in (Verdict.FAILED, Verdict.HELD)}  # pruned by a later run
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
        looked = stack_plan if stack_plan and stack_plan.drift_checked else work.plan  # what found the drift
        run = Run(revision, started, inventory.now(), result, counts_of(stack_plan, applied, pruned), error or "",
                  options.origin or Origin.UNKNOWN, findings_text(looked.drift),
                  _source_label(ctx, stack.name))  # fmt: skip
        final = dc_replace(inv, revision=revision if result is RunResult.SUCCEEDED else inv.revision,
                           off_git=options.off_git if result is RunResult.SUCCEEDED else inv.off_git,
                           ).with_run(run)  # fmt: skip
        try:
            final = _record(kube, lock, final, run)
        except GitopsJobError as e:
            result, error = RunResult.FAILED, (error + "\n" if error else "") + masker.scrub(str(e))
    warnings = tuple(map(masker.scrub, work.strays(final)))
    return StackRun(stack.name, result, stack_plan, tuple(applied), tuple(pruned), scrub_health(health, masker), error,
                    warnings=warnings)  # fmt: skip


def _refuse_if_overtaken(
    selection: Selection, work: _StackWork, inv: inventory.Inventory, revision: str, options: ApplyOptions
) -> None:
    """Under the lock: when another run applied the stack since the preflight (row C1: a newer commit applied while
    this run waited), the commit to apply must descend from the one it recorded — never an older one after it."""
    if inv.revision != work.inv.revision:
        refuse_non_descendant(dc_replace(selection, stacks=(work.stack,)), {work.stack.name: inv}, revision, options)


def _read_claimed(kube: Kube, target: cfg.Target, work: _StackWork) -> inventory.Inventory | StackRun:
    """The stack's inventory, claimed for this run's repository (stored with the next write); a failed run when
    another repository owns it."""
    stack, repository = work.stack.name, work.holders.repository
    inv = inventory.read(kube, target.inventory_namespace, target.name, stack)
    problem = ownership.claim_problem(inv.id, stack, inv.repository, repository, target.name)
    if problem:
        return StackRun(stack, RunResult.FAILED, error=str(ValidationError(problem, where=str(inv.id))))
    return dc_replace(inv, repository=repository)


def _replan(ctx: _ApplyRun, skube: Kube, work: _StackWork, inv: inventory.Inventory) -> Plan:
    """The preflight's plan if nobody applied this stack since (same inventory version), else a new one (which may
    not adopt what the run's options do not allow, and which the run's review checks like the preflight's: it may
    refuse)."""
    stack = work.stack
    _refuse_if_overtaken(ctx.selection, work, inv, ctx.revision, ctx.options)
    if inv.resource_version == work.inv.resource_version:
        return work.plan
    others = [o for o in ctx.rendered.objects if o.stack != stack.name]
    options = PlanOptions(ctx.masker, ctx.settings.concurrency, revision=ctx.revision, context=others,
                          holders=work.holders, drift=ctx.options.correct_drift,
                          drift_revision=ctx.revision)  # fmt: skip
    fresh = plan(skube, ctx.selection.target.name, work.objects, {stack.name: stack}, options)
    fail_if_failed(PlanError, fresh.failures, PLAN_FAILED, where=f"stack {stack.name}")
    refuse_adoptions(fresh, work.objects, ctx.options.adopt, ctx.options.adopt_from_flux)
    if ctx.review_again is not None:
        ctx.review_again(stack.name, fresh)  # this stack has written nothing yet
    return fresh


def _record(kube: Kube, lock: Lease, inv: inventory.Inventory, run: Run) -> inventory.Inventory:
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
