"""The one module that talks to the Kubernetes API server.

The ``kubernetes`` package supplies kubeconfig loading, authentication and the connection pool; objects stay plain
dicts (JSON in, JSON out) because typed model deserialisation is slow. API errors are translated once, here, by HTTP
status into a few exception classes. Every request is counted by verb so tests and the benchmark can assert how many
requests — and how many *writes* — a run made.

Over 400 lines on purpose: it is the one owner of the Kubernetes peer (connection, retries and 429s, deadlines,
impersonation, discovery and OpenAPI caches, every verb), so nothing else in the package imports ``kubernetes``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

import yaml

from gitops_job import __version__
from gitops_job.errors import ClusterUnreachableError, GitopsJobError

if TYPE_CHECKING:
    from kubernetes import client

FIELD_MANAGER = "gitops-job"
USER_AGENT = f"gitops-job/{__version__}"
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


class Gone(ApiError):
    """HTTP 410: a watch's resourceVersion is too old; list again."""


class DeadlineExceeded(GitopsJobError):
    """The run's deadline passed before a request could finish."""

    phase = "cluster"


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


class _Discovery:
    """What the API server serves, shared by every view of one connection (impersonating, with a deadline): the
    kinds (aggregated discovery) and the OpenAPI v3 documents asked for, each fetched once per run and dropped
    together when a CRD changes what is served."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.types: dict[tuple[str, str], ResourceType] | None = None
        self.kinds: dict[tuple[str, str], ResourceType] = {}  # (group, kind) -> the preferred version's type
        self.openapi_paths: dict[str, str] | None = None  # "apis/apps/v1" -> its document's URL
        self.openapi: dict[str, Mapping[str, Any] | None] = {}

    def clear(self) -> None:
        with self.lock:
            self.types, self.kinds, self.openapi_paths, self.openapi = None, {}, None, {}


class Kube:
    """A connection to one cluster: discovery, list, get, server-side apply (and its dry-run), delete."""

    #: Transient failures (connection errors, 429, 5xx on reads) are retried this many times, with backoff.
    RETRIES = 4

    def __init__(self, api: client.ApiClient, *, timeout: float = 30.0) -> None:
        self._api = api
        self.timeout = timeout
        self.requests: Counter[str] = Counter()  # by HTTP verb
        self._lock = threading.Lock()
        self._discovery = _Discovery()  # shared by every view
        self.impersonate: str | None = None  # a user name sent as Impersonate-User
        self.deadline: float | None = None  # time.monotonic() after which no request starts
        self.deadline_label = "the deadline"

    def impersonating(self, user: str | None) -> Kube:
        """A view of this connection whose requests act as ``user`` (same pool, counters and discovery)."""
        return self if user is None else self._view(impersonate=user)

    def with_deadline(self, seconds: float | None, label: str = "the deadline") -> Kube:
        """A view of this connection whose requests fail with :class:`DeadlineExceeded` after ``seconds``;
        ``label`` names the deadline in that error ("stack web's timeout (20s)")."""
        return self._view(deadline=None if seconds is None else time.monotonic() + seconds, deadline_label=label)

    def _view(self, **changes: Any) -> Kube:
        view = Kube.__new__(Kube)
        view.__dict__.update(self.__dict__, **changes)
        return view

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, *, concurrency: int = 16, timeout: float = 30.0
    ) -> Kube:
        """Load a kubeconfig (or the in-cluster service account when none is found) with a pool of ``concurrency``."""
        from kubernetes import client, config  # here: a third of a no-op run's time, and `--version` needs none of it

        cfg = client.Configuration()
        paths = _kubeconfig_paths(kubeconfig)
        failures = _LoggedErrors()
        try:
            with failures:  # the client logs a failing exec plugin (and its stderr) and goes on without credentials
                config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        except config.ConfigException as e:
            missing = [p for p in paths if not Path(p).exists()]
            if kubeconfig is not None and not missing:
                raise ClusterUnreachableError(f"cannot load kubeconfig {os.pathsep.join(paths)}: {e}") from None
            if kubeconfig is not None or context is not None:
                raise ClusterUnreachableError(_no_kubeconfig(paths, in_cluster=None)) from None
            try:
                config.load_incluster_config(client_configuration=cfg)
            except config.ConfigException as incluster:
                raise ClusterUnreachableError(_no_kubeconfig(paths, in_cluster=str(incluster))) from None
        if failures.messages:
            raise ClusterUnreachableError(_plugin_failed(paths, context, failures.messages))
        cfg.connection_pool_maxsize = concurrency
        cfg.retries = 0  # retries are decided here, not silently inside urllib3
        api = client.ApiClient(cfg)
        api.user_agent = USER_AGENT
        return cls(api, timeout=timeout)

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
        """One API call; returns the decoded JSON body or raises a translated :class:`ApiError`.

        Retried with backoff: answers 429 (after the ``Retry-After`` the server asks for, never sooner), connection
        failures, and 5xx answers to reads. Every write gitops-job makes is idempotent (server-side apply; creates
        and deletes are checked by the caller), so retrying a write whose answer was lost is safe.
        """
        query = list(query)
        for attempt in range(self.RETRIES + 1):
            last = attempt == self.RETRIES
            try:
                resp = self._send(method, path, query, body, content_type, accept, where, stream=False)
            except ClusterUnreachableError:
                if last:
                    raise
                self._sleep(min(8.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2), method, path, where)
                continue
            status, raw, headers = resp
            if 200 <= status < 300:
                return json.loads(raw) if raw else None
            if not last and (status == 429 or (status >= 500 and method == "GET")):
                self._sleep(_retry_after(headers, status, attempt), method, path, where)
                continue
            raise _translate(status, raw, where or f"{method} {path}")
        raise AssertionError("unreachable")

    def _sleep(self, seconds: float, method: str, path: str, where: str | None) -> None:
        if self.deadline is not None and time.monotonic() + seconds > self.deadline:
            reason = f"{self.deadline_label} passes before the API server can be asked again"
            raise DeadlineExceeded(reason, where=where or f"{method} {path}")
        time.sleep(seconds)

    def _remaining(self, method: str, path: str, where: str | None) -> float:
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"{self.deadline_label} passed", where=where or f"{method} {path}")
        return min(self.timeout, left)

    def _send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: Any,
        content_type: str,
        accept: str,
        where: str | None,
        *,
        stream: bool,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": accept, "Content-Type": content_type}
        if self.impersonate:
            headers["Impersonate-User"] = self.impersonate
        method, url, headers, payload, post = self._api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        dry_run = any(k == "dryRun" for k, _ in query)
        with self._lock:
            self.requests[f"{method} (dry-run)" if dry_run else method] += 1
        budget = self._remaining(method, path, where)
        import urllib3  # loaded with the kubernetes client by connect()

        try:
            resp = self._api.call_api(
                method, url, headers, payload, post, _request_timeout=timeout if stream else budget
            )
            if stream and 200 <= resp.status < 300:
                return resp.response
            raw = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            if self.deadline is not None and time.monotonic() >= self.deadline:
                reason = f"no answer before {self.deadline_label} passed ({reason})"
                raise DeadlineExceeded(reason, where=where or f"{method} {path}") from None
            raise ClusterUnreachableError(
                f"{method} {path}: cannot reach the API server at {self._api.configuration.host}: {reason}"
            ) from None
        if stream:
            raise _translate(resp.status, raw, where or f"{method} {path}")
        return resp.status, raw, resp.headers

    # -- discovery ---------------------------------------------------------------------------------------------------
    def resource_types(self) -> dict[tuple[str, str], ResourceType]:
        """Every served kind by ``(apiVersion, kind)``, from aggregated discovery (two requests, cached per run and
        shared by every view of this connection)."""
        d = self._discovery
        with d.lock:
            if d.types is None:
                d.types = self._discover()
                d.kinds = {}
                for rt in d.types.values():  # a group's versions come most preferred first
                    d.kinds.setdefault((rt.group, rt.kind), rt)
            return d.types

    def type_of(self, group: str, kind: str) -> ResourceType | None:
        """The type serving ``kind`` of ``group`` at the group's preferred version: how an id that names no version
        (an inventory's, a prune candidate's) is read."""
        self.resource_types()
        with self._discovery.lock:
            return self._discovery.kinds.get((group, kind))

    def _discover(self) -> dict[tuple[str, str], ResourceType]:
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
        return types

    def invalidate_discovery(self) -> None:
        """Forget what is served (for every view of this connection): after a CRD is Established, say."""
        self._discovery.clear()

    def openapi(self, api_version: str) -> Mapping[str, Any] | None:
        """The OpenAPI v3 document the API server publishes for one group-version (``apps/v1``, ``v1``), or None
        when it publishes none (or may not be read); only the group-versions asked for are fetched, once per run."""
        key = f"apis/{api_version}" if "/" in api_version else f"api/{api_version}"
        d = self._discovery
        with d.lock:
            if key not in d.openapi:
                try:
                    if d.openapi_paths is None:
                        paths = (self.request("GET", "/openapi/v3") or {}).get("paths") or {}
                        d.openapi_paths = {k: str(v.get("serverRelativeURL") or "") for k, v in paths.items()}
                    url = d.openapi_paths.get(key)
                    path, _, query = (url or "").partition("?")
                    d.openapi[key] = self.request("GET", path, query=parse_qsl(query)) if path else None
                except (
                    ApiError
                ):  # not published, not readable: nothing is checked against it (apply's dry-run still is)
                    d.openapi[key] = None
            return d.openapi[key]

    def resource_type(self, api_version: str, kind: str) -> ResourceType | None:
        return self.resource_types().get((api_version, kind))

    # -- reads -------------------------------------------------------------------------------------------------------
    def list(self, rt: ResourceType, namespace: str | None = None, label_selector: str | None = None) -> list[Any]:
        """Every object of a type (in one namespace, or all), following ``continue`` tokens; items get kind set."""
        return self.list_at(rt, namespace, label_selector)[0]

    def list_at(
        self, rt: ResourceType, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[builtins.list[Any], str]:
        """:meth:`list`, plus the collection's resourceVersion (where a :meth:`watch` starts)."""
        query = [("limit", "500")]
        if label_selector:
            query.append(("labelSelector", label_selector))
        items: builtins.list[Any] = []
        token = None
        while True:
            page = self.request("GET", rt.path(namespace), query=[*query, *([("continue", token)] if token else [])])
            items.extend({"apiVersion": rt.api_version, "kind": rt.kind, **item} for item in page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def get(self, rt: ResourceType, name: str, namespace: str | None = None, *, where: str | None = None) -> Any | None:
        """The object, or None when it does not exist; ``where`` names it in errors (default: the URL)."""
        try:
            return self.request("GET", rt.path(namespace, name), where=where)
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

    def create(self, rt: ResourceType, obj: Mapping[str, Any], *, where: str | None = None) -> Any:
        """POST: fails with :class:`Conflict` (409 AlreadyExists) when the object exists."""
        return self.request("POST", rt.path((obj.get("metadata") or {}).get("namespace")), body=obj, where=where)

    def replace(self, rt: ResourceType, obj: Mapping[str, Any], *, where: str | None = None) -> Any:
        """PUT, guarded by the ``metadata.resourceVersion`` in ``obj``: :class:`Conflict` when it moved on."""
        meta = obj.get("metadata") or {}
        return self.request("PUT", rt.path(meta.get("namespace"), meta["name"]), body=obj, where=where)

    def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: str = "Background",
        where: str | None = None,
    ) -> bool:
        """DELETE (only the object with ``uid`` / at ``resource_version`` when given: else :class:`Conflict`);
        False when it was already gone."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        try:
            self.request("DELETE", rt.path(namespace, name), body=body, where=where)
        except NotFound:
            return False
        return True

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        timeout: float = 60.0,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Stream ``(type, object)`` watch events (ADDED, MODIFIED, DELETED, BOOKMARK) for up to ``timeout`` seconds.

        Ends quietly when the server closes the stream; raises :class:`Gone` when ``resource_version`` is too old.
        """
        query = [("watch", "true"), ("timeoutSeconds", str(max(1, int(timeout)))), ("allowWatchBookmarks", "true")]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if label_selector:
            query.append(("labelSelector", label_selector))
        path = rt.path(namespace)
        import urllib3  # loaded with the kubernetes client by connect()

        stream = self._send("GET", path, query, None, "application/json", "application/json", None, stream=True,
                            timeout=timeout + 5)  # fmt: skip
        try:
            for line in stream:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise _translate(code, json.dumps(obj).encode(), f"watch {path}")
                yield str(event.get("type")), {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ClusterUnreachableError(f"watch {path}: the stream broke: {e}") from None
        finally:
            stream.release_conn()


def preloading() -> threading.Thread:
    """Start importing the kubernetes client (a third of a no-op run) in a thread: a caller that meanwhile only waits
    on a child process (``git ls-remote``) hides that cost. Join it before importing anything else, so two threads
    never import at once; a failed import is left for :meth:`Kube.connect` to raise."""

    def load() -> None:
        with contextlib.suppress(Exception):
            import kubernetes.client
            import kubernetes.config  # noqa: F401

    thread = threading.Thread(target=load, name="import kubernetes", daemon=True)
    thread.start()
    return thread


def _retry_after(headers: Mapping[str, str], status: int, attempt: int) -> float:
    """How long to wait before asking again: the server's ``Retry-After`` when it sent one, else backoff."""
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return min(8.0, 0.5 * 2**attempt) if status != 429 else 1.0


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
    if status == 410:
        return Gone(status, message, where=where, body=body)
    if status == 409:
        return Conflict(status, message, where=where, body=body)
    if status == 422 or (status == 500 and "failed to create typed patch object" in message):
        return Invalid(status, message, where=where, body=body)
    return ApiError(status, message, where=where, body=body)


# -- loading a kubeconfig: what was tried, and a credential plugin that fails ------------------------------------------
def _kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    """The files a kubeconfig is read from: ``kubeconfig`` (``$KUBECONFIG``: a list), else ``~/.kube/config``."""
    raw = kubeconfig if kubeconfig is not None else os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [str(Path(p).expanduser()) for p in raw.split(os.pathsep) if p]


def _no_kubeconfig(paths: list[str], *, in_cluster: str | None) -> str:
    tried = [f"{p} ({'no configuration' if Path(p).exists() else 'does not exist'})" for p in paths]
    if in_cluster is not None:
        tried.append(f"the in-cluster service account ({in_cluster.rstrip('.')})")
    return f"no kubeconfig found; tried {', '.join(tried)}: pass --kubeconfig FILE (or set KUBECONFIG)"


class _LoggedErrors(logging.Handler):
    """Collects what the kubernetes client logs at ERROR while loading a kubeconfig — never printed: a failing exec
    plugin's message ends with its stderr, which may hold a token."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _LoggedErrors:
        logging.getLogger().addHandler(self)  # a handler on the root: Python's last-resort printer stays silent
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


def _plugin_failed(paths: list[str], context: str | None, messages: list[str]) -> str:
    """The error for credentials that failed to load: the exec plugin's command and exit status, not its output."""
    user, command = _exec_user(paths, context)
    status = next((m.split(".")[0] for m in messages if m.startswith("exec: process returned")), "it failed")
    plugin = f"the exec credential plugin {command!r} of kubeconfig user {user!r}" if command else "loading credentials"
    return (
        f"{plugin} failed ({status}; its output is not shown: it may hold credentials); stopping rather than going on"
        " unauthenticated. Run the command yourself to see why, or fix the user's exec section"
        f" in {os.pathsep.join(paths)}"
    )


def _exec_user(paths: list[str], context: str | None) -> tuple[str, str | None]:
    """``(user name, exec command)`` of the context in use, read from the kubeconfig files (first one wins)."""
    docs = []
    for path in paths:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(loaded, dict):
            docs.append(loaded)
    current = context or next((d["current-context"] for d in docs if d.get("current-context")), None)

    def named(section: str, name: Any) -> dict[str, Any]:
        for d in docs:
            for entry in d.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") == name:
                    return dict(entry.get(section[:-1]) or {})
        return {}

    user = named("contexts", current).get("user")
    exec_ = named("users", user).get("exec") or {}
    command = exec_.get("command") if isinstance(exec_, dict) else None
    return str(user), str(command) if command else None


# Above this many namespaces for one type, one cluster-wide LIST beats a LIST per namespace.
CLUSTER_WIDE_LIST_ABOVE = 3


def timestamp(t: datetime | None = None, *, micro: bool = False) -> str:
    """``t`` (default: now) in the API's formats, in UTC: Time ``2026-11-22T10:00:00Z``, or MicroTime
    ``2026-11-22T10:00:00.000000Z`` with ``micro``. Every timestamp gitops-job writes or shows is one of these."""
    t = (t or datetime.now(UTC)).astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")
