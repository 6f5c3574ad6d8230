"""The one module that talks to the Kubernetes API server.

The ``kubernetes`` package supplies kubeconfig loading, authentication and the connection pool; objects stay plain
dicts (JSON in, JSON out) because typed model deserialisation is slow. API errors are translated once, here, by HTTP
status into a few exception classes. Every request is counted by verb so tests and the benchmark can assert how many
requests — and how many *writes* — a run made.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config

from .errors import ClusterUnreachableError, GitopsJobError

FIELD_MANAGER = "gitops-job"
_AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
_WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiError(GitopsJobError):
    """The API server answered with an error status; ``where`` names the object or path."""

    phase = "api"

    def __init__(self, status: int, reason: str, *, where: str | None = None, body: Mapping[str, Any] | None = None):
        super().__init__(reason, where=where)
        self.status = status
        self.body: Mapping[str, Any] = body or {}


class NotFound(ApiError):
    """HTTP 404."""


class Forbidden(ApiError):
    """HTTP 401/403: the credentials (or the impersonated account) may not do this."""


class Conflict(ApiError):
    """HTTP 409: for server-side apply, fields owned by other managers (see :attr:`conflicts`)."""

    @property
    def conflicts(self) -> list[tuple[str, str]]:
        """``(field, message)`` per conflicting field, as the server reports them."""
        causes = (self.body.get("details") or {}).get("causes") or []
        return [(str(c.get("field", "")), str(c.get("message", ""))) for c in causes]


class Invalid(ApiError):
    """HTTP 422, or server-side apply's HTTP 500 "failed to create typed patch object": the manifest is wrong."""


@dataclass(frozen=True)
class ResourceType:
    """What discovery says about one kind: where it is served and whether it is namespaced."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{quote(name, safe='')}" if name else base


class Kube:
    """A connection to one cluster: discovery, list, get, server-side apply (and its dry-run), delete."""

    def __init__(self, api: client.ApiClient, *, timeout: float = 30.0) -> None:
        self._api = api
        self.timeout = timeout
        self.requests: Counter[str] = Counter()  # by HTTP verb
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str], ResourceType] | None = None

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, *, concurrency: int = 16, timeout: float = 30.0
    ) -> Kube:
        """Load a kubeconfig (or the in-cluster service account when none is found) with a pool of ``concurrency``."""
        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        except config.ConfigException as e:
            if kubeconfig is not None or context is not None:
                raise ClusterUnreachableError(f"cannot load kubeconfig: {e}") from None
            try:
                config.load_incluster_config(client_configuration=cfg)
            except config.ConfigException:
                raise ClusterUnreachableError(
                    f"no kubeconfig found ({e}) and not running in a cluster; pass --kubeconfig"
                ) from None
        cfg.connection_pool_maxsize = concurrency
        cfg.retries = 0  # retries are decided here, not silently inside urllib3
        return cls(client.ApiClient(cfg), timeout=timeout)

    def close(self) -> None:
        self._api.close()

    @property
    def writes(self) -> int:
        """Requests that could have changed the cluster (dry-runs are counted apart, under ``<VERB> (dry-run)``)."""
        return sum(n for verb, n in self.requests.items() if verb in _WRITE_VERBS)

    # -- transport ---------------------------------------------------------------------------------------------------
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
        """One HTTP request; returns the decoded JSON body or raises a translated :class:`ApiError`."""
        headers = {"Accept": accept, "Content-Type": content_type}
        query = list(query)
        method, url, headers, payload, post = self._api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        dry_run = any(k == "dryRun" for k, _ in query)
        with self._lock:
            self.requests[f"{method} (dry-run)" if dry_run else method] += 1
        try:
            resp = self._api.call_api(method, url, headers, payload, post, _request_timeout=self.timeout)
            raw = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise ClusterUnreachableError(
                f"{method} {path}: cannot reach the API server at {self._api.configuration.host}: {reason}"
            ) from None
        if 200 <= resp.status < 300:
            return json.loads(raw) if raw else None
        raise _translate(resp.status, raw, where or f"{method} {path}")

    # -- discovery ---------------------------------------------------------------------------------------------------
    def resource_types(self) -> dict[tuple[str, str], ResourceType]:
        """Every served kind by ``(apiVersion, kind)``, from aggregated discovery (two requests, cached per run)."""
        if self._types is None:
            types: dict[tuple[str, str], ResourceType] = {}
            for root in ("/api", "/apis"):
                doc = self.request("GET", root, accept=_AGGREGATED_DISCOVERY)
                for group in doc.get("items") or []:
                    name = (group.get("metadata") or {}).get("name", "")
                    for version in group.get("versions") or []:
                        for res in version.get("resources") or []:
                            rt = ResourceType(
                                group=name,
                                version=version["version"],
                                kind=res["responseKind"]["kind"],
                                plural=res["resource"],
                                namespaced=res.get("scope") == "Namespaced",
                                verbs=frozenset(res.get("verbs") or ()),
                            )
                            types.setdefault((rt.api_version, rt.kind), rt)
            self._types = types
        return self._types

    def invalidate_discovery(self) -> None:
        self._types = None

    def resource_type(self, api_version: str, kind: str) -> ResourceType | None:
        return self.resource_types().get((api_version, kind))

    # -- reads -------------------------------------------------------------------------------------------------------
    def list(self, rt: ResourceType, namespace: str | None = None, label_selector: str | None = None) -> list[Any]:
        """Every object of a type (in one namespace, or all), following ``continue`` tokens; items get kind set."""
        query = [("limit", "500")]
        if label_selector:
            query.append(("labelSelector", label_selector))
        items: list[Any] = []
        token = None
        while True:
            page = self.request("GET", rt.path(namespace), query=[*query, *([("continue", token)] if token else [])])
            items.extend({"apiVersion": rt.api_version, "kind": rt.kind, **item} for item in page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Any | None:
        try:
            return self.request("GET", rt.path(namespace, name))
        except NotFound:
            return None

    # -- writes ------------------------------------------------------------------------------------------------------
    def apply(
        self,
        rt: ResourceType,
        obj: Mapping[str, Any],
        *,
        dry_run: bool = False,
        force: bool = False,
        field_manager: str = FIELD_MANAGER,
        where: str | None = None,
    ) -> Any:
        """Server-side apply ``obj`` (a dry-run with ``dry_run``): returns the object as the server would store it."""
        meta = obj.get("metadata") or {}
        query = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request(
            "PATCH",
            rt.path(meta.get("namespace"), meta["name"]),
            query=query,
            body=obj,
            content_type="application/apply-patch+yaml",
            where=where,
        )


def _translate(status: int, raw: bytes, where: str) -> ApiError:
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"message": raw.decode(errors="replace")[:500]}
    message = str(body.get("message") or body.get("reason") or f"HTTP {status}")
    if status == 404:
        return NotFound(status, message, where=where, body=body)
    if status in (401, 403):
        return Forbidden(status, message, where=where, body=body)
    if status == 409:
        return Conflict(status, message, where=where, body=body)
    if status == 422 or (status == 500 and "failed to create typed patch object" in message):
        return Invalid(status, message, where=where, body=body)
    return ApiError(status, message, where=where, body=body)
