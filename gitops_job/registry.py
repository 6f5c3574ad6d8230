"""The only module that talks to container registries (the OCI Distribution API v2): tag lists and digests.

``Registry.tags(repository)`` lists a repository's tags (``GET /v2/<name>/tags/list?n=``, following ``Link``
pagination on the same origin only) within a per-repository budget, cached in the state dir; ``Registry.digest``
asks for a manifest's digest with a ``HEAD``; ``Registry.scan`` (and ``scan_each``, yielding each as it arrives)
lists many repositories in parallel. Authentication follows the registry's ``WWW-Authenticate`` challenge: a Bearer
token from its realm (anonymous or with credentials, cached per scope for the run) or basic auth. Each host has a
rate limit that halves on a 429 and waits out ``Retry-After``. Credentials come from a docker ``config.json``
(through the ``docker`` package's auth module) or an ``imagePullSecrets``-style ``.dockerconfigjson``; no secret
appears in a message, a log line or a ``repr``. See docs/images.md ("Registries").
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from gitops_job import __version__, oci
from gitops_job.errors import ImageError
from gitops_job.escape import printable

USER_AGENT = f"gitops-job/{__version__}"
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"  # where docker.io's API answers
#: What a manifest HEAD accepts: an index or a single image, OCI or Docker (the digest is of what the registry holds).
MANIFEST_TYPES = oci.INDEX_TYPES + oci.IMAGE_MANIFEST_TYPES
MAX_BODY = 16 << 20  # bytes: an answer longer than this (10,000 tags are ~200 KB) is refused, not held in memory
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)


# --- references ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ImageRef:
    """An image reference, normalised the way Docker does: ``app`` is ``docker.io/library/app``; the first component
    is a registry host when it has a ``.`` or a ``:`` or is ``localhost``. Formatted once, by ``str``."""

    registry: str  # host[:port] as written ("docker.io" for Docker Hub)
    repository: str  # the path inside the registry ("library/app")
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """``text`` as a reference; :class:`ImageError` naming it when it is not one."""
        rest, _, digest = text.strip().partition("@")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest
        tag = None
        if ":" in path.rsplit("/", 1)[-1]:
            path, _, tag = path.rpartition(":")
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        problem = (
            "the registry host is not a hostname[:port]"
            if not _HOST.fullmatch(registry)
            else "the repository must be lower-case components ([a-z0-9] separated by . _ __ or -) joined by /"
            if not _PATH.fullmatch(path) or len(path) > 255
            else "a tag is up to 128 word characters, dots and dashes"
            if tag is not None and not _TAG.fullmatch(tag)
            else "a digest is sha256: and 64 hex digits"
            if digest and not _DIGEST.fullmatch(digest)
            else None
        )
        if problem:
            raise ImageError(f"{text!r} is not an image reference: {problem}", where="image reference")
        return cls(registry, path, tag, digest or None)

    @property
    def name(self) -> str:
        """The repository's identity, ``registry/repository`` (no tag, no digest)."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host[:port] the Distribution API answers on."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def bare(self) -> ImageRef:
        """This reference without its tag and digest: the repository."""
        return ImageRef(self.registry, self.repository)

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def _ref(repository: str | ImageRef) -> ImageRef:
    return (repository if isinstance(repository, ImageRef) else ImageRef.parse(repository)).bare()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (host[:port]) names this machine: ``localhost`` or a loopback address."""
    name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    if host.count(":") > 1 and not host.startswith("["):
        name = host  # a bare IPv6 address
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# --- the pure parts: Retry-After, the rate limit (the protocol's own rules are gitops_job.oci's) ------------------


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date, against epoch ``now``)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


@dataclass
class RateLimit:
    """A token bucket: ``rate`` requests per second, up to ``burst`` at once; a 429 halves the rate (down to
    ``floor``) and pauses the host until its ``Retry-After`` has passed. Times are ``time.monotonic()`` seconds, given
    by the caller, so the state is pure."""

    rate: float
    burst: float
    floor: float = 0.5
    tokens: float = -1.0  # -1: full at the first request
    updated: float = 0.0
    paused_until: float = 0.0

    def take(self, now: float) -> float:
        """Take a token for a request at ``now``; the seconds to wait before sending it (0 when one is there)."""
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.updated = max(self.updated, self.paused_until)  # nothing refills during a pause
        start = max(now, self.updated)
        self.tokens = min(self.burst, self.tokens + (start - self.updated) * self.rate)
        self.updated = start
        self.tokens -= 1
        if self.tokens >= 0:
            return start - now
        wait = -self.tokens / self.rate  # the token this request took is the one refilled by then
        self.tokens, self.updated = 0.0, start + wait
        return start + wait - now

    def throttled(self, now: float, retry_after: float | None) -> None:
        """The host answered 429: halve the rate, empty the bucket, pause until ``Retry-After`` has passed."""
        self.rate = max(self.floor, self.rate / 2)
        self.tokens = 0.0
        self.updated = max(self.updated, now)
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)


# --- credentials ---------------------------------------------------------------------------------------------------


class Secret(str):
    """A string that never shows itself in a ``repr`` (a header dict, a traceback's locals, a dataclass)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


@dataclass(frozen=True)
class Credential:
    """One registry's credentials: a username and password, or an identity token (an OAuth2 refresh token)."""

    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    identity_token: Secret | None = field(default=None, repr=False)
    source: str = ""  # where it came from, for messages ("~/.docker/config.json", "Secret apps/pull")

    def basic(self) -> Secret:
        """The ``Authorization: Basic`` value."""
        return Secret("Basic " + oci.basic(self.username or "", self.password or ""))

    def secrets(self) -> list[str]:
        """Every value a message must never show: the password, the token, the base64 of user:password."""
        out: list[str] = [s for s in (self.password, self.identity_token) if s]
        if self.password:
            out.append(str(self.basic()).removeprefix("Basic "))
        return out


class Credentials:
    """Where a registry's credentials come from: nothing (anonymous), a docker ``config.json`` (``auths``,
    ``credHelpers``, ``credsStore``, resolved by the ``docker`` package's auth module), or the parsed
    ``.dockerconfigjson`` of an ``imagePullSecrets``-style Secret. ``for_host`` asks once per host."""

    def __init__(self, config: Mapping[str, Any] | None = None, *, path: Path | None = None, source: str = "") -> None:
        self._config = None if config is None else _with_auth(config)
        self._path = path
        self._source = source or (str(path) if path else "docker config")
        self._use = config is not None or path is not None
        self._loaded: Any = None
        self._hosts: dict[str, Credential | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def anonymous(cls) -> Credentials:
        return cls()

    @classmethod
    def docker_config(cls, path: Path | None = None) -> Credentials:
        """A docker ``config.json``: ``path``, else ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
        if path is None:
            base = os.environ.get("DOCKER_CONFIG")
            path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
        return cls(path=path)

    @classmethod
    def dockerconfigjson(cls, data: Mapping[str, Any], source: str = "imagePullSecret") -> Credentials:
        """The parsed ``.dockerconfigjson`` of an ``imagePullSecrets``-style Secret (``source`` names it)."""
        return cls(data, source=source)

    def __repr__(self) -> str:
        return f"Credentials({self._source if self._use else 'anonymous'})"

    def for_host(self, host: str) -> Credential | None:
        """The credential for registry ``host`` (``docker.io`` for Docker Hub), or ``None``."""
        if not self._use:
            return None
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = self._resolve(host)
            return self._hosts[host]

    def _resolve(self, host: str) -> Credential | None:
        from docker import auth, errors  # imported only when credentials are configured (~100 ms)

        where = f"{self._source}: credentials for {host}"
        with warnings.catch_warnings(record=True) as said:  # docker warns of a helper not on PATH: we say it once
            warnings.simplefilter("always")
            try:
                if self._loaded is None:
                    if self._path is not None and not self._path.is_file():
                        return None
                    self._loaded = auth.load_config(
                        config_path=str(self._path) if self._path else None, config_dict=self._config
                    )
                found = auth.resolve_authconfig(self._loaded, host)
            except errors.DockerException as e:
                # The credential helper's own message may quote what it read: only its type, and docker's warning.
                missing = "; ".join(str(w.message) for w in said if "not installed" in str(w.message))
                raise ImageError(
                    f"the credentials could not be read ({missing or type(e).__name__}); check the config's "
                    "credsStore/credHelpers helper is installed and logged in",
                    where=where,
                ) from None
            except (ValueError, TypeError, KeyError, UnicodeDecodeError):
                raise ImageError(
                    "an entry is not valid: `auth` must be the base64 of username:password", where=where
                ) from None
        if not found:
            return None
        get = lambda *keys: next((found[k] for k in keys if found.get(k)), None)  # noqa: E731
        token = get("IdentityToken", "identitytoken")
        password = get("password", "Password")
        return Credential(
            username=get("username", "Username"),
            password=Secret(password) if password else None,
            identity_token=Secret(token) if token else None,
            source=self._source,
        )


def _with_auth(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a docker config (docker's loader pops from it) whose ``auths`` entries written as ``username`` and
    ``password`` (as Kubernetes accepts them) carry the ``auth`` docker's loader reads."""
    out = json.loads(json.dumps(config))
    for entry in (out.get("auths") or {}).values() if isinstance(out, dict) else ():
        if isinstance(entry, dict) and "auth" not in entry and entry.get("username") and entry.get("password"):
            entry["auth"] = oci.basic(entry["username"], entry["password"])
    return out  # type: ignore[no-any-return]


# --- what flows ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tags:
    """A repository's tags as the registry listed them (its order, at most the budget)."""

    repository: ImageRef
    tags: tuple[str, ...]
    from_cache: bool = False  # served from the state dir (unchanged, or within the TTL): no list was transferred
    truncated: bool = False  # the budget (max_tags) or a refused link stopped the listing early
    pages: int = 0  # list pages fetched in this run (0 from the cache)
    warnings: tuple[str, ...] = ()


class Failure(StrEnum):
    """Why a registry request failed (the caller decides: a stale image, a wrong credential, a typo)."""

    UNREACHABLE = "unreachable"  # no connection, a timeout, a TLS failure: images are stale, git still applies
    UNAUTHORIZED = "unauthorized"  # 401: no credentials, or wrong ones
    DENIED = "denied"  # 403
    NOT_FOUND = "not found"  # 404: no such repository or tag
    RATE_LIMITED = "rate limited"  # 429 after the bounded retries
    PROTOCOL = "protocol"  # an answer that is not what the API promises


class RegistryError(ImageError):
    """A registry request failed; ``where`` is ``host/repository``, the reason names the HTTP status and what to do."""

    def __init__(self, reason: str, *, where: str, failure: Failure, status: int | None = None) -> None:
        super().__init__(reason, where=where)
        self.failure = failure
        self.status = status


# --- the client ----------------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    url: str


@dataclass
class _Token:
    value: Secret = field(repr=False)
    expires: float


class Registry:
    """A client for the registries of one run: tags, digests, and a parallel scan; thread-safe.

    ``state_dir``: where tag lists are cached (``registry/tags/``); ``None`` caches nothing. ``max_tags``: a
    repository's budget (its list is cut there and says so). ``page_size``: the ``n=`` asked per page. ``cache_ttl``:
    how long a list without an ``ETag`` is served from the cache. ``rate``/``burst``: requests per second per host.
    ``retries``: 429 answers waited out per request, each at most ``max_wait`` s. ``insecure``: hosts reached over
    plain HTTP (loopback hosts always are).
    """

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        state_dir: Path | None = None,
        max_tags: int = 10_000,
        page_size: int = 1000,
        cache_ttl: float = 300.0,
        rate: float = 50.0,
        burst: float = 100.0,
        retries: int = 4,
        max_wait: float = 60.0,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        workers: int = 8,
        insecure: Iterable[str] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import urllib3  # loaded by the first registry of a run, not at startup

        self.credentials = credentials or Credentials.anonymous()
        self.cache = state_dir / "registry" / "tags" if state_dir else None
        self.max_tags, self.page_size, self.cache_ttl = max_tags, page_size, cache_ttl
        self.retries, self.max_wait, self.workers = retries, max_wait, workers
        self.insecure = frozenset(insecure)
        self._rate, self._burst, self._sleep = rate, burst, sleep
        self._http = urllib3.PoolManager(
            num_pools=32,
            maxsize=workers,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            headers={"User-Agent": USER_AGENT},
        )
        self._lock = threading.Lock()
        self._limits: dict[str, RateLimit] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._basic: set[str] = set()  # hosts that asked for basic auth
        self._down: dict[str, str] = {}  # host -> why it could not be reached (asked once per run)
        self.requests: Counter[str] = Counter()  # "GET registry", "HEAD registry", "GET token" …

    def __repr__(self) -> str:
        return f"Registry(credentials={self.credentials!r}, cache={self.cache})"

    def rate(self, host: str) -> float:
        """The current rate limit of ``host`` in requests per second (it halves on every 429)."""
        with self._lock:
            limit = self._limits.get(host)
            return limit.rate if limit else self._rate

    def close(self) -> None:
        self._http.clear()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the public calls ------------------------------------------------------------------------------------------

    def tags(self, repository: str | ImageRef) -> Tags:
        """The repository's tags (``GET /v2/<name>/tags/list``, every page on the same origin, within ``max_tags``);
        served from the cache when it still holds (an ETag the registry confirms, else within ``cache_ttl``)."""
        ref = _ref(repository)
        cached = self._cached(ref)
        if cached is not None and not cached.get("etag") and time.time() - cached["fetched"] < self.cache_ttl:
            return self._from_cache(ref, cached)
        url: str | None = f"{self._base(ref)}/tags/list?{urlencode({'n': self.page_size})}"
        tags: list[str] = []
        seen: set[str] = set()
        warnings: list[str] = []
        pages, etag = 0, None
        while url is not None:
            headers = {"Accept": "application/json"}
            if pages == 0 and cached is not None and cached.get("etag"):
                headers["If-None-Match"] = cached["etag"]
                answer = self._call("GET", url, ref, headers)
                if answer.status == 304:
                    self._store(ref, {**cached, "fetched": time.time()})
                    return self._from_cache(ref, cached)
            else:
                answer = self._call("GET", url, ref, headers)
            tags += self._page(ref, answer)
            pages += 1
            etag = answer.headers.get("ETag") if pages == 1 else None
            seen.add(url)
            url, warning = self._following(ref, url, answer, seen, len(tags))
            warnings += [warning] if warning else []
        truncated = bool(warnings)
        del tags[self.max_tags :]
        entry = {"repository": ref.name, "tags": tags, "truncated": truncated, "max_tags": self.max_tags,
                 "etag": etag if pages == 1 else None, "fetched": time.time()}  # fmt: skip
        self._store(ref, entry)
        return Tags(ref, tuple(tags), truncated=truncated, pages=pages, warnings=tuple(warnings))

    def _page(self, ref: ImageRef, answer: _Answer) -> list[str]:
        """The tags of one page (``{"name": …, "tags": [...]}``)."""
        self._check(answer, ref, "list its tags")
        try:
            listed = json.loads(answer.body).get("tags") or []
            if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
                raise TypeError
        except (ValueError, TypeError, AttributeError):
            why, todo = 'the tag list is not {"tags": [...]} JSON', "check the repository is a container registry's"
            raise self._error(ref, answer, Failure.PROTOCOL, why, todo) from None
        return listed

    def _following(
        self, ref: ImageRef, url: str, answer: _Answer, seen: set[str], count: int
    ) -> tuple[str | None, str]:
        """The next page's URL (``None`` at the end) and, when the listing stops early, the warning that says why."""
        following = oci.next_link(answer.headers.get("Link"), url)
        if count >= self.max_tags:
            if count > self.max_tags or following is not None:
                return None, (f"{ref.name}: stopped at the budget of {self.max_tags} tags (max_tags); later tags are "
                              "missing: raise the budget or narrow the repository")  # fmt: skip
            return None, ""
        if following is not None and not oci.same_origin(following, url):
            return None, (f"{ref.name}: the registry's next page is on another host ({_origin(following)}); not "
                          f"followed, the list stops at {count} tags")  # fmt: skip
        if following is not None and following in seen:
            return None, f"{ref.name}: the registry's next page repeats an earlier one; the list stops at {count} tags"
        return following, ""

    def digest(self, repository: str | ImageRef, tag: str) -> str:
        """The digest of ``repository:tag``'s manifest (or index), from a ``HEAD``'s ``Docker-Content-Digest``."""
        ref = _ref(repository)
        if not _TAG.fullmatch(tag) and not _DIGEST.fullmatch(tag):
            raise ImageError(f"{tag!r} is not a tag", where=ref.name)
        url = f"{self._base(ref)}/manifests/{tag}"
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        answer = self._call("HEAD", url, ref, headers)
        self._check(answer, ref, f"read the manifest of tag {tag}")
        found = answer.headers.get("Docker-Content-Digest", "")
        if not found:  # a registry that omits it on HEAD: the digest of the manifest's bytes
            answer = self._call("GET", url, ref, headers)
            self._check(answer, ref, f"read the manifest of tag {tag}")
            found = answer.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(answer.body).hexdigest()
        if not _DIGEST.fullmatch(found):
            raise self._error(
                ref,
                answer,
                Failure.PROTOCOL,
                f"Docker-Content-Digest {found[:80]!r} is not a digest",
                "check the registry",
            )
        return found

    def scan(self, repositories: Iterable[str | ImageRef]) -> dict[ImageRef, Tags | RegistryError]:
        """``tags`` of each repository, ``workers`` at a time; a failure is that repository's value, never raised."""
        return dict(self.scan_each(repositories))

    def scan_each(self, repositories: Iterable[str | ImageRef]) -> Iterator[tuple[ImageRef, Tags | RegistryError]]:
        """``scan``, each repository yielded as soon as its list arrives (so the caller can choose while the rest
        are fetched)."""
        refs = list(dict.fromkeys(_ref(r) for r in repositories))
        if not refs:
            return
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(refs))))
        try:
            futures = {pool.submit(self._tags_or_error, ref): ref for ref in refs}
            for done in as_completed(futures):
                yield futures[done], done.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _tags_or_error(self, ref: ImageRef) -> Tags | RegistryError:
        try:
            return self.tags(ref)
        except RegistryError as e:
            return e

    # -- the cache ---------------------------------------------------------------------------------------------------

    def _cache_file(self, ref: ImageRef) -> Path | None:
        if self.cache is None:
            return None
        return self.cache / f"{hashlib.sha256(ref.name.encode()).hexdigest()[:32]}.json"

    def _cached(self, ref: ImageRef) -> dict[str, Any] | None:
        path = self._cache_file(ref)
        if path is None:
            return None
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # none yet, or unreadable: the registry answers instead
        ok = (
            isinstance(entry, dict)
            and entry.get("repository") == ref.name
            and entry.get("max_tags") == self.max_tags
            and isinstance(entry.get("tags"), list)
            and isinstance(entry.get("fetched"), int | float)
        )
        return entry if ok else None

    def _from_cache(self, ref: ImageRef, entry: Mapping[str, Any]) -> Tags:
        return Tags(ref, tuple(entry["tags"]), from_cache=True, truncated=bool(entry.get("truncated")))

    def _store(self, ref: ImageRef, entry: Mapping[str, Any]) -> None:
        path = self._cache_file(ref)
        if path is None:
            return
        with contextlib.suppress(OSError):  # a cache that cannot be written costs a request next run, nothing more
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(entry))
            tmp.replace(path)

    # -- requests ----------------------------------------------------------------------------------------------------

    def _base(self, ref: ImageRef) -> str:
        host = ref.api_host
        scheme = "http" if host in self.insecure or ref.registry in self.insecure or is_loopback(host) else "https"
        return f"{scheme}://{host}/v2/{ref.repository}"

    def _call(self, method: str, url: str, ref: ImageRef, headers: Mapping[str, str]) -> _Answer:
        """One API request with authentication (answering the challenge once) and 429s waited out."""
        host = ref.api_host
        scope = oci.pull_scope(ref.repository)
        answer = self._send(method, url, ref, {**headers, **self._authorization(ref, scope)})
        if answer.status == 401:
            challenges = oci.parse_challenges(answer.headers.get("WWW-Authenticate", ""))
            auth = self._answer(ref, scope, challenges)
            if auth:
                answer = self._send(method, url, ref, {**headers, **auth})
        if answer.status == 401:
            with self._lock:
                self._tokens.pop((host, scope), None)
        return answer

    def _authorization(self, ref: ImageRef, scope: str) -> dict[str, str]:
        """The Authorization header a host is known to want (a cached token, or basic), before any challenge."""
        host = ref.api_host
        with self._lock:
            token = self._tokens.get((host, scope))
            if token is not None and token.expires > time.monotonic():
                return {"Authorization": Secret(f"Bearer {token.value}")}
            basic = host in self._basic
        credential = self.credentials.for_host(ref.registry) if basic else None
        return {"Authorization": credential.basic()} if credential and credential.password else {}

    def _answer(self, ref: ImageRef, scope: str, challenges: list[oci.Challenge]) -> dict[str, str]:
        """The Authorization header that answers the registry's challenge ({} when we have nothing to offer)."""
        credential = self.credentials.for_host(ref.registry)
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                token = self._token(ref, scope, challenge, credential)
                return {"Authorization": Secret(f"Bearer {token}")}
            if challenge.scheme == "basic" and credential is not None and credential.password:
                with self._lock:
                    self._basic.add(ref.api_host)
                return {"Authorization": credential.basic()}
        return {}

    def _token(self, ref: ImageRef, scope: str, challenge: oci.Challenge, credential: Credential | None) -> Secret:
        """A Bearer token for ``scope`` from the challenge's realm (with the credential, if any), cached for the run."""
        host = ref.api_host
        realm = challenge.params["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(
                f"the token realm {realm[:100]!r} is not an http(s) URL", where=ref.name, failure=Failure.PROTOCOL
            )
        # Credentials go to a realm over HTTPS, or to this machine: never in clear text across a network.
        send = credential if credential and (realm.startswith("https:") or is_loopback(_netloc(realm))) else None
        query = oci.token_query(challenge.params.get("service"), scope)
        headers: dict[str, str] = {"Accept": "application/json"}
        method, body = "GET", None
        if send is not None and send.identity_token:
            method = "POST"
            form = {
                "grant_type": "refresh_token",
                "refresh_token": send.identity_token,
                "client_id": "gitops-job",
                **query,
            }
            body = Secret(urlencode(form))
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            url = realm
        else:
            if send is not None and send.password:
                headers["Authorization"] = send.basic()
                query["account"] = send.username or ""
            url = oci.token_url(realm, query)
        answer = self._send(method, url, ref, headers, body=body, counted="token")
        if answer.status in (401, 403):
            who = f"user {send.username!r} from {send.source}" if send else "anonymous access"
            todo = (
                "check the username and password (or token) for this registry"
                if send
                else f"add credentials for {ref.registry} (a docker config.json or an imagePullSecret)"
            )
            raise RegistryError(
                f"the registry's token service ({_origin(realm)}) refused {who} for {scope}: HTTP {answer.status} "
                f"{answer.reason}{_detail(answer)}; {todo}",
                where=ref.name,
                failure=Failure.UNAUTHORIZED,
                status=answer.status,
            )
        self._check(answer, ref, "get a token")
        try:
            value, expires_in = oci.token_of(answer.body)
        except ValueError:
            raise RegistryError(
                f"the token service ({_origin(realm)}) answered without a token",
                where=ref.name,
                failure=Failure.PROTOCOL,
            ) from None
        token = Secret(value)
        with self._lock:
            self._tokens[host, scope] = _Token(token, time.monotonic() + max(expires_in - 10, 1))
        return token

    def _send(
        self,
        method: str,
        url: str,
        ref: ImageRef,
        headers: Mapping[str, str],
        *,
        body: str | None = None,
        counted: str = "registry",
    ) -> _Answer:
        """One HTTP exchange under the host's rate limit, 429s (and 503s with Retry-After) waited out a bounded number
        of times; a host that cannot be reached fails at once, and every later request to it too."""
        import urllib3

        host = _netloc(url)
        for attempt in range(self.retries + 1):
            with self._lock:
                if host in self._down:
                    raise RegistryError(self._down[host], where=ref.name, failure=Failure.UNREACHABLE)
                limit = self._limits.setdefault(host, RateLimit(self._rate, self._burst))
                wait = limit.take(time.monotonic())
                self.requests[f"{method} {counted}"] += 1
            if wait > 0:
                self._sleep(wait)
            try:
                response = self._http.request(
                    method, url, headers=dict(headers), body=body, redirect=False, preload_content=False
                )
                data = response.read(MAX_BODY + 1)
                if len(data) > MAX_BODY:
                    response.close()  # not read to its end: the connection is not reused
                    raise RegistryError(f"{_origin(url)} answered more than {MAX_BODY >> 20} MiB; refused",
                                        where=ref.name, failure=Failure.PROTOCOL, status=response.status)  # fmt: skip
                response.release_conn()
            except urllib3.exceptions.HTTPError as e:
                why = f"cannot reach {_origin(url)}: {_reason(e)}; the images of its repositories are stale this run"
                with self._lock:
                    self._down.setdefault(host, why)
                raise RegistryError(why, where=ref.name, failure=Failure.UNREACHABLE) from None
            answer = _Answer(response.status, response.reason or "", response.headers, data, url)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            if response.status == 429 or (response.status == 503 and retry_after is not None):
                with self._lock:
                    self._limits[host].throttled(time.monotonic(), retry_after)
                if attempt == self.retries or (retry_after or 0) > self.max_wait:
                    return answer
                if retry_after is None:
                    self._sleep(min(self.max_wait, 2.0**attempt))  # no Retry-After: back off 1, 2, 4… s
                continue
            return answer
        return answer

    # -- errors --------------------------------------------------------------------------------------------------

    def _check(self, answer: _Answer, ref: ImageRef, doing: str) -> None:
        """Raise the typed error for an answer that is not 2xx."""
        if 200 <= answer.status < 300:
            return
        credential = self.credentials.for_host(ref.registry)
        failure, todo = {
            401: (
                Failure.UNAUTHORIZED,
                f"it refused user {credential.username!r} from {credential.source}: check the username and password "
                f"for {ref.registry}"
                if credential
                else f"add credentials for {ref.registry} (a docker config.json or an imagePullSecret)",
            ),
            403: (Failure.DENIED, "the credentials are valid but may not pull this repository: check its permissions"),
            404: (Failure.NOT_FOUND, "check the repository name (and tag) are spelled as the registry has them"),
            429: (
                Failure.RATE_LIMITED,
                f"the registry still refused after {self.retries} waits: lower the scan rate, or authenticate to "
                "get a higher limit",
            ),
        }.get(answer.status, (Failure.PROTOCOL, "check the registry is up and speaks the OCI Distribution API"))
        raise self._error(ref, answer, failure, f"could not {doing}", todo)

    def _error(self, ref: ImageRef, answer: _Answer, failure: Failure, what: str, todo: str) -> RegistryError:
        retry = answer.headers.get("Retry-After")
        waited = f" (Retry-After: {retry[:40]})" if retry and answer.status == 429 else ""
        return RegistryError(
            f"{what}: {ref.api_host} answered HTTP {answer.status} {answer.reason}{waited}{_detail(answer)}; {todo}",
            where=ref.name,
            failure=failure,
            status=answer.status,
        )


def _netloc(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2]


def _origin(url: str) -> str:
    """Scheme and host (with port) of a URL: never its path, query or userinfo."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{_netloc(url)}"


def _detail(answer: _Answer) -> str:
    """The registry's own error codes and messages (``{"errors": [{code, message}]}``), short and printable."""
    try:
        errors = json.loads(answer.body).get("errors") or []
        said = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors[:3])
    except (ValueError, AttributeError, TypeError):
        return ""
    said = said[:200]
    return f" ({printable(said, one_line=True)})" if said else ""


def _reason(e: Exception) -> str:
    text = str(e).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "resolution" in text or "nodename" in text:
        return "unknown host"
    if "timed out" in text or "timeout" in type(e).__name__.lower():
        return "timed out"
    if "ssl" in text or "certificate" in text:
        return "TLS failed (certificate?)"
    return type(e).__name__
