"""`plan`: the exact server-side-apply diff against the live cluster (and, with --github, the sticky PR comment)."""

from __future__ import annotations

import sys
from typing import Any

import click

from gitops_job.cli.options import (
    ProgressBar,
    annotate,
    github_options,
    github_options_of,
    kube_options,
    say,
    settings_of,
    source_options,
)
from gitops_job.exitcodes import ExitCode
from gitops_job.reconcile import run as pipeline
from gitops_job.report.json import json_text
from gitops_job.report.markdown import markdown
from gitops_job.report.text import text as plan_text


@click.command(name="plan")
@source_options
@kube_options
@click.option("-o", "--output", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit 3 when there are changes, 0 when there are none.")
@click.option(
    "--drift",
    is_flag=True,
    help="Also report drift: for each object we applied before that the plan would update, each field another "
    "field manager changed, as `spec.replicas: 3 -> 5 (manager: kubectl-edit)` (text and JSON; see docs/drift.md).",
)
@github_options
def plan_cmd(output: str, exit_code: bool, drift: bool, **kw: Any) -> None:
    """Show exactly what would change in the cluster, without changing anything.

    Renders and validates every selected stack, then diffs each object against the live cluster the way a
    server-side apply (field manager gitops-job) would change it: create, update, unchanged, prune. Objects are read
    with one LIST per type; "unchanged" is proven from the live object and its managedFields where possible, and
    everything else is checked by a server-side dry-run. Nothing is written.
    """
    github = github_options_of(kw)
    if drift and (github is not None or output == "markdown"):
        raise click.UsageError("--drift reports in text or JSON: not with --github or -o markdown")
    if github is not None:
        from gitops_job.github import actions

        with ProgressBar() as progress:
            outcome = actions.run_plan(settings_of(**kw), github, progress)
        annotate(outcome)
        if outcome.error is not None:
            raise outcome.error
        if outcome.plan is None:  # a fork's pull request: rendered and validated only
            say(outcome.body, nl=False)
            return
        result = outcome.plan
    else:
        with ProgressBar() as progress:
            _, result = pipeline.run_plan(settings_of(**kw), progress=progress, drift=drift)
    if output == "json":
        click.echo(json_text(result), nl=False)
    elif output == "markdown":
        click.echo(markdown(result), nl=False)
    else:
        click.echo(plan_text(result, color=sys.stdout.isatty()), nl=False)
    if result.failures:
        raise SystemExit(ExitCode.ERROR)
    if exit_code and result.has_changes:
        raise SystemExit(ExitCode.CHANGES)
