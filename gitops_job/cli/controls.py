"""`suspend`, `resume` and `rollback`: the stack controls, stored on the stack's inventory (suspend, off-git) or
written to git as a commit (rollback)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

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
    from gitops_job import git

    me = git.identity(repo)
    return f"{me.name} <{me.email}>" if me else os.environ.get("USER") or "unknown"


@click.command(name="suspend")
@source_options
@kube_options
@user_option
@click.argument("stack", metavar="STACK")
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
@source_options
@kube_options
@user_option
@click.argument("stack", metavar="STACK")
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
