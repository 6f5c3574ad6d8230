"""The command line: parses flags (and ``GITOPS_JOB_*`` environment variables) into settings and calls the pipeline.

This is the only module that ends the process; everything below it returns results or raises
:class:`~gitops_job.errors.GitopsJobError`.

Over 400 lines because it is mostly ``--help`` text: seven commands and their options, each a few lines of code. It
splits into one module per command group when the scheduled run's commands arrive.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitops_job import __version__, git
from gitops_job.config.load import load_config
from gitops_job.config.load import target as target_of
from gitops_job.errors import BranchError, GitopsJobError
from gitops_job.exitcodes import ExitCode
from gitops_job.outcomes import Origin
from gitops_job.reconcile import context, pull, state
from gitops_job.reconcile import run as pipeline
from gitops_job.reconcile.pull import Drift, Source
from gitops_job.reconcile.results import ApplyResult
from gitops_job.report.json import apply_json, json_text
from gitops_job.report.markdown import markdown
from gitops_job.report.status import history_text, status_json_text, status_text
from gitops_job.report.text import apply_text, printable, to_yaml
from gitops_job.report.text import text as plan_text

if TYPE_CHECKING:
    from gitops_job.github import actions
    from gitops_job.github.client import ActionsContext

F = TypeVar("F", bound=Callable[..., Any])

_EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code.value}  {code.meaning}" for code in ExitCode)


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "auto_envvar_prefix": "GITOPS_JOB",
        "max_content_width": 100,
    },
    epilog=_EXIT_CODES_HELP,
)
@click.version_option(__version__, "-V", "--version", prog_name="gitops-job")
def cli() -> None:
    """GitOps for Kubernetes without a resident operator.

    gitops-job reads the desired state of your clusters from git — stacks of plain YAML, Jinja2 templates, Kustomize
    overlays or Helm charts, declared in gitops.yaml — and reconciles the cluster to it in one shot, the way Flux's
    controllers do, but as a job: a pull-request check that posts the server-side diff, an apply on merge, or a
    Kubernetes CronJob that corrects drift. Git is the audit log; every change is a commit.

    Every option can also be set through an environment variable named GITOPS_JOB_<COMMAND>_<OPTION>.
    """


class _Option(click.Option):
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


def _parse_vars(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        parsed[key] = value
    return parsed


def _source_options(f: F) -> F:
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
            cls=_Option,
            type=click.Path(dir_okay=False, path_type=Path),
            help="The repo config file.  [default: <repo>/gitops.yaml]",
        ),
        click.option("-t", "--target", help="The target (cluster) to work on.  [default: the first in gitops.yaml]"),
        click.option(
            "-s",
            "--stack",
            "stacks",
            cls=_Option,
            multiple=True,
            help="Only this stack (repeatable).  [default: every stack]",
        ),
        click.option(
            "--var",
            "variables",
            cls=_Option,
            multiple=True,
            callback=_parse_vars,
            metavar="KEY=VALUE",
            help="A variable for templates and ${VAR} substitution, over the target's and stack's (repeatable).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _kube_options(f: F) -> F:
    f = click.option(
        "--concurrency", type=click.IntRange(1, 64), default=16, show_default=True, help="Parallel dry-runs."
    )(f)
    return click.option(
        "--kubeconfig",
        envvar="KUBECONFIG",
        help="Kubeconfig file; the target's context is used.  [default: $KUBECONFIG, ~/.kube/config, in-cluster]",
    )(f)


def _github_options(f: F) -> F:
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


def _github(kw: dict[str, Any], require_reviewed_plan: bool = False) -> actions.Options | None:
    github, comment, artifact_dir = kw.pop("github"), kw.pop("comment"), kw.pop("artifact_dir")
    if not github:
        return None
    from gitops_job.github import actions  # here, not at the top: the GitHub client is slow to import

    return actions.Options(comment=comment, artifact_dir=artifact_dir, require_reviewed_plan=require_reviewed_plan)


def _annotate(outcome: actions.Outcome) -> None:
    """Warnings as GitHub workflow annotations (data escaped, so it cannot start a workflow command)."""
    for warning in outcome.warnings:
        escaped = printable(warning).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        click.echo(f"::warning title=gitops-job::{escaped}", err=True)


def _say(message: str, *, err: bool = False, nl: bool = True) -> None:
    """Print one message, its control characters escaped (:func:`printable`): what the repository or the
    cluster says can never move the cursor, colour the terminal or reverse the text."""
    click.echo(printable(message), err=err, nl=nl)


def _pushgateway_option(f: F) -> F:
    """``--pushgateway URL``: every command that runs a reconcile (apply, and the scheduled reconcile) takes it."""
    return click.option(
        "--pushgateway",
        metavar="URL",
        help="Push this run's metrics to the Prometheus Pushgateway at URL (http[s]://[user:password@]host:port), "
        'as the group {job="gitops-job", target="<target>"} (docs/metrics.md). A failing gateway is a warning, '
        "never a failed run.",
    )(f)


def _push_metrics(url: str | None, kw: dict[str, Any], result: ApplyResult | None, started: float) -> None:
    """Push the metrics of the run that began at ``started`` (``time.monotonic()``); ``result`` is ``None`` when it
    raised. Only a warning on stderr when the gateway fails, or when the target cannot be named (a broken config)."""
    if not url:
        return
    from gitops_job.notify import metrics as pusher
    from gitops_job.report.metrics import run_metrics

    duration = time.monotonic() - started
    if result is not None:
        target = result.target
    else:
        try:
            target = context.select(_settings(**kw)).target.name
        except GitopsJobError as e:
            _say(f"warning: metrics not pushed to {pusher.public_url(url)}: no target to name them by ({e})", err=True)
            return
    warning = pusher.push(url, run_metrics(target, result, duration, time.time()))
    if warning:
        _say(warning, err=True)


def _settings(**kw: Any) -> context.Settings:
    return context.Settings(
        repo=kw["repo"],
        config_file=kw["config_file"],
        target=kw["target"],
        stacks=tuple(kw["stacks"]),
        vars=kw["variables"],
        kubeconfig=kw.get("kubeconfig"),
        concurrency=kw.get("concurrency", 16),
    )


@cli.command()
@_source_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def render(output: str, **kw: Any) -> None:
    """Print the rendered, validated objects of every selected stack.

    Offline: needs no cluster. Each YAML document is preceded by a comment naming its stack and source file:line.
    Secret values are masked (<secret #N>), as in every output of gitops-job.
    """
    rendered = context.render(context.select(_settings(**kw)), kw["variables"])
    masker = rendered.masker  # has learned every Secret of the target
    if output == "json":
        items = [masker.mask(o.body) for o in rendered.objects]
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
        return
    for obj in rendered.objects:
        _say(f"---\n# stack: {obj.stack}, source: {obj.source}")
        click.echo(to_yaml(masker.mask(obj.body)), nl=False)


@cli.command(name="validate")
@_source_options
@_kube_options
@click.option("--offline", is_flag=True, help="Skip the checks that need the cluster (what a fork PR gets).")
def validate_cmd(offline: bool, **kw: Any) -> None:
    """Render every selected stack and run every check that needs no write.

    Offline (--offline): YAML, required fields, names, duplicates, the stacks' allow policies. With a cluster also:
    unknown kinds (discovery; CRDs rendered in the same stack count as known).
    """
    settings = _settings(**kw)
    selection = context.select(settings)
    if offline:
        rendered = context.render(selection, settings.vars)
    else:
        kube = context.connect(settings, selection.target)
        try:
            rendered = context.render(selection, settings.vars, kube)
        finally:
            kube.close()
    stacks = len(rendered.selection.stacks)
    mode = "offline" if offline else "with discovery"
    _say(f"{len(rendered.objects)} objects in {stacks} stack(s) of target {selection.target.name}: valid ({mode})")


@cli.command(name="plan")
@_source_options
@_kube_options
@click.option("-o", "--output", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit 3 when there are changes, 0 when there are none.")
@click.option(
    "--drift",
    is_flag=True,
    help="Also report drift: for each object we applied before that the plan would update, each field another "
    "field manager changed, as `spec.replicas: 3 -> 5 (manager: kubectl-edit)` (text and JSON; see docs/drift.md).",
)
@_github_options
def plan_cmd(output: str, exit_code: bool, drift: bool, **kw: Any) -> None:
    """Show exactly what would change in the cluster, without changing anything.

    Renders and validates every selected stack, then diffs each object against the live cluster the way a
    server-side apply (field manager gitops-job) would change it: create, update, unchanged, prune. Objects are read
    with one LIST per type; "unchanged" is proven from the live object and its managedFields where possible, and
    everything else is checked by a server-side dry-run. Nothing is written.
    """
    github = _github(kw)
    if drift and (github is not None or output == "markdown"):
        raise click.UsageError("--drift reports in text or JSON: not with --github or -o markdown")
    if github is not None:
        from gitops_job.github import actions

        with ProgressBar() as progress:
            outcome = actions.run_plan(_settings(**kw), github, progress)
        _annotate(outcome)
        if outcome.error is not None:
            raise outcome.error
        if outcome.plan is None:  # a fork's pull request: rendered and validated only
            _say(outcome.body, nl=False)
            return
        result = outcome.plan
    else:
        with ProgressBar() as progress:
            _, result = pipeline.run_plan(_settings(**kw), progress=progress, drift=drift)
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


@cli.command(name="apply")
@_source_options
@_kube_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--revision", help="The git revision to record.  [default: the commit checked out in --repo]")
@click.option("--force-conflicts", is_flag=True, help="Take fields other field managers own (kubectl's flag).")
@click.option(
    "--allow-mass-prune",
    is_flag=True,
    help="Allow an empty render, or one that removes more than half of a stack's objects, to prune them.",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="Take over live objects that are not ours (planned as 'adopt'); else only those annotated "
    "gitops-job.io/adopt: enabled, and any other refuses the run before it writes.",
)
@click.option("--no-wait", is_flag=True, help="Do not wait for the applied objects to become healthy.")
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0),
    default=300.0,
    show_default=True,
    help="Seconds to wait while another run holds a stack's lock.",
)
@click.option(
    "--allow-non-descendant",
    is_flag=True,
    help="Apply a commit that does not descend from the one a stack last applied (after a force-push, or to go "
    "back on purpose); else refused before any write, naming both commits.",
)
@_github_options
@click.option(
    "--require-reviewed-plan",
    is_flag=True,
    help="With --github: refuse (writing nothing) when the plan differs from the one reviewed on the merged PR.",
)
@click.option(
    "--allow-branch",
    is_flag=True,
    help="With --github: apply a push to a branch other than the repository's default one (else refused).",
)
@click.option(
    "--origin",
    type=click.Choice([o.value for o in Origin if o is not Origin.UNKNOWN]),
    envvar="GITOPS_JOB_ORIGIN",
    help="Where this run comes from, for its run record (`status`, `history`). Default: detected — ci on GitHub "
    "Actions (GITHUB_ACTIONS=true) or where CI=true, cronjob in a pod (KUBERNETES_SERVICE_HOST and the pod's "
    "namespace file), else terminal.",
)
@_pushgateway_option
def apply_cmd(
    output: str, revision: str | None, force_conflicts: bool, allow_mass_prune: bool, adopt: bool, no_wait: bool,
    lock_timeout: float, allow_non_descendant: bool, require_reviewed_plan: bool, allow_branch: bool,
    origin: str | None, pushgateway: str | None, **kw: Any,
) -> None:  # fmt: skip
    """Apply every selected stack: exactly what `plan` shows, then prune, wait and record.

    \b
    For each stack, in dependsOn order (a stack whose dependency failed is skipped):
      1. take the stack's lock (a Lease; a second run waits, see --lock-timeout);
      2. use the plan made before any write (planned again only if another run applied the
         stack meanwhile); a stack already in sync at this revision writes nothing at all;
      3. write the inventory ahead (old + new objects), then server-side apply in stages
         (CRDs, Namespaces, ClusterRoles; *Class kinds; the rest by kind; webhooks last) —
         unchanged objects get no request;
      4. prune what left git (only objects still labelled for this stack; never after a
         failure, never an empty render or more than half the stack without --allow-mass-prune;
         Namespaces, PVCs and CRDs are retained);
      5. wait until the objects are healthy (the stack's timeout);
      6. record the run in the inventory (see `status` and `history`) and as an Event.
    Then the receivers under `notifications:` in gitops.yaml are told how each stack went
    (docs/config.md); a receiver that fails is a warning, never a failed run.
    Render and validation errors in any stack stop the run before its first write, and so
    do a stack whose inventory another repository owns, a live object that is not ours
    (adopt it with --adopt or the annotation gitops-job.io/adopt: enabled), and a commit
    that does not descend from the one a stack last applied (--allow-non-descendant).
    """
    options = pipeline.ApplyOptions(
        revision=revision,
        force_conflicts=force_conflicts,
        allow_mass_prune=allow_mass_prune,
        adopt=adopt,
        wait=not no_wait,
        lock_wait=lock_timeout,
        on_lock_wait=lambda message: _say(message, err=True),
        origin=Origin(origin) if origin else None,  # None: detected from the environment
        allow_non_descendant=allow_non_descendant,
    )
    started = time.monotonic()
    github = _github(kw, require_reviewed_plan)
    result: ApplyResult | None = None
    try:
        if github is not None:
            from gitops_job.github import actions

            _refuse_other_branch(actions.context(), allow_branch)
            with ProgressBar() as progress:
                outcome = actions.run_apply(_settings(**kw), options, github, progress)
            _annotate(outcome)
            if outcome.result is None:
                assert outcome.error is not None
                raise outcome.error
            result = outcome.result
        else:
            with ProgressBar() as progress:
                result = pipeline.run_apply(_settings(**kw), options, progress=progress)
    finally:
        _push_metrics(pushgateway, kw, result, started)
    click.echo(apply_json(result) if output == "json" else apply_text(result), nl=False)
    _notify(_settings(**kw), result)
    if not result.ok:
        raise SystemExit(ExitCode.ERROR)


def _notify(settings: context.Settings, result: ApplyResult) -> None:
    """Tell the config's notification receivers how the run went; a receiver that failed is a warning on stderr."""
    config = load_config(settings.repo, settings.config_file)
    if not config.receivers:
        return
    from gitops_job.notify.receivers import deliver, warnings  # here: only a config with receivers needs it

    namespace = target_of(config, result.target).inventory_namespace
    deliveries = deliver(config.receivers, result, namespace=namespace, github=_status_client)
    for d in deliveries:
        if d.ok:
            _say(f"notified: {d}", err=True)
    for line in warnings(deliveries):
        _say(line, err=True)


def _status_client(api_url: str, token: str, repository: str, timeout: float) -> Any:
    """The GitHub client a ``github`` notification receiver sets its commit status with (few retries: a receiver
    must not hold the run up for long)."""
    from gitops_job.github.client import GitHub, RetryPolicy  # here: the GitHub client is slow to import

    return GitHub(api_url, token, repository, retry=RetryPolicy(attempts=2, timeout=max(1, round(timeout))))


def _refuse_other_branch(ctx: ActionsContext, allow_branch: bool) -> None:
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


@cli.command(name="reconcile")
@click.option("--repo", "url", required=True, metavar="URL|PATH",
              help="The repository: any URL git accepts (https, ssh, user@host:path, file://) or a path.")  # fmt: skip
@click.option("--branch", help="The branch to reconcile.  [default: the branch the remote's HEAD names]")
@click.option("--path-in-repo", default=".", show_default=True, help="The directory holding gitops.yaml.")
@click.option("-t", "--target", help="The target (cluster) to work on.  [default: the first in gitops.yaml]")
@click.option("-s", "--stack", "stacks", cls=_Option, multiple=True, help="Only this stack (repeatable).")
@click.option("--var", "variables", cls=_Option, multiple=True, callback=_parse_vars, metavar="KEY=VALUE",
              help="A variable for templates and ${VAR} substitution (repeatable).")  # fmt: skip
@click.option(
    "--drift",
    type=click.Choice([d.value for d in Drift]),
    default=Drift.CORRECT.value,
    show_default=True,
    help="correct: apply, so the cluster matches git again; report: plan only, write nothing.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory kept between runs (a mounted volume): the clone is cached there and only fetched when the "
    "branch moved.  [default: a shallow clone per run, in a temp dir]",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="https: a file holding the token (e.g. a mounted Secret); else $GITOPS_JOB_GIT_TOKEN. Given to git "
    "through GIT_ASKPASS, never on a command line or in a URL.",
)
@click.option("--git-username", default="x-access-token", show_default=True, help="https: the token's user name.")
@click.option("--ssh-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="ssh: the deploy key (private key file).")  # fmt: skip
@click.option(
    "--known-hosts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="ssh: the pinned known_hosts file; a host not in it is refused (StrictHostKeyChecking yes).",
)
@click.option("--allow-non-descendant", is_flag=True,
              help="Apply a commit that is not a descendant of the last applied (once).")  # fmt: skip
@click.option("--force-conflicts", is_flag=True, help="Take fields other field managers own (kubectl's flag).")
@click.option("--no-wait", is_flag=True, help="Do not wait for the applied objects to become healthy.")
@click.option("--lock-timeout", type=click.FloatRange(0), default=300.0, show_default=True,
              help="Seconds to wait while another run holds a stack's lock.")  # fmt: skip
@_kube_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def reconcile_cmd(
    url: str, branch: str | None, path_in_repo: str, drift: str, state_dir: Path | None, token_file: Path | None,
    git_username: str, ssh_key_file: Path | None, known_hosts: Path | None, allow_non_descendant: bool,
    force_conflicts: bool, no_wait: bool, lock_timeout: float, output: str, **kw: Any,
) -> None:  # fmt: skip
    """Pull: reconcile the cluster to a branch of a remote repository, in one shot (for a CronJob).

    \b
    1. ask the remote what the branch points at (one `git ls-remote`);
    2. get that commit: from --state-dir's cached clone (fetched only when the branch
       moved), else a shallow clone into a temp dir removed afterwards;
    3. --drift correct: `apply` it (every guard of apply holds, and a commit that does not
       descend from the one last applied is refused, naming both); a stack already in sync
       at that commit writes nothing. --drift report: `plan --drift` it, write nothing.

    \b
    Credentials: https with a token (--token-file, or $GITOPS_JOB_GIT_TOKEN); ssh with a
    deploy key (--ssh-key-file) and a pinned --known-hosts. Neither reaches a command line
    (`ps`) or a printed URL; a URL carrying a password is refused.

    \b
    Example (in a CronJob, the token and deploy key mounted from Secrets):
      gitops-job reconcile --repo https://github.com/acme/deploy.git --target production \\
        --token-file /var/run/secrets/git/token --state-dir /var/cache/gitops-job
    """
    token = token_file.read_text().strip() if token_file else os.environ.get("GITOPS_JOB_GIT_TOKEN") or None
    auth = git.Auth(token=token, username=git_username, ssh_key=ssh_key_file, known_hosts=known_hosts)
    source = Source(url, branch, path_in_repo, state_dir, auth)
    settings = context.Settings(target=kw["target"], stacks=tuple(kw["stacks"]), vars=kw["variables"],
                                kubeconfig=kw.get("kubeconfig"), concurrency=kw.get("concurrency", 16))  # fmt: skip
    options = pipeline.ApplyOptions(
        force_conflicts=force_conflicts,
        wait=not no_wait,
        lock_wait=lock_timeout,
        on_lock_wait=lambda message: _say(message, err=True),
        allow_non_descendant=allow_non_descendant,
    )

    def say_source(got: pull.Fetched) -> None:
        how = "cached, nothing fetched" if got.cached else "fetched"
        _say(f"source: {got.url} branch {got.branch} at {got.revision} ({how})", err=True)

    with ProgressBar() as progress:
        done = pull.reconcile(source, settings, options, Drift(drift), progress, on_fetched=say_source)
    if done.plan is not None:
        click.echo(json_text(done.plan) if output == "json" else plan_text(done.plan), nl=False)
        if done.plan.failures:
            raise SystemExit(ExitCode.ERROR)
        return
    assert done.applied is not None
    click.echo(apply_json(done.applied) if output == "json" else apply_text(done.applied), nl=False)
    if not done.applied.ok:
        raise SystemExit(ExitCode.ERROR)


@cli.command(name="status")
@_source_options
@_kube_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status_cmd(output: str, **kw: Any) -> None:
    """Show each stack as a table, from the cluster (its inventories): the revision applied in full, when the last
    run finished, its result and where it came from (ci, cronjob, terminal), the health of the objects it lists now
    (`12/12 current`, or how many are in the worst state) and its drift (`-`: not known). Then every object that is
    not current, and every last run that did not succeed. `-o json`: the documented status document
    (gitops_job/report/schemas/status.schema.json)."""
    result = state.run_status(_settings(**kw))
    click.echo(status_json_text(result) if output == "json" else status_text(result), nl=False)


@cli.command(name="history")
@_source_options
@_kube_options
@click.argument("stack_name", metavar="STACK")
def history_cmd(stack_name: str, **kw: Any) -> None:
    """List the last runs of STACK (newest first): when, result, where it came from, revision and counts."""
    kw["stacks"] = (stack_name,)
    inv = state.run_history(_settings(**kw))
    click.echo(history_text(inv.target, stack_name, [state.run_record(r) for r in inv.runs]), nl=False)


@cli.command(name="break-lease")
@_source_options
@_kube_options
def break_lease_cmd(**kw: Any) -> None:
    """Break the apply lease of each selected stack (all stacks of the target by default).

    One applier at a time holds a stack's Lease. Break it only when the run that holds it is gone (a killed job):
    a live applier that loses its lease stops before it prunes.
    """
    for stack, holder in state.run_break_lease(_settings(**kw)):
        _say(f"stack {stack}: " + (f"lease held by {holder} broken" if holder else "no lease was held"))


@cli.command(name="unlock", hidden=True)
@_source_options
@_kube_options
@click.pass_context
def unlock_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """Deprecated: `break-lease` (this alias goes in the next release)."""
    _say("warning: `gitops-job unlock` is deprecated; use `gitops-job break-lease`", err=True)
    ctx.invoke(break_lease_cmd, **kw)


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


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and exit with a documented :class:`ExitCode`."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="gitops-job", standalone_mode=False)
    except click.exceptions.Exit as e:  # --help, --version
        sys.exit(e.exit_code)
    except click.ClickException as e:  # usage errors and the like
        e.show()
        sys.exit(ExitCode.USAGE if isinstance(e, click.UsageError) else ExitCode.ERROR)
    except click.Abort:  # Ctrl-C outside an apply's writes (an apply says how far it got: errors.Interrupted)
        click.echo("interrupted (Ctrl-C)", err=True)
        sys.exit(ExitCode.ERROR)
    except GitopsJobError as e:
        _say(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    sys.exit(ExitCode.OK)
