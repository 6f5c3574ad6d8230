"""`workloads`, `lock`, `unlock`, `automate`, `deautomate` and `release`: Flux v1's workload controls (fluxctl's
verbs), each a commit to git that says who and why. Without a WORKLOAD, `unlock` is still the deprecated name of
`break-lease` (for one more release)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace as dc_replace
from typing import Any, TypeVar

import click

from gitops_job.cli.controls import author_of, user_option, who
from gitops_job.cli.options import kube_options, say, settings_of, source_options
from gitops_job.images.annotations import WorkloadControls

F = TypeVar("F", bound=Callable[..., Any])

_WORKLOAD_HELP = (
    "WORKLOAD is Kind/namespace/name (as `gitops-job workloads` prints it), fluxctl's namespace:kind/name, or a bare "
    "name that only one workload has."
)


def _edit_options(f: F) -> F:
    f = click.option(
        "--push/--no-push",
        default=True,
        show_default=True,
        help="Push the commit to the checkout's origin branch (--no-push: commit only).",
    )(f)
    f = user_option(f)
    return source_options(f)


_reason = click.option("--reason", default="", help="Why (recorded in the commit message).")


def _record(
    kw: dict[str, Any],
    ref: str,
    change: Callable[[WorkloadControls], Any],
    verb: str,
    reason: str,
    note: Callable[[WorkloadControls], str] = lambda _: "",
) -> None:
    """Apply ``change`` to the workload ``ref`` names, commit (the message: what, why, who) and push."""
    from gitops_job.reconcile import workloads

    push = kw.pop("push")
    user = who(kw.pop("user"), kw["repo"])
    e = workloads.edit(settings_of(**kw), ref, change, "")
    subject = f"{verb} {e.workload.id}" + (f": {reason}" if reason else "")
    done = verb.capitalize() + ("d" if verb.endswith("e") else "ed")  # Locked, Released
    body = f"{done} by {user} with `gitops-job {verb}`.{note(e.workload)}"
    e = dc_replace(e, message=f"{subject}\n\n{body}\n")
    author = author_of(user, e.root)
    recorded = workloads.record(e, author, push=push)
    if recorded.commit is None:
        say(f"{e.workload.id}: nothing to change ({e.file} already says so); no commit")
        return
    where = f", pushed to {recorded.pushed}" if recorded.pushed else " (not pushed)"
    say(f"{e.workload.id}: {done.lower()} — {e.file} committed as {recorded.commit[:12]}{where}")


@click.command(name="workloads")
@source_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def workloads_cmd(output: str, **kw: Any) -> None:
    """List the workloads (Deployment, StatefulSet, DaemonSet, Job, CronJob) of the selected stacks with each
    container's image and the Flux v1 controls their annotations set — like `fluxctl list-workloads`: the tag
    filter (fluxcd.io/tag.<container>; `-`: every tag), whether new images are released automatically
    (fluxcd.io/automated) and whether it is locked, with the reason and who (fluxcd.io/locked, locked_msg,
    locked_user). Offline: rendered from the checkout, no cluster needed."""
    from gitops_job.reconcile.workloads import list_workloads
    from gitops_job.report.workloads import workloads_json, workloads_text

    listed = list_workloads(settings_of(**kw))
    out = workloads_json if output == "json" else workloads_text
    click.echo(out(listed.target, listed.workloads), nl=False)


@click.command(name="lock", epilog=_WORKLOAD_HELP)
@_edit_options
@click.argument("workload", metavar="WORKLOAD")
@click.option("--reason", required=True, help="Why it is locked (fluxcd.io/locked_msg; `workloads` shows it).")
def lock_cmd(workload: str, reason: str, **kw: Any) -> None:
    """Lock WORKLOAD: nothing changes its images — neither image automation nor `release` (unless --force) —
    until `gitops-job unlock`. Written to the workload's manifest as fluxcd.io/locked: "true" with
    fluxcd.io/locked_msg (the reason) and fluxcd.io/locked_user (who), committed and pushed: git records why.

    \b
    Example:
      gitops-job lock Deployment/apps/web --reason "1.3.0 leaks memory; hold 1.2.x"
    """
    from gitops_job.images import annotations as v1

    user = who(kw["user"], kw["repo"])
    _record(kw, workload, lambda w: v1.lock(w, reason, user), "lock", reason)


@click.command(name="unlock", epilog=_WORKLOAD_HELP)
@_edit_options
@kube_options
@click.argument("workload", metavar="WORKLOAD", required=False)
@_reason
@click.pass_context
def unlock_cmd(ctx: click.Context, /, workload: str | None, reason: str, **kw: Any) -> None:
    """Unlock WORKLOAD: remove its fluxcd.io/locked, locked_msg and locked_user annotations (under either prefix),
    committed and pushed. Without WORKLOAD: the deprecated name of `break-lease` (it goes in the next release)."""
    if workload is None:
        from gitops_job.cli.state import break_lease_cmd

        say("warning: `gitops-job unlock` is deprecated; use `gitops-job break-lease`", err=True)
        for key in ("push", "user"):
            kw.pop(key)
        ctx.invoke(break_lease_cmd, **kw)
        return
    from gitops_job.images import annotations as v1

    for key in ("kubeconfig", "concurrency"):
        kw.pop(key)
    _record(kw, workload, v1.unlock, "unlock", reason)


@click.command(name="automate", epilog=_WORKLOAD_HELP)
@_edit_options
@click.argument("workload", metavar="WORKLOAD")
@_reason
def automate_cmd(workload: str, reason: str, **kw: Any) -> None:
    """Turn on image automation for WORKLOAD (fluxcd.io/automated: "true"): new tags its filters allow are released
    to it by `images update` and the scheduled run. Committed and pushed."""
    from gitops_job.images import annotations as v1

    _record(kw, workload, v1.automate, "automate", reason)


@click.command(name="deautomate", epilog=_WORKLOAD_HELP)
@_edit_options
@click.argument("workload", metavar="WORKLOAD")
@_reason
def deautomate_cmd(workload: str, reason: str, **kw: Any) -> None:
    """Turn off image automation for WORKLOAD (its fluxcd.io/automated annotation removed). Committed and pushed."""
    from gitops_job.images import annotations as v1

    _record(kw, workload, v1.deautomate, "deautomate", reason)


@click.command(name="release", epilog=_WORKLOAD_HELP)
@_edit_options
@click.argument("workload", metavar="WORKLOAD")
@click.option("--image", required=True, metavar="REPOSITORY:TAG", help="The image to run (its container is the one "
              "running an image of REPOSITORY).")  # fmt: skip
@click.option("--force", is_flag=True, help="Release even though the workload is locked (the lock stays).")
@_reason
def release_cmd(workload: str, image: str, force: bool, reason: str, **kw: Any) -> None:
    """Release --image REPOSITORY:TAG to WORKLOAD: set the image of its container that runs REPOSITORY, in the
    workload's manifest (only that value changes), committed and pushed; the next apply or scheduled run deploys
    it. A locked workload is refused, naming the lock's reason and who locked it, unless --force.

    \b
    Example:
      gitops-job release Deployment/apps/web --image ghcr.io/acme/web:1.2.4 --reason "hotfix for #88"
    """
    from gitops_job.images import annotations as v1

    def change(w: WorkloadControls) -> tuple[str, str]:
        return v1.release_target(w, image, force=force).name, image

    def over_the_lock(w: WorkloadControls) -> str:
        return f" With --force, over the workload's lock ({w.lock})." if w.lock else ""

    _record(kw, workload, change, "release", image + (f" ({reason})" if reason else ""), over_the_lock)
