"""What flows from render onwards: a rendered object that remembers where it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops_job.identity import ObjectId


@dataclass(frozen=True)
class Source:
    """Where an object came from: a repo-relative file and, where the renderer allows, the line it starts on."""

    file: str
    line: int | None = None
    chart: str | None = None  # a remote Helm chart it was rendered from, as resolved: "podinfo 6.5.4 (https://…)"
    #: Another repository ``file`` is in (a Flux GitRepository, at its commit): "GitRepository/ns/name@1a2b3c4d5e6f"
    origin: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        where = f"{self.origin}:{where}" if self.origin else where
        return f"{where} in chart {self.chart}" if self.chart else where


@dataclass(frozen=True)
class RenderedObject:
    """One manifest of one stack, as a plain dict (never mutated after rendering)."""

    id: ObjectId
    body: dict[str, Any]
    source: Source
    stack: str


# Ownership: every object gitops-job applies carries these labels (prune deletes only what still carries them).
LABEL_TARGET = "gitops-job.io/target"
LABEL_STACK = "gitops-job.io/stack"
# The git revision an object was last written at (set only on objects a run writes).
ANNOTATION_REVISION = "gitops-job.io/revision"
# Per-object controls (docs/apply.md, *Per-object annotations*).
ANNOTATION_SSA = "gitops-job.io/ssa"  # Override (default) | Merge | IfNotPresent | Ignore
ANNOTATION_FORCE = "gitops-job.io/force"  # enabled: delete and recreate when an immutable field changes
ANNOTATION_PRUNE = "gitops-job.io/prune"  # disabled: never delete; enabled: delete a Namespace, PVC or CRD too
ANNOTATION_ADOPT = "gitops-job.io/adopt"  # enabled: take over a live object that is not ours (apply --adopt: all)


def annotation(body: Mapping[str, Any], key: str) -> str | None:
    """An annotation of a manifest or live object, or None."""
    meta = body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    value = annotations.get(key) if isinstance(annotations, dict) else None
    return str(value) if value is not None else None


def label(body: Mapping[str, Any], key: str) -> str | None:
    meta = body.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    value = labels.get(key) if isinstance(labels, dict) else None
    return str(value) if value is not None else None
