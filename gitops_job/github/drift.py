"""Drift on GitHub (``reconcile``): one sticky issue per target, and a line on the plan comment of every open pull
request whose plan the drift made stale.

The core is pure and tested by tables: :func:`observed` (what a run saw), :func:`issue_step` (open, edit, close or
leave the issue, with its body or final comment) and :func:`marked_stale` (a plan comment with the stale line added
or replaced). :func:`publish` drives :class:`~gitops_job.github.client.GitHub` with them, and :func:`report` is what
the CLI calls: it never raises, a GitHub failure is a warning. Every text comes from results, masked already.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote

from gitops_job.errors import GitopsJobError
from gitops_job.github.actions import CONTENT_KEY, marker, reviewed_digest
from gitops_job.github.client import Comment, GitHub, GitHubError, RetryPolicy
from gitops_job.identity import ObjectId
from gitops_job.outcomes import RunResult
from gitops_job.reconcile.pull import Drift, Reconciled
from gitops_job.reconcile.results import DriftFinding
from gitops_job.report.markdown import COMMENT_LIMIT, html_escape

#: The hidden tag of a stale-plan line: ``<!-- gitops-job:stale planned=2026-12-03T14:51:29+00:00 -->``.
_STALE = re.compile(r"<!-- gitops-job:stale planned=(\S*) -->")
#: Room kept free in an issue body for the line saying objects were left out.
_RESERVE = 600


def issue_marker(target: str) -> str:
    """The hidden tag by which a target's drift issue is found again (the title alone could be anyone's)."""
    return f"<!-- gitops-job:drift target={quote(target)} -->"


def closed_marker(target: str) -> str:
    """The hidden tag of the final comment on a drift issue (never posted twice)."""
    return f"<!-- gitops-job:drift-gone target={quote(target)} -->"


def issue_title(target: str) -> str:
    return f"Drift on {target}"


# -- what a run saw ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Observed:
    """What one ``reconcile`` run saw of drift on its target."""

    target: str
    revision: str
    mode: Drift
    drifted: tuple[DriftFinding, ...] = ()  # drifted still, after the run
    #: Whether "nothing drifted" can be believed: the drift was looked at in every object (no plan failure), or a
    #: ``correct`` run succeeded (what it applied is what git says).
    complete: bool = False
    corrected: tuple[DriftFinding, ...] = ()  # what this run corrected (``correct``, when its result says)
    failure: str = ""  # ``correct``: why the run did not succeed


def observed(done: Reconciled) -> Observed:
    """What ``done`` says about drift. ``report``: the plan's drift. ``correct``: a run that succeeded corrected every
    drift (and its plan names which, when it looked); a stack that failed keeps the drift its plan found in it."""
    rev = done.source.revision
    if done.plan is not None:
        p = done.plan
        return Observed(p.target, rev, done.drift, p.drift, complete=p.drift_checked and not p.failures)
    result = done.applied
    assert result is not None
    plan = result.plan
    found = plan.drift if plan is not None and plan.drift_checked else ()
    stack_of = {e.id: e.stack for e in plan.entries} if plan is not None else {}
    failed = {r.stack for r in result.stacks if r.result is not RunResult.SUCCEEDED}
    left = tuple(f for f in found if stack_of.get(f.id) in failed)
    fixed = tuple(f for f in found if stack_of.get(f.id) not in failed)
    why = "; ".join(f"stack {r.stack}: {r.error}" for r in result.stacks if r.error)
    known = plan is not None and plan.drift_checked and not plan.failures
    unseen = any(r.held for r in result.stacks)  # a suspended or off-git stack was not looked at
    return Observed(result.target, rev, done.drift, left, complete=(result.ok or known) and not unseen,
                    corrected=fixed, failure=why)  # fmt: skip


# -- the issue ---------------------------------------------------------------------------------------------------------
class Step(Enum):
    OPEN = "opened"
    EDIT = "edited"
    KEEP = "unchanged"  # open, and its body is what it would be
    CLOSE = "closed"
    NONE = "none"  # no drift and no issue, or nothing known


@dataclass(frozen=True)
class IssueStep:
    step: Step
    body: str = ""  # OPEN, EDIT: the whole body, marker first
    comment: str = ""  # CLOSE: the final comment


def issue_step(seen: Observed, existing: str | None) -> IssueStep:
    """What to do with the target's drift issue, given the body of the open one (None: there is none)."""
    if seen.drifted:
        body = issue_body(seen)
        if existing is None:
            return IssueStep(Step.OPEN, body)
        return IssueStep(Step.KEEP if existing.strip() == body.strip() else Step.EDIT, body)
    if existing is not None and seen.complete:
        return IssueStep(Step.CLOSE, comment=closing_comment(seen))
    return IssueStep(Step.NONE)


def _code(text: str) -> str:
    """Inline code for a table cell: HTML, so that backticks and ``|`` in ``text`` cannot end it."""
    return "<code>" + html_escape(text).replace("|", "&#124;") + "</code>"


def by_object(findings: Sequence[DriftFinding]) -> list[tuple[ObjectId, list[DriftFinding]]]:
    grouped: dict[ObjectId, list[DriftFinding]] = {}
    for f in findings:
        grouped.setdefault(f.id, []).append(f)
    return list(grouped.items())


def issue_body(seen: Observed, limit: int = COMMENT_LIMIT) -> str:
    """The issue's body: what drifted, one table per object (field, what git says → what is live, who changed it),
    within GitHub's size limit. The same drift at the same commit gives the same body (no times, no run links), so
    a run that finds nothing new leaves the issue alone."""
    objects = by_object(seen.drifted)
    rev = seen.revision[:12]
    if seen.mode is Drift.REPORT:
        what = ("`gitops-job reconcile --drift report` leaves it as it is: undo the change, or set it back to what git "
                "says with `gitops-job reconcile --drift correct` (it takes back the drifted fields).")  # fmt: skip
    else:
        what = "`gitops-job reconcile --drift correct` could not set it back"
        what += f": {html_escape(seen.failure)}" if seen.failure else "."
    head = [
        issue_marker(seen.target),
        f"### Drift on `{html_escape(seen.target)}`",
        "",
        f"{len(objects)} object(s) of target `{html_escape(seen.target)}` differ from git at commit `{rev}`: changed "
        f"in the cluster by someone or something other than gitops-job. {what}",
        "",
        "This issue is edited while the drift lasts and closed when it is gone.",
        "",
    ]
    used = sum(len(line) + 1 for line in head)
    parts: list[str] = []
    shown = 0
    for oid, findings in objects:
        rows = [f"#### {_code(str(oid))}", "", "| field | in git → live | changed by |", "|---|---|---|"]
        rows += [f"| {_code(f.path)} | {_code(f.before)} → {_code(f.after)} | {_code(f.manager)} |" for f in findings]
        block = "\n".join([*rows, ""])
        if used + len(block) + 1 > limit - _RESERVE:
            break
        parts.append(block)
        used += len(block) + 1
        shown += 1
    if shown < len(objects):
        parts.append(f"… and {len(objects) - shown} more object(s): `gitops-job reconcile --drift report -o json` "
                     "lists every field.")  # fmt: skip
    return "\n".join([*head, *parts]).rstrip() + "\n"


def closing_comment(seen: Observed) -> str:
    rev = seen.revision[:12]
    if seen.mode is Drift.CORRECT and seen.corrected:
        lines = [f"Drift gone at `{rev}`; corrected by this run (`gitops-job reconcile --drift correct`):", ""]
        for oid, findings in by_object(seen.corrected):
            fields = ", ".join(f"{_code(f.path)} {_code(f.after)} → {_code(f.before)}" for f in findings)
            lines.append(f"- {_code(str(oid))}: {fields}")
        return "\n".join(lines) + "\n"
    if seen.mode is Drift.CORRECT:
        return f"Drift gone at `{rev}`; corrected by this run (`gitops-job reconcile --drift correct` succeeded).\n"
    return f"No longer drifted at `{rev}`: the live state matches git again.\n"


# -- the stale-plan line -----------------------------------------------------------------------------------------------
def _time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def moved_since(findings: Sequence[DriftFinding], planned: datetime | None) -> tuple[ObjectId, ...]:
    """The objects whose drift may be newer than a plan made at ``planned``: changed at or after it, or at a time
    ``managedFields`` do not tell (a removed field), or any when the plan's time is unknown."""
    moved = []
    for f in findings:
        at = _time(f.at) if f.at else None
        if planned is None or at is None or at >= planned:
            moved.append(f.id)
    return tuple(dict.fromkeys(moved))


def stale_line(
    target: str, revision: str, objects: Sequence[ObjectId], planned: datetime | None, shown: int = 10
) -> str:
    ids = ", ".join(_code(str(oid)) for oid in objects[:shown])
    ids += f" and {len(objects) - shown} more" if len(objects) > shown else ""
    when = planned.isoformat() if planned is not None else ""
    return (
        f"> ⚠️ **Stale plan:** the live state of `{html_escape(target)}` moved since this plan was made (drift on "
        f"{ids}, seen by `gitops-job reconcile` at `{revision[:12]}`): re-run the plan (re-run this pull request's "
        f"workflow) to see what merging would do now. <!-- gitops-job:stale planned={when} -->"
    )


def marked_stale(comment: Comment, target: str, revision: str, findings: Sequence[DriftFinding]) -> str | None:
    """The plan comment with one stale line (replacing the one there was), or None to leave it alone: no plan in
    it (a fork's render-only comment, a failed plan), or no drift newer than the plan.

    The plan's time is the one its stale line recorded, else when the comment was last written. The comment's
    content key goes: the next plan run edits the comment (dropping the line) even when the plan it shows is the same.
    """
    body = comment.body
    if reviewed_digest(body) is None:
        return None
    lines = body.split("\n")
    at = next((i for i, line in enumerate(lines) if _STALE.search(line)), None)
    planned = comment.updated
    if at is not None:
        m = _STALE.search(lines[at])
        assert m is not None
        planned = _time(m.group(1)) if m.group(1) else None
    moved = moved_since(findings, planned)
    if not moved:
        return None
    line = stale_line(target, revision, moved, planned)
    if at is not None:
        if lines[at] == line:
            return None
        lines[at] = line
    else:
        title = next((i for i, line in enumerate(lines) if line.startswith("### ")), 0)
        lines[title + 1 : title + 1] = ["", line]
    return "\n".join(line for line in lines if not CONTENT_KEY.fullmatch(line.strip()))


# -- publishing --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    """What :func:`publish` did on GitHub; ``warnings`` name what it could not do (never a failed run)."""

    repository: str
    issue: Step = Step.NONE
    issue_url: str = ""
    stale: tuple[int, ...] = ()  # the pull requests whose plan comment got (or changed) its stale line
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """What the CLI says on stderr."""
        out = []
        if self.issue is not Step.NONE:
            out.append(f"github: drift issue {self.issue.value}: {self.issue_url}")
        if self.stale:
            out.append(f"github: stale-plan line on pull request(s) {', '.join(f'#{n}' for n in self.stale)}")
        return out + [f"warning: github: {w}; the reconcile's result is unchanged" for w in self.warnings]

    def json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "issue": None if self.issue is Step.NONE else {"action": self.issue.value, "url": self.issue_url},
            "stalePulls": list(self.stale),
            "warnings": list(self.warnings),
        }


def publish(gh: GitHub, seen: Observed) -> Published:
    """Keep the target's drift issue and the open pull requests' plan comments up to date; a GitHub error is a
    warning (the issue and the pull requests are tried each on their own)."""
    warnings: list[str] = []
    step, url = Step.NONE, ""
    try:
        step, url = _issue(gh, seen)
    except GitHubError as e:
        warnings.append(f"the drift issue of target {seen.target} was not updated: {e}")
    stale: list[int] = []
    if seen.drifted:
        try:
            _stale(gh, seen, stale)
        except GitHubError as e:
            warnings.append(f"the open pull requests' plans were not all marked stale: {e}")
    return Published(gh.repository, step, url, tuple(stale), tuple(warnings))


def _issue(gh: GitHub, seen: Observed) -> tuple[Step, str]:
    mark = issue_marker(seen.target)
    existing = gh.find_issue(mark)
    todo = issue_step(seen, existing.body if existing else None)
    if todo.step is Step.OPEN:
        return todo.step, gh.open_issue(issue_title(seen.target), mark, todo.body).url
    assert todo.step is Step.NONE or existing is not None
    if todo.step is Step.EDIT and existing is not None:
        gh.edit_issue(existing.number, todo.body)
    if todo.step is Step.CLOSE and existing is not None:
        gh.close_issue(existing.number, closed_marker(seen.target), todo.comment)
    return todo.step, existing.url if existing is not None else ""


def _stale(gh: GitHub, seen: Observed, stale: list[int]) -> None:
    """One listing of the open pull requests; on each, our plan comment for this target, if any, gets its line."""
    mark = marker(seen.target)

    def edit(comment: Comment) -> str | None:
        return marked_stale(comment, seen.target, seen.revision, seen.drifted)

    for pr in gh.open_pulls():
        done = gh.edit_comment(pr.number, mark, edit)
        if done is not None and done.action == "updated":
            stale.append(pr.number)


#: Makes the client from ``(api_url, token, repository)``; tests pass their own.
Connect = Callable[[str, str, str], GitHub]


def connect(api_url: str, token: str, repository: str) -> GitHub:
    """The client ``reconcile`` reports with: few retries (a 5xx costs seconds, not minutes, of a scheduled run)."""
    return GitHub(api_url, token, repository, retry=RetryPolicy(attempts=2))


def report(done: Reconciled, repository: str, token: str | None, api_url: str, make: Connect = connect) -> Published:
    """Report ``done``'s drift on GitHub; never raises: whatever fails is a warning of the result."""
    if not token:
        return Published(
            repository, warnings=("no token (--github-token-file or $GITHUB_TOKEN): nothing was reported",)
        )
    try:
        seen = observed(done)
        with make(api_url, token, repository) as gh:
            return publish(gh, seen)
    except GitopsJobError as e:
        return Published(repository, warnings=(str(e),))
    except Exception as e:  # GitHub reporting never fails the run: whatever went wrong is a warning
        text = f"unexpected {type(e).__name__}: {e}".replace(token, "***")
        return Published(repository, warnings=(text,))
