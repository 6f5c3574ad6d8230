"""What a run returns: the plan, each stack's run, what apply and prune did to each object, and health.

Pure data, masked by construction (every text in here was scrubbed where it was made). Reports, the GitHub glue and
notifiers receive only these types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitops_job.errors import GitopsJobError
from gitops_job.identity import ObjectId
from gitops_job.model import Source
from gitops_job.outcomes import Action, HealthState, Origin, RunResult, Verdict, Written


@dataclass(frozen=True)
class FieldConflict:
    """A field we would set that another field manager owns."""

    field: str
    manager: str


@dataclass(frozen=True, order=True)
class Manager:
    """A field manager as ``managedFields`` records it: its name, how it wrote (``Apply``, ``Update``) and through
    which subresource (``scale``, ``status``; empty for the object itself)."""

    name: str
    operation: str = ""
    subresource: str = ""

    def __str__(self) -> str:
        return f"{self.name} (/{self.subresource})" if self.subresource else self.name


#: How a drift finding shows a field the object lacks (on one side).
ABSENT_TEXT = "(absent)"


@dataclass(frozen=True)
class DriftFinding:
    """One field of an object we applied that no longer holds what we applied: ``before`` is what we applied (what
    our apply would set again), ``after`` what the live object holds now, ``managers`` who owns the field now (none:
    it was removed, by whom the object does not say). Values are masked and cut to one line."""

    id: ObjectId
    path: str  # spec.template.spec.containers[name=web].image
    before: str
    after: str
    managers: tuple[Manager, ...] = ()
    #: When the field was last changed, as far as ``managedFields`` tell (RFC 3339, the latest ``time`` of the
    #: entries of ``managers``); empty when unknown (a removed field).
    at: str = field(default="", compare=False)

    @property
    def manager(self) -> str:
        return ", ".join(map(str, self.managers)) or "unknown"

    def __str__(self) -> str:
        return f"{self.path}: {self.before} → {self.after} (manager: {self.manager})"


#: How many drifted fields one message (an Event, a run record) lists; the rest are counted.
DRIFT_LINES = 20


def findings_text(findings: Sequence[DriftFinding], limit: int = DRIFT_LINES) -> tuple[str, ...]:
    """``Kind/namespace/name path: old → new (manager: m)`` per finding, the first ``limit`` of them, then how many
    more: how every event and run record lists drift."""
    lines = [f"{f.id} {f}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"… and {len(findings) - limit} more field(s)")
    return tuple(lines)


@dataclass(frozen=True)
class PlanEntry:
    """One object's verdict. ``before``/``after`` are normalised and masked, for display only."""

    id: ObjectId
    stack: str
    action: Action
    source: Source | None = None
    before: dict[str, Any] | None = None  # live (None when created)
    after: dict[str, Any] | None = None  # as the server would store it (None when pruned)
    conflicts: tuple[FieldConflict, ...] = ()
    proven: bool = False  # unchanged, proven without a dry-run
    note: str = ""
    #: Not dry-run (its Namespace or CRD is created by this plan): checked against its schema; apply dry-runs it once
    #: the Namespace or CRD exists, before writing anything after them.
    deferred: bool = False
    #: An ADOPT of an object Flux's kustomize-controller applied (apply takes it only with --adopt-from-flux).
    from_flux: bool = False


@dataclass(frozen=True)
class PlanFailure:
    """An object the plan could not compute; ``message`` is already scrubbed of secrets."""

    id: ObjectId
    stack: str
    source: Source | None
    message: str

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"{self.id}{where}: {self.message}"


@dataclass(frozen=True)
class StackSource:
    """Where a stack's manifests came from when it is not this repository: a Flux GitRepository, at a commit."""

    stack: str
    source: str  # GitRepository/namespace/name
    url: str  # without credentials
    ref: str  # what was resolved: "branch main", "tag v1.2.0 (semver ^1)"
    revision: str  # the commit
    label: str = ""  # GitRepository/ns/name@<12 digits>: what a run record and an object's source name it by

    def __str__(self) -> str:
        return f"{self.source} at {self.revision} ({self.ref} of {self.url})"


@dataclass(frozen=True)
class Plan:
    target: str
    entries: tuple[PlanEntry, ...]
    failures: tuple[PlanFailure, ...] = ()
    requests: Mapping[str, int] = field(default_factory=dict)
    #: Live objects that carry a planned stack's ownership labels but are neither rendered nor in its inventory
    #: (made or relabelled by hand): never pruned, only reported. Seen among the kinds and namespaces listed.
    strays: tuple[tuple[str, ObjectId], ...] = ()
    #: The planned stacks in apply order (the config's dependsOn order): how the text plan groups its entries.
    stacks: tuple[str, ...] = ()
    #: What drifted (the plan was asked with drift: :attr:`drift_checked`): per field of each object we applied
    #: before that the plan would update, in the order of :attr:`entries`.
    drift: tuple[DriftFinding, ...] = ()
    drift_checked: bool = False
    #: Each rendered object's health as the plan's LIST found it (reasons masked; kinds with a status only): where
    #: an in-sync stack's wait starts, so a run with nothing to write does not list what its plan just listed.
    health: Mapping[ObjectId, Health] = field(default_factory=dict, compare=False)
    #: The planned stacks whose source is another Git repository, with the commit each was planned at.
    sources: tuple[StackSource, ...] = ()
    #: The stacks not planned because their source is another repository and the run fetched nothing (a fork's
    #: pull request): stack → why.
    unplanned: Mapping[str, str] = field(default_factory=dict)

    def source_of(self, stack: str) -> StackSource | None:
        return next((s for s in self.sources if s.stack == stack), None)

    @property
    def drifted(self) -> tuple[ObjectId, ...]:
        """The objects that drifted, each once, in plan order."""
        return tuple(dict.fromkeys(f.id for f in self.drift))

    @property
    def drift_count(self) -> int:
        """How many objects drifted (``gitops_job_drift_objects``)."""
        return len(self.drifted)

    def count(self, action: Action) -> int:
        return sum(1 for e in self.entries if e.action is action)

    @property
    def changed(self) -> tuple[PlanEntry, ...]:
        return tuple(e for e in self.entries if e.action is not Action.UNCHANGED)

    @property
    def has_changes(self) -> bool:
        return bool(self.changed)


def stray_message(oid: ObjectId, stack: str) -> str:
    return f"{oid}: carries stack {stack}'s ownership labels but is not in its inventory; left alone"


@dataclass(frozen=True)
class Applied:
    """What apply did to one object."""

    id: ObjectId
    action: Action  # CREATE, UPDATE, RECREATE or ADOPT
    ok: bool
    message: str = ""

    @property
    def outcome(self) -> Written:
        return Written.done(self.action) if self.ok else Written.FAILED

    def __str__(self) -> str:
        return f"{self.id}: {self.message}"


@dataclass(frozen=True)
class Pruned:
    id: ObjectId
    verdict: Verdict
    message: str = ""

    def __str__(self) -> str:
        return f"{self.id}: {self.message}"


@dataclass(frozen=True)
class Health:
    state: HealthState
    reason: str


@dataclass(frozen=True)
class StackRun:
    """What one stack's apply did."""

    stack: str
    result: RunResult
    plan: Plan | None = None
    applied: tuple[Applied, ...] = ()
    pruned: tuple[Pruned, ...] = ()
    health: Mapping[ObjectId, Health] = field(default_factory=dict)
    error: str | None = None
    in_sync: bool = False  # already applied at this revision with nothing to change: checked, nothing written
    warnings: tuple[str, ...] = ()
    #: Why the run left the stack alone (suspended, or off-git after an emergency rollback): nothing was read from
    #: or written to its objects, and the run has not failed because of it.
    held: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        """``{"created": 2, "pruned": 1, "unchanged": 40, …}`` — what the run record and every report show."""
        return counts_of(self.plan, self.applied, self.pruned)


def flux_adoptions(plan: Plan) -> frozenset[ObjectId]:
    """The adoptions of objects Flux applied whose every field conflict is with Flux's field manager
    (``kustomize-controller``): what ``apply --adopt-from-flux`` writes with force, taking exactly those fields."""
    return frozenset(
        e.id
        for e in plan.entries
        if e.action is Action.ADOPT and e.from_flux and all(c.manager == "kustomize-controller" for c in e.conflicts)
    )


def correctable(plan: Plan) -> frozenset[ObjectId]:
    """The objects of ``plan`` whose every field conflict is drift: a field we applied that another manager changed
    since (so ``reconcile --drift correct`` takes it back, as Flux's kustomize-controller does). An object with a
    conflict on a field that was never ours is not among them: that stays a conflict (``--force-conflicts``)."""
    managers: dict[ObjectId, set[str]] = {}
    for f in plan.drift:
        managers.setdefault(f.id, set()).update(m.name for m in f.managers)
    return frozenset(
        e.id
        for e in plan.entries
        if e.conflicts and e.id in managers and {c.manager for c in e.conflicts} <= managers[e.id]
    )


@dataclass(frozen=True)
class ApplyResult:
    target: str
    revision: str
    stacks: tuple[StackRun, ...]
    requests: Mapping[str, int] = field(default_factory=dict)
    plan: Plan | None = None  # the preflight plan of every selected stack (prunes included)

    @property
    def ok(self) -> bool:
        return all(s.result is RunResult.SUCCEEDED or s.held for s in self.stacks)


@dataclass(frozen=True)
class Run:
    """One apply of one stack, as its inventory records it and ``status`` and ``history`` show it."""

    revision: str
    started: str  # RFC 3339, UTC
    finished: str
    result: RunResult
    counts: Mapping[str, int] = field(default_factory=dict)
    message: str = ""  # scrubbed when it was recorded
    origin: Origin = Origin.UNKNOWN  # CI, the CronJob or a terminal (unknown: recorded before runs said)
    #: The drift the run's plan found (:func:`findings_text`; only when it looked, as ``reconcile --drift correct``
    #: does): what the run corrected when it succeeded.
    drift: tuple[str, ...] = ()
    #: The stack's source when it is another repository (:attr:`StackSource.label`): its commit, as ``revision`` is
    #: this repository's.
    source: str = ""


@dataclass(frozen=True)
class Hold:
    """Why runs leave a stack alone: ``suspend`` (who, why, when), or an emergency ``rollback`` that applied
    ``revision`` directly when the branch was at ``head`` (the stack is off-git until a commit other than those)."""

    user: str
    reason: str
    since: str  # RFC 3339, UTC
    revision: str | None = None  # off-git: the revision the rollback applied
    head: str | None = None  # off-git: the branch's head at the rollback

    def ends_at(self, revision: str) -> bool:
        """Off-git only: a run of ``revision`` ends the hold (a new commit arrived)."""
        return revision not in (self.revision, self.head)


@dataclass(frozen=True)
class StackStatus:
    """One stack as ``status`` shows it: what its inventory says and how its objects are doing now."""

    stack: str
    revision: str | None  # the last revision applied in full (None: none yet)
    last: Run | None  # the newest run (None: never applied)
    health: Mapping[ObjectId, Health] = field(default_factory=dict)  # every object the inventory lists
    #: How many objects drifted from git (None: not known; ``status`` does not look, a drift check fills it in).
    drift: int | None = None
    suspended: Hold | None = None  # `suspend STACK`
    off_git: Hold | None = None  # `rollback --emergency`

    @property
    def problems(self) -> list[tuple[ObjectId, Health]]:
        """Every object not current, by id."""
        return [(oid, h) for oid, h in sorted(self.health.items()) if h.state is not HealthState.CURRENT]


@dataclass(frozen=True)
class Status:
    """What ``status`` returns: every selected stack of one target, in apply order."""

    target: str
    stacks: tuple[StackStatus, ...]


def counts_of(p: Plan | None, applied: Sequence[Applied], pruned: Sequence[Pruned]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in applied:
        if a.ok:
            counts[a.outcome] = counts.get(a.outcome, 0) + 1
    for r in pruned:
        counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
    if p is not None:
        counts["unchanged"] = p.count(Action.UNCHANGED)
    failed = sum(1 for a in applied if not a.ok)
    if failed:
        counts[Written.FAILED] = failed
    return counts


#: Reports progress of long work: ``(what, done, total)``; the CLI draws a bar from it on a TTY.
Progress = Callable[[str, int, int], None]


def fail_if_failed(error: type[GitopsJobError], failed: Sequence[object], what: str, where: str | None = None) -> None:
    """Raise one ``error`` listing every failure in ``failed`` (each as its text): ``<n> object(s) <what>:``."""
    if failed:
        lines = "\n".join(f"  {f}" for f in failed)
        raise error(f"{len(failed)} object(s) {what}:\n{lines}", where=where)
