"""The plan digest: one hash over what a plan would write and the live state it was computed against, revision
stamps left out (a new commit alone changes nothing). The PR comment carries it; apply compares it."""

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
    """``sha256:<hex>`` of what a plan would do: each changed object's id, action, live state and desired state (as
    shown: normalised and masked), conflicts, and the ids of unchanged objects and failures.

    The revision stamp is left out, so the plan reviewed on a pull request's head and the plan recomputed on its
    merge commit have the same digest when nothing else moved; so is how "unchanged" was proven (fast path or
    dry-run). Secrets enter only as their masks, so the digest reveals nothing about their values.
    """
    rows: list[Any] = []
    for e in sorted(p.entries, key=lambda e: (e.stack, e.id)):
        if e.action is Action.UNCHANGED:
            rows.append([e.stack, str(e.id), e.action.value])
        else:
            before, after = (_unstamped(x) for x in (e.before, e.after))
            conflicts = [[c.field, c.manager] for c in e.conflicts]
            rows.append([e.stack, str(e.id), e.action.value, before, after, conflicts])
    rows.extend([f.stack, str(f.id), "failed", f.message] for f in sorted(p.failures, key=lambda f: (f.stack, f.id)))
    canonical = json.dumps([p.target, rows], sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _unstamped(obj: Mapping[str, Any] | None) -> Any:
    if obj is None:
        return None
    out = copy.deepcopy(dict(obj))
    remove_path(out, ["metadata", "annotations", ANNOTATION_REVISION])
    return normalise(out, ())  # drops the annotations map if that was its only entry
