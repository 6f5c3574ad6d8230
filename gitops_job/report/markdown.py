"""The pull-request comment: a plan as markdown within GitHub's comment size limit. Pure functions of results
(already masked)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gitops_job.identity import ObjectId
from gitops_job.outcomes import Action
from gitops_job.reconcile.results import Plan, PlanEntry
from gitops_job.report.text import ACTION_ORDER, by_stack, counts_line, diff, printable

# One object's diff may take this many characters before it is cut, so one huge object cannot crowd out the rest.


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
        counts = ", ".join(f"{sum(1 for e in mine if e.action is a)} to {a.value}" for a in ACTION_ORDER
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
