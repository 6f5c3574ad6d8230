"""The pull-request comment: a plan as markdown within GitHub's comment size limit. Pure functions of results
(already masked)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gitops_job.escape import printable
from gitops_job.identity import ObjectId
from gitops_job.outcomes import Action
from gitops_job.reconcile.results import Plan, PlanEntry
from gitops_job.report.text import ACTION_ORDER, by_stack, counts_line, diff

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


def images_section(lines: Sequence[str], shown: int = 20) -> str:
    """The plan comment's "images" block: what the pull request changes of image automation (policies in
    gitops.yaml, setter markers), one bullet each; empty when it changes neither."""
    if not lines:
        return ""
    more = [f"- … and {len(lines) - shown} more"] if len(lines) > shown else []
    return "\n".join(["**images** (image automation this pull request changes)", "",
                      *(f"- {_code(line)}" for line in lines[:shown]), *more])  # fmt: skip


def markdown(plan: Plan | None, page: Page | None = None) -> str:
    """A PR comment (or job summary): title, counts, a warning for prunes and recreations, one collapsed section per
    stack with a ``diff`` block per object, failures, footer. Without a plan (the run failed before it had one, or
    rendered only), the page's notice and error say why.

    The body stays under ``page.limit`` characters, and everything in it is counted as GitHub will count it: each
    part is escaped (HTML, control characters) first and only then cut and measured. The title, counts and footer
    (with the digest) are always there; the notice, the error, the sections, the warnings and the failures each take
    what fits of what is left (cut with a marker); then whole objects, in order, while they fit; then one line saying
    how many were left out and where they are. Every fence is longer than any backtick run in its content, so
    content cannot close it.
    """
    page = page or Page()
    failed = bool((plan and plan.failures) or page.error)
    target = plan.target if plan else page.target
    head = [page.marker] if page.marker else []
    head += [printable(f"### {'❌ ' if failed else ''}gitops-job {page.title} · `{target}`"), ""]
    counts = page.counts or (counts_line(plan) if plan else "")
    head += [printable(f"**{counts}**"), ""] if counts else []
    footer = [*page.footer, *_charts(plan), *_sources(plan),
              *([f"{page.digest_label} `{page.digest}`"] if page.digest else [])]  # fmt: skip
    tail = ["---", printable("<sub>" + " · ".join(footer) + "</sub>")] if footer else []
    if page.digest:
        tail.append(printable(f"<!-- gitops-job:digest {page.digest} -->"))
    # What the parts below may take: the rest, less room for the line that says objects were left out.
    room = _Room(page.limit - len("\n".join(head)) - len("\n".join(tail)) - _RESERVE)
    if page.notice:
        head += room.take(_callout("NOTE", page.notice, room.share()))
    if page.error:
        head += room.take(_callout("CAUTION", page.error, room.share()))
    for section in page.sections:
        shown = _lines_within(printable(section.rstrip()).splitlines(), room.left // 2)
        if not shown:
            break
        head += room.take([*shown, ""])
    head += room.take(_lines_within(_warnings(plan), room.left // 2, more="> …")) if plan else []
    # Failures share what is left with the changed objects, half each at most; without objects they take it all.
    failures = room.take(_failures(plan, room.left // 2 if plan.changed else room.left)) if plan else []
    if plan:
        body = _budgeted(plan, page, "\n".join(head), "\n".join(failures + tail), room.left)
    else:
        body = "\n".join(head + tail)
    body = printable(body.rstrip())  # a no-op: every part was escaped before it was measured
    if len(body) >= page.limit:  # never seen; kept so that GitHub can never refuse the comment for its size
        body = body[: page.limit - len("\n".join(tail)) - 40] + "\n… cut\n\n" + "\n".join(tail)
    return body + "\n"


#: Characters kept free for the joins between parts and the line saying how many objects were left out.
_RESERVE = 400


class _Room:
    """What is left of a comment's budget; each part takes what it measures."""

    def __init__(self, left: int) -> None:
        self.left = max(left, 0)

    def share(self, most: int = 20_000) -> int:
        """What one free-text part (notice, error) may take: at most ``most``, never more than half of what is left."""
        return min(most, self.left // 2)

    def take(self, lines: list[str]) -> list[str]:
        self.left -= sum(len(line) + 1 for line in lines)
        return lines


def _callout(kind: str, text: str, most: int = 20_000) -> list[str]:
    """A GitHub alert quoting ``text``, escaped and then cut (``> …``) so that the whole callout takes at most
    ``most`` characters."""
    quoted = [f"> {line}" if line else ">" for line in html_escape(text).splitlines()]
    return [f"> [!{kind}]", *_lines_within(quoted, most - len(kind) - 8, more="> …"), ""]


#: Says that a section was cut; the blank line before it ends a table, which would take the line as a row.
_SECTION_CUT = "\n… cut: the rest is in the full report"


def _lines_within(lines: Sequence[str], most: int, more: str = _SECTION_CUT) -> list[str]:
    """Whole lines while they fit in ``most`` characters (newlines counted); the first that does not is cut where
    an escape does not break, then ``more`` says so. Nothing when not even ``more`` fits."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if used + len(line) + 1 <= most - (0 if last else len(more) + 1):
            out.append(line)
            used += len(line) + 1
            continue
        room = most - used - len(more) - 2
        if room >= 40:
            out.append(_cut(line, room, marker=""))
        if used + len(more) + 1 <= most:
            out.append(more)
        break
    return out


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
    lines += [f"> **stack {stack} is not planned:** {html_escape(why)}" for stack, why in plan.unplanned.items()]
    return ["> [!WARNING]", *printable("\n>\n".join(lines)).splitlines(), ""] if lines else []


def _listed(ids: Sequence[ObjectId], shown: int = 10) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(f"`{oid}`" for oid in ids[:shown]) + more


def _failures(plan: Plan, room: int, shown: int = 50) -> list[str]:
    """The failures section: at most ``shown`` failures, each message escaped and then cut to 1,000 characters,
    while they fit in ``room`` characters; a last line counts the ones left out."""
    if not plan.failures:
        return []
    out = ["#### Failures", ""]
    used = 80  # the header, the blank line after the list and the "and N more" line
    for n, f in enumerate(plan.failures[:shown]):
        where = f" ({_code(str(f.source))})" if f.source else ""
        # One list item whatever the message holds: its lines are joined by <br>, so none can open a fence.
        line = printable(f"- `{f.id}`{where}: ") + "<br>".join(_cut(html_escape(f.message)).splitlines())
        if used + len(line) + 1 > room:
            shown = n
            break
        out.append(line)
        used += len(line) + 1
    if len(plan.failures) > shown:
        out.append(f"- … {'and ' if shown else ''}{len(plan.failures) - shown} more (see the full plan)")
    return [*out, ""]


#: An escape that a cut at the end of the text would break: part of ``&lt;`` or of ``\\u202e``.
_PARTIAL_ESCAPE = re.compile(r"(&#?[a-z0-9]*|\\(x[0-9a-f]?|u[0-9a-f]{0,3})?)$")


def _cut(message: str, most: int = 1000, marker: str = " …") -> str:
    """One escaped message in a comment: at most ``most`` characters (the whole one is in the artifact). Cut after
    escaping, so what is counted is what is shown, and never inside an escape."""
    if len(message) <= most:
        return message
    return _PARTIAL_ESCAPE.sub("", message[:most]) + marker


def _object(e: PlanEntry) -> str:
    notes = [f"from {_code(str(e.source))}"] if e.source else []
    notes += [f"conflict: `{c.field}` is owned by `{c.manager}`" for c in e.conflicts]
    notes += [html_escape(e.note)] if e.note else []
    quoted = [*(f"> {n}" for n in notes), ""] if notes else []
    return printable("\n".join([f"**`{e.id}`** ({e.action.value})", "", *quoted, fence(diff(e), "diff"), ""]))


def _budgeted(plan: Plan, page: Page, head: str, tail: str, room: int) -> str:
    """``head``, the changed objects (whole ones, in order, in ``room`` characters), then ``tail``."""
    changed = plan.changed
    if not changed:
        return f"{head}\nNo changes.\n\n{tail}"
    parts: list[str] = []
    shown = 0
    for stack, mine in by_stack(plan):
        if not mine:
            continue
        counts = ", ".join(f"{sum(1 for e in mine if e.action is a)} to {a.value}" for a in ACTION_ORDER
                           if any(e.action is a for e in mine))  # fmt: skip
        source = plan.source_of(stack)
        at = f" ({html_escape(source.label)})" if source else ""
        opening = f"<details>\n<summary><b>{html_escape(stack)}</b>{at}: {counts}</summary>\n\n"
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


def _charts(plan: Plan | None, shown: int = 10) -> list[str]:
    """The remote charts the plan's objects were rendered from, each at its exact resolved version (footer parts)."""
    found = sorted({e.source.chart for e in plan.entries if e.source and e.source.chart}) if plan else []
    more = [f"{len(found) - shown} more charts"] if len(found) > shown else []
    return [f"chart {_code(c)}" for c in found[:shown]] + more


def _sources(plan: Plan | None) -> list[str]:
    """Each stack whose source is another repository, at the commit planned (footer parts)."""
    return [f"stack {_code(s.stack)} from {_code(s.source)} at {_code(s.revision)} ({html_escape(s.ref)})"
            for s in (plan.sources if plan else ())]  # fmt: skip


def _code(s: str) -> str:
    """Inline code that content cannot break out of (HTML, so backticks in ``s`` are harmless)."""
    return f"<code>{html_escape(s)}</code>"


def html_escape(s: str) -> str:
    """``s`` safe as HTML text (comment bodies mix markdown and HTML), control characters escaped."""
    return printable(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
