"""A Flux Kustomization's ``postBuild.substituteFrom`` values that the repository does not hold: read from the
cluster, as Flux reads them, before the stack renders (:mod:`gitops_job.config.flux` resolved the rest offline).

A Secret read here is learned by the masker first, so its values never appear in any output (a value substituted
into another object included)."""

from __future__ import annotations

from dataclasses import replace

from gitops_job.config.flux import data_of
from gitops_job.config.load import Stack
from gitops_job.errors import RenderError
from gitops_job.kube import ApiError, Kube
from gitops_job.reconcile.mask import Masker


def with_cluster_values(kube: Kube, stack: Stack, masker: Masker) -> tuple[Stack, list[str]]:
    """``stack`` with the values of its cluster-only substituteFrom ConfigMaps and Secrets under its own
    ``substitute`` (a later one winning, ``substitute`` over all, as Flux merges them); a note naming each one read.
    A missing one that is not ``optional`` is a RenderError naming it."""
    if stack.flux is None or not stack.flux.cluster_values:
        return stack, []
    values: dict[str, str] = {}
    notes: list[str] = []
    for wanted in stack.flux.cluster_values:
        ref = wanted.ref
        rt = kube.resource_type("v1", ref.kind)
        where = f"{stack.flux.source}: postBuild.substituteFrom {ref}"
        try:
            live = kube.get(rt, ref.name, ref.namespace, where=str(ref)) if rt is not None else None
        except ApiError as e:
            raise RenderError(f"{ref} could not be read from the cluster: {e.reason} (HTTP {e.status})",
                              where=where) from None  # fmt: skip
        if live is None:
            if wanted.optional:
                notes.append(f"note: {where}: not in the repository nor the cluster; optional, so skipped")
                continue
            raise RenderError(f"{ref} is neither in the Flux repository nor in the cluster; add it, or mark it "
                              "optional: true", where=where)  # fmt: skip
        masker.learn([live])
        values.update(data_of(live, where))
        notes.append(f"note: {where}: not in the repository, read from the cluster")
    return replace(stack, substitute={**values, **(stack.substitute or {})}), notes
