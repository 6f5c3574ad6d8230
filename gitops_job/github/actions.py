"""GitHub Actions: what ``--github`` adds to ``plan`` and ``apply``.

On a pull request, ``plan`` posts the plan as one comment per target and config file (found again by a hidden marker
among the comments of the token's own identity, and edited in place), writes the job summary, the step outputs and
the full plan as files to upload. A pull request from a fork, and one Dependabot runs, gets no cluster credentials:
it is rendered and validated only, its comment says so and its outputs say that nothing was compared.

On a push to the default branch, ``apply`` finds the merged pull requests (one, or a merge queue's batch), compares
the digest of every plan it is about to apply (the preflight's, and a stack's plan made again under its lock) with
the digests in those pull requests' comments (before any write: it refuses with ``--require-reviewed-plan``, else
says loudly that they differ), applies, then updates the comments and sets a commit status on the merge commit;
once it has applied, a GitHub error there is a warning, never the run's failure.

Everything GitHub is reached through :mod:`gitops_job.github`; the markdown comes from :mod:`gitops_job.report`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gitops_job import __version__
from gitops_job.config.load import CONFIG_FILE
from gitops_job.errors import GitopsJobError, ReviewError
from gitops_job.git import is_sha
from gitops_job.github.client import ActionsContext, GitHub, GitHubError, PullRequest
from gitops_job.outcomes import COUNT_ORDER, Action, HealthState, RunResult, counts_text
from gitops_job.reconcile import context as run_context
from gitops_job.reconcile import run as pipeline
from gitops_job.reconcile.digest import digest
from gitops_job.reconcile.results import ApplyResult, Plan, Progress
from gitops_job.render.sandbox import tool_version
from gitops_job.report.json import apply_json, to_json
from gitops_job.report.markdown import Page, html_escape, images_section, markdown

ARTIFACT = "the files in the run's artifact (plan.md, plan.json)"
_DIGEST = re.compile(r"<!-- gitops-job:digest (sha256:[0-9a-f]{64}) -->")
_CONTENT = "<!-- gitops-job:content {} -->"
#: The line of a plan comment that lets ``publish`` leave it alone when nothing changed: drop it, and the next plan
#: run edits the comment whatever it shows (``github.drift`` drops it when it marks a plan stale).
CONTENT_KEY = re.compile(r"<!-- gitops-job:content sha256:[0-9a-f]{64} -->")
_FOOTER = "\n---\n<sub>"  # markdown's footer: the separator, then the <sub> line
#: How ``plan``/``apply`` reach GitHub: the token from the environment by default; tests pass a client of their own.
Connect = Callable[[ActionsContext], GitHub | None]


@dataclass(frozen=True)
class Options:
    """The ``--github`` options of ``plan`` and ``apply``."""

    comment: bool = True
    artifact_dir: Path | None = None
    require_reviewed_plan: bool = False


def marker(target: str, config: str = CONFIG_FILE) -> str:
    """The hidden tag of the one comment per target and config file on a pull request (two config files with a
    target of the same name get a comment each)."""
    return f"<!-- gitops-job:comment target={quote(target)} config={quote(config)} -->"


def reviewed_digest(body: str) -> str | None:
    """The plan digest of a gitops-job comment, read from its footer only, or None.

    The footer is the end of the body, after the last separator: the text of a manifest shown in a diff above it
    can plant something that looks like a digest, but never after our footer."""
    _, found, tail = body.rpartition(_FOOTER)
    if not found:
        return None
    for line in tail.splitlines()[1:]:  # after the <sub>…</sub> line
        if m := _DIGEST.fullmatch(line.strip()):
            return m.group(1)
    return None


def config_name(settings: run_context.Settings) -> str:
    """The config file as the marker names it: its path in the repository (``gitops.yaml`` by default)."""
    if settings.config_file is None:
        return CONFIG_FILE
    root, file = settings.repo.resolve(), settings.config_file.resolve()
    return file.relative_to(root).as_posix() if file.is_relative_to(root) else file.name


def context(env: Mapping[str, str] = os.environ) -> ActionsContext:
    ctx = ActionsContext.from_env(env)
    if ctx is None:
        raise GitHubError("--github works inside a GitHub Actions job (GITHUB_ACTIONS=true); drop it to run elsewhere")
    return ctx


def _client(ctx: ActionsContext, env: Mapping[str, str] = os.environ) -> GitHub | None:
    token = env.get("GITHUB_TOKEN") or env.get("INPUT_GITHUB_TOKEN")
    return GitHub(ctx.api_url, token, ctx.repository) if token else None


# -- plan --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What a ``--github`` run did, for the CLI to print and turn into an exit code."""

    plan: Plan | None
    error: GitopsJobError | None
    body: str  # the comment / summary markdown
    warnings: tuple[str, ...] = ()
    result: ApplyResult | None = None


def run_plan(
    settings: run_context.Settings,
    options: Options,
    progress: Progress | None = None,
    *,
    connect: Connect | None = None,
) -> Outcome:
    """Plan (render and validate only on a fork's or Dependabot's pull request) and publish it: comment, summary,
    outputs, files."""
    ctx = context()
    started = time.monotonic()
    plan: Plan | None = None
    error: GitopsJobError | None = None
    notice = ""
    target = _target_name(settings)
    render_only = ctx.is_fork or ctx.is_dependabot
    try:
        if render_only:
            selection = run_context.select(settings)
            target = selection.target.name
            # offline: the cluster is never contacted, and a fork's pull request fetches no remote chart
            rendered = run_context.render(selection, settings.vars, fetch=not ctx.is_fork, on_note=settings.on_note)
            who = (
                "comes from a fork, so it gets no cluster credentials"
                if ctx.is_fork
                else "runs as Dependabot, whose runs get a read-only token and no Actions secrets (so no cluster "
                "credentials)"
            )
            notice = (
                f"This pull request {who}: gitops-job rendered and validated {len(rendered.objects)} objects in "
                f"{len(selection.stacks) - len(rendered.unfetched)} stack(s) but did not compare them with the "
                "cluster. The plan against the "
                "cluster appears when a maintainer's branch runs it."
            ) + "".join(f"\n\nStack {name} is not planned: {why}" for name, why in rendered.unfetched.items())
        else:
            _, plan = pipeline.run_plan(settings, progress)
    except GitopsJobError as e:
        error = e
    target = plan.target if plan else target
    page = Page(
        title="plan",
        target=target,
        marker=marker(target, config_name(settings)),
        sections=[s for s in (_images(settings, ctx),) if s],
        notice=notice,
        error=_failure_text(error, "The plan could not be computed, so nothing below is a plan."),
        footer=_footer(ctx, ctx.head_sha, started),
        digest=digest(plan) if plan and not plan.failures else "",
        artifact=ARTIFACT,
    )
    body = markdown(plan, page)
    _files(options, "plan", plan, page, page.digest)
    _summary(ctx, body)
    _outputs(ctx, plan, page.digest)
    warnings: list[str] = []
    number = ctx.pull_request_number
    if options.comment and number is not None:
        gh = (connect or _client)(ctx)
        if gh is None:
            warnings.append("no GITHUB_TOKEN: the pull-request comment was not posted (the job summary has the plan)")
        else:
            with gh:
                try:
                    publish(gh, number, page.marker, body, page.digest)
                except GitHubError as e:
                    if not render_only:
                        raise
                    # a fork's or Dependabot's token is read-only: expected, the summary still has the result
                    warnings.append(f"the comment could not be posted (this run's token is read-only): {e}")
    return Outcome(plan, error, body, tuple(warnings))


def _images(settings: run_context.Settings, ctx: ActionsContext) -> str:
    """The "images" block of a pull request's plan: the policies and markers it changes against its base."""
    pull = ctx.event.get("pull_request") if ctx.pull_request_number is not None else None
    base = ((pull or {}).get("base") or {}).get("sha") if isinstance(pull, dict) else None
    if not isinstance(base, str) or not is_sha(base):
        return ""
    from gitops_job.images.update import review  # here: only a pull request's plan compares images

    try:
        return images_section(review(settings.repo.resolve(), base, settings.config_file))
    except GitopsJobError as e:
        return f"**images**: not compared with the base ({e})"


def _target_name(settings: run_context.Settings) -> str:
    """The target's name for the comment's marker, even when the config is broken (then the one asked for)."""
    try:
        return run_context.select(settings).target.name
    except GitopsJobError:
        return settings.target or "default"


def _failure_text(error: GitopsJobError | None, consequence: str) -> str:
    if error is None:
        return ""
    unreachable = error.phase == "cluster"
    lead = "The cluster was unreachable. " if unreachable else ""
    return f"{lead}{consequence}\n{error}"


def publish(gh: GitHub, number: int, mark: str, body: str, plan_digest: str) -> None:
    """Post or edit the plan comment on pull request ``number``: left alone when neither what it shows nor the plan's
    digest changed (the footer's run link and timing change with every run), else edited, so that re-running the
    plan always refreshes a stale digest."""
    content = body.rpartition(_FOOTER)[0] or body  # what matters; the footer changes with every run
    key = _CONTENT.format(_hash(f"{content}\n{plan_digest}"))
    gh.upsert_comment(number, mark, f"{body.rstrip()}\n{key}\n", same=key)


def _hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _footer(ctx: ActionsContext, head: str, started: float) -> list[str]:
    versions = [f"gitops-job {__version__}"]
    versions += [f"{tool} {v}" for tool in ("kustomize", "helm") if (v := tool_version(tool))]
    return [f"head `{head[:12]}`", *versions, f"{time.monotonic() - started:.1f} s", f"[run]({ctx.run_url})"]


def _files(options: Options, name: str, plan: Plan | None, page: Page, plan_digest: str, extra: Any = None) -> None:
    """The whole plan, never truncated: ``<name>.md`` and ``<name>.json`` in the artifact directory."""
    if options.artifact_dir is None:
        return
    options.artifact_dir.mkdir(parents=True, exist_ok=True)
    full = replace(page, marker="", limit=10**12)
    (options.artifact_dir / f"{name}.md").write_text(markdown(plan, full), encoding="utf-8")
    doc: dict[str, Any] = to_json(plan) if plan else {"version": 1, "target": page.target}
    doc["digest"] = plan_digest or None
    doc["error"] = page.error or None
    if extra is not None:
        doc["apply"] = extra
    (options.artifact_dir / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _summary(ctx: ActionsContext, body: str) -> None:
    if ctx.step_summary is not None:
        with ctx.step_summary.open("a", encoding="utf-8") as f:
            f.write(body + "\n")


def _outputs(ctx: ActionsContext, plan: Plan | None, plan_digest: str, done: Mapping[str, int] | None = None) -> None:
    """Step outputs: ``compared``, ``has-changes``, ``created``, ``updated``, ``pruned`` (planned, or ``done`` by
    apply), digest. Without a plan (a fork's render-only run, a failed run) nothing was compared with the cluster:
    ``compared=false`` and the others empty, never "no changes"."""
    if ctx.output is None:
        return
    names = ("created", "updated", "pruned")
    if done is not None:
        counts = {k: str(done.get(k, 0)) for k in names}
    elif plan is not None:
        counts = {
            k: str(plan.count(a)) for k, a in zip(names, (Action.CREATE, Action.UPDATE, Action.PRUNE), strict=True)
        }
    else:
        counts = dict.fromkeys(names, "")
    values = {
        "compared": "true" if plan is not None else "false",
        "has-changes": "" if plan is None else "true" if plan.has_changes else "false",
        **counts,
        "plan-digest": plan_digest,
    }
    with ctx.output.open("a", encoding="utf-8") as f:
        f.writelines(f"{k}={v}\n" for k, v in values.items())


# -- apply -------------------------------------------------------------------------------------------------------------
def run_apply(
    settings: run_context.Settings,
    apply_options: pipeline.ApplyOptions,
    options: Options,
    progress: Progress | None = None,
    *,
    connect: Connect | None = None,
) -> Outcome:
    """Apply, checking first that the plan is the one reviewed on the merged pull request; then report back."""
    ctx = context()
    started = time.monotonic()
    gh = (connect or _client)(ctx)
    try:
        return _apply(ctx, gh, started, settings, apply_options, options, progress)
    finally:
        if gh is not None:
            gh.close()


@dataclass(frozen=True)
class _Reviewed:
    """A merged pull request of this push, and the plan digest its comment carries (None: no reviewed plan)."""

    pull: PullRequest
    digest: str | None


class _Check:
    """The reviewed-plan check, called with every plan about to be applied: the preflight's, then any plan a stack
    makes again under its lock (another apply changed the stack since the preflight). Remembers what it saw."""

    def __init__(self, reviews: tuple[_Reviewed, ...], require: bool) -> None:
        self.reviews, self.require = reviews, require
        self.applied = ""  # the digest of the last plan checked
        self.moved = ""  # why the first plan that was not a reviewed one was not
        self.calls = 0

    def __call__(self, plan: Plan) -> None:
        self.applied = now = digest(plan)
        self.calls += 1
        if any(r.digest == now for r in self.reviews):
            return
        known = [f"#{r.pull.number} ({r.digest})" for r in self.reviews if r.digest]
        why = (f"the plan to apply ({now}) is not the plan reviewed on {' or '.join(known)}" if known
               else "no reviewed plan was found for this commit")  # fmt: skip
        if self.calls > 1:
            why += " (it was made again under a stack's lock: another apply changed the stack since the preflight)"
        self.moved = self.moved or why
        if self.require:
            written = "this stack writes nothing" if self.calls > 1 else "nothing was written"
            raise ReviewError(f"{why}; --require-reviewed-plan: {written}")


def _apply(
    ctx: ActionsContext,
    gh: GitHub | None,
    started: float,
    settings: run_context.Settings,
    apply_options: pipeline.ApplyOptions,
    options: Options,
    progress: Progress | None,
) -> Outcome:
    warnings: list[str] = []
    target = _target_name(settings)
    mark = marker(target, config_name(settings))
    reviews: list[_Reviewed] = []
    for pr in _merged_pulls(ctx, gh, warnings):
        assert gh is not None
        comment = gh.find_comment(pr.number, mark)
        reviews.append(_Reviewed(pr, reviewed_digest(comment.body) if comment else None))
    check = _Check(tuple(reviews), options.require_reviewed_plan)
    result: ApplyResult | None = None
    error: GitopsJobError | None = None
    try:
        result = pipeline.run_apply(settings, replace(apply_options, review=check), progress)
    except GitopsJobError as e:
        error = e
    if check.moved:
        warnings.append(check.moved)
    plan = result.plan if result else None
    applied_digest = check.applied

    def page(reviewed: _Reviewed | None) -> Page:
        own = reviewed.digest if reviewed else None
        return Page(
            title="apply",
            target=result.target if result else target,
            counts=_done_line(result) if result else "",
            marker=mark,
            error=_failure_text(error, "Nothing was applied.") if error else _stack_errors(result),
            sections=_apply_sections(result, check.moved, reviewed, reviews, applied_digest),
            # The comment keeps the digest of the plan reviewed on it (a later run compares with that one).
            footer=[*_footer(ctx, ctx.sha, started), *([f"applied plan `{applied_digest}`"] if applied_digest else [])],
            digest=own or "",
            digest_label="reviewed plan",
            artifact=ARTIFACT,
        )

    first = page(reviews[-1] if reviews else None)  # the pushed head's pull request: the summary and the files
    body = markdown(plan, first)
    applied = json.loads(apply_json(result)) if result else None
    _files(options, "apply", plan, first, applied_digest, extra=applied)
    _summary(ctx, body)
    _outputs(ctx, plan, applied_digest, done=_done(result) if result else None)
    if gh is not None:
        # What was applied is applied: from here on a GitHub error is a warning (the apply report is still printed
        # and the exit code is the apply's), and the status is set even when a comment could not be.
        if options.comment:
            for r in reviews:
                try:
                    gh.upsert_comment(r.pull.number, mark, markdown(plan, page(r)))
                except GitHubError as e:
                    warnings.append(f"the apply is done, but its result could not be reported on #{r.pull.number}: {e}")
        ok = result is not None and result.ok
        description = f"{target}: " + (_done_line(result) if result else str(error))
        try:
            gh.set_status(ctx.sha, "success" if ok else "failure", description, f"gitops-job/{target}", ctx.run_url)
        except GitHubError as e:
            warnings.append(f"the apply is done, but its commit status could not be set: {e}")
    return Outcome(plan, error, body, tuple(warnings), result)


def _merged_pulls(ctx: ActionsContext, gh: GitHub | None, warnings: list[str]) -> tuple[PullRequest, ...]:
    if gh is None:
        warnings.append("no GITHUB_TOKEN: the reviewed plan cannot be checked and nothing is reported on GitHub")
        return ()
    if ctx.event_name != "push":
        return ()
    pulls = gh.merged_pulls(ctx.pushed_commits)
    if not pulls:
        warnings.append(f"{ctx.sha[:12]} is not the merge commit of a pull request: no reviewed plan to compare with")
    return pulls


def _done(result: ApplyResult) -> dict[str, int]:
    total: dict[str, int] = {}
    for run in result.stacks:
        for k, n in run.counts.items():
            total[k] = total.get(k, 0) + n
    return total


def _done_line(result: ApplyResult) -> str:
    done = _done(result)
    parts = [f"{done[k]} {k}" for k in COUNT_ORDER if done.get(k)]
    return f"applied {result.revision[:12]}: " + (", ".join(parts) or "nothing to do")


def _stack_errors(result: ApplyResult | None) -> str:
    if result is None or result.ok:
        return ""
    return "\n".join(f"stack {r.stack}: {r.error}" for r in result.stacks if r.error)


def _apply_sections(
    result: ApplyResult | None,
    moved: str,
    here: _Reviewed | None,
    reviews: Sequence[_Reviewed],
    applied: str,
) -> list[str]:
    sections = []
    if moved:
        sections.append(f"> [!CAUTION]\n> **Not the reviewed plan:** {html_escape(moved)}.")
    elif here is not None and here.digest == applied:
        sections.append(f"Applied exactly the plan reviewed here (`{applied}`).")
    elif applied and (on := [f"#{r.pull.number}" for r in reviews if r.digest == applied]):
        sections.append(
            f"Merged in one push with {', '.join(on)}: applied exactly the plan reviewed there (`{applied}`)."
        )
    if result is not None:
        rows = ["| stack | result | done | health |", "|---|---|---|---|"]
        for run in result.stacks:
            state = "in sync" if run.in_sync and run.result is RunResult.SUCCEEDED else run.result.value
            done = counts_text(run.counts)
            unhealthy = [h for h in run.health.values() if h.state is not HealthState.CURRENT]
            health = f"{len(run.health) - len(unhealthy)}/{len(run.health)} healthy" if run.health else "not waited"
            rows.append(f"| {html_escape(run.stack)} | {state} | {done} | {health} |")
        sections.append("\n".join(rows))
    return sections
