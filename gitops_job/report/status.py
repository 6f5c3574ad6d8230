"""What ``status`` and ``history`` print: an aligned table per command, like ``flux get kustomizations`` (plain
text, the same on a terminal and in a pipe), and the status JSON document (schema:
``report/schemas/status.schema.json``). Pure functions of results (already masked); every cell made printable."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gitops_job.escape import printable
from gitops_job.identity import ObjectId
from gitops_job.outcomes import HealthState, RunResult, counts_text
from gitops_job.reconcile.results import Health, Hold, Run, StackStatus, Status

#: Columns are separated by this much space (kubectl's and flux's tabwriter padding).
GAP = "   "
#: How many characters of a revision the tables show (the JSON document has it whole).
SHORT = 12
#: Worst first: the state a stack's health column names when not every object is current.
WORST_FIRST = (HealthState.FAILED, HealthState.NOT_FOUND, HealthState.IN_PROGRESS, HealthState.CURRENT)
NONE = "-"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """``header`` and ``rows`` as aligned lines: each column as wide as its widest cell, no trailing spaces, every
    cell printable."""
    cells = [[printable(c) for c in row] for row in (header, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [GAP.join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def _state(state: HealthState) -> str:
    return state.value.replace("_", " ")


def worst(health: Mapping[ObjectId, Health]) -> HealthState | None:
    """The worst state among ``health`` (None: no objects)."""
    states = {h.state for h in health.values()}
    return next((s for s in WORST_FIRST if s in states), None)


def health_text(health: Mapping[ObjectId, Health]) -> str:
    """``12/12 current``; else how many are current and how many are in the worst state: ``10/12 current, 2
    failed``; ``-`` for a stack without objects."""
    bad = worst(health)
    if bad is None:
        return NONE
    current = sum(1 for h in health.values() if h.state is HealthState.CURRENT)
    text = f"{current}/{len(health)} current"
    if bad is HealthState.CURRENT:
        return text
    return f"{text}, {sum(1 for h in health.values() if h.state is bad)} {_state(bad)}"


def _short(revision: str | None) -> str:
    return revision[:SHORT] if revision else NONE


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""


STATUS_HEADER = ("STACK", "REVISION", "APPLIED AT", "RESULT", "ORIGIN", "HEALTH", "DRIFT")


def _held(s: StackStatus) -> str | None:
    """``suspended`` or ``off-git`` (what the RESULT column says instead of the last run's result), or None."""
    return "suspended" if s.suspended else "off-git" if s.off_git else None


def hold_note(s: StackStatus) -> str | None:
    """The line under the table for a suspended or off-git stack: who, when, why, and how it ends."""
    if (h := s.suspended) is not None:
        why = f": {h.reason}" if h.reason else ""
        return f"stack {s.stack}: suspended by {h.user} at {h.since}{why} (runs leave it alone until `resume`)"
    if (h := s.off_git) is not None:
        why = f": {h.reason}" if h.reason else ""
        return (f"stack {s.stack}: off-git: rolled back to {_short(h.revision)} by {h.user} at {h.since}{why} (runs"
                " leave it alone until a new commit on the branch, or `resume`)")  # fmt: skip
    return None


def status_row(s: StackStatus) -> tuple[str, ...]:
    last = s.last
    return (
        s.stack,
        _short(s.revision),
        last.finished if last else NONE,
        _held(s) or (last.result.value if last else "never applied"),
        last.origin.value if last else NONE,
        health_text(s.health),
        NONE if s.drift is None else str(s.drift),
    )


def status_text(status: Status) -> str:
    """The table (one row per stack, in apply order), then one line per thing to look at: a last run that did not
    succeed (its revision and first line of its message) and every object not current (its identity first)."""
    lines = table(STATUS_HEADER, [status_row(s) for s in status.stacks])
    notes: list[str] = []
    for s in status.stacks:
        last = s.last
        if note := hold_note(s):
            notes.append(note)
        elif last is not None and last.result is not RunResult.SUCCEEDED:
            why = _first_line(last.message)
            notes.append(f"stack {s.stack}: last run {last.result.value} at {_short(last.revision)} "
                         f"({last.finished}, {last.origin.value})" + (f": {why}" if why else ""))  # fmt: skip
        notes += [f"{oid}: {_state(h.state)}: {h.reason} (stack {s.stack})" for oid, h in s.problems]
    if notes:
        lines += ["", *map(printable, notes)]
    return "\n".join(lines) + "\n"


def _run_json(r: Run) -> dict[str, Any]:
    return {"revision": r.revision, "started": r.started, "finished": r.finished, "result": r.result.value,
            "origin": r.origin.value, "counts": dict(r.counts), "message": r.message or None,
            "drift": list(r.drift), "source": r.source or None}  # fmt: skip


def _state_counts(health: Mapping[ObjectId, Health]) -> dict[str, int]:
    counts = {st.value: sum(1 for h in health.values() if h.state is st) for st in HealthState}
    return {k: n for k, n in counts.items() if n}


def status_json(status: Status) -> dict[str, Any]:
    """The status document (``gitops_job/report/schemas/status.schema.json``)."""
    return {
        "version": 1,
        "target": status.target,
        "stacks": [
            {
                "stack": s.stack,
                "revision": s.revision,
                "lastRun": _run_json(s.last) if s.last else None,
                "objects": len(s.health),
                "health": {
                    "summary": health_text(s.health),
                    "worst": None if (w := worst(s.health)) is None else w.value,
                    "counts": _state_counts(s.health),
                },
                "unhealthy": [{"id": str(oid), "state": h.state.value, "reason": h.reason} for oid, h in s.problems],
                "drift": s.drift,
                "suspended": _hold_json(s.suspended),
                "offGit": _hold_json(s.off_git),
            }
            for s in status.stacks
        ],
    }


def _hold_json(h: Hold | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"user": h.user, "reason": h.reason, "since": h.since} | (
        {"revision": h.revision, "head": h.head} if h.revision else {}
    )


def status_json_text(status: Status) -> str:
    return json.dumps(status_json(status), indent=2) + "\n"


HISTORY_HEADER = ("FINISHED", "RESULT", "ORIGIN", "REVISION", "COUNTS")


def history_text(target: str, stack: str, runs: Sequence[Run]) -> str:
    """The runs of one stack, newest first, as a table; a run's message (its first line) follows its row,
    indented."""
    if not runs:
        return printable(f"stack {stack}: never applied to target {target}") + "\n"
    rows = [(r.finished, r.result.value, r.origin.value, _short(r.revision), counts_text(r.counts) or NONE)
            for r in runs]  # fmt: skip
    head, *body = table(HISTORY_HEADER, rows)
    lines = [head]
    for line, r in zip(body, runs, strict=True):
        lines.append(line)
        if why := _first_line(r.message):
            lines.append(printable(f"  {why}"))
        if r.drift:
            lines.append("  corrected drift:" if r.result is RunResult.SUCCEEDED else "  drift found (not corrected):")
            lines += [printable(f"    {line}") for line in r.drift]
    return "\n".join(lines) + "\n"
