"""What ``workloads`` prints: one row per container, like ``fluxctl list-workloads`` (the workload named on its first
row), and the same facts as JSON. Pure functions of the parsed Flux v1 controls."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gitops_job.images.annotations import GLOB_ALL, Ignore, WorkloadControls
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
