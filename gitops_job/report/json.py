"""Plans and apply results as programs read them: the JSON document (schema: ``report/schemas/plan.schema.json``).
Pure functions of results (already masked)."""

from __future__ import annotations

import json
from typing import Any

from gitops_job.outcomes import Action
from gitops_job.reconcile.results import ApplyResult, Plan
from gitops_job.report.text import apply_lines, diff

# One object's diff may take this many characters before it is cut, so one huge object cannot crowd out the rest.


def to_json(plan: Plan) -> dict[str, Any]:
    """The JSON document (``gitops_job/report/schemas/plan.schema.json``)."""
    return {
        "version": 1,
        "target": plan.target,
        "summary": {
            "create": plan.count(Action.CREATE),
            "adopt": plan.count(Action.ADOPT),
            "update": plan.count(Action.UPDATE),
            "recreate": plan.count(Action.RECREATE),
            "prune": plan.count(Action.PRUNE),
            "unchanged": plan.count(Action.UNCHANGED),
            "failed": len(plan.failures),
        },
        "objects": [
            {
                "id": str(e.id),
                "group": e.id.group,
                "kind": e.id.kind,
                "namespace": e.id.namespace or None,
                "name": e.id.name,
                "stack": e.stack,
                "action": e.action.value,
                "source": str(e.source) if e.source else None,
                "provenWithoutDryRun": e.proven,
                "conflicts": [{"field": c.field, "manager": c.manager} for c in e.conflicts],
                "note": e.note or None,
                "diff": diff(e) if e.action is not Action.UNCHANGED else None,
            }
            for e in plan.entries
        ],
        "failures": [
            {"id": str(f.id), "stack": f.stack, "source": str(f.source) if f.source else None, "message": f.message}
            for f in plan.failures
        ],
        "strays": [{"id": str(oid), "stack": stack} for stack, oid in plan.strays],
        "requests": dict(sorted(plan.requests.items())),
        "sources": [{"stack": s.stack, "source": s.source, "url": s.url, "ref": s.ref, "revision": s.revision}
                    for s in plan.sources],
        "unplanned": [{"stack": stack, "reason": why} for stack, why in plan.unplanned.items()],
    }  # fmt: skip


def json_text(plan: Plan) -> str:
    doc = to_json(plan)
    if plan.drift_checked:
        doc["drift"] = drift_json(plan)
    return json.dumps(doc, indent=2) + "\n"


def drift_json(plan: Plan) -> dict[str, Any]:
    """``{"objects": 1, "findings": [{"id", "path", "before", "after", "managers": [...]}]}``: ``before`` is what we
    applied, ``after`` what the live object holds now (both masked)."""
    return {
        "objects": plan.drift_count,
        "findings": [
            {
                "id": str(f.id),
                "path": f.path,
                "before": f.before,
                "after": f.after,
                "managers": [{"name": m.name, "operation": m.operation or None, "subresource": m.subresource or None}
                             for m in f.managers],
            }
            for f in plan.drift
        ],
    }  # fmt: skip


def apply_json(result: ApplyResult) -> str:
    doc = {
        "version": 1,
        "target": result.target,
        "revision": result.revision,
        "ok": result.ok,
        "stacks": [
            {
                "stack": run.stack,
                "result": run.result,
                "inSync": run.in_sync,
                "held": run.held,
                "error": run.error,
                "warnings": list(run.warnings),
                "objects": [{"stack": s, "result": verb, "object": what} for s, verb, what in apply_lines(result)
                            if s == run.stack],
                "unchanged": run.plan.count(Action.UNCHANGED) if run.plan else 0,
                "health": {str(oid): {"state": h.state.value, "reason": h.reason} for oid, h in run.health.items()},
            }
            for run in result.stacks
        ],
        "requests": dict(sorted(result.requests.items())),
    }  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"
