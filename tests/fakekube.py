"""A :class:`~gitops_job.kube.Kube` whose transport is a dict: for unit tests of the logic above the transport.

Only :meth:`Kube.request` is replaced, so ``get``, ``delete``, ``create``, ``replace`` and ``list`` run as they do
against a cluster (a 404 is ``None`` to ``get``, ``False`` to ``delete``). It is no API server: no defaulting, no
field ownership, no selectors. The cluster tests cover what only a real one can answer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from gitops_job.kube import ApiError, Conflict, Kube, NotFound, ResourceType

_TYPES = (
    ResourceType("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "list", "create", "update", "delete"})),
    ResourceType("", "v1", "Namespace", "namespaces", False, frozenset({"get", "list", "create", "delete"})),
    ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, frozenset({"get", "delete"})),
    ResourceType("apps", "v1", "Deployment", "deployments", True, frozenset({"get", "list", "patch", "delete"})),
    ResourceType(
        "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
        frozenset({"get", "delete"}),
    ),
)  # fmt: skip
_PLURALS = frozenset(rt.plural for rt in _TYPES)
TYPES: dict[tuple[str, str], ResourceType] = {(rt.api_version, rt.kind): rt for rt in _TYPES}


def rt_of(kind: str) -> ResourceType:
    return next(rt for rt in _TYPES if rt.kind == kind)


class FakeKube(Kube):
    """Objects by API path; every request recorded in :attr:`calls` as ``(method, path, body, content_type)``."""

    def __init__(self, objects: Iterable[Mapping[str, Any]] = (), fail: Mapping[tuple[str, str], ApiError] = {}):
        super().__init__(None)  # the API client is never used: request() answers
        self.objects: dict[str, dict[str, Any]] = {}
        self.fail = dict(fail)  # (method, path) -> the error that request raises
        self.calls: list[tuple[str, str, Any, str]] = []
        self._rv = 100
        for obj in objects:
            self.put(obj)

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (as a server would: with a new resourceVersion and a uid)."""
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[self.path_of(stored)] = stored
        return copy.deepcopy(stored)

    @staticmethod
    def path_of(obj: Mapping[str, Any]) -> str:
        rt = TYPES[(str(obj["apiVersion"]), str(obj["kind"]))]
        meta = obj["metadata"]
        return rt.path(meta.get("namespace"), meta["name"])

    def resource_types(self) -> dict[tuple[str, str], ResourceType]:
        return dict(TYPES)

    def type_of(self, group: str, kind: str) -> ResourceType | None:
        return next((rt for rt in _TYPES if (rt.group, rt.kind) == (group, kind)), None)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        where: str | None = None,
    ) -> Any:
        self.calls.append((method, path, copy.deepcopy(body), content_type))
        if (method, path) in self.fail:
            raise self.fail[(method, path)]
        where = where or f"{method} {path}"
        stored = self.objects.get(path)
        if method == "GET":
            if stored is not None:
                return copy.deepcopy(stored)
            if path.rsplit("/", 1)[-1] not in _PLURALS:
                raise NotFound(404, "not found", where=where)
            prefix = path + "/"
            items = [copy.deepcopy(o) for p, o in sorted(self.objects.items()) if p.startswith(prefix)]
            return {"items": items, "metadata": {"resourceVersion": str(self._rv)}}
        if method == "DELETE":
            if stored is None:
                raise NotFound(404, "not found", where=where)
            del self.objects[path]
            return {}
        if method == "POST":
            target = self.path_of(body)
            if target in self.objects:
                raise Conflict(409, "already exists", where=where)
            return self.put(body)
        if method == "PUT":
            if stored is None:
                raise NotFound(404, "not found", where=where)
            if stored["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
                raise Conflict(409, "the object has been modified", where=where)
            return self.put(body)
        if method == "PATCH":
            if stored is None:
                raise NotFound(404, "not found", where=where)
            return copy.deepcopy(stored)
        raise AssertionError(f"FakeKube does not answer {method} {path}")

    def writes_made(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _, _ in self.calls if method != "GET"]
