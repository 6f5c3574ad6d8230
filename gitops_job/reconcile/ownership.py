"""Whose objects are whose: one set of rules, used by plan, apply, prune and recreate alike (pure: no I/O).

Every object gitops-job applies carries the labels ``gitops-job.io/target`` and ``gitops-job.io/stack``, and each
stack's inventory lists its ids and names the repository the stack belongs to. From those:

* a stack's inventory that another repository owns is never taken over (:func:`claim_problem`);
* a live object a stack renders is *ours* (labelled for this target and stack, or in its inventory), *moved* (another
  stack of this repository held it and no longer renders it: handed over, never deleted) or *foreign* (made by
  someone else, or another repository's or target's: taken over only when asked to adopt it) — :meth:`Holders.claim`;
* a live object Flux applied (its ``kustomize.toolkit.fluxcd.io/name`` and ``/namespace`` labels, and the field
  manager ``kustomize-controller``) is *flux*: a migration takes it over only with ``apply --adopt-from-flux``;
* nothing is deleted (prune, recreate) unless it still carries this target's and stack's labels (:func:`not_ours`);
* no manifest may name our own state, the inventory ConfigMaps and lock Leases (:func:`reserved`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gitops_job.errors import ValidationError
from gitops_job.identity import ObjectId
from gitops_job.model import LABEL_STACK, LABEL_TARGET, RenderedObject, label

# What inventory.inventory_name and lock.lease_name make: gitops-job.<target>.<stack>, both DNS labels.
_STATE_NAME = re.compile(r"gitops-job\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_STATE_KINDS = {("", "ConfigMap"): "inventory", ("coordination.k8s.io", "Lease"): "lock"}


class Standing(StrEnum):
    OURS = "ours"
    MOVED = "moved"  # another stack of this repository held it and no longer renders it
    FOREIGN = "foreign"  # not ours: adopted only when asked
    FLUX = "flux"  # Flux's kustomize-controller applied it: adopted only with --adopt-from-flux


@dataclass(frozen=True)
class Claim:
    """Where a live object a stack renders stands. ``holder``: the stack it moves from (MOVED), or who holds it, for
    people (FOREIGN) — never any of its content."""

    standing: Standing
    holder: str = ""


OURS = Claim(Standing.OURS)

#: What Flux's kustomize-controller sets on every object it applies, and the field manager it applies with.
FLUX_NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
FLUX_NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"
FLUX_MANAGER = "kustomize-controller"


@dataclass(frozen=True)
class Holders:
    """What the target's stored inventories say, and what this run renders."""

    target: str
    repository: str | None  # this run's repository (None: no remote and no ``name:``)
    stacks: frozenset[str]  # the stacks of this repository's config that apply to the target
    inventories: Mapping[str, frozenset[ObjectId]] = field(default_factory=dict)  # every stored inventory's ids
    repositories: Mapping[str, str | None] = field(default_factory=dict)  # the repository each inventory names
    rendered: Mapping[ObjectId, str] = field(default_factory=dict)  # which stack renders each id in this run

    def ours(self, stack: str) -> bool:
        """Is ``stack`` one of this repository's (by its inventory's repository, else by the config)?"""
        repository = self.repositories.get(stack)
        return repository == self.repository if repository is not None else stack in self.stacks

    def claim(self, oid: ObjectId, stack: str, live: Mapping[str, Any]) -> Claim:
        """Where the live object ``oid`` that ``stack`` renders stands."""
        target, owner = label(live, LABEL_TARGET), label(live, LABEL_STACK)
        labelled = owner if target == self.target else None
        if labelled == stack:
            return OURS
        # Listed in our inventory is ours too, unless another stack's inventory lists it and its labels name that
        # stack: then it was handed over (or adopted by another repository) after our inventory was written.
        if oid in self.inventories.get(stack, ()) and not (labelled and oid in self.inventories.get(labelled, ())):
            return OURS
        held = sorted(s for s, ids in self.inventories.items() if s != stack and oid in ids)
        if labelled:
            held = [labelled, *(s for s in held if s != labelled)]
        foreign = [s for s in held if not self.ours(s)]
        if foreign:
            return Claim(Standing.FOREIGN, self._describe(foreign[0]))
        if held:
            return Claim(Standing.MOVED, held[0])
        if target:
            return Claim(Standing.FOREIGN, f"gitops-job target {target}, stack {owner or '(none)'}")
        managers = sorted({str(m.get("manager")) for m in _managed_fields(live) if m.get("manager")})
        flux = label(live, FLUX_NAME_LABEL), label(live, FLUX_NAMESPACE_LABEL)
        if flux[0] and flux[1] and FLUX_MANAGER in managers:
            return Claim(Standing.FLUX, f"Flux Kustomization {flux[1]}/{flux[0]}")
        return Claim(Standing.FOREIGN, f"{', '.join(managers) or 'someone else'}, not gitops-job")

    def _describe(self, stack: str) -> str:
        """Who holds a stack that is not ours: another repository's (its inventory says so), or one this
        repository's config does not know."""
        repository = self.repositories.get(stack)
        if repository is not None:
            return f"stack {stack} of repository {repository}"
        return f"stack {stack}, which is not in this repository's gitops.yaml"

    def moved_out(self, stack: str, ids: Iterable[ObjectId]) -> frozenset[ObjectId]:
        """The ids among ``ids`` (``stack``'s inventory) that another stack renders now: handed over, never pruned."""
        return frozenset(oid for oid in ids if self.rendered.get(oid, stack) != stack)


def _managed_fields(live: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    meta = live.get("metadata")
    entries = meta.get("managedFields") if isinstance(meta, Mapping) else None
    return [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []


def flux_held(kustomizations: Iterable[Mapping[str, Any]]) -> dict[ObjectId, str]:
    """What Flux still manages: each id the ``.status.inventory.entries`` of a live Flux Kustomization lists (ids
    ``<namespace>_<name>_<group>_<kind>``), with the Kustomization that lists it. A suspended Kustomization holds
    nothing (Flux neither applies nor prunes for it); one that is gone is not among ``kustomizations``."""
    held: dict[ObjectId, str] = {}
    for k in kustomizations:
        meta, spec, status = (_mapping(k.get(key)) for key in ("metadata", "spec", "status"))
        if spec.get("suspend") is True:
            continue
        for entry in _mapping(status.get("inventory")).get("entries") or ():
            parts = str(entry.get("id") if isinstance(entry, Mapping) else "").split("_")
            if len(parts) == 4 and parts[1] and parts[3]:
                namespace, name, group, kind = parts
                held.setdefault(ObjectId(group, kind, namespace, name),
                                f"Flux Kustomization {meta.get('namespace')}/{meta.get('name')}")  # fmt: skip
    return held


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def not_ours(live: Mapping[str, Any], target: str, stack: str) -> str | None:
    """Why ``stack`` of ``target`` must not delete ``live`` (None: it still carries our labels, it is ours to delete).
    The one check every delete goes through: prune and recreate alike."""
    owner = label(live, LABEL_STACK)
    if label(live, LABEL_TARGET) == target and owner == stack:
        return None
    return f"now labelled for stack {owner}" if owner else "it does not carry this stack's ownership labels"


def claim_problem(
    inventory_id: ObjectId, stack: str, stored: str | None, repository: str | None, target: str
) -> str | None:
    """Why this run (of ``repository``) may not use ``stack``'s inventory, which names ``stored`` (None: it may).

    An inventory that names no repository (written before inventories did) is claimed by the first run."""
    if stored is None or stored == repository:
        return None
    this = f"repository {repository}" if repository else "a repository with no git remote and no name: in gitops.yaml"
    return (
        f"stack {stack} on target {target} belongs to repository {stored} (its inventory {inventory_id} says so), "
        f"and this run is {this}; refusing to take it over (it would prune that repository's objects). Two "
        f"repositories cannot share a stack on one cluster: rename the stack or the target in one of them"
        + ("" if repository else ", or set name: in gitops.yaml if this is that repository")
        + f". If this repository really replaces {stored}, delete that inventory first "
        f"(kubectl -n {inventory_id.namespace} delete configmap {inventory_id.name})"
    )


def reserved(objects: Iterable[RenderedObject], inventory_namespace: str) -> list[ValidationError]:
    """A manifest aimed at our own state: an inventory ConfigMap or lock Lease name in the inventory namespace."""
    errors = []
    for o in objects:
        what = _STATE_KINDS.get((o.id.group, o.id.kind))
        if what and o.id.namespace == inventory_namespace and _STATE_NAME.fullmatch(o.id.name):
            errors.append(ValidationError(
                f"{o.id} is gitops-job's own state (a stack's {what} {o.id.kind} in the inventory namespace "
                f"{inventory_namespace}); a manifest may not name it: rename the object or put it in another namespace",
                where=str(o.source),
            ))  # fmt: skip
    return errors
