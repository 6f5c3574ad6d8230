"""The one outcome vocabulary: what a plan will do, what apply and prune did, how healthy an object is, how a stack's
run ended. Enums only; code compares members, never their text (the text is what reports and records show)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Action(StrEnum):
    """What a plan will do to one object."""

    CREATE = "create"
    UPDATE = "update"
    RECREATE = "recreate"  # an immutable field changed and the object opted in to delete + create
    UNCHANGED = "unchanged"
    PRUNE = "prune"
    ADOPT = "adopt"  # it exists and is not ours (see the note: owned by …); applied only when adoption is allowed


class Written(StrEnum):
    """What apply did to one object it was asked to write."""

    CREATED = "created"
    UPDATED = "updated"
    RECREATED = "recreated"
    ADOPTED = "adopted"
    FAILED = "failed"

    @classmethod
    def done(cls, action: Action) -> Written:
        """The outcome of writing ``action`` successfully."""
        return _DONE[action]


_DONE = {
    Action.CREATE: Written.CREATED,
    Action.UPDATE: Written.UPDATED,
    Action.RECREATE: Written.RECREATED,
    Action.ADOPT: Written.ADOPTED,
}
#: The actions apply writes.
WRITES = frozenset(_DONE)


class Verdict(StrEnum):
    """What prune did to one object a stack no longer renders."""

    PRUNED = "pruned"
    RETAINED = "retained"  # kept on purpose; no longer managed (labels removed)
    GONE = "gone"  # already deleted by someone else
    NOT_OURS = "not ours"  # no longer carries our labels (another stack's now, or never ours): left alone
    HELD = "held by flux"  # a live Flux Kustomization's inventory still lists it: left alone, stays in the inventory
    FAILED = "failed"  # the delete failed: stays in the inventory


class HealthState(StrEnum):
    """How one live object is doing (kstatus' vocabulary)."""

    CURRENT = "current"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    NOT_FOUND = "not_found"


class RunResult(StrEnum):
    """How one stack's run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a stack it depends on did not succeed


class Origin(StrEnum):
    """Where a run came from, as its run record says (``status`` and ``history`` show it)."""

    CI = "ci"  # a CI job: GitHub Actions (GITHUB_ACTIONS=true), or any CI that sets CI=true
    CRONJOB = "cronjob"  # the scheduled pull: in a pod (KUBERNETES_SERVICE_HOST and the pod's namespace file)
    TERMINAL = "terminal"  # a person's terminal (anything else)
    UNKNOWN = "unknown"  # recorded before runs said where they came from

    @classmethod
    def read(cls, value: object) -> Origin:
        """The origin a record stored; :attr:`UNKNOWN` for a record without one (older) or with one this version
        does not know (newer)."""
        return cls(value) if isinstance(value, str) and value in cls._value2member_map_ else cls.UNKNOWN


#: The file every pod has (a ServiceAccount token volume): with KUBERNETES_SERVICE_HOST, a run inside the cluster.
POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def detect_origin(environ: Mapping[str, str], in_pod: bool) -> Origin:
    """Where a run comes from, from its environment (pure: the caller reads ``os.environ`` and whether
    :data:`POD_NAMESPACE_FILE` exists). ``GITOPS_JOB_ORIGIN`` names it explicitly and wins; then GitHub Actions (or
    ``CI=true``) is CI; a pod (``KUBERNETES_SERVICE_HOST`` set and ``in_pod``) is the CronJob; anything else a
    terminal."""
    explicit = Origin.read(environ.get("GITOPS_JOB_ORIGIN", "").strip().lower())
    if explicit is not Origin.UNKNOWN:
        return explicit
    if environ.get("GITHUB_ACTIONS") == "true" or environ.get("CI", "").lower() in ("true", "1"):
        return Origin.CI
    if environ.get("KUBERNETES_SERVICE_HOST") and in_pod:
        return Origin.CRONJOB
    return Origin.TERMINAL


#: The order counts are shown in: what was written, what prune did, what failed, what was left alone.
COUNT_ORDER: tuple[str, ...] = (
    *(w.value for w in Written if w is not Written.FAILED),
    *(v.value for v in Verdict if v is not Verdict.FAILED),
    "failed",
    Action.UNCHANGED.value,
)


def counts_text(counts: Mapping[str, int]) -> str:
    """``2 created, 1 pruned, 40 unchanged``: how every report, record and Event writes counts."""
    return ", ".join(f"{n} {k}" for k, n in counts.items())
