"""The stack controls: ``suspend`` / ``resume`` (Flux's ``flux suspend kustomization``: runs leave that stack alone,
its objects stay as they are), stored on the stack's inventory, and ``rollback`` (a commit that restores the stack's
files, or an emergency apply that leaves the stack off-git). Each inventory change is a guarded write and a
Kubernetes Event on it (``kubectl describe configmap`` shows who did what and why)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path

import yaml

from gitops_job import git
from gitops_job.errors import GitopsJobError, SourceError, ValidationError
from gitops_job.identity import ObjectId
from gitops_job.images import annotate, markers
from gitops_job.images import annotations as v1
from gitops_job.model import RenderedObject, Source
from gitops_job.outcomes import Origin, RunResult
from gitops_job.reconcile import inventory
from gitops_job.reconcile.context import Settings, connected, select
from gitops_job.reconcile.results import ApplyResult, Hold
from gitops_job.reconcile.run import ApplyOptions, run_apply
from gitops_job.reconcile.workloads import commit_and_push


@dataclass(frozen=True)
class Changed:
    """What a control did to one stack: its inventory before and after."""

    stack: str
    before: inventory.Inventory
    after: inventory.Inventory


def _one_stack(settings: Settings, stack: str) -> Settings:
    return dc_replace(settings, stacks=(stack,))


def run_suspend(settings: Settings, stack: str, user: str, reason: str) -> Changed:
    """Mark ``stack`` suspended (who, why, now) on its inventory: runs (``apply``, ``reconcile``) leave it alone
    until :func:`run_resume`. Suspending a suspended stack records the new reason and user."""
    if not reason.strip():
        raise ValidationError(
            "a suspension needs a reason (--reason): it is what `status` shows", where=f"stack {stack}"
        )
    with connected(_one_stack(settings, stack)) as (selection, kube):
        t = selection.target
        inventory.ensure_namespace(kube, t.inventory_namespace)
        before = inventory.read(kube, t.inventory_namespace, t.name, stack)
        hold = Hold(user, reason, inventory.now())
        after = inventory.write(kube, dc_replace(before, suspended=hold))
        inventory.event(kube, after, reason="Suspended", message=f"suspended by {user}: {reason}")
        return Changed(stack, before, after)


def run_resume(settings: Settings, stack: str, user: str) -> Changed:
    """Clear ``stack``'s suspension and its off-git mark: the next run reconciles it from git again."""
    with connected(_one_stack(settings, stack)) as (selection, kube):
        t = selection.target
        before = inventory.read(kube, t.inventory_namespace, t.name, stack)
        if before.suspended is None and before.off_git is None:
            return Changed(stack, before, before)
        after = inventory.write(kube, dc_replace(before, suspended=None, off_git=None))
        inventory.event(kube, after, reason="Resumed", message=f"resumed by {user}")
        return Changed(stack, before, after)


# -- rollback -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RolledBack:
    """What ``rollback`` did: the revision gone back to, and the commit that restores it (a plain rollback) or the
    apply that put it on the cluster directly (``--emergency``, or ``--reconcile-now`` after the commit)."""

    stack: str
    revision: str
    commit: str | None = None  # None: emergency, or the files were that revision's already
    pushed: str | None = None  # "<url> <branch>" when pushed
    applied: ApplyResult | None = None
    files: tuple[str, ...] = ()  # the files the commit restored or removed
    locked: tuple[ObjectId, ...] = ()  # workloads whose marked image it put back, locked in the same commit


def recorded(inv: inventory.Inventory, ref: str) -> str:
    """The full revision ``ref`` (a commit id, or a prefix of at least 7 hex digits) names among those the stack's
    history records as applied (its succeeded runs and its last revision applied in full); else an error that lists
    them."""
    known = [r.revision for r in inv.runs if r.result is RunResult.SUCCEEDED]
    known += [inv.revision] if inv.revision else []
    revisions = list(dict.fromkeys(r for r in known if git.is_sha(r)))
    hits = [r for r in revisions if len(ref) >= 7 and r.startswith(ref.lower())]
    if len(hits) == 1:
        return hits[0]
    listed = ", ".join(r[:12] for r in revisions) or "none"
    why = f"names {len(hits)} of them" if hits else "is not one of them"
    raise ValidationError(
        f"{ref!r} {why}: the revisions recorded as applied to this stack (`gitops-job history {inv.stack}`) are: "
        f"{listed}. Pass one of those (7 or more characters)",
        where=f"stack {inv.stack}",
    )


def _branch_head(root: Path) -> str | None:
    """The commit the checkout's origin branch points at now (what the scheduled run would reconcile), or None
    when it cannot be asked (no origin, a detached HEAD, the git server down: the checkout's HEAD stands in)."""
    where = git.upstream(root)
    if where is None:
        return None
    try:
        return git.branch_head(where[0], where[1])
    except SourceError:
        return None


def _files(directory: Path, root: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(directory).parts}  # fmt: skip


def run_rollback(
    settings: Settings,
    stack: str,
    ref: str,
    user: str,
    reason: str,
    author: git.Author,
    *,
    emergency: bool = False,
    push: bool = True,
    reconcile_now: bool = False,
    origin: Origin | None = None,
) -> RolledBack:
    """Go back to a revision the stack's history records.

    Default: one commit that restores the stack's directory (its ``path`` in gitops.yaml) to its content at that
    revision — files changed since are restored, files added since removed — with a message naming the revision,
    who and why, pushed to the checkout's ``origin`` branch; the next run applies it (``reconcile_now``: applied
    here and now, from the checkout). Git stays the audit log.

    ``emergency``: apply that revision directly (the apply recipe on a working tree of it, history check allowed
    explicitly) and mark the stack off-git (the revision, who, why, and the branch's head now): runs leave it alone
    until a commit other than those two arrives, or ``resume``."""
    one = _one_stack(settings, stack)
    selection = select(one)
    root = selection.config.root
    with connected(one) as (chosen, kube):
        t = chosen.target
        rev = recorded(inventory.read(kube, t.inventory_namespace, t.name, stack), ref)
    head = git.revision(root)
    options = ApplyOptions(origin=origin)
    if emergency:
        hold = Hold(user, reason, inventory.now(), rev, _branch_head(root) or head.removesuffix("-dirty"))
        options = dc_replace(options, revision=rev, allow_non_descendant=True, off_git=hold)
        with git.worktree(root, rev) as tree:
            applied = run_apply(dc_replace(one, repo=tree), options)
        return RolledBack(stack, rev, applied=applied)
    if head.endswith("-dirty"):
        raise ValidationError(
            "the checkout has uncommitted changes: a rollback commits the stack's files as they were at a revision, "
            "so commit or discard your changes first",
            where=str(root),
        )
    path = selection.stacks[0].path
    with git.worktree(root, rev) as tree:
        old = _files(tree / path, tree)
    if not old:
        raise ValidationError(f"the stack's directory {path} held no files at {rev[:12]}", where=f"stack {stack}")
    new = _files(root / path, root)
    changes: dict[str, bytes | None] = {f: data for f, data in old.items() if new.get(f) != data}
    changes |= {f: None for f in new if f not in old}
    if not changes:
        return RolledBack(stack, rev)
    why = f": {reason}" if reason else ""
    locked = _lock_put_back(changes, new, f"rollback to {rev[:12]}{why}", user)
    held = "".join(f"\n{w} is locked (fluxcd.io/locked) so that image automation does not bump its image again;"
                   f" `gitops-job unlock {w}` hands it back." for w in locked)  # fmt: skip
    message = (f"rollback stack {stack} to {rev[:12]}{why}\n\nRolled back by {user} with `gitops-job rollback`: the"
               f" files of {path} restored to their content at {rev}.\n{held}")  # fmt: skip
    sha, pushed = commit_and_push(root, changes, message, author, push=push)
    now = run_apply(one, options) if reconcile_now and sha is not None else None
    return RolledBack(stack, rev, sha, pushed, now, tuple(sorted(changes)), locked)


def _lock_put_back(
    changes: dict[str, bytes | None], current: Mapping[str, bytes], reason: str, user: str
) -> tuple[ObjectId, ...]:
    """Lock, in the restored bytes of its file (``changes`` is edited), each workload whose ``$imagepolicy``
    marker the rollback sets back to another value: otherwise the next scheduled run's image automation bumps it
    again and undoes the rollback one interval later. A marker outside a workload (a kustomization's ``images:``,
    Helm values), in a workload already locked, or one that cannot be edited in place is left as it is."""
    locked: list[ObjectId] = []
    tried: list[ObjectId] = []  # an edit that fails is not tried again
    for file, restored in sorted(changes.items()):
        if restored is None or b"$imagepolicy" not in restored or file not in current:
            continue
        try:
            now = {(m.document, m.paths[0]): m.value for m in markers.find(current[file].decode("utf-8"), file)}
            data = restored
            while (found := _put_back(file, data, now, tried)) is not None:
                controls, line = found
                tried.append(controls.id)
                data = annotate.set_annotations(data, file, controls.id, v1.lock(controls, reason, user), line)
                changes[file] = data
                locked.append(controls.id)
        except (GitopsJobError, UnicodeDecodeError, yaml.YAMLError):
            continue
    return tuple(locked)


def _put_back(
    file: str, data: bytes, now: Mapping[tuple[int, tuple[str | int, ...]], str], done: list[ObjectId]
) -> tuple[v1.WorkloadControls, int] | None:
    """The first workload of ``file`` (its restored bytes ``data``) not locked yet whose marker goes back to
    another value than ``now``'s, and the marker's line."""
    text = data.decode("utf-8")
    documents = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
    for m in markers.find(text, file):
        body = documents[m.document] if m.document < len(documents) else None
        if now.get((m.document, m.paths[0]), m.value) == m.value or not isinstance(body, dict):
            continue
        if not isinstance(body.get("metadata"), dict):
            continue
        controls = v1.parse(RenderedObject(ObjectId.of(body), body, Source(file, m.line), ""))
        if controls is not None and not controls.locked and controls.id not in done:
            return controls, m.line
    return None
