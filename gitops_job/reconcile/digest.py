"""The plan digest: one hash over what a plan would change (each changed field, live and desired), revision stamps
left out (a new commit alone changes nothing), fields the apply leaves alone left out (churn there does not make a
review stale). The PR comment carries it; apply compares it."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from gitops_job.model import (
    ANNOTATION_REVISION,
)
from gitops_job.outcomes import Action
from gitops_job.reconcile.normalize import normalise, remove_path
from gitops_job.reconcile.results import Plan


def digest(p: Plan) -> str:
    """``sha256:<hex>`` of what a plan would do: each object's id and action, what a change changes (for each field
    whose desired value differs from the live one: both values, as shown: normalised and masked), conflicts, and the
    failures.

    Only what the apply would change counts, so a review is not made stale by churn in fields the apply leaves
    alone (a replica count an HPA sets, a controller's annotation: the same in the live and the desired state), nor
    by a pruned object's live state (a prune deletes it, whatever it holds). The revision stamp is left out, so the
    plan reviewed on a pull request's head and the plan recomputed on its merge commit have the same digest when
    nothing else moved; so is how "unchanged" was proven (fast path or dry-run). Secrets enter only as their masks,
    so the digest reveals nothing about their values.
    """
    rows: list[Any] = []
    for e in sorted(p.entries, key=lambda e: (e.stack, e.id)):
        if e.action in (Action.UNCHANGED, Action.PRUNE):
            rows.append([e.stack, str(e.id), e.action.value])
        else:
            before, after = (_unstamped(x) for x in (e.before, e.after))
            conflicts = [[c.field, c.manager] for c in e.conflicts]
            rows.append([e.stack, str(e.id), e.action.value, _changed(before, after), conflicts])
    rows.extend([f.stack, str(f.id), "failed", f.message] for f in sorted(p.failures, key=lambda f: (f.stack, f.id)))
    canonical = json.dumps([p.target, rows], sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


_ABSENT = object()


def _changed(before: Any, after: Any) -> Any:
    """What differs between ``before`` and ``after``: maps are compared key by key (a key whose value is the same on
    both sides is left out), anything else whole, as ``{"-": before, "+": after}`` (a side without the key is left
    out)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return {k: _changed(before.get(k, _ABSENT), after.get(k, _ABSENT))
                for k in keys if before.get(k, _ABSENT) != after.get(k, _ABSENT)}  # fmt: skip
    return {k: v for k, v in (("-", before), ("+", after)) if v is not _ABSENT}


def _unstamped(obj: Mapping[str, Any] | None) -> Any:
    if obj is None:
        return None
    out = copy.deepcopy(dict(obj))
    remove_path(out, ["metadata", "annotations", ANNOTATION_REVISION])
    return normalise(out, ())  # drops the annotations map if that was its only entry
