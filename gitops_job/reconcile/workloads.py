"""The workload controls, recorded in git (Flux v1's ``fluxctl`` verbs): list the workloads of the selected stacks
with their Flux v1 annotations, and ``lock`` / ``unlock`` / ``automate`` / ``deautomate`` / ``release`` one of them —
each an edit of the workload's own manifest file (``images.annotate``: only the lines needed), committed with a
message that says who and why, and pushed to the checkout's ``origin`` branch.

Offline: rendering needs no cluster (as ``render`` does); only git is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops_job import git
from gitops_job.errors import ImageError, SourceError
from gitops_job.images import annotate
from gitops_job.images import annotations as v1
from gitops_job.images.annotations import Available, WorkloadControls
from gitops_job.images.changes import Release
from gitops_job.images.policy import select
from gitops_job.images.update import names_v1_automation
from gitops_job.reconcile import context
from gitops_job.reconcile.context import Settings
from gitops_job.registry import ImageRef, Registry
from gitops_job.render.stack import detect_renderer

Changes = Mapping[str, str | None]


@dataclass(frozen=True)
class Listed:
    """The workloads of the selected stacks of one target, in render order."""

    target: str
    workloads: tuple[WorkloadControls, ...]


@dataclass(frozen=True)
class Edit:
    """One control applied to one workload's manifest: the file's bytes before and after, and the commit's message."""

    workload: WorkloadControls
    root: Path  # the repository's root (where gitops.yaml is)
    file: str  # relative to root
    before: bytes
    after: bytes
    message: str

    @property
    def changed(self) -> bool:
        return self.after != self.before


@dataclass(frozen=True)
class Recorded:
    edit: Edit
    commit: str | None  # None: nothing changed (no commit)
    pushed: str | None  # "<url> <branch>" (redacted) when pushed


def list_workloads(settings: Settings) -> Listed:
    """Render the selected stacks (offline) and read every workload's Flux v1 annotations."""
    selection = context.select(settings)
    rendered = context.render(selection, settings.vars)
    return Listed(selection.target.name, v1.parse_all(rendered.objects))


def releases(settings: Settings) -> tuple[Release, ...]:
    """The containers of every Flux v1 automated workload (``fluxcd.io/automated: "true"``) of the selected
    stacks, each with why its manifest cannot be edited in place (None: it can), for the image automation. The
    stacks are rendered only when a file of the repository names the annotation at all."""
    if not names_v1_automation(context.select(settings).config.root):
        return ()
    listed = list_workloads(settings)
    renderers: dict[str, str] = {}
    out: list[Release] = []
    for w in listed.workloads:
        if not w.automated:
            continue
        if w.stack not in renderers:
            renderers[w.stack] = _renderer(settings, w.stack)
        problem = annotate.edit_problem(w.source, renderers[w.stack])
        out.extend(Release(w, c, problem) for c in w.containers)
    return tuple(out)


def _renderer(settings: Settings, stack: str) -> str:
    selection = context.select(settings)
    config = selection.config
    found = next(s for s in config.stacks if s.name == stack)
    return detect_renderer(config.root / found.path) if found.render == "auto" else found.render


def edit(
    settings: Settings, ref: str, change: Callable[[WorkloadControls], Changes | tuple[str, str]], message: str
) -> Edit:
    """Find the workload ``ref`` names and apply ``change`` to its manifest: annotation changes (a mapping), or a
    container image (``(container name, new image)``). Nothing is written yet."""
    listed = list_workloads(settings)
    w = v1.find(listed.workloads, ref)
    problem = annotate.edit_problem(w.source, _renderer(settings, w.stack))
    if problem:
        raise ImageError(f"{w.id} cannot be changed in git here: {problem}", where=str(w.source))
    root = context.select(settings).config.root
    path = root / w.source.file
    before = path.read_bytes()
    wanted = change(w)
    if isinstance(wanted, tuple):
        container = w.container(wanted[0])
        after = annotate.set_value(before, w.source.file, w.id, container.path, wanted[1], w.source.line)
    else:
        after = annotate.set_annotations(before, w.source.file, w.id, wanted, w.source.line)
    return Edit(w, root, w.source.file, before, after, message)


def record(e: Edit, author: git.Author, *, push: bool = True) -> Recorded:
    """Commit the edit (that file only) as ``author``, then push it to ``origin``'s branch (with ``push``)."""
    if not e.changed:
        return Recorded(e, None, None)
    sha, pushed = commit_and_push(e.root, {e.file: e.after}, e.message, author, push=push)
    return Recorded(e, sha, pushed)


def commit_and_push(
    root: Path, changes: Mapping[str, bytes | None], message: str, author: git.Author, *, push: bool = True
) -> tuple[str | None, str | None]:
    """Commit ``changes`` in the checkout ``root`` (``git.commit``), then push the commit to its origin's branch;
    the commit (None: nothing changed) and where it was pushed (``<url> <branch>``, redacted; None: not pushed). A
    push refused because the branch moved on leaves the commit in the checkout and says what to do."""
    sha = git.commit(root, changes, message, author)
    if sha is None or not push:
        return sha, None
    where = git.upstream(root)
    if where is None:
        raise SourceError(
            f"committed {sha[:12]} but not pushed: the checkout has no origin remote or is on a detached HEAD. Push it "
            "yourself, or pass --no-push",
            where=str(root),
        )
    url, branch = where
    git.push(root, url, branch)
    return sha, f"{git.redact(url)} {branch}"


# -- images list: deployed vs available tags ------------------------------------------------------------------------
def list_images(settings: Settings, ref: str, registry: Registry) -> tuple[WorkloadControls, tuple[Available, ...]]:
    """The workload ``ref`` names and, per container, the tags of its image's repository with the filter's verdict
    on each (the newest it allows, the running one, what it removed and why)."""
    w = v1.find(list_workloads(settings).workloads, ref)
    out = []
    for c in w.containers:
        try:
            found = registry.tags(ImageRef.parse(c.image).name)
        except ImageError as e:
            out.append(Available(c, error=str(e)))
            continue
        out.append(Available(c, found.tags, select(c.filter, found.tags), found.truncated))
    return w, tuple(out)
