"""`reconcile`: the scheduled pull (a CronJob): clone or fetch, then correct or report drift."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from gitops_job import git
from gitops_job.cli.options import (
    Option,
    ProgressBar,
    kube_options,
    notify,
    parse_vars,
    push_metrics,
    pushgateway_option,
    say,
)
from gitops_job.config.images import GitHubRepo
from gitops_job.config.load import RepoConfig
from gitops_job.errors import GitopsJobError
from gitops_job.exitcodes import ExitCode
from gitops_job.reconcile import context, pull
from gitops_job.reconcile import run as pipeline
from gitops_job.reconcile.pull import Drift, Source
from gitops_job.report.json import apply_json, json_text
from gitops_job.report.text import apply_text
from gitops_job.report.text import text as plan_text


@click.command(name="reconcile")
@click.option("--repo", "url", required=True, metavar="URL|PATH",
              help="The repository: any URL git accepts (https, ssh, user@host:path, file://) or a path.")  # fmt: skip
@click.option("--branch", help="The branch to reconcile.  [default: the branch the remote's HEAD names]")
@click.option("--path-in-repo", default=".", show_default=True, help="The directory holding gitops.yaml.")
@click.option("-t", "--target", help="The target (cluster) to work on.  [default: the first in gitops.yaml]")
@click.option("-s", "--stack", "stacks", cls=Option, multiple=True, help="Only this stack (repeatable).")
@click.option("--var", "variables", cls=Option, multiple=True, callback=parse_vars, metavar="KEY=VALUE",
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
@pushgateway_option
@kube_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--github-repo",
    envvar="GITHUB_REPOSITORY",
    metavar="OWNER/NAME",
    help="Report drift on this GitHub repository: one sticky issue per target (opened, edited, closed when the drift "
    "is gone) and a stale-plan line on the open pull requests' plan comments (docs/reconcile.md). The token needs "
    "issues: write and pull-requests: write. A GitHub failure is a warning, never a failed run.  [default: "
    "$GITHUB_REPOSITORY; unset: nothing is reported]",
)
@click.option(
    "--github-token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --github-repo: a file holding the GitHub token (a mounted Secret); else $GITHUB_TOKEN.",
)
@click.option("--github-api-url", envvar="GITHUB_API_URL", default="https://api.github.com", show_default=True,
              help="With --github-repo: the API of GitHub Enterprise Server (https://HOST/api/v3).")  # fmt: skip
def reconcile_cmd(
    url: str, branch: str | None, path_in_repo: str, drift: str, state_dir: Path | None, token_file: Path | None,
    git_username: str, ssh_key_file: Path | None, known_hosts: Path | None, allow_non_descendant: bool,
    force_conflicts: bool, no_wait: bool, lock_timeout: float, pushgateway: str | None, output: str,
    github_repo: str | None, github_token_file: Path | None, github_api_url: str, **kw: Any,
) -> None:  # fmt: skip
    """Pull: reconcile the cluster to a branch of a remote repository, in one shot (for a CronJob).

    \b
    1. ask the remote what the branch points at (one `git ls-remote`);
    2. get that commit: from --state-dir's cached clone (fetched only when the branch
       moved), else a shallow clone into a temp dir removed afterwards;
    3. --drift correct: `apply` it (every guard of apply holds, and a commit that does not
       descend from the one last applied is refused, naming both); a stack already in sync
       at that commit writes nothing; what had drifted is corrected and the run record
       (`history`) lists it. --drift report: `plan --drift` it, write nothing;
    4. tell the receivers under `notifications:` in gitops.yaml (drift as DriftDetected,
       applies as ApplySucceeded/ApplyFailed) and push the metrics (--pushgateway); a
       receiver or gateway that fails is a warning, never a failed run;
    5. with --github-repo: drift is reported on GitHub — one sticky issue per target
       (opened, edited, closed when the drift is gone) and a stale-plan line on the open
       pull requests' plan comments; a GitHub failure is a warning, never a failed run;
    6. with images.automation.enabled in gitops.yaml: the tags the image policies choose
       are written to the setter markers as one commit, pushed to the branch (or to a bot
       branch, proposed as one pull request); the next run applies it. A registry that
       cannot be read leaves its images stale (said, not a failure); a failed push fails
       the run after the apply (docs/images.md#automation).

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
        on_lock_wait=lambda message: say(message, err=True),
        allow_non_descendant=allow_non_descendant,
    )

    def say_source(got: pull.Fetched) -> None:
        how = "cached, nothing fetched" if got.cached else "fetched"
        say(f"source: {got.url} branch {got.branch} at {got.revision} ({how})", err=True)

    started, mode = time.monotonic(), Drift(drift)
    done: pull.Reconciled | None = None
    automation = pull.Automation(lambda config: _registries(config, state_dir, settings), _pulls)
    try:
        with ProgressBar() as progress:
            done = pull.reconcile(source, settings, options, mode, progress, on_fetched=say_source,
                                  automation=automation)  # fmt: skip
    finally:
        push_metrics(pushgateway, lambda: _target_named(settings), done.result if done else None, started,
                     plan_only=mode is Drift.REPORT)  # fmt: skip
    notify(done.config, done.result)
    github = _report_drift(done, github_repo, github_token_file, github_api_url)
    for line in done.images.lines() if done.images is not None else ():
        say(line, err=True)
    if done.images_error is not None:
        say(f"error: images: {done.images_error}", err=True)
    if done.plan is not None:
        text = json_text(done.plan) if output == "json" else plan_text(done.plan)
        click.echo(_with(text, github) if output == "json" else text, nl=False)
        if done.plan.failures:
            raise SystemExit(ExitCode.ERROR)
        return
    assert done.applied is not None
    text = apply_json(done.applied) if output == "json" else apply_text(done.applied)
    click.echo(_with(text, github, _images_json(done)) if output == "json" else text, nl=False)
    if not done.applied.ok or done.images_error is not None:
        raise SystemExit(ExitCode.ERROR)


def _registries(config: RepoConfig, state_dir: Path | None, settings: context.Settings) -> Any:
    """The registry clients of the fetched config's policies (tag lists cached in the state dir; a Secret named
    by a policy read from the run's cluster)."""
    from gitops_job.cli.images_update import secret_reader
    from gitops_job.images import update

    return update.registries(config.images, state_dir=state_dir,
                             secret=secret_reader(config, settings.target, settings.kubeconfig))  # fmt: skip


def _pulls(repo: GitHubRepo) -> Any:
    """The GitHub client pull-request mode opens its pull request with (the token from images.automation.github)."""
    from gitops_job.cli.images_update import github_client

    return github_client(repo)


def _target_named(settings: context.Settings) -> str:
    """The target a run that raised before it had a result pushes its metrics for: the one it was given (the
    fetched gitops.yaml is gone by then)."""
    if settings.target is None:
        raise GitopsJobError("the run failed before its target was known (pass --target to name it)")
    return settings.target


def _report_drift(
    done: pull.Reconciled, repo: str | None, token_file: Path | None, api_url: str
) -> dict[str, Any] | None:
    """Drift on GitHub (--github-repo): the target's issue, the open pull requests' plans; said on stderr."""
    if not repo:
        return None
    from gitops_job.github import drift  # here: the GitHub client is slow to import

    token = token_file.read_text().strip() if token_file else os.environ.get("GITHUB_TOKEN")
    published = drift.report(done, repo, token, api_url)
    for line in published.lines():
        say(line, err=True)
    return published.json()


def _with(doc: str, github: dict[str, Any] | None, images: dict[str, Any] | None = None) -> str:
    """The JSON document with what was reported on GitHub (``github``) and what the image automation did
    (``images``), when anything was to be."""
    extra = {k: v for k, v in (("github", github), ("images", images)) if v is not None}
    if not extra:
        return doc
    return json.dumps({**json.loads(doc), **extra}, indent=2) + "\n"


def _images_json(done: pull.Reconciled) -> dict[str, Any] | None:
    """The image automation's part of the JSON document: its commit, branch, pull request, updates, skips, error."""
    if done.images is None and done.images_error is None:
        return None
    out = done.images
    change = out.change if out is not None else None
    pr = out.pull if out is not None else None
    updates = (
        [{"policy": u.policy, "old": u.old, "new": u.new, "files": list(u.files)} for u in change.updates]
        if change is not None
        else []
    )
    skipped = (
        [{"where": s.where, "policy": s.policy, "why": s.why.value, "detail": s.detail} for s in change.skipped]
        if change is not None
        else []
    )
    return {
        "commit": out.commit if out else None,
        "branch": out.branch if out else None,
        "pushed": out.pushed if out else False,
        "pullRequest": {"number": pr.number, "url": pr.url, "action": pr.action} if pr is not None else None,
        "updates": updates,
        "skipped": skipped,
        "error": str(done.images_error) if done.images_error is not None else None,
    }
