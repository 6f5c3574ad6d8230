"""Image automation's run: scan a checkout for markers, ask each named policy's registry for its tags, choose, and
write the change as one commit — pushed to the branch, or to a bot branch proposed as one pull request.

The thin I/O around :mod:`gitops_job.images.changes`: files are read under the path rule of
:mod:`gitops_job.config.paths`, tags come from the registry the caller hands in (one per policy: its credentials),
git runs through :mod:`gitops_job.git` and the pull request goes through the client the caller hands in (the
GitHub client lives above this layer). A push the remote rejects because the branch moved on is retried: fetch,
check out the new head, rebuild the change set there, commit and push again — at most ``PUSH_RETRIES`` times.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from gitops_job import git
from gitops_job.config import paths
from gitops_job.config.images import ImagePolicy, Images, Mode
from gitops_job.errors import GitopsJobError, ImageError, PushRejectedError
from gitops_job.identity import ObjectId
from gitops_job.images import annotations as v1
from gitops_job.images import markers, policy
from gitops_job.images.changes import (
    ChangeSet,
    Chosen,
    Locked,
    Release,
    Scanned,
    Why,
    compute,
    held,
    message,
    needs_digest,
    policies_of,
    release,
)
from gitops_job.model import RenderedObject, Source

PUSH_RETRIES = 3
WORKERS = 8  # registries asked at a time
YAML_SUFFIXES = (".yaml", ".yml")


class TagList(Protocol):
    @property
    def tags(self) -> Sequence[str]: ...


class Registry(Protocol):
    """What the update needs of a registry client (``gitops_job.registry``): a repository's tags, a tag's digest."""

    def tags(self, repository: str) -> TagList: ...

    def digest(self, repository: str, tag: str) -> str: ...


RegistryFor = Callable[[ImagePolicy], Registry]  # the client for a policy (its registry, its credentials)


class PullResult(Protocol):
    number: int
    url: str
    action: str  # created, updated, unchanged


class PullRequests(Protocol):
    """What PR mode needs of the GitHub client: one open pull request per bot branch, created or brought up to date."""

    def ensure_pull(self, head: str, base: str, title: str, body: str) -> PullResult: ...


@dataclass(frozen=True)
class Looked:
    """Each policy's choice, and the selection behind it (``images why``)."""

    chosen: Mapping[str, Chosen]
    selections: Mapping[str, policy.Selection] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a run of the automation did."""

    change: ChangeSet
    commit: str | None = None  # the commit made (None: nothing to change, or a dry run)
    branch: str | None = None  # where it was pushed (the branch, or the bot branch)
    pushed: bool = False  # False: the bot branch already held this very change
    pull: PullResult | None = None
    attempts: int = 1  # pushes tried (a rejected push is retried on the branch's new head)

    def lines(self) -> list[str]:
        """What a run says about it, one line each (stderr)."""
        out = [f"images: {s.where}: {s.policy} not updated ({s.why}: {s.detail})" for s in self.change.skipped]
        if not self.change:
            left = f"; {len(out)} image(s) not updated, above" if out else ""
            return [*out, f"images: {'up to date' if not out else 'nothing to commit'} (no image changes{left})"]
        olds = ", ".join(f"{u.policy} {u.old} → {u.new}" for u in self.change.updates)
        if self.commit is None:
            return [*out, f"images: would change {len(self.change.files)} file(s): {olds}"]
        where = f" to {self.branch}" if self.branch else ""
        done = "pushed" if self.pushed else ("already pushed" if self.branch else "committed")
        out.append(f"images: {done} {self.commit[:12]}{where}: {olds}")
        if self.pull is not None:
            out.append(f"images: pull request #{self.pull.number} {self.pull.action}: {self.pull.url}")
        return out


SecretReader = Callable[[str | None, str], Mapping[str, Any]]  # (namespace or None, name) -> the Secret object


def registries(images: Images, *, state_dir: Path | None, secret: SecretReader | None = None) -> RegistryFor:
    """The registry client of each policy: one per distinct credentials (anonymous, a docker ``config.json``, an
    ``imagePullSecrets``-style Secret read through ``secret``), tag lists cached in ``state_dir``."""
    from gitops_job.registry import Credentials  # here: only a run with policies pays for the client
    from gitops_job.registry import Registry as Client

    made: dict[tuple[str | None, str | None, str | None], Client] = {}

    def credentials(p: ImagePolicy) -> Credentials:
        c = p.credentials
        if c is None:
            return Credentials.anonymous()
        if c.docker_config is not None:
            return Credentials.docker_config(Path(c.docker_config))
        assert c.secret is not None, "gitops.yaml was checked: exactly one of dockerConfig or secret"
        if secret is None:
            raise ImageError(f"credentials from Secret {c.secret} need a cluster to read it from", where=p.where)
        found = secret(c.namespace, c.secret)
        shown = f"Secret/{(found.get('metadata') or {}).get('namespace', c.namespace or '?')}/{c.secret}"
        raw = (found.get("data") or {}).get(".dockerconfigjson")
        if found.get("type") != "kubernetes.io/dockerconfigjson" or not isinstance(raw, str):
            raise ImageError(f"{shown} is not of type kubernetes.io/dockerconfigjson with a .dockerconfigjson key;"
                             " create it with `kubectl create secret docker-registry`", where=p.where)  # fmt: skip
        try:
            parsed = json.loads(base64.b64decode(raw))
        except ValueError:
            raise ImageError(f"{shown}: .dockerconfigjson is not base64 JSON (not shown)", where=p.where) from None
        return Credentials.dockerconfigjson(parsed, source=shown)

    lock = threading.Lock()  # policies are looked up in parallel: one client per credentials, made once

    def for_policy(p: ImagePolicy) -> Registry:
        c = p.credentials
        key = (None, None, None) if c is None else (c.docker_config, c.secret, c.namespace)
        with lock:
            if key not in made:
                made[key] = Client(credentials(p), state_dir=state_dir, cache_ttl=images.scan_interval)
            return made[key]

    return for_policy


def v1_locks(scanned: Sequence[Scanned]) -> Locked:
    """Why a marker may not be changed: it is in a workload locked with Flux v1's ``fluxcd.io/locked: "true"`` (the
    reason names who locked it and why), or that image automation must leave alone (``fluxcd.io/ignore: "true"``),
    as :mod:`gitops_job.images.annotations` reads them. Each file's documents are parsed once, only when a marker
    of it would change."""

    def locked(s: Scanned, m: markers.Marker) -> tuple[Why, str] | None:
        body = s.documents[m.document] if m.document < len(s.documents) else None
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            return None
        controls = v1.parse(RenderedObject(ObjectId.of(body), body, Source(s.file, m.line), ""))
        return None if controls is None else held(controls)

    return locked


def scan(root: Path) -> tuple[Scanned, ...]:
    """Every YAML file under ``root`` (the directory holding gitops.yaml) that holds a marker, in path order;
    ``.git`` and whatever a symlink leads outside the repository are never read."""
    real = paths.real(root)
    found: list[Scanned] = []
    for file in sorted(_files(real, YAML_SUFFIXES)):
        if paths.refusal_of(real, paths.real(file)) is not None:
            continue
        data = file.read_bytes()
        if b"$imagepolicy" not in data:
            continue
        rel = file.relative_to(real).as_posix()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ImageError(f"not UTF-8 text ({e.reason}); markers are read from UTF-8 YAML only", where=rel) from None
        marks = markers.find(text, rel)
        if marks:
            found.append(Scanned(rel, data, marks))
    return tuple(found)


#: How a file names Flux v1's automation (either prefix): only then are the stacks rendered for its workloads.
V1_AUTOMATED = (b"fluxcd.io/automated", b"flux.weave.works/automated")


def names_v1_automation(root: Path) -> bool:
    """Does any file under ``root`` (not ``.git``; no symlink followed) name Flux v1's ``automated`` annotation?
    A template or a chart names it as a manifest does, so any file counts."""
    for path in _files(root):
        if path.is_symlink() or not path.is_file():
            continue  # a link may lead outside the repository (or to a device): never read
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(n in data for n in V1_AUTOMATED):
            return True
    return False


def _files(root: Path, suffixes: tuple[str, ...] = ("",)) -> Iterator[Path]:
    """Every file under ``root`` whose name ends with one of ``suffixes``, never inside ``.git``."""
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        yield from (Path(directory) / f for f in files if f.endswith(suffixes))


def look_up(used: Mapping[str, ImagePolicy], registry_for: RegistryFor, digests: Collection[str] = ()) -> Looked:
    """Each used policy compiled (a bad range or pattern is an error naming its gitops.yaml line) and its tags
    chosen, ``WORKERS`` registries asked at a time (the client keeps each host's rate limit); a registry that
    cannot be read makes that policy stale (its markers keep their values), never fails."""
    compiled = {ref: policy.parse_policy(p.spec(), p.where) for ref, p in used.items()}

    def one(ref: str) -> tuple[Chosen, policy.Selection | None]:
        p = used[ref]
        try:
            registry = registry_for(p)
            tags = registry.tags(p.repository).tags
        except (GitopsJobError, OSError) as e:
            return Chosen(None, reason=_why(p, e), stale=True), None
        selection = policy.select(compiled[ref], list(tags))
        if selection.winner is None:
            return Chosen(None, reason=selection.error), selection
        try:
            digest = registry.digest(p.repository, selection.winner) if ref in digests else None
        except (GitopsJobError, OSError) as e:
            return Chosen(None, reason=_why(p, e), stale=True), selection
        return Chosen(selection.winner, digest), selection

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        done = dict(zip(used, pool.map(one, used), strict=True))
    return Looked({ref: c for ref, (c, _) in done.items()}, {ref: s for ref, (_, s) in done.items() if s is not None})


def look_up_releases(releases: Sequence[Release], images: Images, registry_for: RegistryFor) -> dict[str, Chosen]:
    """The tag each Flux v1 release's filter chooses, by :attr:`Release.key` (one look-up per repository and
    filter, ``WORKERS`` at a time). A repository is asked with the credentials of a gitops.yaml policy of the same
    repository, else anonymously; a registry that cannot be read makes its containers stale, never fails."""
    wanted: dict[str, Release] = {}
    for r in releases:
        if r.problem is None and held(r.workload) is None:
            wanted.setdefault(r.key, r)

    def one(r: Release) -> Chosen:
        repository = r.container.repository
        declared = next((p for p in images.policies if p.repository == repository), None)
        as_policy = declared or ImagePolicy(r.name, repository, {}, str(r.workload.source))
        try:
            tags = registry_for(as_policy).tags(repository).tags
        except (GitopsJobError, OSError) as e:
            return Chosen(None, reason=_why(as_policy, e), stale=True)
        selection = policy.select(r.container.filter, list(tags))
        return Chosen(selection.winner, reason=selection.error if selection.winner is None else "")

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(zip(wanted, pool.map(one, wanted.values()), strict=True))


def _why(p: ImagePolicy, e: Exception) -> str:
    """A registry failure as a stale marker's reason: where (the registry's repository) and why, once each."""
    if isinstance(e, GitopsJobError):
        return f"{e.where}: {e.reason}" if e.where else e.reason
    return f"{p.repository}: {e}"


def plan(root: Path, images: Images, registry_for: RegistryFor, releases: Sequence[Release] = ()) -> ChangeSet:
    """The change set for the checkout at ``root`` (nothing is written): every marker set to its policy's choice,
    then each Flux v1 release's container to its filter's; a locked workload is left alone."""
    scanned = scan(root)
    used = policies_of(scanned, images)
    looked = look_up(used, registry_for, needs_digest(scanned, images))
    return _change(root, scanned, images, looked.chosen, releases, look_up_releases(releases, images, registry_for))


def _change(
    root: Path,
    scanned: Sequence[Scanned],
    images: Images,
    chosen: Mapping[str, Chosen],
    releases: Sequence[Release],
    released: Mapping[str, Chosen],
) -> ChangeSet:
    change = compute(scanned, images, chosen, v1_locks(scanned))
    if not releases:
        return change
    marked = {(s.file, m.line) for s in scanned for m in s.markers}
    return release(change, releases, released, lambda file: (root / file).read_bytes(), marked)


def commit_local(root: Path, images: Images, registry_for: RegistryFor, releases: Sequence[Release] = ()) -> Outcome:
    """``images update`` in a local checkout: the change as one commit on its current branch (nothing pushed). A
    file the change touches that has uncommitted edits is refused (they would go into the commit)."""
    change = plan(root, images, registry_for, releases)
    if not change:
        return Outcome(change)
    dirty = git.modified(root, sorted(change.files))
    if dirty:
        raise ImageError(
            f"{', '.join(dirty)} ha{'s' if len(dirty) == 1 else 've'} uncommitted changes, which the image update"
            " would commit too: commit or discard them first",
            where=str(root),
        )
    sha = git.commit(root, change.files, message(change, images.automation), images.automation.author)
    return Outcome(change, sha)


def automate(
    root: Path,
    images: Images,
    registry_for: RegistryFor,
    *,
    url: str,
    branch: str,
    auth: git.Auth | None = None,
    pulls: PullRequests | None = None,
    releases: Sequence[Release] = (),
) -> Outcome:
    """The scheduled run's update, on a fetched checkout (``root``: the directory holding gitops.yaml) of
    ``url``'s ``branch``: one commit, pushed to the branch (``push``) or to the change set's bot branch and proposed
    as one pull request through ``pulls`` (``pullRequest``). The checkout is left at the commit pushed to the branch
    (push) or at the branch's head (pull request), as the next run's fetch would leave it."""
    automation = images.automation
    target = automation.branch or branch
    scanned = scan(root)
    used = policies_of(scanned, images)
    looked = look_up(used, registry_for, needs_digest(scanned, images))
    released = look_up_releases(releases, images, registry_for)
    for attempt in range(1, PUSH_RETRIES + 2):
        change = _change(root, scanned, images, looked.chosen, releases, released)
        if not change:
            return Outcome(change, attempts=attempt)
        text = message(change, automation)
        if automation.mode is Mode.PULL_REQUEST:
            return _propose(root, change, text, url, target, auth, pulls, images)
        base = git.revision(root)
        sha = git.commit(root, change.files, text, automation.author)
        assert sha is not None, "a change set with files changes them"
        try:
            git.push(root, url, target, auth, rev=sha)
        except PushRejectedError:
            if attempt > PUSH_RETRIES:
                git.detach(root, base)  # as fetched: the commit that was not pushed is dropped
                raise
            git.detach(root, git.fetch(root, url, target, auth))
            scanned = scan(root)  # the branch's new head: its markers and bytes, and the same choices
            policies_of(scanned, images)
        except GitopsJobError:
            git.detach(root, base)
            raise
        else:
            return Outcome(change, sha, target, pushed=True, attempts=attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _propose(
    root: Path,
    change: ChangeSet,
    text: str,
    url: str,
    base: str,
    auth: git.Auth | None,
    pulls: PullRequests | None,
    images: Images,
) -> Outcome:
    if pulls is None:
        raise ImageError(
            "images.automation.mode is pullRequest, but no GitHub client was given (images.automation.github)",
            where="gitops.yaml: images.automation",
        )
    automation = images.automation
    head = git.revision(root)
    bot = change.branch(automation.branch_prefix)
    sha = git.commit(root, change.files, text, automation.author)
    assert sha is not None, "a change set with files changes them"
    try:
        existing = git.branch_head(url, bot, auth)
        same = existing is not None and (git.has_commit(root, existing) or _fetched(root, url, bot, auth))
        pushed = not (same and existing is not None and git.same_tree(root, existing, sha))
        if pushed:
            git.push(root, url, bot, auth, rev=sha, force=True)  # our branch: rebuilt on the base's head each time
        else:
            sha = existing or sha
    finally:
        git.detach(root, head)  # the checkout stays at the branch's head: the change lives on the bot branch
    title, _, body = text.partition("\n")
    body = body.strip() + f"\n\n<!-- gitops-job images {bot} -->\n"
    result = pulls.ensure_pull(bot, base, title, body)
    return Outcome(change, sha, bot, pushed=pushed, pull=result)


def _fetched(root: Path, url: str, branch: str, auth: git.Auth | None) -> bool:
    git.fetch(root, url, branch, auth)
    return True


def review(root: Path, base: str, config_file: Path | None = None) -> tuple[str, ...]:
    """What the checkout at ``root`` changes of image automation since commit ``base`` (a pull request's base):
    :func:`gitops_job.images.changes.review` of the markers and policies at both. A base that cannot be had, or
    whose files do not parse, is compared as having none."""
    from gitops_job.config.images import images as images_of
    from gitops_job.config.load import CONFIG_FILE, load_config
    from gitops_job.images.changes import review as compare

    config = load_config(root, config_file)
    old_files = git.files_at(config.root, base, "$imagepolicy") or {}
    before: list[Scanned] = []
    for file, data in sorted(old_files.items()):
        try:
            before.append(Scanned(file, data, markers.find(data.decode("utf-8"), file)))
        except (GitopsJobError, UnicodeDecodeError):
            continue
    name = config.file.relative_to(config.root).as_posix() if config.file.is_relative_to(config.root) else CONFIG_FILE
    old = Images()
    raw = (git.files_at(config.root, base, "images") or {}).get(name)
    try:
        loaded: Any = yaml.safe_load(raw) if raw else None
        old = images_of(loaded, lambda _path: "", lambda _duration: 0.0) if isinstance(loaded, dict) else old
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        pass
    return compare(before, scan(config.root), old, config.images)
