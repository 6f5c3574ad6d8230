"""The scheduled pull (``gitops-job reconcile``): ask the remote what its branch points at, get that commit (from the
state dir's cached clone, else a shallow clone of its own), then run the plan or apply recipe on it; then, when
gitops.yaml turns image automation on, write the tags its policies choose to git (pushed, or proposed as a pull
request). The commit that makes is applied by the next run, which finds the branch at it — as Flux's
image-automation-controller commits and the next source revision is applied.

A run whose remote head is the commit the cache already holds runs one ``git ls-remote`` and nothing else of git;
the apply recipe then writes nothing for a stack in sync at that commit (no change planned, the commit recorded).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from enum import Enum
from pathlib import Path, PurePosixPath

from gitops_job import git, memo
from gitops_job.config.images import GitHubRepo
from gitops_job.config.load import RepoConfig, load_config
from gitops_job.errors import GitopsJobError, SourceError
from gitops_job.images import update
from gitops_job.images.changes import Release
from gitops_job.kube import preloading
from gitops_job.reconcile.context import Settings
from gitops_job.reconcile.results import ApplyResult, Plan, Progress
from gitops_job.reconcile.run import ApplyOptions, run_apply, run_plan
from gitops_job.reconcile.workloads import releases


class Drift(Enum):
    """What a run does about a cluster that differs from git."""

    CORRECT = "correct"  # apply: the cluster is made to match git again
    REPORT = "report"  # plan only: what differs is reported, nothing is written


@dataclass(frozen=True)
class Source:
    """Where ``reconcile`` reads the desired state from."""

    url: str  # any URL git accepts (https, ssh, file://) or a path to a repository
    branch: str | None = None  # default: the branch the remote's HEAD names
    path_in_repo: str = "."  # the directory holding gitops.yaml, relative to the repository's root
    state_dir: Path | None = None  # a volume kept between runs: the clone is cached there
    auth: git.Auth | None = None

    @property
    def shown(self) -> str:
        return git.redact(self.url)


@dataclass(frozen=True)
class Fetched:
    """The commit a run works on, and how it was got."""

    url: str  # redacted
    branch: str
    revision: str
    root: Path  # the checkout (the repository's root)
    cached: bool  # the state dir held the commit already: nothing was fetched


@dataclass(frozen=True)
class Automation:
    """What the image automation needs from the caller: the registry clients for a config (its credentials, the
    state dir's tag cache), and a GitHub client for pull-request mode (the client lives above this layer)."""

    registry_for: Callable[[RepoConfig], update.RegistryFor]
    pulls_for: Callable[[GitHubRepo], update.PullRequests] | None = None


@dataclass(frozen=True)
class Reconciled:
    source: Fetched
    drift: Drift
    config: RepoConfig  # the fetched commit's gitops.yaml (its notification receivers)
    plan: Plan | None = None  # --drift report
    applied: ApplyResult | None = None  # --drift correct
    images: update.Outcome | None = None  # what the image automation did (None: not on, or not this mode)
    images_error: GitopsJobError | None = None  # the automation failed (after the apply, which stands)

    @property
    def result(self) -> ApplyResult:
        """What the run did, as an apply's result (a report applied nothing: no stacks, and its plan), for the
        notification receivers and the metrics."""
        if self.applied is not None:
            return self.applied
        assert self.plan is not None
        return ApplyResult(self.plan.target, self.source.revision, (), dict(self.plan.requests), self.plan)


@contextmanager
def fetched(source: Source) -> Iterator[Fetched]:
    """The remote branch's head, checked out (in the state dir, or a temp dir removed afterwards)."""
    rel = PurePosixPath(source.path_in_repo)
    if rel.is_absolute() or ".." in rel.parts:
        raise SourceError(
            f"--path-in-repo {source.path_in_repo} must be a relative path inside the repository (no '..')",
            where=source.shown,
        )
    with tempfile.TemporaryDirectory(prefix="gitops-job-clone-") as tmp:
        loading = preloading()  # behind the remote check and the checkout: both only wait on git (no import)
        try:
            branch, sha = git.remote_head(source.url, source.branch, source.auth)
            state = source.state_dir
            before = git.cached_head(state, source.url) if state is not None else None
            root, revision = git.checkout(source.url, branch, sha, state_dir=state, workdir=Path(tmp),
                                          auth=source.auth)  # fmt: skip
        finally:
            loading.join()
        yield Fetched(source.shown, branch, revision, root, cached=before == revision)


def reconcile(
    source: Source,
    settings: Settings,
    options: ApplyOptions,
    drift: Drift,
    progress: Progress | None = None,
    on_fetched: Callable[[Fetched], None] | None = None,
    automation: Automation | None = None,
) -> Reconciled:
    """Fetch the source, then plan (``report``) or apply (``correct``) it against the target's cluster.

    ``report`` includes the field-level drift (which fields moved, and which field manager moved them). With a state
    dir, what the run derives from file contents alone is kept there for the next run (:mod:`gitops_job.memo`).

    With ``correct`` and ``images.automation.enabled`` in the fetched gitops.yaml, the image automation runs after
    the apply, on the same checkout: a registry that cannot be read leaves its images stale, and a failure of the
    automation is kept in :attr:`Reconciled.images_error` — the apply stands either way. ``report`` writes nothing,
    git included."""
    with memo.kept(source.state_dir), fetched(source) as got:
        if on_fetched is not None:
            on_fetched(got)  # e.g. say which commit this run works on, before the recipe's output
        where = got.root / source.path_in_repo
        if not where.is_dir():
            raise SourceError(
                f"--path-in-repo {source.path_in_repo} is not a directory at commit {got.revision} of branch"
                f" {got.branch}: pass the directory holding gitops.yaml",
                where=got.url,
            )
        run_settings = dc_replace(settings, repo=where)
        if drift is Drift.REPORT:
            plan = _report(run_settings, progress)
            return Reconciled(got, drift, load_config(where, settings.config_file, settings.flux), plan=plan)
        options = dc_replace(options, revision=got.revision, source_auth=source.auth, correct_drift=True)
        applied = run_apply(run_settings, options, progress)
        config = load_config(where, settings.config_file, settings.flux)
        if automation is None or not config.images.automation.enabled:
            return Reconciled(got, drift, config, applied=applied)
        try:
            images = _automate(source, got, config, automation, releases(run_settings))
        except GitopsJobError as e:
            return Reconciled(got, drift, config, applied=applied, images_error=e)
        return Reconciled(got, drift, config, applied=applied, images=images)


def _automate(
    source: Source, got: Fetched, config: RepoConfig, automation: Automation, released: tuple[Release, ...]
) -> update.Outcome:
    settings = config.images.automation
    pulls = None
    if settings.github is not None and automation.pulls_for is not None:
        pulls = automation.pulls_for(settings.github)
    return update.automate(config.root, config.images, automation.registry_for(config), url=source.url,
                           branch=got.branch, auth=source.auth, pulls=pulls, releases=released)  # fmt: skip


def _report(settings: Settings, progress: Progress | None) -> Plan:
    """``--drift report``: the plan only (nothing is written), with the field-level drift of the objects we applied
    before (:attr:`Plan.drift`, as ``plan --drift`` reports it)."""
    return run_plan(settings, progress, drift=True)[1]
