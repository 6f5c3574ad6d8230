"""Plans as people and programs read them: text for a terminal, JSON (schema in ``schemas/plan.schema.json``),
markdown for a pull-request comment. Pure functions of a :class:`~gitops_job.plan.Plan`, which is already masked."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

import click
import yaml

from .apply import DONE
from .pipeline import ApplyResult
from .plan import Action, Plan, PlanEntry

# One object's diff may take this many characters before it is cut, so one huge object cannot crowd out the rest.
DIFF_BUDGET = 16_000
_ORDER = (Action.CREATE, Action.UPDATE, Action.RECREATE, Action.PRUNE)


def to_yaml(obj: Any) -> str:
    return str(yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=True, default_flow_style=False, width=1_000_000))


def counts_line(plan: Plan) -> str:
    """``2 to create, 3 to update, 1 to prune, 40 unchanged`` (and failures, when there are any)."""
    recreate = f"{plan.count(Action.RECREATE)} to recreate, " if plan.count(Action.RECREATE) else ""
    line = (
        f"{plan.count(Action.CREATE)} to create, {plan.count(Action.UPDATE)} to update, {recreate}"
        f"{plan.count(Action.PRUNE)} to prune, {plan.count(Action.UNCHANGED)} unchanged"
    )
    return line + (f", {len(plan.failures)} failed" if plan.failures else "")


def diff(entry: PlanEntry, budget: int = DIFF_BUDGET) -> str:
    """A unified YAML diff of one entry, cut at ``budget`` characters with an explicit marker."""
    before = to_yaml(entry.before).splitlines(keepends=True) if entry.before is not None else []
    after = to_yaml(entry.after).splitlines(keepends=True) if entry.after is not None else []
    lines = list(difflib.unified_diff(before, after, "live", "desired", n=3))[2:]  # drop the ---/+++ header
    text = "".join(lines)
    if len(text) > budget:
        cut = text[:budget].rsplit("\n", 1)[0] + "\n"
        hidden = text[len(cut) :].count("\n")
        text = cut + f"… diff truncated: {hidden} more lines\n"
    return text


def heading(entry: PlanEntry) -> str:
    return f"{entry.id} ({entry.action.value})"


def text(plan: Plan, *, color: bool = False) -> str:
    """Counts first, then each changed object's diff; failures last."""
    out = [counts_line(plan), ""]
    for entry in _changed(plan):
        out.append(click.style(heading(entry), bold=True) if color else heading(entry))
        if entry.source:
            out.append(f"  from {entry.source}")
        out.extend(f"  conflict: {c.field} is owned by {c.manager}" for c in entry.conflicts)
        if entry.note:
            out.append(f"  {entry.note}")
        for line in diff(entry).splitlines():
            out.append(_colour(line) if color else line)
        out.append("")
    for failure in plan.failures:
        message = f"error: plan: {failure}"
        out.append(click.style(message, fg="red") if color else message)
    return "\n".join(out).rstrip() + "\n"


def _colour(line: str) -> str:
    if line.startswith("+"):
        return click.style(line, fg="green")
    if line.startswith("-"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


def _changed(plan: Plan) -> list[PlanEntry]:
    return sorted(plan.changed, key=lambda e: (_ORDER.index(e.action), e.stack, e.id))


def to_json(plan: Plan) -> dict[str, Any]:
    """The JSON document (``schemas/plan.schema.json``)."""
    return {
        "version": 1,
        "target": plan.target,
        "summary": {
            "create": plan.count(Action.CREATE),
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
        "requests": dict(sorted(plan.requests.items())),
    }


def json_text(plan: Plan) -> str:
    return json.dumps(to_json(plan), indent=2) + "\n"


def fence(content: str, info: str = "") -> str:
    """A code fence longer than any backtick run in ``content``, so content can never close it."""
    longest = max((len(m) for m in re.findall(r"`+", content)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{content.rstrip()}\n{ticks}"


def markdown(plan: Plan) -> str:
    """A PR-comment body: counts, a table of changes, one collapsible diff per object, failures."""
    out = [f"### gitops-job plan for `{plan.target}`", "", f"**{counts_line(plan)}**", ""]
    changed = _changed(plan)
    if changed:
        out += ["| action | object | stack | source |", "|---|---|---|---|"]
        out += [f"| {e.action.value} | `{e.id}` | {e.stack} | {f'`{e.source}`' if e.source else ''} |" for e in changed]
        out.append("")
        for e in changed:
            notes = [f"conflict: `{c.field}` is owned by `{c.manager}`" for c in e.conflicts]
            notes += [e.note] if e.note else []
            out += ["<details>", f"<summary><code>{_html(heading(e))}</code></summary>", ""]
            out += [f"> {n}" for n in notes] + ([""] if notes else [])
            out += [fence(diff(e), "diff"), "", "</details>", ""]
    else:
        out += ["No changes.", ""]
    if plan.failures:
        out += ["#### Failures", ""]
        out += [f"- `{f.id}`{f' (`{f.source}`)' if f.source else ''}: {_html(f.message)}" for f in plan.failures]
    return "\n".join(out).rstrip() + "\n"


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- apply results -----------------------------------------------------------------------------------------------------
def apply_lines(result: ApplyResult) -> list[tuple[str, str, str]]:
    """``(stack, verb, "object — note")`` for every object a run changed or left alone on purpose."""
    rows = []
    for run in result.stacks:
        for a in run.applied:
            rows.append(
                (run.stack, DONE[a.action] if a.ok else "failed", f"{a.id}" + (f" — {a.message}" if a.message else ""))
            )
        for p in run.pruned:
            rows.append((run.stack, p.verdict.value, f"{p.id}" + (f" — {p.message}" if p.message else "")))
    return rows


def apply_text(result: ApplyResult) -> str:
    """Counts per stack, one line per changed object, errors; the same facts as :func:`apply_json`."""
    out = [f"target {result.target} at revision {result.revision}"]
    rows = apply_lines(result)
    for run in result.stacks:
        counts = ", ".join(f"{n} {k}" for k, n in run.counts.items()) if run.plan else ""
        state = "in sync, nothing written" if run.in_sync and run.result == "succeeded" else run.result
        out.append(f"stack {run.stack}: {state}" + (f" ({counts})" if counts else ""))
        out.extend(f"  {verb:<10} {what}" for stack, verb, what in rows if stack == run.stack)
        out.extend(f"  warning: {w}" for w in run.warnings)
        if run.error:
            out.extend(f"  error: {line}" if i == 0 else f"  {line}" for i, line in enumerate(run.error.splitlines()))
    return "\n".join(out) + "\n"


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
