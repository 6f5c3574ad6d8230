"""A Flux ``GitRepository`` that is another repository, checked out at its ``spec.ref`` through :mod:`gitops_job.git`:
what a Kustomization whose ``sourceRef`` names it renders from, and where a HelmRelease's chart from it is read.

- **Which commit** (:func:`choose`, pure): Flux's precedence — ``commit`` (with ``branch``, that branch is what is
  fetched), then ``name`` (a full ref), then ``semver`` (the highest tag in the range: the Masterminds rule of
  :func:`gitops_job.render.charts.pick`), then ``tag``, then ``branch``; nothing set is the branch ``master``, as
  in Flux. The remote's refs come from one ``git ls-remote``.
- **Who may be asked**: only a host on ``sources.allowHosts`` (:meth:`Sources.allows`, the check remote charts pass
  too), with the credentials ``sources.credentials`` gives for its URL; nothing on a run that fetches nothing (a
  fork's pull request). Refused before anything is sent.
- **Where**: ``<state dir>/sources/<hash of the URL>``, a full clone fetched only when it lacks the commit; without
  a state dir a shallow clone in a temporary directory for the process. What a source resolved to is kept for the
  rest of the process (a stack rendered twice asks the remote once; its tree is checked out again if another ref
  of the same repository moved it meanwhile).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gitops_job import git, memo
from gitops_job.config.flux import GitSource
from gitops_job.config.sources import host_of
from gitops_job.errors import RenderError, SourceError
from gitops_job.render.charts import ChartAccess, pick, secret

DEFAULT_BRANCH = "master"  # Flux's default when spec.ref sets nothing
SCHEMES = ("https", "http", "ssh")  # what a GitRepository's URL may use (never a local path or a remote helper)


@dataclass(frozen=True)
class Chosen:
    """The commit a ref spec resolves to, and the ref to fetch for it (None: the commit by id)."""

    commit: str
    fetch: str | None
    label: str  # "branch main", "tag v1.2.0 (semver ^1)", …


@dataclass(frozen=True)
class Checkout:
    """A GitRepository checked out: its working tree and the commit it holds."""

    source: GitSource
    root: Path
    commit: str
    ref: str  # what was resolved, as :attr:`Chosen.label`

    @property
    def url(self) -> str:
        return git.redact(self.source.url)

    @property
    def label(self) -> str:
        """``GitRepository/ns/name@1a2b3c4d5e6f``: how an object's source, a chart and a run record name it."""
        return f"{self.source.ref}@{self.commit[:12]}"


def choose(refs: Mapping[str, str], source: GitSource) -> Chosen:
    """The commit of ``refs`` (``git ls-remote``'s: ref → commit, annotated tags peeled) that ``source``'s ref
    resolves to, by Flux's precedence; a :class:`RenderError` naming the GitRepository when none does."""

    def fail(reason: str) -> RenderError:
        return RenderError(f"{source.ref}: {reason}", where=source.where)

    if source.commit:
        commit = source.commit.lower()
        if not git.is_sha(commit):
            raise fail(f"spec.ref.commit {source.commit!r} is not a full commit id (40 or 64 hex digits)")
        branch = f"refs/heads/{source.branch}" if source.branch else None
        if branch is not None and branch not in refs:
            raise fail(f"spec.ref.branch {source.branch!r} is not a branch of {git.redact(source.url)}")
        return Chosen(commit, branch, f"commit {commit[:12]}" + (f" of branch {source.branch}" if branch else ""))
    if source.name:
        if source.name not in refs:
            raise fail(f"spec.ref.name {source.name!r} is not a ref of {git.redact(source.url)} (a full ref: "
                       "refs/heads/main, refs/tags/v1.0.0, refs/pull/1/head)")  # fmt: skip
        return Chosen(refs[source.name], source.name, f"ref {source.name}")
    if source.semver:
        tags = {name.removeprefix("refs/tags/"): sha for name, sha in refs.items() if name.startswith("refs/tags/")}
        best = pick(sorted(tags), source.semver, f"{source.where}: {source.ref}: spec.ref.semver")
        if best is None:
            shown = ", ".join(sorted(tags)[:10]) or "none"
            raise fail(f"no tag matches spec.ref.semver {source.semver!r} (tags: {shown})")
        return Chosen(tags[best], f"refs/tags/{best}", f"tag {best} (semver {source.semver})")
    if source.tag:
        name = f"refs/tags/{source.tag}"
        if name not in refs:
            raise fail(f"spec.ref.tag {source.tag!r} is not a tag of {git.redact(source.url)}")
        return Chosen(refs[name], name, f"tag {source.tag}")
    branch = source.branch or DEFAULT_BRANCH
    name = f"refs/heads/{branch}"
    if name not in refs:
        why = "" if source.branch else " (no spec.ref: Flux's default branch is master; set spec.ref.branch)"
        raise fail(f"branch {branch!r} is not a branch of {git.redact(source.url)}{why}")
    return Chosen(refs[name], name, f"branch {branch}")


_chosen: dict[GitSource, Chosen] = {}  # this process's resolutions (see the module's docstring)
_temporary: list[Path] = []


def forget() -> None:
    """Drop this process's checkouts (a test starting a "new run")."""
    _chosen.clear()


def checkout(source: GitSource, access: ChartAccess, *, what: str = "") -> Checkout:
    """``source`` checked out at the commit its ref resolves to now. ``what``: who needs it, for messages (the
    Kustomization or HelmRelease). Raises a :class:`RenderError` naming the GitRepository's ``file:line`` when
    this run may not fetch it (a fork's pull request; a host not on ``sources.allowHosts``: nothing is sent) or
    git fails (the URL shown without credentials)."""
    shown = git.redact(source.url)
    for_what = f" (the source of {what})" if what else ""
    if not access.fetch:
        raise RenderError(f"{source.ref}{for_what}: {shown} is not fetched: this run fetches nothing (a fork's pull "
                          "request); the plan of a maintainer's branch renders it", where=source.where)  # fmt: skip
    host, port = host_of(source.url)
    scheme = urlsplit(source.url).scheme if "://" in source.url else "ssh"  # user@host:path is ssh
    if not host or scheme not in SCHEMES or "::" in source.url:  # no local paths, file://, ext:: helpers
        raise RenderError(f"{source.ref}: spec.url {shown!r} is not a remote URL git may fetch here (https://, "
                          "http://, ssh:// or user@host:path)", where=source.where)  # fmt: skip
    if not access.sources.allows(source.url):
        named = f"{host}:{port}" if port else host
        raise RenderError(f"{source.ref}{for_what}: host {named} is not in sources.allowHosts of gitops.yaml, so "
                          f"{shown} is not fetched (nothing was sent to it); add the host there to allow it",
                          where=source.where)  # fmt: skip
    auth = _auth(source, access)
    token_from = "sources.credentials in gitops.yaml, for this URL"
    try:
        chosen = _chosen.get(source) or choose(git.refs(source.url, auth, token_from=token_from), source)
        dest, shallow = _destination(source.url, chosen.commit)
        git.checkout_commit(source.url, chosen.commit, chosen.fetch, dest=dest, shallow=shallow, auth=auth,
                            token_from=token_from)  # fmt: skip
    except SourceError as e:
        raise RenderError(f"{source.ref}{for_what}: {e.where}: {e.reason}", where=source.where) from None
    _chosen[source] = chosen
    return Checkout(source, dest, chosen.commit, chosen.label)


def _auth(source: GitSource, access: ChartAccess) -> git.Auth | None:
    credential = access.sources.credential(source.url)
    if credential is None:
        return None
    where = source.where
    if credential.password is not None:
        return git.Auth(token=secret(credential.password, where), username=credential.username or "git")
    key, known = credential.identity_file, credential.known_hosts_file
    return git.Auth(ssh_key=Path(key) if key else None, known_hosts=Path(known) if known else None)


def _destination(url: str, commit: str) -> tuple[Path, bool]:
    """Where ``url`` is checked out, and whether shallowly: the state dir's clone of it (one per repository), else
    a temporary directory per commit."""
    kept = memo.current().path
    if kept is not None:
        return kept.parent / "sources" / git.cache_name(url), False
    if not _temporary:
        _temporary.append(Path(tempfile.mkdtemp(prefix="gitops-job-sources-")))
        atexit.register(shutil.rmtree, _temporary[0], True)
    return _temporary[0] / f"{git.cache_name(url)}-{commit[:16]}", True
