"""Plans and apply results as people read them in a terminal: grouped per stack in apply order, diffs within a
budget, every printed line made printable. Pure functions of results (already masked)."""

from __future__ import annotations

import difflib
from typing import Any

import click
import yaml

from gitops_job.escape import printable
from gitops_job.outcomes import Action, RunResult, counts_text
from gitops_job.reconcile.order import stage
from gitops_job.reconcile.results import ApplyResult, Plan, PlanEntry, stray_message

# One object's diff may take this many characters before it is cut, so one huge object cannot crowd out the rest.


DIFF_BUDGET = 16_000


ACTION_ORDER = (Action.CREATE, Action.ADOPT, Action.UPDATE, Action.RECREATE, Action.PRUNE)


def to_yaml(obj: Any) -> str:
    return str(yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=True, default_flow_style=False, width=1_000_000))


def counts_line(plan: Plan) -> str:
    """``2 to create, 3 to update, 1 to prune, 40 unchanged`` (and failures, when there are any)."""
    recreate = f"{plan.count(Action.RECREATE)} to recreate, " if plan.count(Action.RECREATE) else ""
    adopt = f"{plan.count(Action.ADOPT)} to adopt, " if plan.count(Action.ADOPT) else ""
    line = (
        f"{plan.count(Action.CREATE)} to create, {adopt}{plan.count(Action.UPDATE)} to update, {recreate}"
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
    """Counts first, then stack by stack in apply order (a header with the stack's counts, then each changed object's
    diff in the order apply writes it, prunes last); warnings and failures at the end. Control characters in what
    the cluster or the repository said are escaped (see :func:`printable`)."""
    out = [counts_line(plan), ""]
    for stack, mine in by_stack(plan):
        header = f"stack {stack}: {counts_line(_only(plan, stack))}"
        out.append(click.style(printable(header), bold=True) if color else printable(header))
        source = plan.source_of(stack)
        out += [printable(f"  source {source}")] if source else []
        out.append("")
        for entry in mine:
            out.append(click.style(printable(heading(entry)), bold=True) if color else printable(heading(entry)))
            if entry.source:
                out.append(printable(f"  from {entry.source}"))
            out.extend(printable(f"  conflict: {c.field} is owned by {c.manager}") for c in entry.conflicts)
            if entry.note:
                out.append(printable(f"  {entry.note}"))
            for line in diff(entry).splitlines():
                out.append(_colour(printable(line)) if color else printable(line))
            out.append("")
    if plan.drift_checked:
        out += [printable(line) for line in drift_lines(plan)] + [""]
    out.extend(printable(f"warning: {stray_message(oid, stack)}") for stack, oid in plan.strays)
    out.extend(printable(f"warning: {why}") for why in plan.unplanned.values())
    for failure in plan.failures:
        message = printable(f"error: plan: {failure}")
        out.append(click.style(message, fg="red") if color else message)
    return "\n".join(out).rstrip() + "\n"


def drift_lines(plan: Plan) -> list[str]:
    """``drift: 1 object`` then, per object that drifted, one line per field: ``spec.replicas: 3 → 5 (manager:
    kubectl-edit)`` — what we applied, what it holds now, who changed it."""
    n = plan.drift_count
    out = [f"drift: {n} object{'' if n == 1 else 's'}" + ("" if n else " (none found)")]
    for oid in plan.drifted:
        out.append(f"  {oid}")
        out.extend(f"    {f}" for f in plan.drift if f.id == oid)
    return out


def stack_order(plan: Plan) -> list[str]:
    """The plan's stacks in apply order (:attr:`Plan.stacks`); stacks it does not order come after, by name."""
    named = {e.stack for e in plan.entries} | {f.stack for f in plan.failures}
    return [s for s in plan.stacks if s in named] + sorted(named - set(plan.stacks))


def by_stack(plan: Plan) -> list[tuple[str, list[PlanEntry]]]:
    """Each stack (in apply order) with its changed entries in the order apply writes them: by apply step, then
    prunes in delete order."""
    out = []
    for stack in stack_order(plan):
        mine = [e for e in plan.changed if e.stack == stack]
        written = sorted((e for e in mine if e.action is not Action.PRUNE), key=lambda e: (stage(e.id), e.id))
        pruned = sorted((e for e in mine if e.action is Action.PRUNE), key=lambda e: (_negated(stage(e.id)), e.id))
        out.append((stack, written + pruned))
    return out


def _negated(step: tuple[int, int]) -> tuple[int, int]:
    return (-step[0], -step[1])


def _only(plan: Plan, stack: str) -> Plan:
    entries = tuple(e for e in plan.entries if e.stack == stack)
    return Plan(plan.target, entries, tuple(f for f in plan.failures if f.stack == stack))


def _colour(line: str) -> str:
    if line.startswith("+"):
        return click.style(line, fg="green")
    if line.startswith("-"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


def apply_lines(result: ApplyResult) -> list[tuple[str, str, str]]:
    """``(stack, verb, "object — note")`` for every object a run changed or left alone on purpose."""
    rows = []
    for run in result.stacks:
        for a in run.applied:
            rows.append((run.stack, a.outcome.value, f"{a.id}" + (f" — {a.message}" if a.message else "")))
        for p in run.pruned:
            rows.append((run.stack, p.verdict.value, f"{p.id}" + (f" — {p.message}" if p.message else "")))
    return rows


def apply_text(result: ApplyResult) -> str:
    """Counts per stack, one line per changed object, errors; the same facts as :func:`apply_json`."""
    out = [f"target {result.target} at revision {result.revision}"]
    rows = apply_lines(result)
    for run in result.stacks:
        counts = counts_text(run.counts) if run.plan else ""
        state = "in sync, nothing written" if run.in_sync and run.result is RunResult.SUCCEEDED else run.result.value
        if run.held:
            out.append(f"stack {run.stack}: left alone, {run.held}")
            continue
        out.append(f"stack {run.stack}: {state}" + (f" ({counts})" if counts else ""))
        out.extend(f"  {verb:<10} {what}" for stack, verb, what in rows if stack == run.stack)
        out.extend(f"  warning: {w}" for w in run.warnings)
        if run.error:
            out.extend(f"  error: {line}" if i == 0 else f"  {line}" for i, line in enumerate(run.error.splitlines()))
    return "".join(printable(line) + "\n" for line in out)
