"""From the markers of a repository and the tag each policy chose to the change set of one commit. Pure: bytes,
markers and choices in; the files' new bytes, what changed (old → new per image), the commit message and the bot
branch's name out.

Each marker's value is set by its part: the whole reference (no suffix) becomes ``REPOSITORY:TAG`` (``@DIGEST``
kept when the old value pinned one and the digest is known), ``:tag`` the tag, ``:name`` the repository and
``:digest`` the digest — as Flux's image-automation-controller sets them. A marker whose policy chose no tag, whose
registry could not be read (stale), or that sits in a locked workload is left as it is and reported.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from gitops_job.config.images import Automation, ImagePolicy, Images
from gitops_job.errors import ErrorGroup, ImageError
from gitops_job.images import setters
from gitops_job.images.annotate import locate
from gitops_job.images.annotations import Container, Ignore, WorkloadControls
from gitops_job.images.markers import Marker, Part


@dataclass(frozen=True)
class Scanned:
    """One file that holds markers: its path (relative to the repository's root, POSIX), bytes and markers."""

    file: str
    data: bytes
    markers: tuple[Marker, ...]

    @cached_property
    def documents(self) -> list[Any]:
        """The file's documents (libyaml), read once: by the lock check and by the setter's verification."""
        return setters.documents(self.data)


@dataclass(frozen=True)
class Chosen:
    """What a policy chose: a tag (and its digest, when a marker needs one), or why nothing (``reason``)."""

    tag: str | None
    digest: str | None = None
    reason: str = ""  # no tag: "no tag qualified", "stale: the registry ... is unreachable", ...
    stale: bool = False  # the registry could not be read: the markers keep their values, reported stale


class Why(StrEnum):
    """Why a marker was left alone."""

    NO_TAG = "no tag chosen"
    STALE = "stale"
    LOCKED = "locked"
    IGNORED = "ignored"  # fluxcd.io/ignore: "true"
    NO_DIGEST = "no digest"
    NOT_EDITABLE = "not editable"  # a Flux v1 automated workload rendered by kustomize, helm or a template
    PINNED = "pinned by digest"  # a Flux v1 automated container whose image names a digest


@dataclass(frozen=True)
class Skipped:
    where: str  # file:line
    policy: str  # NS:NAME as the marker wrote it
    why: Why
    detail: str


@dataclass(frozen=True)
class Update:
    """One image's change: the policy, its repository, the old and new tag (or name, or digest) and the files."""

    policy: str
    repository: str
    old: str
    new: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class ChangeSet:
    files: Mapping[str, bytes]  # path -> new bytes: only the files that change
    before: Mapping[str, bytes]  # path -> old bytes, for the diff
    updates: tuple[Update, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    policies: tuple[str, ...] = field(default=())  # every policy a marker names (NS:NAME), in file order

    def __bool__(self) -> bool:
        return bool(self.files)

    def diff(self) -> str:
        """The change as a unified diff (``a/FILE`` → ``b/FILE``), file by file in path order."""
        out: list[str] = []
        for file in sorted(self.files):
            old = self.before[file].decode("utf-8").splitlines(keepends=True)
            new = self.files[file].decode("utf-8").splitlines(keepends=True)
            for line in difflib.unified_diff(old, new, f"a/{file}", f"b/{file}"):
                out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
        return "".join(out)

    def branch(self, prefix: str) -> str:
        """The bot branch of this change set: ``prefix`` and a hash of each policy's new value (the same tags
        proposed again, on whatever base, are the same branch and the same pull request)."""
        key = "\n".join(sorted({f"{u.policy}={u.new}" for u in self.updates}))
        return f"{prefix}{hashlib.sha256(key.encode()).hexdigest()[:12]}"


#: Why a marker's workload may not be changed — ``Why.LOCKED`` or ``Why.IGNORED`` and the detail — None: it may.
Locked = Callable[[Scanned, Marker], "tuple[Why, str] | None"]


def policies_of(scanned: Sequence[Scanned], images: Images) -> dict[str, ImagePolicy]:
    """Every policy the markers name, by :attr:`ImagePolicy.ref`; a marker naming no declared policy is an error
    naming its file:line (all of them at once)."""
    found: dict[str, ImagePolicy] = {}
    errors: list[ImageError] = []
    declared = ", ".join(p.ref for p in images.policies) or "none"
    for s in scanned:
        for m in s.markers:
            policy = images.resolve(m.policy.namespace, m.policy.name)
            if policy is None:
                errors.append(ImageError(
                    f"the marker names image policy {m.policy}, which gitops.yaml does not declare (images.policies:"
                    f" {declared}); add it under images.policies, or fix the marker", where=m.where))  # fmt: skip
            else:
                found.setdefault(policy.ref, policy)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup([*errors])
    return found


def compute(
    scanned: Sequence[Scanned], images: Images, chosen: Mapping[str, Chosen], locked: Locked | None = None
) -> ChangeSet:
    """The change set that puts each policy's chosen tag into its markers (``chosen`` by :attr:`ImagePolicy.ref`)."""
    files: dict[str, bytes] = {}
    before: dict[str, bytes] = {}
    skipped: list[Skipped] = []
    grouped: dict[tuple[str, str, str, str], list[str]] = {}
    names: dict[str, None] = {}
    for s in scanned:
        values: list[str] = []
        for m in s.markers:
            names.setdefault(str(m.policy))
            policy = images.resolve(m.policy.namespace, m.policy.name)
            assert policy is not None, "policies_of checked every marker first"
            choice = chosen.get(policy.ref, Chosen(None, reason="not looked up"))
            value, skip = _value(m, policy, choice)
            if skip is None and value != m.value and locked is not None and (why := locked(s, m)):
                value, skip = m.value, Skipped(m.where, str(m.policy), *why)
            if skip is not None:
                skipped.append(skip)
            values.append(value)
            if value != m.value:
                key = (str(m.policy), policy.repository, _short(m, m.value), _short(m, value))
                grouped.setdefault(key, [])
                if s.file not in grouped[key]:
                    grouped[key].append(s.file)
        if values == [m.value for m in s.markers]:
            continue
        new = setters.set_values(s.data, s.markers, values, s.documents)
        if new != s.data:
            files[s.file], before[s.file] = new, s.data
    updates = tuple(Update(p, repo, old, new, tuple(fs)) for (p, repo, old, new), fs in grouped.items())
    return ChangeSet(files, before, updates, tuple(skipped), tuple(names))


@dataclass(frozen=True)
class Release:
    """A container of a Flux v1 automated workload (``fluxcd.io/automated: "true"``): the automation releases to it
    the newest tag its ``fluxcd.io/tag.<container>`` filter allows, as Flux v1 did. ``problem`` says why its
    manifest cannot be edited in place (kustomize or helm output, a template); None: it can."""

    workload: WorkloadControls
    container: Container
    problem: str | None = None

    @property
    def key(self) -> str:
        """What one look-up serves: the repository and the filter (containers that share both share the answer)."""
        return f"{self.container.repository} {self.container.filter.text}"

    @property
    def name(self) -> str:
        """How the change and its skips name it: ``Kind/namespace/name (container)``."""
        return f"{self.workload.id} ({self.container.name})"


def release(
    change: ChangeSet,
    releases: Sequence[Release],
    chosen: Mapping[str, Chosen],
    read: Callable[[str], bytes],
    marked: Collection[tuple[str, int]] = (),
) -> ChangeSet:
    """``change`` (the markers') with each release's container image set to the tag its filter chose (``chosen`` by
    :attr:`Release.key`), in the files' bytes after the markers' changes (``read`` gives a file's bytes as they
    are). A container whose image line carries a marker (``marked``: file and line) is the marker's; a locked or
    ignored workload, one that cannot be edited in place, a digest-pinned image and a stale or empty choice are
    left as they are and reported."""
    files, before = dict(change.files), dict(change.before)
    updates, skipped = list(change.updates), list(change.skipped)
    for r in releases:
        w, c = r.workload, r.container
        at = str(w.source)
        why = _held(r)
        choice = chosen.get(r.key, Chosen(None, reason="not looked up"))
        if why is None and choice.tag is None:
            why = (Why.STALE if choice.stale else Why.NO_TAG), choice.reason
        if why is not None:
            skipped.append(Skipped(at, r.name, *why))
            continue
        assert choice.tag is not None
        image = f"{c.repository}:{choice.tag}"
        if image == c.image:
            continue
        file = w.source.file
        data = files[file] if file in files else read(file)
        mark = locate(data, file, w.id, c.path, w.source.line)
        if (file, mark.line) in marked:
            continue  # a $imagepolicy marker on the same line sets it
        new = setters.set_values(data, [mark], [image])
        if new == data:
            continue
        before.setdefault(file, data)
        files[file] = new
        updates.append(Update(r.name, c.repository, c.tag, choice.tag, (file,)))
    return ChangeSet(files, before, tuple(updates), tuple(skipped), change.policies)


def held(w: WorkloadControls) -> tuple[Why, str] | None:
    """Why image automation leaves the workload's images alone — locked with ``fluxcd.io/locked`` (naming who and
    why) or ``fluxcd.io/ignore: "true"`` — for a marker in it and a Flux v1 release alike; None: it may change them."""
    if w.lock is not None:
        return Why.LOCKED, f"{w.id} is {w.lock}"
    if w.ignore is Ignore.YES:
        return Why.IGNORED, f'{w.id} has {w.keys.get("ignore", "fluxcd.io/ignore")}: "true"'
    return None


def _held(r: Release) -> tuple[Why, str] | None:
    """Why a release may not change its container (None: it may)."""
    if (why := held(r.workload)) is not None:
        return why
    if r.problem is not None:
        return Why.NOT_EDITABLE, r.problem
    if "@" in r.container.image:
        return Why.PINNED, f"{r.container.image} names a digest; release a new one with `gitops-job release`"
    return None


def _value(m: Marker, policy: ImagePolicy, choice: Chosen) -> tuple[str, Skipped | None]:
    if choice.tag is None:
        why = Why.STALE if choice.stale else Why.NO_TAG
        return m.value, Skipped(m.where, str(m.policy), why, choice.reason)
    if m.part is Part.TAG:
        return choice.tag, None
    if m.part is Part.NAME:
        return policy.repository, None
    if m.part is Part.DIGEST:
        if choice.digest is None:
            return m.value, Skipped(m.where, str(m.policy), Why.NO_DIGEST, f"no digest of {choice.tag} was read")
        return choice.digest, None
    pinned = "@" in m.value and choice.digest is not None
    return f"{policy.repository}:{choice.tag}" + (f"@{choice.digest}" if pinned else ""), None


def _short(m: Marker, value: str) -> str:
    """What ``old → new`` shows of a value: the tag of a whole reference (its digest when it has no tag)."""
    if m.part is not Part.IMAGE:
        return value
    name, _, digest = value.partition("@")
    last = name.rsplit("/", 1)[-1]
    return last.partition(":")[2] or digest or value


def needs_digest(scanned: Sequence[Scanned], images: Images) -> set[str]:
    """The policies (by ref) a ``:digest`` marker, or a whole reference pinned with ``@``, needs a digest for."""
    out: set[str] = set()
    for s in scanned:
        for m in s.markers:
            policy = images.resolve(m.policy.namespace, m.policy.name)
            if policy is not None and (m.part is Part.DIGEST or (m.part is Part.IMAGE and "@" in m.value)):
                out.add(policy.ref)
    return out


def message(change: ChangeSet, automation: Automation) -> str:
    """The commit message: ``automation.message_template`` (sandboxed Jinja2) with ``changes`` (each with
    ``policy``, ``repository``, ``old``, ``new`` and ``files``) and ``policy`` (the policies changed, joined with
    ``, ``); trailing blanks trimmed, one final newline."""
    from jinja2 import StrictUndefined, TemplateError  # here: jinja2 is imported only when there is a commit
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    where = automation.message_where or "gitops.yaml: images.automation.messageTemplate"
    policy = ", ".join(dict.fromkeys(u.policy for u in change.updates))
    try:
        text = env.from_string(automation.message_template).render(changes=list(change.updates), policy=policy)
    except TemplateError as e:
        raise ImageError(f"the commit message template failed: {e}; fix the template", where=where) from None
    lines = [line.rstrip() for line in text.strip().splitlines()]
    if not lines or not lines[0]:
        raise ImageError("the commit message template made an empty subject line; fix the template", where=where)
    return "\n".join(lines) + "\n"


def review(before: Sequence[Scanned], after: Sequence[Scanned], old: Images, new: Images) -> tuple[str, ...]:
    """What a pull request changes of image automation, one line each (the plan comment's "images" block): each
    policy added, removed or changed in gitops.yaml, and each marker added, removed, or whose value or policy
    changed. Empty when it changes neither."""
    lines: list[str] = []
    was = {p.ref: p for p in old.policies}
    now = {p.ref: p for p in new.policies}
    for ref in dict.fromkeys([*was, *now]):
        a, b = was.get(ref), now.get(ref)
        if a is None and b is not None:
            lines.append(f"policy {ref} added: {b.repository}, {_shown(b)}")
        elif b is None and a is not None:
            lines.append(f"policy {ref} removed")
        elif a is not None and b is not None and (a.repository, _shown(a)) != (b.repository, _shown(b)):
            lines.append(f"policy {ref} changed: {a.repository}, {_shown(a)} → {b.repository}, {_shown(b)}")
    marks = {(s.file, m.line): m for s in before for m in s.markers}
    kept: set[tuple[str, str, str]] = {(s.file, str(m.policy), m.value) for s in before for m in s.markers}
    for s in after:
        for m in s.markers:
            if (s.file, str(m.policy), m.value) in kept:
                continue
            prior = marks.get((s.file, m.line))
            if prior is not None and str(prior.policy) == str(m.policy):
                lines.append(f"{m.where}: {m.policy} {prior.value} → {m.value}")
            else:
                lines.append(f"{m.where}: marker {m.policy} added ({m.value})")
    now_marks = {(s.file, str(m.policy), m.value) for s in after for m in s.markers}
    changed = {(s.file, m.line) for s in after for m in s.markers}
    for s in before:
        for m in s.markers:
            if (s.file, str(m.policy), m.value) not in now_marks and (s.file, m.line) not in changed:
                lines.append(f"{m.where}: marker {m.policy} removed (was {m.value})")
    return tuple(lines)


def _shown(p: ImagePolicy) -> str:
    name, body = next(iter(p.policy.items()))
    detail = ", ".join(f"{k} {v}" for k, v in (body or {}).items())
    filtered = f", filterTags {dict(p.filter_tags)}" if p.filter_tags else ""
    return f"{name} {detail}".strip() + filtered
