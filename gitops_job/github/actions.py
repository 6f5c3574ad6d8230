"""GitHub Actions: what ``--github`` adds to ``plan`` and ``apply``.

On a pull request, ``plan`` posts the plan as one comment per target (found again by a hidden marker and edited in
place), writes the job summary, the step outputs and the full plan as files to upload. A pull request from a fork
gets no cluster credentials: it is rendered and validated only, and its comment says so.

On a push to the default branch, ``apply`` finds the merged pull request, compares the digest of the plan it is
about to apply with the one in that pull request's comment (before any write: it refuses with
``--require-reviewed-plan``, else says loudly that they differ), applies, then updates the comment and sets a
commit status on the merge commit.

Everything GitHub is reached through :mod:`gitops_job.github`; the markdown comes from :mod:`gitops_job.report`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gitops_job import __version__
from gitops_job.errors import GitopsJobError, ReviewError
from gitops_job.github.client import ActionsContext, GitHub, GitHubError, PullRequest
from gitops_job.outcomes import COUNT_ORDER, Action, HealthState, RunResult, counts_text
from gitops_job.reconcile import context as run_context
from gitops_job.reconcile import run as pipeline
from gitops_job.reconcile.digest import digest
from gitops_job.reconcile.results import ApplyResult, Plan, Progress
from gitops_job.render.sandbox import tool_version
from gitops_job.report.json import apply_json, to_json
from gitops_job.report.markdown import Page, html_escape, markdown

ARTIFACT = "the files in the run's artifact (plan.md, plan.json)"
_DIGEST = re.compile(r"<!-- gitops-job:digest (sha256:[0-9a-f]{64}) -->")
_CONTENT = "<!-- gitops-job:content {} -->"


@dataclass(frozen=True)
class Options:
    """The ``--github`` options of ``plan`` and ``apply``."""

    comment: bool = True
    artifact_dir: Path | None = None
    require_reviewed_plan: bool = False


def marker(target: str) -> str:
    """The hidden tag of the one comment per target on a pull request."""
    return f"<!-- gitops-job:comment target={target} -->"


def reviewed_digest(body: str) -> str | None:
    """The plan digest a gitops-job comment carries, or None."""
    found = _DIGEST.search(body)
    return found.group(1) if found else None


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


def run_plan(settings: run_context.Settings, options: Options, progress: Progress | None = None) -> Outcome:
    """Plan (render and validate only on a fork's pull request) and publish it: comment, summary, outputs, files."""
    ctx = context()
    started = time.monotonic()
    plan: Plan | None = None
    error: GitopsJobError | None = None
    notice = ""
    target = _target_name(settings)
    try:
        if ctx.is_fork:
            selection = run_context.select(settings)
            target = selection.target.name
            rendered = run_context.render(selection, settings.vars)  # offline: the cluster is never contacted
            notice = (
                "This pull request comes from a fork, so it gets no cluster credentials: gitops-job rendered and "
                f"validated {len(rendered.objects)} objects in {len(selection.stacks)} stack(s) but did not compare "
                "them with the cluster. The plan against the cluster appears when a maintainer's branch runs it."
            )
        else:
            _, plan = pipeline.run_plan(settings, progress)
    except GitopsJobError as e:
        error = e
    target = plan.target if plan else target
    page = Page(
        title="plan",
        target=target,
        marker=marker(target),
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
        warnings += _comment(ctx, number, target, body, fork=ctx.is_fork)
    return Outcome(plan, error, body, tuple(warnings))


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


def _comment(ctx: ActionsContext, number: int, target: str, body: str, *, fork: bool) -> list[str]:
    gh = _client(ctx)
    if gh is None:
        return ["no GITHUB_TOKEN: the pull-request comment was not posted (the job summary has the plan)"]
    content = body.split("\n---\n<sub>", maxsplit=1)[0]  # what matters; the footer changes with every run
    key = _CONTENT.format(_hash(content))
    try:
        with gh:
            gh.upsert_comment(number, marker(target), f"{body.rstrip()}\n{key}\n", same=key)
    except GitHubError as e:
        if fork:  # a fork's token is read-only: expected, the summary still has the result
            return [f"the comment could not be posted (a fork's token is read-only): {e}"]
        raise
    return []


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
    """Step outputs: ``has-changes``, ``created``, ``updated``, ``pruned`` (planned, or ``done`` by apply), digest."""
    if ctx.output is None:
        return
    if done is not None:
        counts = {k: done.get(k, 0) for k in ("created", "updated", "pruned")}
    else:
        counts = {k: plan.count(a) if plan else 0 for k, a in
                  (("created", Action.CREATE), ("updated", Action.UPDATE), ("pruned", Action.PRUNE))}  # fmt: skip
    values = {
        "has-changes": "true" if plan is not None and plan.has_changes else "false",
        **{k: str(v) for k, v in counts.items()},
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
) -> Outcome:
    """Apply, checking first that the plan is the one reviewed on the merged pull request; then report back."""
    ctx = context()
    started = time.monotonic()
    gh = _client(ctx)
    try:
        return _apply(ctx, gh, started, settings, apply_options, options, progress)
    finally:
        if gh is not None:
            gh.close()


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
    pr = _merged_pull(ctx, gh, warnings)
    target = _target_name(settings)
    comment = gh.find_comment(pr.number, marker(target)) if gh and pr else None
    reviewed = reviewed_digest(comment.body) if comment else None
    seen: dict[str, str] = {}

    def review(plan: Plan) -> None:
        seen["digest"] = now = digest(plan)
        if reviewed == now:
            return
        why = (f"the plan to apply ({now}) is not the plan reviewed on #{pr.number} ({reviewed})" if reviewed and pr
               else "no reviewed plan was found for this commit")  # fmt: skip
        seen["moved"] = why
        if options.require_reviewed_plan:
            raise ReviewError(f"{why}; --require-reviewed-plan: nothing was written")

    result: ApplyResult | None = None
    error: GitopsJobError | None = None
    try:
        result = pipeline.run_apply(settings, replace(apply_options, review=review), progress)
    except GitopsJobError as e:
        error = e
    if "moved" in seen:
        warnings.append(seen["moved"])
    plan = result.plan if result else None
    page = Page(
        title="apply",
        target=result.target if result else target,
        counts=_done_line(result) if result else "",
        marker=marker(target),
        error=_failure_text(error, "Nothing was applied.") if error else _stack_errors(result),
        sections=_apply_sections(result, seen.get("moved", ""), reviewed),
        # The comment keeps the digest of the plan reviewed on it (a later run compares with that one).
        footer=[*_footer(ctx, ctx.sha, started), *([f"applied plan `{seen['digest']}`"] if "digest" in seen else [])],
        digest=reviewed or "",
        digest_label="reviewed plan",
        artifact=ARTIFACT,
    )
    body = markdown(plan, page)
    applied = json.loads(apply_json(result)) if result else None
    _files(options, "apply", plan, page, seen.get("digest", ""), extra=applied)
    _summary(ctx, body)
    _outputs(ctx, plan, seen.get("digest", ""), done=_done(result) if result else None)
    if gh is not None:
        if pr is not None and options.comment:
            gh.upsert_comment(pr.number, marker(target), body)
        ok = result is not None and result.ok
        description = f"{target}: " + (_done_line(result) if result else str(error))
        gh.set_status(ctx.sha, "success" if ok else "failure", description, f"gitops-job/{target}", ctx.run_url)
    return Outcome(plan, error, body, tuple(warnings), result)


def _merged_pull(ctx: ActionsContext, gh: GitHub | None, warnings: list[str]) -> PullRequest | None:
    if gh is None:
        warnings.append("no GITHUB_TOKEN: the reviewed plan cannot be checked and nothing is reported on GitHub")
        return None
    if ctx.event_name != "push":
        return None
    pr = gh.merged_pull_for(ctx.sha)
    if pr is None:
        warnings.append(f"{ctx.sha[:12]} is not the merge commit of a pull request: no reviewed plan to compare with")
    return pr


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


def _apply_sections(result: ApplyResult | None, moved: str, reviewed: str | None) -> list[str]:
    sections = []
    if moved:
        sections.append(f"> [!CAUTION]\n> **Not the reviewed plan:** {html_escape(moved)}.")
    elif reviewed:
        sections.append(f"Applied exactly the plan reviewed here (`{reviewed}`).")
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
