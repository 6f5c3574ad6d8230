"""The one identity type for a Kubernetes object, formatted once: ``Kind/namespace/name`` (``Kind/name`` when
cluster-scoped). Used in logs, errors, inventory ids and PR comments alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class ObjectId:
    """Group, kind, namespace (``""`` when cluster-scoped) and name: what makes two objects the same object."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectId:
        """The identity of a manifest or live object (a plain dict)."""
        api_version = str(obj.get("apiVersion") or "")
        group = api_version.rpartition("/")[0]
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping):
            meta = {}
        return cls(group, str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    @property
    def group_kind(self) -> str:
        """``Kind.group`` (``Kind`` for the core group), as kubectl spells a resource type."""
        return f"{self.kind}.{self.group}" if self.group else self.kind
