"""Flux v1 workload annotations, read from a rendered workload: automation, tag filters, locks, ignore. Pure: a
``RenderedObject`` in, a ``WorkloadControls`` out (or None when the object is not a workload).

A workload is a Deployment, StatefulSet, DaemonSet, Job or CronJob (Flux v1 read the same kinds, plus HelmRelease,
which is not ours: Helm values carry setter markers instead). Its containers and initContainers are read from its
pod template. The annotations, as Flux v1's ``PoliciesFromAnnotations`` reads them:

- ``fluxcd.io/automated: "true"`` — new images are released to the workload when a filter lets them;
- ``fluxcd.io/tag.<container>: FILTER`` — which tags the container may take: ``semver:RANGE``, ``glob:PATTERN``
  (the default with no prefix), ``regex:RE`` or ``regexp:RE`` (``images.policy.parse_v1_filter``);
  ``fluxcd.io/tag_all: FILTER`` is the filter of every container without its own; with neither, every tag
  (``glob:*``);
- ``fluxcd.io/locked: "true"`` — nothing changes the workload's images, automation or a release alike (``release
  --force`` overrides); ``fluxcd.io/locked_msg`` says why and ``fluxcd.io/locked_user`` who;
- ``fluxcd.io/ignore: "true"`` — the workload is left alone by image automation (``"sync_only"``, Flux v1's other
  value, is read and reported too).

Flux v1 also accepted the older prefix ``flux.weave.works/`` for every one of these, and ``filter.fluxcd.io/<c>``
for ``tag.<c>``; so do we. Where Flux v1 read any value other than ``"true"`` as false, a boolean here must be
``"true"`` or ``"false"``; a filter naming no container of the workload, an invalid filter and the same control
written twice with two values (under two prefixes) are errors naming the file:line and the workload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from enum import StrEnum
from typing import Any

from gitops_job.errors import ErrorGroup, GitopsJobError, ImageError
from gitops_job.identity import ObjectId
from gitops_job.images.policy import Policy, Selection, parse_v1_filter
from gitops_job.model import RenderedObject, Source

PREFIX = "fluxcd.io/"
OLD_PREFIX = "flux.weave.works/"  # Flux v1's earlier prefix, still accepted
FILTER_PREFIX = "filter.fluxcd.io/"  # filter.fluxcd.io/<container> is tag.<container>
PREFIXES = (PREFIX, OLD_PREFIX)

# Where each workload kind keeps its pod spec.
POD_SPEC: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_WORKLOAD_GROUPS = {"apps", "batch", "extensions", "apps.openshift.io"}


class Control(StrEnum):
    """A Flux v1 policy name: what follows the prefix in the annotation's key."""

    AUTOMATED = "automated"
    LOCKED = "locked"
    LOCKED_MSG = "locked_msg"
    LOCKED_USER = "locked_user"
    IGNORE = "ignore"
    TAG_ALL = "tag_all"


_BOOLEAN = (Control.AUTOMATED, Control.LOCKED)
TAG = "tag."  # tag.<container>


class Ignore(StrEnum):
    NO = "false"
    YES = "true"
    SYNC_ONLY = "sync_only"


@dataclass(frozen=True)
class Lock:
    """Why and by whom a workload is locked (either may be empty: Flux v1 did not require them)."""

    reason: str
    user: str

    def __str__(self) -> str:
        who = f" by {self.user}" if self.user else ""
        why = f": {self.reason}" if self.reason else ""
        return f"locked{who}{why}"


@dataclass(frozen=True)
class Container:
    """One container of a workload: its image, the filter its tags must pass and the annotation that set it (empty:
    no annotation, every tag)."""

    name: str
    image: str
    init: bool
    filter: Policy
    filter_key: str
    path: tuple[str | int, ...]  # where its ``image`` is, from the document's root

    @property
    def repository(self) -> str:
        return split_image(self.image)[0]

    @property
    def tag(self) -> str:
        return split_image(self.image)[1]


@dataclass(frozen=True)
class WorkloadControls:
    """A workload's containers and its Flux v1 controls. ``keys`` maps each control present to the annotation key
    that carries it (so an edit keeps the prefix the file already uses)."""

    id: ObjectId
    source: Source
    stack: str
    containers: tuple[Container, ...]
    automated: bool
    lock: Lock | None
    ignore: Ignore
    keys: Mapping[str, str]
    #: Every key that carries each control (both prefixes may, agreeing): what removing a control removes.
    every_key: Mapping[str, tuple[str, ...]] = dc_field(default_factory=dict)

    @property
    def locked(self) -> bool:
        return self.lock is not None

    @property
    def where(self) -> str:
        return f"{self.source}: {self.id}"

    def container(self, name: str) -> Container:
        for c in self.containers:
            if c.name == name:
                return c
        raise ImageError(
            f"has no container {name!r}; its containers are {', '.join(c.name for c in self.containers) or 'none'}",
            where=self.where,
        )

    def key(self, control: str) -> str:
        """The annotation key to write ``control`` (a ``Control`` or ``tag.<container>``) under: the one in use,
        else ``fluxcd.io/<control>``."""
        return self.keys.get(control, PREFIX + control)

    def removed(self, *controls: str) -> dict[str, str | None]:
        """The annotation changes that remove ``controls`` (every key that carries one)."""
        return {key: None for c in controls for key in self.every_key.get(c, ())}


@dataclass(frozen=True)
class Available:
    """One container's image as deployed (in git) and the tags its repository has, judged by the container's tag
    filter; ``error`` when the registry could not list them (the others are still shown)."""

    container: Container
    tags: tuple[str, ...] = ()
    selection: Selection | None = None
    truncated: bool = False
    error: str | None = None


GLOB_ALL = parse_v1_filter("glob:*", "the default tag filter")


def split_image(image: str) -> tuple[str, str]:
    """``repo[:tag][@digest]`` → (repository, tag); the tag is empty when there is none (a port is not a tag)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, ""


def is_workload(obj: RenderedObject) -> bool:
    return obj.id.kind in POD_SPEC and obj.id.group in _WORKLOAD_GROUPS


def _dig(body: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(body, Mapping):
            return None
        body = body.get(key)
    return body


def _policies(
    annotations: Mapping[str, Any], where: str, every: dict[str, tuple[str, ...]] | None = None
) -> dict[str, tuple[str, str]]:
    """Each policy name (``automated``, ``tag.web``, …) → (value, the key that set it), and into ``every`` each
    name's keys; two keys for one policy with two values are an error."""
    found: dict[str, tuple[str, str]] = {}
    every = {} if every is None else every
    for k, raw in annotations.items():
        key = str(k)
        if key.startswith(PREFIXES):
            name = key.split("/", 1)[1]
        elif key.startswith(FILTER_PREFIX):
            name = TAG + key[len(FILTER_PREFIX) :]
        else:
            continue
        value = "" if raw is None else str(raw)
        if name in found and found[name][0] != value:
            other = found[name][1]
            raise ImageError(
                f"annotations {other}: {found[name][0]!r} and {key}: {value!r} set the same control to two values; "
                "keep one",
                where=where,
            )
        found.setdefault(name, (value, key))
        every[name] = (*every.get(name, ()), key)
    return found


def _boolean(policies: Mapping[str, tuple[str, str]], control: Control, where: str) -> bool:
    if control not in policies:
        return False
    value, key = policies[control]
    if value not in ("true", "false"):
        raise ImageError(f'annotation {key}: {value!r} must be "true" or "false" (quoted)', where=where)
    return value == "true"


def _containers(obj: RenderedObject, where: str) -> list[tuple[str, str, bool, tuple[str | int, ...]]]:
    pod = POD_SPEC[obj.id.kind]
    spec = _dig(obj.body, pod)
    out: list[tuple[str, str, bool, tuple[str | int, ...]]] = []
    for field, init in (("initContainers", True), ("containers", False)):
        items = spec.get(field) if isinstance(spec, Mapping) else None
        for i, c in enumerate(items if isinstance(items, list) else []):
            if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
                raise ImageError(f"{'.'.join(pod)}.{field}[{i}] has no name", where=where)
            image = c.get("image")
            if not isinstance(image, str) or not image:
                raise ImageError(f"container {c['name']!r} has no image", where=where)
            path: tuple[str | int, ...] = (*pod, field, i, "image")
            out.append((str(c["name"]), image, init, path))
    return out


def parse(obj: RenderedObject) -> WorkloadControls | None:
    """The Flux v1 controls of ``obj``, or None when it is not a workload."""
    if not is_workload(obj):
        return None
    where = f"{obj.source}: {obj.id}"
    meta = obj.body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    every: dict[str, tuple[str, ...]] = {}
    policies = _policies(annotations if isinstance(annotations, Mapping) else {}, where, every)
    found = _containers(obj, where)
    names = [name for name, *_ in found]
    for name, (_, key) in policies.items():
        if name.startswith(TAG) and name[len(TAG) :] not in names:
            raise ImageError(
                f"annotation {key} names no container of this workload; its containers are "
                f"{', '.join(names) or 'none'}",
                where=where,
            )
    default, default_key = GLOB_ALL, ""
    if Control.TAG_ALL in policies:
        value, default_key = policies[Control.TAG_ALL]
        default = parse_v1_filter(value, f"{where}: annotation {default_key}")
    containers = []
    for name, image, init, path in found:
        tag = policies.get(TAG + name)
        if tag is None:
            containers.append(Container(name, image, init, default, default_key, path))
        else:
            value, key = tag
            containers.append(
                Container(name, image, init, parse_v1_filter(value, f"{where}: annotation {key}"), key, path)
            )
    lock = None
    if _boolean(policies, Control.LOCKED, where):
        lock = Lock(policies.get(Control.LOCKED_MSG, ("", ""))[0], policies.get(Control.LOCKED_USER, ("", ""))[0])
    ignore = Ignore.NO
    if Control.IGNORE in policies:
        value, key = policies[Control.IGNORE]
        try:
            ignore = Ignore(value)
        except ValueError:
            raise ImageError(
                f'annotation {key}: {value!r} must be "true", "false" or "sync_only"', where=where
            ) from None
    return WorkloadControls(
        id=obj.id,
        source=obj.source,
        stack=obj.stack,
        containers=tuple(containers),
        automated=_boolean(policies, Control.AUTOMATED, where),
        lock=lock,
        ignore=ignore,
        keys={name: key for name, (_, key) in policies.items()},
        every_key=every,
    )


# -- what each workload control changes (``lock``, ``unlock``, ``automate``, ``deautomate``) ---------------------------
def lock(w: WorkloadControls, reason: str, user: str) -> dict[str, str | None]:
    """Lock ``w``: ``locked: "true"`` with why and who (replacing an earlier lock's)."""
    return {w.key(Control.LOCKED): "true", w.key(Control.LOCKED_MSG): reason, w.key(Control.LOCKED_USER): user}


def unlock(w: WorkloadControls) -> dict[str, str | None]:
    return w.removed(Control.LOCKED, Control.LOCKED_MSG, Control.LOCKED_USER)


def automate(w: WorkloadControls) -> dict[str, str | None]:
    return {**w.removed(Control.AUTOMATED), w.key(Control.AUTOMATED): "true"}


def deautomate(w: WorkloadControls) -> dict[str, str | None]:
    return w.removed(Control.AUTOMATED)


def release_target(w: WorkloadControls, image: str, *, force: bool = False) -> Container:
    """The container of ``w`` that ``release --image REPO:TAG`` changes: the one whose image is from REPO. A locked
    workload is refused without ``force``, naming the lock's reason and user."""
    repository, tag = split_image(image)
    if not tag and "@" not in image:
        raise ImageError(f"--image {image!r} has no tag: write REPOSITORY:TAG", where=w.where)
    if w.lock is not None and not force:
        raise ImageError(
            f"is {w.lock}; nothing was changed. Unlock it first (`gitops-job unlock`), or pass --force to release "
            "over the lock",
            where=w.where,
        )
    hits = [c for c in w.containers if c.repository == repository]
    if not hits:
        images = ", ".join(f"{c.name}: {c.image}" for c in w.containers)
        raise ImageError(f"no container runs an image of {repository} (its containers: {images})", where=w.where)
    if len(hits) > 1:
        raise ImageError(
            f"{len(hits)} containers run {repository} ({', '.join(c.name for c in hits)}); release one at a time is "
            "not supported yet: edit the manifest",
            where=w.where,
        )
    return hits[0]


def parse_all(objects: Sequence[RenderedObject]) -> tuple[WorkloadControls, ...]:
    """The controls of every workload among ``objects``, in order; every bad annotation is reported together."""
    out: list[WorkloadControls] = []
    errors: list[GitopsJobError] = []
    for obj in objects:
        try:
            controls = parse(obj)
        except ImageError as e:
            errors.append(e)
            continue
        if controls is not None:
            out.append(controls)
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
    return tuple(out)


def find(workloads: Sequence[WorkloadControls], ref: str) -> WorkloadControls:
    """The workload ``ref`` names: ``Kind/namespace/name`` (as gitops-job prints it), fluxctl's
    ``namespace:kind/name``, or a bare ``name`` when only one workload has it. Kinds match case-insensitively."""
    kind: str | None = None
    ns: str | None = None
    name = ref
    if ":" in ref and "/" in ref:
        ns, _, rest = ref.partition(":")
        kind, _, name = rest.partition("/")
    elif ref.count("/") == 2:
        kind, ns, name = ref.split("/")
    elif ref.count("/") == 1:
        kind, name = ref.split("/")
    hits = [
        w
        for w in workloads
        if w.id.name == name
        and (kind is None or w.id.kind.lower() == kind.lower())
        and (ns is None or w.id.namespace == ns)
    ]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        known = ", ".join(str(w.id) for w in workloads[:10]) or "none"
        more = f" (and {len(workloads) - 10} more)" if len(workloads) > 10 else ""
        raise ImageError(
            f"no workload {ref!r}; the workloads are: {known}{more} (see `gitops-job workloads`)", where="workload"
        )
    raise ImageError(
        f"{ref!r} names {len(hits)} workloads ({', '.join(str(w.id) for w in hits)}); write Kind/namespace/name",
        where="workload",
    )
