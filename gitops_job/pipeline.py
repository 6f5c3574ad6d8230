"""The pipeline, wired: source → render → validate → plan. The CLI calls these; each returns a result or raises a
:class:`~gitops_job.errors.GitopsJobError`. Nothing here prints."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import config as cfg
from .errors import ErrorGroup, GitopsJobError, ValidationError
from .identity import ObjectId
from .kube import Kube
from .mask import Masker
from .model import RenderedObject
from .plan import Plan, Progress, plan
from .render import render_stack
from .validate import builtin_scopes, crd_scopes, validate


@dataclass(frozen=True)
class Settings:
    """What a run works on. Every field has the default the CLI documents."""

    repo: Path = Path()
    config_file: Path | None = None  # default: <repo>/gitops.yaml
    target: str | None = None  # default: the first target
    stacks: tuple[str, ...] = ()  # default: every stack of the target
    vars: Mapping[str, str] = field(default_factory=dict)  # --var k=v, override target and stack vars
    kubeconfig: str | None = None  # default: $KUBECONFIG or ~/.kube/config, else in-cluster
    concurrency: int = 16


@dataclass(frozen=True)
class Selection:
    """The loaded config, the target and the stacks a run works on."""

    config: cfg.RepoConfig
    target: cfg.Target
    stacks: tuple[cfg.Stack, ...]


@dataclass(frozen=True)
class Rendered:
    """Every selected stack of one target, rendered and validated."""

    selection: Selection
    objects: tuple[RenderedObject, ...]


def select(settings: Settings) -> Selection:
    """Load the repo config and pick the target and stacks."""
    config = cfg.load_config(settings.repo.resolve(), settings.config_file)
    target = cfg.target(config, settings.target)
    return Selection(config, target, cfg.stacks_for(config, target.name, settings.stacks))


def render(selection: Selection, variables: Mapping[str, str], kube: Kube | None = None) -> Rendered:
    """Render and validate every selected stack; with ``kube``, unknown kinds are checked by discovery too.

    All stacks are rendered and validated before anything fails, so one run reports every problem.
    """
    scopes: Callable[[str, str], bool | None] = builtin_scopes
    if kube is not None:
        types = kube.resource_types()

        def scopes(api_version: str, kind: str) -> bool | None:
            rt = types.get((api_version, kind))
            return rt.namespaced if rt else None

    errors: list[GitopsJobError] = []
    per_stack: list[tuple[cfg.Stack, list[RenderedObject]]] = []
    for stack in selection.stacks:
        try:
            per_stack.append((stack, render_stack(selection.config, stack, selection.target, variables)))
        except GitopsJobError as e:
            errors.extend(e.errors if isinstance(e, ErrorGroup) else [e])
    # A CRD rendered by any selected stack makes its kinds known to every stack (the plan creates it first).
    crds = crd_scopes(o for _, rendered in per_stack for o in rendered)

    def known(api_version: str, kind: str) -> bool | None:
        return crds.get((api_version, kind), scopes(api_version, kind))

    objects: list[RenderedObject] = []
    for stack, rendered in per_stack:
        try:
            objects.extend(validate(rendered, stack, known, discovery=kube is not None))
        except GitopsJobError as e:
            errors.extend(e.errors if isinstance(e, ErrorGroup) else [e])
    errors.extend(_duplicates_across_stacks(objects))
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
    return Rendered(selection, tuple(objects))


def _duplicates_across_stacks(objects: Sequence[RenderedObject]) -> list[GitopsJobError]:
    first: dict[ObjectId, RenderedObject] = {}
    errors: list[GitopsJobError] = []
    for obj in objects:
        other = first.setdefault(obj.id, obj)
        if other is not obj and other.stack != obj.stack:
            reason = f"duplicate object {obj.id}: stack {other.stack} at {other.source} and stack {obj.stack}"
            errors.append(ValidationError(reason, where=str(obj.source)))
    return errors


def connect(settings: Settings, target: cfg.Target) -> Kube:
    return Kube.connect(settings.kubeconfig, target.context, concurrency=settings.concurrency)


def run_plan(settings: Settings, progress: Progress | None = None) -> tuple[Rendered, Plan]:
    """Render, validate (with discovery) and plan every selected stack against the target's cluster."""
    selection = select(settings)
    kube = connect(settings, selection.target)
    try:
        rendered = render(selection, settings.vars, kube)
        stacks = {s.name: s for s in selection.stacks}
        result = plan(
            kube,
            selection.target.name,
            rendered.objects,
            stacks,
            masker=Masker(),
            concurrency=settings.concurrency,
            progress=progress,
        )
    finally:
        kube.close()
    return rendered, result
