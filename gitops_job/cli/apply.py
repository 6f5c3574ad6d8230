"""`apply`: what the plan says, staged, under each stack's lease; then notifications and metrics."""

from __future__ import annotations

import time
from typing import Any

import click

from gitops_job.cli.options import (
    ProgressBar,
    annotate,
    github_options,
    github_options_of,
    kube_options,
    notify,
    push_metrics,
    pushgateway_option,
    refuse_other_branch,
    say,
    settings_of,
    source_options,
)
from gitops_job.config.load import load_config
from gitops_job.exitcodes import ExitCode
from gitops_job.outcomes import Origin
from gitops_job.reconcile import context
from gitops_job.reconcile import run as pipeline
from gitops_job.reconcile.results import ApplyResult
from gitops_job.report.json import apply_json
from gitops_job.report.text import apply_text


@click.command(name="apply")
@source_options
@kube_options
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
@click.option(
    "--adopt-from-flux",
    is_flag=True,
    help="Take over the live objects Flux applied (planned as 'adopt (from kustomize-controller)'): their fields "
    "move from the field manager kustomize-controller to gitops-job. Without it, any such object refuses the run "
    "before it writes (docs/flux.md).",
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
@github_options
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
@pushgateway_option
def apply_cmd(
    output: str, revision: str | None, force_conflicts: bool, allow_mass_prune: bool, adopt: bool,
    adopt_from_flux: bool, no_wait: bool,
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
    (adopt it with --adopt or the annotation gitops-job.io/adopt: enabled; what Flux applied,
    with --adopt-from-flux), and a commit
    that does not descend from the one a stack last applied (--allow-non-descendant).
    """
    options = pipeline.ApplyOptions(
        revision=revision,
        force_conflicts=force_conflicts,
        allow_mass_prune=allow_mass_prune,
        adopt=adopt,
        adopt_from_flux=adopt_from_flux,
        wait=not no_wait,
        lock_wait=lock_timeout,
        on_lock_wait=lambda message: say(message, err=True),
        origin=Origin(origin) if origin else None,  # None: detected from the environment
        allow_non_descendant=allow_non_descendant,
    )
    started = time.monotonic()
    settings = settings_of(**kw)
    github = github_options_of(kw, require_reviewed_plan)
    result: ApplyResult | None = None
    try:
        if github is not None:
            from gitops_job.github import actions

            refuse_other_branch(actions.context(), allow_branch)
            with ProgressBar() as progress:
                outcome = actions.run_apply(settings, options, github, progress)
            annotate(outcome)
            if outcome.result is None:
                assert outcome.error is not None
                raise outcome.error
            result = outcome.result
        else:
            with ProgressBar() as progress:
                result = pipeline.run_apply(settings, options, progress=progress)
    finally:
        push_metrics(pushgateway, lambda: context.select(settings).target.name, result, started)
    click.echo(apply_json(result) if output == "json" else apply_text(result), nl=False)
    notify(load_config(settings.repo, settings.config_file, settings.flux), result)
    if not result.ok:
        raise SystemExit(ExitCode.ERROR)
