"""Plans as people and programs read them: text for a terminal, JSON (schema: ``report/schemas/plan.schema.json``),
markdown for a pull-request comment. Pure functions of a :class:`~gitops_job.Plan`, which is already masked."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
import yaml

from gitops_job.identity import ObjectId
from gitops_job.outcomes import Action, RunResult
from gitops_job.reconcile.order import stage
from gitops_job.reconcile.results import ApplyResult, Plan, PlanEntry, stray_message

# One object's diff may take this many characters before it is cut, so one huge object cannot crowd out the rest.
DIFF_BUDGET = 16_000
_ORDER = (Action.CREATE, Action.ADOPT, Action.UPDATE, Action.RECREATE, Action.PRUNE)


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
        out += [click.style(printable(header), bold=True) if color else printable(header), ""]
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
    out.extend(printable(f"warning: {stray_message(oid, stack)}") for stack, oid in plan.strays)
    for failure in plan.failures:
        message = printable(f"error: plan: {failure}")
        out.append(click.style(message, fg="red") if color else message)
    return "\n".join(out).rstrip() + "\n"


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


#: Characters that change how a terminal shows text (C0 and C1 controls but tab and newline, ESC of ANSI sequences,
#: bidirectional overrides and isolates such as U+202E, zero-width marks): printed escaped, never raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def printable(s: str) -> str:
    """``s`` with every control character escaped (``\\x1b``, ``\\u202e``), so a name or message cannot move the
    cursor, colour the terminal or reverse the text around it. Tabs and newlines stay."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", s)


def _colour(line: str) -> str:
    if line.startswith("+"):
        return click.style(line, fg="green")
    if line.startswith("-"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


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
    }


def json_text(plan: Plan) -> str:
    return json.dumps(to_json(plan), indent=2) + "\n"


def fence(content: str, info: str = "") -> str:
    """A code fence longer than any backtick run in ``content``, so content can never close it."""
    longest = max((len(m) for m in re.findall(r"`+", content)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{content.rstrip()}\n{ticks}"


#: GitHub refuses a comment body longer than this many characters.
COMMENT_LIMIT = 65_536


@dataclass(frozen=True)
class Page:
    """What surrounds a plan in a PR comment or job summary: every field optional."""

    title: str = "plan"  # "plan", "apply", …
    target: str = ""  # when there is no plan to name it
    counts: str = ""  # instead of the plan's counts line (apply: what was done)
    marker: str = ""  # hidden HTML comment by which the comment is found again
    sections: Sequence[str] = ()  # markdown shown after the counts (apply: the result of each stack)
    notice: str = ""  # a note above the plan (e.g. "render and validate only")
    error: str = ""  # the run failed: shown as a caution, and the title gets a failure marker
    footer: Sequence[str] = ()  # "head `abc1234`", "gitops-job 0.1.0", "[run](…)", …
    digest: str = ""  # shown in the footer and kept hidden in the body, where the next run finds it
    digest_label: str = "plan"
    artifact: str = ""  # where the whole plan is, named in the truncation line
    limit: int = COMMENT_LIMIT


def markdown(plan: Plan | None, page: Page | None = None) -> str:
    """A PR comment (or job summary): title, counts, a warning for prunes and recreations, one collapsed section per
    stack with a ``diff`` block per object, failures, footer. Without a plan (the run failed before it had one, or
    rendered only), the page's notice and error say why.

    The body never exceeds ``page.limit`` characters: title, counts, warnings, failures and footer come first;
    then whole objects, in order, while they fit; then one line saying how many were left out and where they are.
    Every fence is longer than any backtick run in its content, so content cannot close it.
    """
    page = page or Page()
    failed = bool((plan and plan.failures) or page.error)
    head = [page.marker] if page.marker else []
    target = plan.target if plan else page.target
    head += [f"### {'❌ ' if failed else ''}gitops-job {page.title} · `{target}`", ""]
    counts = page.counts or (counts_line(plan) if plan else "")
    head += [f"**{counts}**", ""] if counts else []
    if page.notice:
        head += _callout("NOTE", page.notice)
    if page.error:
        head += _callout("CAUTION", _cut(page.error, 20_000))
    for section in page.sections:
        head += [section.rstrip(), ""]
    head += _warnings(plan) if plan else []
    tail = _failures(plan) if plan else []
    footer = [*page.footer, *([f"{page.digest_label} `{page.digest}`"] if page.digest else [])]
    tail += ["---", "<sub>" + " · ".join(footer) + "</sub>"] if footer else []
    if page.digest:
        tail.append(f"<!-- gitops-job:digest {page.digest} -->")
    body = _budgeted(plan, page, "\n".join(head), "\n".join(tail)) if plan else "\n".join(head + tail)
    body = printable(body.rstrip())  # escapes grow the text: a body full of them is cut, never refused by GitHub
    return (body if len(body) < page.limit else body[: page.limit - 40] + "\n… cut: control characters") + "\n"


def _callout(kind: str, text: str) -> list[str]:
    return [f"> [!{kind}]", *(f"> {html_escape(line)}" if line else ">" for line in text.splitlines()), ""]


def _warnings(plan: Plan) -> list[str]:
    groups = [
        ("will be deleted (pruned)", [e.id for e in plan.entries if e.action is Action.PRUNE], ""),
        ("will be deleted and created again", [e.id for e in plan.entries if e.action is Action.RECREATE], ""),
        ("exist and are not ours", [e.id for e in plan.entries if e.action is Action.ADOPT],
         ": apply takes them over only with --adopt or the annotation gitops-job.io/adopt: enabled"),
        ("carry a stack's ownership labels but are not in its inventory", [oid for _, oid in plan.strays],
         " (made by hand?); apply leaves them alone"),
        ("have an immutable field changed, blocked", [f.id for f in plan.failures if "immutable" in f.message],
         " (see failures)"),
    ]  # fmt: skip
    lines = [f"> **{len(ids)} object(s) {what}:** {_listed(ids)}{after}" for what, ids, after in groups if ids]
    return ["> [!WARNING]", *"\n>\n".join(lines).splitlines(), ""] if lines else []


def _listed(ids: Sequence[ObjectId], shown: int = 10) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(f"`{oid}`" for oid in ids[:shown]) + more


def _failures(plan: Plan, shown: int = 50) -> list[str]:
    if not plan.failures:
        return []
    out = ["#### Failures", ""]
    out += [f"- `{f.id}`{f' ({_code(str(f.source))})' if f.source else ''}: {html_escape(_cut(f.message))}"
            for f in plan.failures[:shown]]  # fmt: skip
    if len(plan.failures) > shown:
        out.append(f"- … and {len(plan.failures) - shown} more (see the full plan)")
    return [*out, ""]


def _cut(message: str, most: int = 1000) -> str:
    """One message in a comment: at most ``most`` characters (the whole one is in the artifact)."""
    return message if len(message) <= most else message[:most] + " …"


def _object(e: PlanEntry) -> str:
    notes = [f"from {_code(str(e.source))}"] if e.source else []
    notes += [f"conflict: `{c.field}` is owned by `{c.manager}`" for c in e.conflicts]
    notes += [html_escape(e.note)] if e.note else []
    quoted = [*(f"> {n}" for n in notes), ""] if notes else []
    return "\n".join([f"**`{e.id}`** ({e.action.value})", "", *quoted, fence(diff(e), "diff"), ""])


def _budgeted(plan: Plan, page: Page, head: str, tail: str) -> str:
    changed = plan.changed
    if not changed:
        return f"{head}\nNo changes.\n\n{tail}"
    # Room for the truncation line, whatever it says.
    room = page.limit - len(head) - len(tail) - 400
    parts: list[str] = []
    shown = 0
    for stack, mine in by_stack(plan):
        if not mine:
            continue
        counts = ", ".join(f"{sum(1 for e in mine if e.action is a)} to {a.value}" for a in _ORDER
                           if any(e.action is a for e in mine))  # fmt: skip
        opening = f"<details>\n<summary><b>{html_escape(stack)}</b>: {counts}</summary>\n\n"
        closing = "</details>\n"
        blocks: list[str] = []
        for e in mine:
            block = _object(e)
            if len(opening) + sum(len(b) for b in blocks) + len(block) + len(closing) > room:
                break
            blocks.append(block)
        if not blocks:
            break
        section = opening + "".join(b + "\n" for b in blocks) + closing
        parts.append(section)
        room -= len(section)
        shown += len(blocks)
        if len(blocks) < len(mine):
            break
    left = len(changed) - shown
    if left:
        where = page.artifact or "the full plan (`gitops-job plan -o markdown`)"
        parts.append(f"> [!NOTE]\n> {left} of {len(changed)} changed objects are not shown: a comment is limited to "
                     f"{page.limit:,} characters. Every diff is in {where}.\n")  # fmt: skip
    return f"{head}\n" + "\n".join(parts) + f"\n{tail}"


def _code(s: str) -> str:
    """Inline code that content cannot break out of (HTML, so backticks in ``s`` are harmless)."""
    return f"<code>{html_escape(s)}</code>"


def html_escape(s: str) -> str:
    """``s`` safe as HTML text (comment bodies mix markdown and HTML), control characters escaped."""
    return printable(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- apply results -----------------------------------------------------------------------------------------------------
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
        counts = ", ".join(f"{n} {k}" for k, n in run.counts.items()) if run.plan else ""
        state = "in sync, nothing written" if run.in_sync and run.result is RunResult.SUCCEEDED else run.result.value
        out.append(f"stack {run.stack}: {state}" + (f" ({counts})" if counts else ""))
        out.extend(f"  {verb:<10} {what}" for stack, verb, what in rows if stack == run.stack)
        out.extend(f"  warning: {w}" for w in run.warnings)
        if run.error:
            out.extend(f"  error: {line}" if i == 0 else f"  {line}" for i, line in enumerate(run.error.splitlines()))
    return "".join(printable(line) + "\n" for line in out)


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
