"""What ``workloads`` prints: one row per container, like ``fluxctl list-workloads`` (the workload named on its first
row); and ``images list``: each container's deployed image against its repository's tags, judged by its filter.
Text and JSON; pure functions of the parsed Flux v1 controls and the tag lists."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gitops_job.escape import printable
from gitops_job.images.annotations import GLOB_ALL, Available, Ignore, WorkloadControls
from gitops_job.images.policy import Removed
from gitops_job.report.status import NONE, table

WORKLOADS_HEADER = ("WORKLOAD", "CONTAINER", "IMAGE", "FILTER", "AUTOMATED", "LOCKED")


def _locked(w: WorkloadControls) -> str:
    if w.lock is None:
        return "no"
    parts = [p for p in (w.lock.user and f"by {w.lock.user}", w.lock.reason) if p]
    return "yes" + (f" ({': '.join(parts)})" if parts else "")


def _automated(w: WorkloadControls) -> str:
    if w.ignore is not Ignore.NO:
        return f"ignored ({w.ignore.value})"
    return "yes" if w.automated else "no"


def workloads_text(target: str, workloads: Sequence[WorkloadControls]) -> str:
    if not workloads:
        return f"target {target}: no workloads (Deployment, StatefulSet, DaemonSet, Job, CronJob) in the stacks\n"
    rows = []
    for w in workloads:
        for i, c in enumerate(w.containers):
            first = i == 0
            rows.append((
                str(w.id) if first else "",
                c.name + (" (init)" if c.init else ""),
                c.image,
                NONE if c.filter is GLOB_ALL else c.filter.text.removeprefix("v1 "),
                _automated(w) if first else "",
                _locked(w) if first else "",
            ))  # fmt: skip
    return "\n".join(table(WORKLOADS_HEADER, rows)) + "\n"


def workloads_json(target: str, workloads: Sequence[WorkloadControls]) -> str:
    doc: dict[str, Any] = {
        "version": 1,
        "target": target,
        "workloads": [
            {
                "id": str(w.id),
                "stack": w.stack,
                "source": str(w.source),
                "automated": w.automated,
                "ignore": w.ignore.value,
                "locked": None if w.lock is None else {"reason": w.lock.reason, "user": w.lock.user},
                "containers": [
                    {"name": c.name, "init": c.init, "image": c.image, "repository": c.repository, "tag": c.tag,
                     "filter": None if c.filter is GLOB_ALL else c.filter.text.removeprefix("v1 "),
                     "filterAnnotation": c.filter_key or None}
                    for c in w.containers
                ],
            }
            for w in workloads
        ],
    }  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"


# -- images list ------------------------------------------------------------------------------------------------------
IMAGES_HEADER = ("TAG", "STATE", "WHY")


def _verdicts(a: Available) -> list[tuple[str, str, str]]:
    """Each tag of ``a`` as (tag, state, why): the filter's choice first, then the running tag, then the other tags
    the filter allows, then those it removed — each group in the registry's order."""
    assert a.selection is not None
    running = a.container.tag
    rows: list[tuple[int, tuple[str, str, str]]] = []
    for cand in a.selection.candidates:
        is_running = cand.tag == running
        if cand.removed is None:
            state, rank = "newest allowed" + (", running" if is_running else ""), 0
        elif is_running:
            allowed = cand.removed is Removed.RANKED_LOWER
            state, rank = "running, allowed" if allowed else f"running, {cand.removed.value}", 1
        elif cand.removed is Removed.RANKED_LOWER:
            state, rank = "allowed", 2
        else:
            state, rank = cand.removed.value, 3
        rows.append((rank, (cand.tag, state, "" if cand.removed is Removed.RANKED_LOWER else cand.detail)))
    if running and running not in a.tags:
        rows.append((1, (running, "running", "not in the registry's tag list")))
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


def images_text(w: WorkloadControls, found: Sequence[Available], limit: int = 20) -> str:
    """Per container: its image as deployed, its filter, then its repository's tags (``limit`` rows; 0: all)."""
    lock = f"; {w.lock}" if w.lock else ""
    out = [f"{w.id} (stack {w.stack}, {w.source}): automated: {'yes' if w.automated else 'no'}{lock}"]
    for a in found:
        c = a.container
        out += [
            "",
            f"container {c.name}{' (init)' if c.init else ''}: {c.image}, filter {c.filter.text.removeprefix('v1 ')}",
        ]
        if a.error is not None:
            out.append(f"  error: {a.error}")
            continue
        rows = _verdicts(a)
        shown = rows if limit <= 0 else rows[:limit]
        out += ["  " + line for line in table(IMAGES_HEADER, shown)]
        if len(shown) < len(rows):
            out.append(f"  … {len(rows) - len(shown)} more tags (--limit 0 shows every tag)")
        if a.truncated:
            out.append("  (the registry's list was cut at the tag budget)")
    return "\n".join(printable(line) for line in out) + "\n"


def images_json(w: WorkloadControls, found: Sequence[Available]) -> str:
    doc = {
        "version": 1,
        "workload": str(w.id),
        "automated": w.automated,
        "locked": None if w.lock is None else {"reason": w.lock.reason, "user": w.lock.user},
        "containers": [
            {"name": a.container.name, "image": a.container.image, "running": a.container.tag or None,
             "filter": a.container.filter.text.removeprefix("v1 "), "error": a.error,
             "newestAllowed": a.selection.winner if a.selection else None, "truncated": a.truncated,
             "tags": [{"tag": t, "state": s, "why": y or None} for t, s, y in _verdicts(a)] if a.selection else []}
            for a in found
        ],
    }  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"
