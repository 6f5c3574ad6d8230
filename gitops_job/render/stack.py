"""The render stage: each stack (plain YAML, Jinja2, Kustomize or Helm) into objects that remember their file and line.

This module picks the stack's renderer and prepares what it gets (a :class:`~gitops_job.render.documents.Job`: the
stack's directory and files, every one allowed by the path rule of :mod:`gitops_job.config.paths`); the renderers
are :mod:`~gitops_job.render.plain`, :mod:`~gitops_job.render.jinja` (imported only when a stack has templates),
:mod:`~gitops_job.render.kustomize` and :mod:`~gitops_job.render.helm`.

Render is offline: it never talks to the cluster or a network, and it runs no code from the repository outside a
sandbox. Jinja2 runs in jinja's immutable sandbox with caps on value size, output size and time; kustomize and helm run
through :mod:`gitops_job.render.sandbox` (an empty environment, caps on memory, time and output, on a copy of only
what they may read, without ``.git``), after every path they would read has been checked against the path rule and
every helm values schema to refer only to itself. After any renderer, Flux-style ``${VAR}`` substitution runs on the
objects of stacks that ask for it (``substitute:``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from gitops_job.config import paths
from gitops_job.config.load import RepoConfig, Stack, Target
from gitops_job.errors import ErrorGroup, GitopsJobError, RenderError
from gitops_job.model import RenderedObject
from gitops_job.render import gitrepo
from gitops_job.render.charts import ChartAccess
from gitops_job.render.documents import Job, each, raise_all
from gitops_job.render.helm import render_helm
from gitops_job.render.helmrelease import flux_releases
from gitops_job.render.kustomize import KUSTOMIZATION_FILES, flux_own, render_kustomize
from gitops_job.render.plain import render_plain
from gitops_job.render.substitute import substitute, variable_text


def render_stack(
    config: RepoConfig,
    stack: Stack,
    target: Target,
    extra_vars: Mapping[str, str] | None = None,
    *,
    fetch: bool = True,
    on_note: Callable[[str], None] | None = None,
    checkout: gitrepo.Checkout | None = None,
) -> list[RenderedObject]:
    """Render one stack for one target, offline, in a deterministic order (sorted files, document order).

    Each object's identity keeps the namespace exactly as its body has it (defaulting comes later). Every problem
    the stack has is reported at once: one :class:`RenderError` (``where`` is ``file:line`` or the stack's path), or
    an :class:`ErrorGroup` of them.

    A stack's remote ``chart`` is fetched from the hosts ``sources.allowHosts`` names (and cached); ``fetch`` False
    (a fork's pull request: the caller decides) fetches nothing, and such a stack fails to render, saying why.

    A Flux Kustomization's stack (``stack.flux``): after substitution, each HelmRelease in its build is rendered
    (:func:`~gitops_job.render.helmrelease.flux_releases`; its notes and warnings go to ``on_note``) and Flux's own
    objects are left out. One whose source is another Git repository (``stack.flux.git``) renders from its
    ``checkout`` (:func:`gitrepo.checkout`, made here when not given): its path is in that checkout, and each object's
    source and each error's ``where`` name the GitRepository and its commit.
    """
    access = ChartAccess(config.sources, fetch)
    if stack.flux is None or stack.flux.git is None:
        return _render(config, paths.real(config.root), stack, target, extra_vars, access, on_note, None)
    checkout = checkout or gitrepo.checkout(stack.flux.git, access, what=str(stack.flux.origin))
    origin = checkout.label
    try:
        return _render(config, paths.real(checkout.root), stack, target, extra_vars, access, on_note, origin)
    except GitopsJobError as e:
        for error in e.errors if isinstance(e, ErrorGroup) else [e]:
            error.where = f"{origin}:{error.where}" if error.where else origin
        raise (ErrorGroup(e.errors) if isinstance(e, ErrorGroup) else e) from None


def _render(
    config: RepoConfig,
    root: Path,
    stack: Stack,
    target: Target,
    extra_vars: Mapping[str, str] | None,
    access: ChartAccess,
    on_note: Callable[[str], None] | None,
    origin: str | None,
) -> list[RenderedObject]:
    """The stack rendered from ``root``: this repository's checkout, or (``origin``, ``GitRepository/ns/name@commit``,
    set on each object's source) another repository's."""
    directory = _stack_directory(root, stack)
    renderer = detect_renderer(directory) if stack.render == "auto" else stack.render
    renderer = "helm" if stack.chart is not None else renderer
    if renderer not in _RENDERERS:
        raise RenderError(f"unknown renderer {renderer!r}; expected one of {', '.join(_RENDERERS)}", where=stack.path)
    files, escapes = _walk(root, directory)
    raise_all(escapes)
    variables = {**target.vars, **stack.vars, **(extra_vars or {})}
    objects = _RENDERERS[renderer](Job(root, directory, stack, target, variables, files, access))
    if stack.substitute is not None:
        values = {**target.vars, **stack.vars, **stack.substitute, **(extra_vars or {})}
        texts = {name: variable_text(value) for name, value in values.items()}
        objects = each(objects, lambda obj: [substitute(obj, texts)])
    if stack.flux is None:
        return objects
    objects = flux_releases(objects, stack.flux, paths.real(config.root), root, target=target, access=access,
                            on_note=on_note)  # fmt: skip
    if origin is not None:
        objects = [replace(o, source=replace(o.source, origin=o.source.origin or origin)) for o in objects]
        for o in objects:  # another repository's checkout is not walked for more Kustomizations
            if o.id.kind == "Kustomization" and flux_own(o.body) and on_note is not None:
                on_note(f"warning: {o.source}: {o.id} is in another repository's checkout (stack {stack.name}): it "
                        "is not followed; point a Kustomization of this repository at its path instead")  # fmt: skip
    return [o for o in objects if not flux_own(o.body)]


def detect_renderer(directory: Path) -> str:
    """What ``render: auto`` means for ``directory``: a kustomization → ``kustomize``; ``Chart.yaml`` → ``helm``;
    any ``*.j2`` file below it → ``jinja``; otherwise ``plain``."""
    if any((directory / name).is_file() for name in KUSTOMIZATION_FILES):
        return "kustomize"
    if (directory / "Chart.yaml").is_file():
        return "helm"
    if any(directory.rglob("*.j2")):
        return "jinja"
    return "plain"


def _stack_directory(root: Path, stack: Stack) -> Path:
    try:
        directory = paths.resolve(root, stack.path)
    except paths.PathRefused as e:
        raise RenderError(e.reason, where=stack.path) from None
    if not directory.is_dir():
        raise RenderError("the stack path is not a directory", where=stack.path)
    return directory


def _walk(root: Path, directory: Path) -> tuple[list[Path], list[RenderError]]:
    """Every file below ``directory`` sorted by path (symlinked directories inside the repository are followed, each
    real directory once; ``.git`` is skipped), and an error for each symlink the path rule refuses (out of the
    repository or into ``.git``): those are never read."""
    files: list[Path] = []
    errors: list[RenderError] = []
    pending, seen = [directory], set[Path]()
    while pending:
        current = pending.pop()
        if paths.real(current) in seen:
            continue
        seen.add(paths.real(current))
        for entry in sorted(current.iterdir()):
            if entry.name == ".git":
                continue
            if entry.is_symlink():
                try:
                    paths.resolve(root, entry.relative_to(root).as_posix())
                except paths.PathRefused as e:
                    errors.append(RenderError(e.reason, where=directory.relative_to(root).as_posix()))
                    continue
            if entry.is_dir():
                pending.append(entry)
            else:
                files.append(entry)
    return sorted(files, key=lambda f: f.relative_to(root).as_posix()), errors


def _render_jinja(job: Job) -> list[RenderedObject]:
    from gitops_job.render.jinja import render_jinja  # jinja2 is imported only when a stack has templates

    return render_jinja(job)


_RENDERERS: dict[str, Callable[[Job], list[RenderedObject]]] = {
    "plain": render_plain,
    "jinja": _render_jinja,
    "kustomize": render_kustomize,
    "helm": render_helm,
}
