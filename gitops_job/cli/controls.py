"""`suspend`, `resume` and `rollback`: the stack controls, stored on the stack's inventory (suspend, off-git) or
written to git as a commit (rollback)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gitops_job import git
from gitops_job.cli.options import kube_options, say, settings_of, source_options

F = TypeVar("F", bound=Callable[..., Any])


def user_option(f: F) -> F:
    return click.option(
        "--user",
        help="Who does this, as recorded with it.  [default: git's user.name <user.email> of the checkout, else $USER]",
    )(f)


def who(user: str | None, repo: Path) -> str:
    """``--user``, else git's configured identity in ``repo`` (``name <email>``), else ``$USER``."""
    if user:
        return user
    me = git.identity(repo)
    return f"{me.name} <{me.email}>" if me else os.environ.get("USER") or "unknown"


def author_of(name: str, repo: Path) -> git.Author:
    """Who a commit of ours is by: git's identity in ``repo``, else ``name`` (``--user``, ``$USER``) at localhost."""
    return git.identity(repo) or git.Author(name, f"{os.environ.get('USER') or 'gitops-job'}@localhost")


def _stack_options(f: F) -> F:
    """What every stack control takes: the checkout, the cluster, who does it, and the STACK."""
    return source_options(kube_options(user_option(click.argument("stack", metavar="STACK")(f))))


@click.command(name="suspend")
@_stack_options
@click.option("--reason", required=True, help="Why (shown by `status`, recorded on the inventory).")
def suspend_cmd(stack: str, reason: str, user: str | None, **kw: Any) -> None:
    """Suspend STACK: every run (`apply`, the scheduled `reconcile`) leaves it alone — no plan, no write, no prune —
    and says so, until `gitops-job resume STACK`. Its objects stay as they are; other stacks, those that depend on it
    too, carry on (as `flux suspend kustomization` does). Stored on the stack's inventory with who, why and when;
    `status` shows it.

    \b
    Example:
      gitops-job suspend web --reason "incident 42: hands off until the postmortem"
    """
    from gitops_job.reconcile.controls import run_suspend

    done = run_suspend(settings_of(**kw), stack, who(user, kw["repo"]), reason)
    assert done.after.suspended is not None
    say(f"stack {stack}: suspended by {done.after.suspended.user}: {reason} (`gitops-job resume {stack}` resumes it)")


@click.command(name="resume")
@_stack_options
def resume_cmd(stack: str, user: str | None, **kw: Any) -> None:
    """Resume STACK: clear its suspension (and the off-git mark an emergency rollback left), so the next run
    reconciles it from git again."""
    from gitops_job.reconcile.controls import run_resume

    done = run_resume(settings_of(**kw), stack, who(user, kw["repo"]))
    before = done.before
    if before.suspended is None and before.off_git is None:
        say(f"stack {stack}: neither suspended nor off-git; nothing to resume")
        return
    what = " and ".join(w for w, h in (("suspended", before.suspended), ("off-git", before.off_git)) if h)
    say(f"stack {stack}: was {what}; resumed: the next run reconciles it from git")


@click.command(name="rollback")
@_stack_options
@click.option(
    "--to",
    "revision",
    required=True,
    metavar="REVISION",
    help="A revision the stack's history records as applied (`gitops-job history STACK`; 7+ characters).",
)
@click.option("--reason", required=True, help="Why (in the commit message, or on the inventory with --emergency).")
@click.option(
    "--emergency",
    is_flag=True,
    help="Apply REVISION directly instead of committing, and mark the stack off-git until a new commit.",
)
@click.option("--reconcile-now", is_flag=True, help="After the commit, apply the stack from this checkout now.")
@click.option(
    "--push/--no-push",
    default=True,
    show_default=True,
    help="Push the rollback commit to the checkout's origin branch.",
)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rollback_cmd(
    stack: str, revision: str, reason: str, emergency: bool, reconcile_now: bool, push: bool, output: str,
    user: str | None, **kw: Any,
) -> None:  # fmt: skip
    """Roll STACK back to REVISION, one of the revisions its history records as applied.

    By default this is a commit on the checkout's branch that restores the stack's directory (its path in
    gitops.yaml) to its content at REVISION — files changed since restored, files added since removed — with a
    message naming the revision, who (--user) and why (--reason), pushed to origin. The next run (the scheduled
    reconcile, or the merge apply) deploys it; --reconcile-now applies it from this checkout at once. Git stays the
    audit log, and later commits build on the rollback.

    --emergency applies REVISION directly (the apply recipe on a working tree of it; going back in history is
    allowed for this run) and marks the stack off-git on its inventory: runs leave it alone until a commit other
    than REVISION and the branch's current head arrives (or `gitops-job resume STACK`), so the scheduled run does
    not undo the rollback — Argo CD's "a rollback disables auto-sync", made explicit. `status` shows it. Fix the
    branch with a commit (e.g. a plain rollback) to return the stack to git.

    \b
    Examples:
      gitops-job rollback web --to 4d5bbfb0a1b2 --reason "1.3.0 leaks memory"
      gitops-job rollback web --to 4d5bbfb0a1b2 --reason "outage, git is down" --emergency
    """
    from gitops_job.cli.options import notify
    from gitops_job.reconcile.controls import run_rollback
    from gitops_job.report.json import apply_json
    from gitops_job.report.text import apply_text

    name = who(user, kw["repo"])
    author = author_of(name, kw["repo"])
    settings = settings_of(**kw)
    done = run_rollback(settings, stack, revision, name, reason, author, emergency=emergency, push=push,
                        reconcile_now=reconcile_now)  # fmt: skip
    if done.applied is not None:
        from gitops_job.reconcile.context import select

        click.echo(apply_json(done.applied) if output == "json" else apply_text(done.applied), nl=False)
        notify(select(settings).config, done.applied)
    if emergency:
        say(f"stack {stack}: rolled back to {done.revision} directly; it is off-git until a new commit on the branch"
            f" (or `gitops-job resume {stack}`)", err=output == "json")  # fmt: skip
    elif done.commit is None:
        say(
            f"stack {stack}: its files already are those of {done.revision[:12]}; nothing to commit",
            err=output == "json",
        )
    else:
        where = f", pushed to {done.pushed}" if done.pushed else " (not pushed)"
        say(f"stack {stack}: rollback to {done.revision[:12]} committed as {done.commit[:12]}{where}"
            f" ({len(done.files)} file(s))" + ("" if reconcile_now else "; the next run applies it"),
            err=output == "json")  # fmt: skip
        for w in done.locked:
            say(f"{w}: locked in the same commit, so that image automation does not bump its image again;"
                f" `gitops-job unlock {w}` hands it back", err=output == "json")  # fmt: skip
    if done.applied is not None and not done.applied.ok:
        from gitops_job.errors import ApplyError

        raise ApplyError(f"the rollback of stack {stack} to {done.revision[:12]} did not apply in full (see above)")
