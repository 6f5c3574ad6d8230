"""What a run works on: its settings, the selected stacks of one target rendered, validated and labelled as ours, the
Secrets it must mask learned first, the connection to the cluster (one view per stack, impersonating its identity),
and who owns what there. The recipes in :mod:`run` start here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path

from gitops_job import git
from gitops_job.config import load as cfg
from gitops_job.config.flux import GitSource as FluxGitSource
from gitops_job.errors import (
    ErrorGroup,
    GitopsJobError,
    ValidationError,
)
from gitops_job.identity import ObjectId
from gitops_job.kube import ApiError, Forbidden, Kube
from gitops_job.model import LABEL_STACK, LABEL_TARGET, RenderedObject
from gitops_job.reconcile import inventory, ownership
from gitops_job.reconcile.flux import with_cluster_values
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.results import Health
from gitops_job.reconcile.validate import builtin_scopes, crd_scopes, validate
from gitops_job.render import gitrepo
from gitops_job.render.charts import ChartAccess
from gitops_job.render.stack import render_stack


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
    flux: str | None = None  # --flux PATH: a Flux repository's entry path (gitops_job.config.flux)
    #: Told each note reading the config made (a Flux repository's notes and warnings); None: they are not said.
    on_note: Callable[[str], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Selection:
    """The loaded config, the target and the stacks a run works on."""

    config: cfg.RepoConfig
    target: cfg.Target
    stacks: tuple[cfg.Stack, ...]


@dataclass(frozen=True)
class Rendered:
    """Every selected stack of one target, rendered and validated; ``masker`` has learned every secret value of the
    target (see :func:`render`)."""

    selection: Selection
    objects: tuple[RenderedObject, ...]
    masker: Masker = field(default_factory=Masker, compare=False)
    #: The target's other stacks as rendered to learn their Secrets (not validated; those that failed are absent):
    #: what a move between stacks is checked against without rendering them again.
    others: Mapping[str, Sequence[RenderedObject]] = field(default_factory=dict, compare=False)
    #: Each Flux stack whose source is another Git repository: its checkout (the commit the plan shows).
    checkouts: Mapping[str, gitrepo.Checkout] = field(default_factory=dict)
    #: The stacks not rendered because their source is another repository and this run fetches nothing (a fork's
    #: pull request), each with why: a stack that is not planned, said so.
    unfetched: Mapping[str, str] = field(default_factory=dict)


def select(settings: Settings) -> Selection:
    """Load the repo config and pick the target and stacks."""
    config = cfg.load_config(settings.repo.resolve(), settings.config_file, settings.flux)
    say = settings.on_note
    if say is not None:
        for note in config.notes:
            say(note)
    target = cfg.target(config, settings.target)
    return Selection(config, target, cfg.stacks_for(config, target.name, settings.stacks))


def render(
    selection: Selection,
    variables: Mapping[str, str],
    kube: Kube | None = None,
    masker: Masker | None = None,
    *,
    done: Mapping[str, Sequence[RenderedObject]] | None = None,
    on_note: Callable[[str], None] | None = None,
    fetch: bool = True,
) -> Rendered:
    """Render and validate every selected stack; with ``kube``, unknown kinds are checked by discovery too.

    All stacks are rendered and validated before anything fails, so one run reports every problem. Before any
    error is raised, ``masker`` (a new one by default) learns every Secret of the target: those rendered here and
    those of the target's other stacks (rendered only to learn them; their failures are ignored), so an error —
    a Helm message echoing a value — is scrubbed with all of them.

    ``done``: stacks rendered already in this run (another call's :attr:`Rendered.others`, whose ``masker`` has
    learned every stack): those are not rendered again, and no other stack is rendered to be learned.

    With ``kube``, a Flux stack's substitution values that only the cluster holds are read there first (their
    Secrets learned by ``masker``), each named to ``on_note``; offline, they are not read.
    ``fetch`` False: no remote chart is fetched (a fork's pull request); a stack that needs one fails to render, and
    a Flux stack whose source is another Git repository is not rendered (:attr:`Rendered.unfetched`, told to
    ``on_note``). Otherwise such a stack's source is checked out first (:attr:`Rendered.checkouts`).
    """
    masker = masker if masker is not None else Masker()
    scopes: Callable[[str, str], bool | None] = builtin_scopes
    if kube is not None:
        types = kube.resource_types()

        def scopes(api_version: str, kind: str) -> bool | None:
            rt = types.get((api_version, kind))
            return rt.namespaced if rt else None

    errors: list[GitopsJobError] = []
    per_stack: list[tuple[cfg.Stack, list[RenderedObject]]] = []
    checkouts: dict[str, gitrepo.Checkout] = {}
    unfetched: dict[str, str] = {}
    access = ChartAccess(selection.config.sources, fetch)
    for selected in selection.stacks:
        flux = selected.flux
        git_source = flux.git if flux is not None else None
        if git_source is not None and not fetch:
            unfetched[selected.name] = why = _not_fetched(selected, git_source)
            if on_note is not None:
                on_note(f"warning: {why}")
            continue
        try:
            if git_source is not None:
                what = str(flux.origin) if flux is not None else selected.name
                checkouts[selected.name] = gitrepo.checkout(git_source, access, what=what)
            if done is not None and selected.name in done:
                per_stack.append((selected, list(done[selected.name])))
                continue
            stack = _with_cluster_values(kube, selected, selection.target, masker, on_note)
            _learn_repository_secrets(stack, masker)
            per_stack.append((stack, render_stack(selection.config, stack, selection.target, variables, fetch=fetch,
                                                  on_note=on_note, checkout=checkouts.get(stack.name))))  # fmt: skip
        except GitopsJobError as e:
            errors.extend(e.errors if isinstance(e, ErrorGroup) else [e])
    masker.learn(o.body for _, rendered in per_stack for o in rendered)
    others = _learn_other_stacks(selection, variables, masker, fetch) if done is None else {}
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
    errors.extend(ownership.reserved(objects, selection.target.inventory_namespace))
    if errors:
        raise (errors[0] if len(errors) == 1 else ErrorGroup(errors)).scrubbed(masker.scrub)
    owned = tuple(_owned(o, selection.target.name) for o in objects)
    return Rendered(selection, owned, masker, others, checkouts, unfetched)


def _not_fetched(stack: cfg.Stack, source: FluxGitSource) -> str:
    where = stack.flux.source if stack.flux is not None else stack.name
    return (f"{where}: stack {stack.name} is not planned: its source {source.ref} ({source.where}) is another "
            f"repository, {git.redact(source.url)}, and this run fetches nothing (a fork's pull request); the plan "
            "of a maintainer's branch plans it")  # fmt: skip


def _with_cluster_values(
    kube: Kube | None, stack: cfg.Stack, target: cfg.Target, masker: Masker, on_note: Callable[[str], None] | None
) -> cfg.Stack:
    """A Flux stack with the substituteFrom values only the cluster holds (:mod:`gitops_job.reconcile.flux`)."""
    if stack.flux is None or not stack.flux.cluster_values:
        return stack
    if kube is None:
        notes = [f"note: {stack.flux.source}: postBuild.substituteFrom {v.ref} is not in the repository and this "
                 "render is offline: not read" for v in stack.flux.cluster_values]  # fmt: skip
    else:
        stack, notes = with_cluster_values(stack_kube(kube, stack, target), stack, masker)
    if on_note is not None:
        for note in notes:
            on_note(note)
    return stack


def _learn_repository_secrets(stack: cfg.Stack, masker: Masker) -> None:
    """A Flux stack may read the Flux repository's Secrets (a HelmRelease's valuesFrom): learned before it renders,
    so that an error echoing a value is scrubbed too."""
    if stack.flux is not None:
        masker.learn(w.body for w in stack.flux.repository if w.body.get("kind") == "Secret")


def _learn_other_stacks(
    selection: Selection, variables: Mapping[str, str], masker: Masker, fetch: bool = True
) -> dict[str, list[RenderedObject]]:
    """Learn the Secrets of the target's stacks that are not selected (``--stack B``: a value that is a Secret in
    stack A is masked in B's output too); returns what each rendered. Rendered only — not validated — and a stack
    that fails to render is skipped: it is not part of this run."""
    selected = {s.name for s in selection.stacks}
    rendered: dict[str, list[RenderedObject]] = {}
    for stack in cfg.stacks_for(selection.config, selection.target.name):
        if stack.name not in selected:
            with suppress(GitopsJobError):
                rendered[stack.name] = render_stack(selection.config, stack, selection.target, variables, fetch=fetch)
                masker.learn(o.body for o in rendered[stack.name])
    return rendered


def learn_live_secrets(
    kube: Kube, target: cfg.Target, inventories: Iterable[inventory.Inventory], masker: Masker
) -> None:
    """Learn the live Secrets the ``inventories`` of ``target`` list — of every stack, selected or not: what prunes
    would delete, and old values that may still appear elsewhere. One LIST per namespace, by our target label;
    what the identity may not read is skipped (planning it fails on its own, scrubbed)."""
    secret = kube.resource_type("v1", "Secret")
    listed = {oid for inv in inventories for oid in inv.objects if oid.group == "" and oid.kind == "Secret"}
    if secret is None or not listed:
        return
    for namespace in sorted({oid.namespace for oid in listed}):
        try:
            items = kube.list(secret, namespace, f"{LABEL_TARGET}={target.name}")
        except ApiError:
            continue
        masker.learn(item for item in items if ObjectId.of(item) in listed)


@contextmanager
def scrubbing(masker: Masker) -> Iterator[None]:
    """Every :class:`GitopsJobError` leaving the block is scrubbed with ``masker`` (whatever it has learned by then)."""
    try:
        yield
    except GitopsJobError as e:
        raise e.scrubbed(masker.scrub) from None


def _owned(obj: RenderedObject, target: str) -> RenderedObject:
    """``obj`` with the ownership labels naming its target and stack (what prune checks before deleting)."""
    meta = obj.body.get("metadata") or {}  # copied along the path it changes only: bodies are never changed in place
    labels = {**(meta.get("labels") or {}), LABEL_TARGET: target, LABEL_STACK: obj.stack}
    return RenderedObject(obj.id, {**obj.body, "metadata": {**meta, "labels": labels}}, obj.source, obj.stack)


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


@contextmanager
def connected(settings: Settings) -> Iterator[tuple[Selection, Kube]]:
    """The selection and a connection to its target's cluster, closed afterwards."""
    selection = select(settings)
    kube = connect(settings, selection.target)
    try:
        yield selection, kube
    finally:
        kube.close()


def stored_inventories(kube: Kube, selection: Selection) -> dict[str, inventory.Inventory]:
    """Every stored inventory of the target (another repository's too), and an empty one for each selected stack
    never applied. An identity that may only get (not list) the inventories sees just this repository's stacks."""
    t, ns = selection.target, selection.target.inventory_namespace
    try:
        found = {i.stack: i for i in inventory.read_all(kube, ns, t.name)}
    except Forbidden:
        found = {s.name: inventory.read(kube, ns, t.name, s.name) for s in cfg.stacks_for(selection.config, t.name)}
    for s in selection.stacks:
        found.setdefault(s.name, inventory.Inventory(t.name, s.name, ns))
    return found


def holders_of(
    kube: Kube, selection: Selection, rendered: Rendered, stored: Mapping[str, inventory.Inventory],
    variables: Mapping[str, str], masker: Masker,
) -> ownership.Holders:  # fmt: skip
    """Who owns what on the target, for this run; refuses (before any write) a selected stack whose inventory another
    repository owns, and an object a stack renders that another stack of this repository still renders.

    A stack that is not selected is rendered too when this run could take objects from it or hand objects to it
    (an id in its inventory is rendered here, or a selected stack leaves some of its own): else a move between
    stacks would look like a prune on one side and an adoption on the other."""
    t = selection.target
    repository = selection.config.name or git.repository(selection.config.root)
    errors: list[GitopsJobError] = []
    for s in selection.stacks:
        inv = stored[s.name]
        problem = ownership.claim_problem(inv.id, s.name, inv.repository, repository, t.name)
        if problem:
            errors.append(ValidationError(problem, where=str(inv.id)))
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
    ours = cfg.stacks_for(selection.config, t.name)
    selected = {s.name for s in selection.stacks}
    by_id = {o.id: o for o in rendered.objects}
    others = tuple(s for s in ours if s.name not in selected)
    leaving = any(stored[s].objects - {o.id for o in rendered.objects if o.stack == s} for s in selected)
    arriving = any(oid in by_id for s in others if s.name in stored for oid in stored[s.name].objects)
    if others and (leaving or arriving):
        elsewhere = render(Selection(selection.config, t, others), variables, kube, masker,
                           done=rendered.others).objects  # fmt: skip
        for o in elsewhere:
            mine = by_id.get(o.id)
            if mine is not None:
                reason = (f"duplicate object {o.id}: stack {mine.stack} at {mine.source} and stack {o.stack} "
                          f"(not selected) at {o.source}; an object belongs to one stack: remove it from "
                          f"one")  # fmt: skip
                errors.append(ValidationError(reason, where=str(mine.source)))
        if errors:
            raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
        by_id = {o.id: o for o in elsewhere} | by_id
    return ownership.Holders(
        target=t.name,
        repository=repository,
        stacks=frozenset(s.name for s in ours),
        inventories={name: inv.objects for name, inv in stored.items()},
        repositories={name: inv.repository for name, inv in stored.items()},
        rendered={oid: o.stack for oid, o in by_id.items()},
    )


def stack_kube(kube: Kube, stack: cfg.Stack, target: cfg.Target) -> Kube:
    """The connection a stack's requests go through: impersonating its service account when it names one.

    The service account lives in the stack's ``service_account_namespace`` (a Flux Kustomization's namespace), else
    its ``namespace``, else the target's inventory namespace.
    """
    if not stack.service_account_name:
        return kube
    namespace = stack.service_account_namespace or stack.namespace or target.inventory_namespace
    return kube.impersonating(f"system:serviceaccount:{namespace}:{stack.service_account_name}")


def selected_stack_kube(kube: Kube, selection: Selection, stack: cfg.Stack) -> Kube:
    timeout = f"stack {stack.name}'s timeout ({stack.timeout:g}s)"
    return stack_kube(kube, stack, selection.target).with_deadline(stack.timeout, timeout)


def scrub_health(health: Mapping[ObjectId, Health], masker: Masker) -> dict[ObjectId, Health]:
    """Health reasons quote what controllers wrote (a condition's message): scrubbed like any message."""
    return {oid: dc_replace(h, reason=masker.scrub(h.reason)) for oid, h in health.items()}
