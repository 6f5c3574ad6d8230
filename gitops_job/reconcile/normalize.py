"""Objects as compared and shown: server-set noise removed, ignored fields (``ignoreDifferences``) kept at their
live values, masked for display. Pure."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gitops_job.config.load import IgnoreDifference
from gitops_job.identity import ObjectId
from gitops_job.model import (
    ANNOTATION_REVISION,
    LABEL_STACK,
    LABEL_TARGET,
)
from gitops_job.reconcile.mask import Masker

# Server-set fields that are never part of a diff: (path, ...) from the object root.
NOISE: tuple[tuple[str, ...], ...] = (
    ("metadata", "managedFields"),
    ("metadata", "resourceVersion"),
    ("metadata", "uid"),
    ("metadata", "generation"),
    ("metadata", "creationTimestamp"),
    ("metadata", "selfLink"),
    ("status",),
)


# -- pure helpers ------------------------------------------------------------------------------------------------------
def normalise(obj: Mapping[str, Any], noise: Sequence[tuple[str, ...]] = NOISE) -> dict[str, Any]:
    """A copy of ``obj`` without the server noise listed in ``noise``."""
    out = copy.deepcopy(dict(obj))
    for path in noise:
        remove_path(out, list(path))
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in ("annotations", "labels"):
            if meta.get(key) == {}:
                del meta[key]
    return out


def remove_path(node: Any, path: list[str]) -> None:
    *parents, last = path
    for key in parents:
        if not isinstance(node, dict) or key not in node:
            return
        node = node[key]
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node.pop(int(last))


def pointer_path(pointer: str) -> list[str]:
    """A JSON pointer (RFC 6901) as path segments: ``/metadata/labels/a~1b`` → ``[metadata, labels, a/b]``."""
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {pointer!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def ignored_pointers(rules: Iterable[IgnoreDifference], oid: ObjectId) -> list[list[str]]:
    return [
        pointer_path(p)
        for r in rules
        if r.kind == oid.kind
        and r.group == oid.group
        and r.name in (None, oid.name)
        and r.namespace in (None, oid.namespace)
        for p in r.json_pointers
    ]


def respecting_ignored(body: dict[str, Any], live: Mapping[str, Any] | None, ignore: list[list[str]]) -> dict[str, Any]:
    """``body`` as apply writes it, like Argo CD's ``RespectIgnoreDifferences``: each ignored field the manifest sets
    takes the live object's value, or is left out where the live object has none — so what is applied is what the
    plan shows, and a field changed out of band survives. A new object (no ``live``) is written as rendered. What
    gitops-job itself sets (the ownership labels, the revision stamp) is never taken from the live object."""
    if live is None or not ignore:
        return body
    out = copy.deepcopy(body)
    for path in ignore:
        if _lookup(out, path) is not _ABSENT:
            _put(out, path, _lookup(live, path))
    for own in _OWN:
        _put(out, own, _lookup(body, own))
    return out


_ABSENT = object()


#: Paths of what gitops-job sets on every object it writes.
_OWN = (("metadata", "labels", LABEL_TARGET), ("metadata", "labels", LABEL_STACK),
        ("metadata", "annotations", ANNOTATION_REVISION))  # fmt: skip


def _put(node: Any, path: Sequence[str], value: Any) -> None:
    """Set ``path`` to a copy of ``value`` (creating maps on the way), or remove it when ``value`` is absent."""
    if value is _ABSENT:
        remove_path(node, list(path))
        return
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[int(path[-1]) if isinstance(node, list) else path[-1]] = copy.deepcopy(value)


def _lookup(node: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` (dict keys, list indices), or :data:`_ABSENT`."""
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return _ABSENT
    return node


def display(obj: Mapping[str, Any], ignore: list[list[str]], masker: Masker) -> dict[str, Any]:
    out = normalise(obj)
    for path in ignore:
        remove_path(out, path)
    return masker.mask(out)
