"""What the commands share: the option groups (source, cluster, GitHub, Pushgateway), settings from them, how a
line is said, the progress bar, and what runs after an apply (notifications, metrics)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitops_job.config.load import RepoConfig
from gitops_job.config.load import target as target_of
from gitops_job.errors import BranchError, GitopsJobError
from gitops_job.escape import printable

if TYPE_CHECKING:  # a command that runs no stack (`images update`) does not import the reconcile engine
    from gitops_job.github import actions
    from gitops_job.github.client import ActionsContext
    from gitops_job.reconcile import context
    from gitops_job.reconcile.results import ApplyResult

F = TypeVar("F", bound=Callable[..., Any])


class Option(click.Option):
    """An option whose environment variable is named after its flag, as the help promises (``--stack``:
    ``GITOPS_JOB_<COMMAND>_STACK``) where its parameter name differs (``stacks``); the parameter's name
    (``GITOPS_JOB_<COMMAND>_STACKS``), what click reads by itself, keeps working."""

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        found = super().resolve_envvar_value(ctx)
        if found is not None or not self.allow_from_autoenv or ctx.auto_envvar_prefix is None:
            return found
        flag = next((o for o in self.opts if o.startswith("--")), None)
        if flag is None:
            return None
        return os.environ.get(f"{ctx.auto_envvar_prefix}_{flag[2:].replace('-', '_').upper()}") or None


def parse_vars(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        parsed[key] = value
    return parsed


def source_options(f: F) -> F:
    """The options every command that renders takes."""
    options = [
        click.option(
            "--repo",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            default=Path(),
            show_default=True,
            help="The git checkout holding gitops.yaml.",
        ),
        click.option(
            "--config",
            "config_file",
            cls=Option,
            type=click.Path(dir_okay=False, path_type=Path),
            help="The repo config file.  [default: <repo>/gitops.yaml]",
        ),
        click.option(
            "--flux",
            metavar="PATH",
            help="Read the Flux repository whose entry path is PATH (clusters/production): every Flux "
            "Kustomization reachable from it is a stack (docs/flux.md). Works with no gitops.yaml; over its flux.path.",
        ),
        click.option("-t", "--target", help="The target (cluster) to work on.  [default: the first in gitops.yaml]"),
        click.option(
            "-s",
            "--stack",
            "stacks",
            cls=Option,
            multiple=True,
            help="Only this stack (repeatable).  [default: every stack]",
        ),
        click.option(
            "--var",
            "variables",
            cls=Option,
            multiple=True,
            callback=parse_vars,
            metavar="KEY=VALUE",
            help="A variable for templates and ${VAR} substitution, over the target's and stack's (repeatable).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def kube_options(f: F) -> F:
    f = click.option(
        "--concurrency", type=click.IntRange(1, 64), default=16, show_default=True, help="Parallel dry-runs."
    )(f)
    return click.option(
        "--kubeconfig",
        envvar="KUBECONFIG",
        help="Kubeconfig file; the target's context is used.  [default: $KUBECONFIG, ~/.kube/config, in-cluster]",
    )(f)


def github_options(f: F) -> F:
    options = [
        click.option(
            "--github",
            is_flag=True,
            help="Inside GitHub Actions: post the plan as one sticky PR comment, write the job summary, the step "
            "outputs and the full plan as files (see docs/github-actions.md). A fork's pull request is rendered and "
            "validated only: it never reaches the cluster.",
        ),
        click.option(
            "--comment/--no-comment",
            default=True,
            show_default=True,
            help="With --github: post or edit the PR comment (plan: on pull_request events; apply: on the merged PR).",
        ),
        click.option(
            "--artifact-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="With --github: write the whole plan here (plan.md, plan.json; apply.md, apply.json).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def github_options_of(kw: dict[str, Any], require_reviewed_plan: bool = False) -> actions.Options | None:
    github, comment, artifact_dir = kw.pop("github"), kw.pop("comment"), kw.pop("artifact_dir")
    if not github:
        return None
    from gitops_job.github import actions  # here, not at the top: the GitHub client is slow to import

    return actions.Options(comment=comment, artifact_dir=artifact_dir, require_reviewed_plan=require_reviewed_plan)


def annotate(outcome: actions.Outcome) -> None:
    """Warnings as GitHub workflow annotations (data escaped, so it cannot start a workflow command)."""
    for warning in outcome.warnings:
        escaped = printable(warning).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        click.echo(f"::warning title=gitops-job::{escaped}", err=True)


def say(message: str, *, err: bool = False, nl: bool = True) -> None:
    """Print one message, its control characters escaped (:func:`printable`): what the repository or the
    cluster says can never move the cursor, colour the terminal or reverse the text."""
    click.echo(printable(message), err=err, nl=nl)


def pushgateway_option(f: F) -> F:
    """``--pushgateway URL``: every command that runs a reconcile (apply, and the scheduled reconcile) takes it."""
    return click.option(
        "--pushgateway",
        metavar="URL",
        help="Push this run's metrics to the Prometheus Pushgateway at URL (http[s]://[user:password@]host:port), "
        'as the group {job="gitops-job", target="<target>"} (docs/metrics.md). A failing gateway is a warning, '
        "never a failed run.",
    )(f)


def push_metrics(
    url: str | None, target: Callable[[], str], result: ApplyResult | None, started: float, *, plan_only: bool = False
) -> None:
    """Push the metrics of the run that began at ``started`` (``time.monotonic()``); ``result`` is ``None`` when it
    raised (``target`` then names the target: it may raise for a broken config). ``plan_only``: the run only planned
    (``reconcile --drift report``), ``result.plan`` is its plan. Only a warning on stderr when the gateway fails, or
    when the target cannot be named."""
    if not url:
        return
    from gitops_job.notify import metrics as pusher
    from gitops_job.report.metrics import report_metrics, run_metrics

    duration, now = time.monotonic() - started, time.time()
    try:
        name = result.target if result is not None else target()
    except GitopsJobError as e:
        say(f"warning: metrics not pushed to {pusher.public_url(url)}: no target to name them by ({e})", err=True)
        return
    plan = result.plan if result is not None else None
    metrics = report_metrics(name, plan, duration, now) if plan_only else run_metrics(name, result, duration, now)
    warning = pusher.push(url, metrics)
    if warning:
        say(warning, err=True)


def settings_of(**kw: Any) -> context.Settings:
    from gitops_job.reconcile import context

    return context.Settings(
        repo=kw["repo"],
        config_file=kw["config_file"],
        target=kw["target"],
        stacks=tuple(kw["stacks"]),
        vars=kw["variables"],
        kubeconfig=kw.get("kubeconfig"),
        concurrency=kw.get("concurrency", 16),
        flux=kw.get("flux"),
        on_note=lambda note: say(note, err=True),
    )


def notify(config: RepoConfig, result: ApplyResult) -> None:
    """Tell the config's notification receivers how the run went; a receiver that failed is a warning on stderr."""
    if not config.receivers:
        return
    from gitops_job.notify.receivers import deliver, warnings  # here: only a config with receivers needs it

    namespace = target_of(config, result.target).inventory_namespace
    deliveries = deliver(config.receivers, result, namespace=namespace, github=status_client)
    for d in deliveries:
        if d.ok:
            say(f"notified: {d}", err=True)
    for line in warnings(deliveries):
        say(line, err=True)


def status_client(api_url: str, token: str, repository: str, timeout: float) -> Any:
    """The GitHub client a ``github`` notification receiver sets its commit status with (few retries: a receiver
    must not hold the run up for long)."""
    from gitops_job.github.client import GitHub, RetryPolicy  # here: the GitHub client is slow to import

    return GitHub(api_url, token, repository, retry=RetryPolicy(attempts=2, timeout=max(1, round(timeout))))


def refuse_other_branch(ctx: ActionsContext, allow_branch: bool) -> None:
    """``apply --github`` on a push applies the default branch only: a push to any other branch (a workflow that
    also triggers on feature branches, a branch protection that does not cover it) is refused before anything is
    read, unless ``--allow-branch``."""
    if allow_branch or ctx.event_name != "push" or not ctx.ref.startswith("refs/heads/") or ctx.is_default_branch_push:
        return
    branch = ctx.ref.removeprefix("refs/heads/")
    default = f"the default branch {ctx.default_branch}" if ctx.default_branch else "the default branch (unknown)"
    raise BranchError(
        f"this push is to {branch}, not {default}: nothing was applied. Apply on pushes to the default branch only, "
        "or pass --allow-branch (action input allow-branch: true) to apply another branch"
    )


class ProgressBar:
    """A progress bar on stderr for each kind of long work, drawn only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._bars: dict[str, Any] = {}
        self._done: dict[str, int] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if what not in self._bars:
            bar = click.progressbar(length=total, label=f"  {what}", file=sys.stderr, show_pos=True, show_eta=False)
            self._bars[what] = bar.__enter__()
            self._done[what] = 0
        self._bars[what].update(done - self._done[what])
        self._done[what] = done
        if done >= total:
            self._bars.pop(what).__exit__(None, None, None)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in self._bars.values():
            bar.__exit__(None, None, None)
        self._bars.clear()
