"""The prune stage: delete what left git — inventory(old) minus rendered(new) — and nothing else.

Guards, all checked before the first write of a run (:func:`guard`): never on an empty render, never more than
``threshold`` of a stack's inventory at once when that is :data:`MASS_PRUNE_MIN` objects or more (unless
allowed). At delete time (:func:`prune`) each candidate must still carry this target's and stack's ownership labels
(:func:`delete_owned`: the one delete, which recreate uses too); Namespaces, PersistentVolumeClaims and CRDs (which
take data with them), and objects annotated ``gitops-job.io/prune: disabled``, are *retained*: their ownership
labels are removed, nothing else changes. An object a live Flux Kustomization's inventory still lists is left alone
(unless that Kustomization is suspended or gone): during a migration Flux may still own it. Deletes go in reverse
apply order; a failed delete stays in the inventory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gitops_job.errors import PruneError
from gitops_job.identity import ObjectId
from gitops_job.kube import ApiError, Kube, ResourceType
from gitops_job.model import ANNOTATION_PRUNE, LABEL_STACK, LABEL_TARGET, annotation
from gitops_job.outcomes import Verdict
from gitops_job.reconcile import order
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.ownership import flux_held, not_ours
from gitops_job.reconcile.results import Pruned

DEFAULT_THRESHOLD = 0.5
# The threshold guards against a broken render wiping a stack; removing one or two objects is a normal edit.
MASS_PRUNE_MIN = 3
RETAINED_KINDS = frozenset({("", "Namespace"), ("", "PersistentVolumeClaim"),
                            ("apiextensions.k8s.io", "CustomResourceDefinition")})  # fmt: skip


def guard(stack: str, old: Iterable[ObjectId], new: Iterable[ObjectId], *, allow_mass_prune: bool,
          threshold: float = DEFAULT_THRESHOLD) -> None:  # fmt: skip
    """Refuse an empty render, or one that would prune more than ``threshold`` of the inventory (rows V8, V9)."""
    old_ids, new_ids = set(old), set(new)
    if allow_mass_prune:
        return
    if not new_ids:
        raise PruneError(
            f"empty render: stack {stack} rendered no objects; refusing to apply (it would delete all "
            f"{len(old_ids)} object(s) the stack owns). If that is intended, re-run with --allow-mass-prune",
            where=f"stack {stack}",
        )
    gone = old_ids - new_ids
    if len(gone) >= MASS_PRUNE_MIN and len(gone) / len(old_ids) > threshold:
        raise PruneError(
            f"mass prune: {len(gone)} of the {len(old_ids)} objects stack {stack} owns left the render "
            f"(more than {threshold:.0%}); refusing to delete them. If that is intended, re-run with "
            f"--allow-mass-prune",
            where=f"stack {stack}",
        )


def prune(
    kube: Kube,
    candidates: Iterable[ObjectId],
    *,
    target: str,
    stack: str,
    masker: Masker,
) -> list[Pruned]:
    """Delete ``candidates`` that are still ours, in reverse apply order; returns what happened to each."""
    results: list[Pruned] = []
    flux = held_by_flux(kube)
    for step in order.delete_steps(sorted(set(candidates)), lambda oid: oid):
        for oid in step:
            if oid in flux:
                why = f"left alone: {flux[oid]} still lists it in its inventory (suspend or delete it first)"
                results.append(Pruned(oid, Verdict.HELD, why))
                continue
            rt = kube.type_of(oid.group, oid.kind)
            if rt is None:
                results.append(Pruned(oid, Verdict.GONE, "its kind is no longer served"))
                continue
            try:
                results.append(_one(kube, rt, oid, target, stack))
            except ApiError as e:
                results.append(Pruned(oid, Verdict.FAILED, masker.scrub(f"{e.reason} (HTTP {e.status})")))
    return results


def held_by_flux(kube: Kube, *, strict: bool = True) -> dict[ObjectId, str]:
    """What live Flux Kustomizations still list (:func:`~.ownership.flux_held`); nothing when Flux's
    Kustomization kind is not served. When they cannot be listed: a PruneError (``strict``: prune deletes nothing
    it cannot check), else nothing (the plan)."""
    rt = kube.type_of("kustomize.toolkit.fluxcd.io", "Kustomization")
    if rt is None:
        return {}
    try:
        return flux_held(kube.list(rt))
    except ApiError as e:
        if not strict:
            return {}
        raise PruneError(
            f"Flux's Kustomizations are served but could not be listed ({e.reason}, HTTP {e.status}), so prune cannot "
            "tell what Flux still holds; nothing was deleted. Let this identity list "
            "kustomizations.kustomize.toolkit.fluxcd.io in every namespace",
            where="prune",
        ) from None


def _one(kube: Kube, rt: ResourceType, oid: ObjectId, target: str, stack: str) -> Pruned:
    return delete_owned(kube, rt, oid, target=target, stack=stack, retain=True)


def delete_owned(
    kube: Kube,
    rt: ResourceType,
    oid: ObjectId,
    *,
    target: str,
    stack: str,
    retain: bool = False,
    propagation: str = "Background",
) -> Pruned:
    """The one way gitops-job deletes an object (prune and recreate alike): only while it still carries ``target``'s
    and ``stack``'s ownership labels (:func:`~.ownership.not_ours`), and only that very object (its uid).
    With ``retain``, a Namespace, PVC or CRD (unless ``prune: enabled``) or an object annotated ``prune: disabled``
    is disowned instead."""
    live: dict[str, Any] | None = kube.get(rt, oid.name, oid.namespace or None, where=str(oid))
    if live is None:
        return Pruned(oid, Verdict.GONE, "already deleted")
    why = not_ours(live, target, stack)
    if why:
        return Pruned(oid, Verdict.NOT_OURS, f"left alone: {why}")
    setting = annotation(live, ANNOTATION_PRUNE)
    if retain and (setting == "disabled" or ((oid.group, oid.kind) in RETAINED_KINDS and setting != "enabled")):
        _disown(kube, rt, oid)
        why = f"{ANNOTATION_PRUNE}: disabled" if setting == "disabled" else f"a {oid.kind} is never pruned by default"
        return Pruned(oid, Verdict.RETAINED, f"retained ({why}); no longer managed")
    uid = (live.get("metadata") or {}).get("uid")
    deleted = kube.delete(rt, oid.name, oid.namespace or None, uid=uid, propagation=propagation, where=str(oid))
    return Pruned(oid, Verdict.PRUNED if deleted else Verdict.GONE)


def _disown(kube: Kube, rt: ResourceType, oid: ObjectId) -> None:
    """Remove our ownership labels (a JSON merge patch: nothing else about the object changes)."""
    patch = {"metadata": {"labels": {LABEL_TARGET: None, LABEL_STACK: None}}}
    kube.request("PATCH", rt.path(oid.namespace or None, oid.name), body=patch,
                 content_type="application/merge-patch+json", where=str(oid))  # fmt: skip
