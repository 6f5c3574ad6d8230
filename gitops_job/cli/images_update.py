"""`images update` (the change the policies of gitops.yaml make, as a diff or a local commit) and `images why`
(which tag a policy chooses, and why every other tag lost); what `reconcile`'s image automation shares with them
(registry Secrets read from the target's cluster, the GitHub client of pull-request mode)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from gitops_job.cli.options import say
from gitops_job.config.images import GitHubRepo
from gitops_job.config.load import RepoConfig, load_config
from gitops_job.config.load import target as target_of
from gitops_job.errors import ImageError
from gitops_job.exitcodes import ExitCode


def _checkout_options(f: Any) -> Any:
    for option in reversed([
        click.option("--repo", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path(),
                     show_default=True, help="The git checkout holding gitops.yaml."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="The repo config file.  [default: <repo>/gitops.yaml]"),
        click.option("-t", "--target", help="The target: its stacks' Flux v1 automated workloads are updated, "
                     "and its cluster holds the registry Secrets that policies name (credentials: {secret: ...}).  "
                     "[default: the first in gitops.yaml]"),
        click.option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file, for credentials from a Secret."),
        click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="A directory kept between runs: tag lists are cached there, and a gitops.yaml already "
                     "checked against the schema is not checked again.  [default: no cache]"),
    ]):  # fmt: skip
        f = option(f)
    return f


@click.command(name="update")
@_checkout_options
@click.option("--dry-run", is_flag=True, help="Print the change as a unified diff and write nothing; exit 3 when there "
              "is one.")  # fmt: skip
def update_cmd(repo: Path, config_file: Path | None, target: str | None, kubeconfig: str | None,
               state_dir: Path | None, dry_run: bool) -> None:  # fmt: skip
    """Set every marker to the tag its policy chooses now, as one commit.

    \b
    Each policy's registry is asked for its tags (once per policy), the policy chooses one,
    and only the marked values change — every other byte of each file stays as it was. A
    workload annotated fluxcd.io/automated: "true" (Flux v1) gets, per container, the newest
    tag its fluxcd.io/tag.<container> filter allows. A workload locked with fluxcd.io/locked
    keeps its images; a registry that cannot be read is reported stale and its images keep
    their values.

    \b
    Without --dry-run: the change is one commit on the checkout's current branch, with the
    message of images.automation.messageTemplate; nothing is pushed (`git push` it, or let the
    scheduled `reconcile` do it). A file with uncommitted edits that the change touches is
    refused. With --dry-run: the diff on stdout, nothing written.

    \b
    Exit codes: 0 nothing to change (or committed), 3 with --dry-run: a change is pending,
    1 an error (a marker naming an undeclared policy, a bad range, a marker that is not after
    a scalar: each named by file:line).
    """
    from gitops_job import memo
    from gitops_job.images import update  # here: `images --help` needs none of it

    with memo.kept(state_dir):  # a gitops.yaml that passed the schema in an earlier run is not checked again
        config = load_config(repo, config_file)
        released: tuple[Any, ...] = ()
        if update.names_v1_automation(config.root):  # only then the engine that renders the stacks is imported
            from gitops_job.reconcile.context import Settings
            from gitops_job.reconcile.workloads import releases

            released = releases(Settings(repo=repo, config_file=config_file, target=target, kubeconfig=kubeconfig))
    registry_for = update.registries(config.images, state_dir=state_dir, secret=secret_reader(config, target,
                                                                                               kubeconfig))  # fmt: skip
    if dry_run:
        change = update.plan(config.root, config.images, registry_for, released)
        outcome = update.Outcome(change)
        for line in outcome.lines():
            say(line, err=True)
        click.echo(change.diff(), nl=False)
        if change:
            raise SystemExit(ExitCode.CHANGES)
        return
    done = update.commit_local(config.root, config.images, registry_for, released)
    for line in done.lines():
        say(line, err=True)


@click.command(name="why")
@click.argument("policy")
@_checkout_options
def why_cmd(policy: str, repo: Path, config_file: Path | None, target: str | None, kubeconfig: str | None,
            state_dir: Path | None) -> None:  # fmt: skip
    """Show which tag POLICY chooses, and why every other tag lost.

    \b
    POLICY is a policy of gitops.yaml's images.policies, as a marker names it (NAMESPACE:NAME)
    or by its name alone. The registry is asked for the repository's tags; the table lists the
    winner, then the tags it beat, then the tags each rule removed (filter did not match, not a
    version, pre-release not allowed, outside range, ...), each with the reason.

    \b
    Example:
      gitops-job images why apps:app
    """
    from gitops_job.images import policy as policies
    from gitops_job.images import update

    config = load_config(repo, config_file)
    chosen = _policy_named(config, policy)
    registry_for = update.registries(config.images, state_dir=state_dir, secret=secret_reader(config, target,
                                                                                               kubeconfig))  # fmt: skip
    compiled = policies.parse_policy(chosen.spec(), chosen.where)
    listed = registry_for(chosen).tags(chosen.repository)
    click.echo(f"repository: {chosen.repository} ({len(listed.tags)} tags)")
    click.echo(policies.why_table(policies.select(compiled, list(listed.tags))), nl=False)


def _policy_named(config: RepoConfig, text: str) -> Any:
    namespace, sep, name = text.rpartition(":")
    images = config.images
    if sep:
        found = images.resolve(namespace, name)
    else:
        named = [p for p in images.policies if p.name == name]
        found = named[0] if len(named) == 1 else None
        if len(named) > 1:
            raise ImageError(f"{len(named)} policies are named {name!r}: give NAMESPACE:NAME ("
                             f"{', '.join(p.ref for p in named)})", where="images why")  # fmt: skip
    if found is None:
        known = ", ".join(p.ref for p in images.policies) or "none"
        raise ImageError(f"no image policy {text!r} in gitops.yaml (images.policies: {known})", where="images why")
    return found


def github_client(repo: GitHubRepo) -> Any:
    """The GitHub client of pull-request mode: the token from the environment variable or file gitops.yaml names."""
    from gitops_job.github.client import GitHub  # here: the GitHub client is slow to import

    token = os.environ.get(repo.token.env, "") if repo.token.env else ""
    if repo.token.file:
        try:
            token = Path(repo.token.file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ImageError(f"cannot read the GitHub token file: {e.strerror}", where=str(repo.token)) from None
    if not token:
        raise ImageError("the GitHub token is not set (images.automation.github.token)", where=str(repo.token))
    return GitHub(repo.api_url, token, repo.repository)


def secret_reader(config: RepoConfig, target: str | None, kubeconfig: str | None) -> Any:
    """How a policy's ``credentials: {secret: ...}`` is read: from the target's cluster, connected on first use."""
    chosen = target_of(config, target)

    def read(namespace: str | None, name: str) -> dict[str, Any]:
        from gitops_job.kube import Kube

        kube = Kube.connect(kubeconfig, chosen.context)
        try:
            ns = namespace or chosen.inventory_namespace
            found: dict[str, Any] = kube.request("GET", f"/api/v1/namespaces/{ns}/secrets/{name}",
                                                 where=f"Secret/{ns}/{name}")  # fmt: skip
            return found
        finally:
            kube.close()

    return read
