"""The only client of Helm chart repositories: HTTP repositories (``index.yaml`` and the ``.tgz`` it lists) and OCI
registries (the Distribution API: tag list, manifest, blob). Every request's host — each redirect's and each token
realm's too — must pass the caller's allow-list before anything is sent; credentials go only to the host they were
given for, never on a redirect to another; bodies are capped; errors name the URL without credentials.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from gitops_job import oci
from gitops_job.errors import RenderError

if TYPE_CHECKING:
    import urllib3

MAX_BODY = 64 * 2**20  # bytes of one index, manifest or chart archive
TIMEOUT = 30.0  # seconds per request
MAX_REDIRECTS = 5


def shown(url: str) -> str:
    """``url`` without user information or query (what messages may print)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class Basic:
    """Basic-auth credentials for the URLs under ``prefix``."""

    prefix: str
    username: str
    password: str = field(repr=False)

    def header(self) -> str:
        return "Basic " + oci.basic(self.username, self.password)


@dataclass
class Client:
    """One run's chart fetches. ``allowed`` says whether a URL's host may be contacted; ``auth`` gives the
    credentials for a URL, if any."""

    allowed: Callable[[str], bool]
    auth: Callable[[str], Basic | None] = lambda _url: None
    timeout: float = TIMEOUT
    _pool: urllib3.PoolManager | None = None
    _tokens: dict[str, str] = field(default_factory=dict)  # OCI repository → bearer token

    def _http(self) -> urllib3.PoolManager:
        if self._pool is None:
            import urllib3

            self._pool = urllib3.PoolManager(retries=False, timeout=self.timeout)
        return self._pool

    def get(self, url: str, *, headers: Mapping[str, str] | None = None, what: str = "") -> tuple[bytes, Any]:
        """The body and headers of ``GET url`` (following redirects between allowed hosts), or a RenderError."""
        credential = self.auth(url)
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            if not self.allowed(current):
                host = urlsplit(current).hostname
                raise RenderError(
                    f"{what or 'fetch'} refused: host {host!r} is not in sources.allowHosts of gitops.yaml; add it "
                    "there if this host is trusted (nothing was fetched from it)",
                    where=shown(current),
                )
            here = urlsplit(current)
            sent = dict(headers or {})
            if not oci.same_origin(current, url):
                sent.pop("Authorization", None)  # a token or password is for the origin it was given for, never
                # a redirect's other host (a registry's blob store, a CDN), as Docker and Helm drop it too
            elif credential is not None:
                sent.setdefault("Authorization", credential.header())
            response = self._request(current, sent, what)
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                current = urljoin(current, response.headers["Location"])
                _discard(response)
                continue
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.status == 401 and challenge.lower().startswith("bearer") and "/v2/" in here.path:
                _discard(response)  # a registry's challenge: the caller answers it (_oci_get)
                raise _Unauthorized(challenge)
            return self._body(response, current, what), response.headers
        raise RenderError(f"{what or 'fetch'}: more than {MAX_REDIRECTS} redirects", where=shown(url))

    def _request(self, url: str, headers: Mapping[str, str], what: str) -> Any:
        import urllib3

        try:
            return self._http().request(
                "GET", url, headers=dict(headers), redirect=False, preload_content=False, retries=False
            )
        except urllib3.exceptions.HTTPError as e:
            reason = str(getattr(e, "reason", None) or e).replace(url, shown(url))
            raise RenderError(f"{what or 'fetch'} failed: {reason}", where=shown(url)) from None

    def _body(self, response: Any, url: str, what: str) -> bytes:
        try:
            if response.status != 200:
                response.drain_conn()
                hint = " (check sources.credentials)" if response.status in (401, 403) else ""
                raise RenderError(f"{what or 'fetch'} failed: HTTP {response.status}{hint}", where=shown(url))
            data = response.read(MAX_BODY + 1)
            if len(data) > MAX_BODY:
                raise RenderError(f"{what or 'fetch'}: more than {MAX_BODY // 2**20} MiB; refused", where=shown(url))
            return bytes(data)
        finally:
            response.release_conn()

    # --- OCI (the Distribution API) ---------------------------------------------------------------------------------

    def oci_tags(self, base: str, repository: str) -> list[str]:
        """Every tag of ``repository`` at the registry ``base`` (``https://host``), following ``Link`` pages."""
        tags: list[str] = []
        url: str | None = f"{base}/v2/{repository}/tags/list?n=1000"
        while url:
            body, headers = self._oci_get(base, repository, url, {}, "tag list")
            tags.extend(_json(body, url).get("tags") or [])
            url = oci.next_link(headers.get("Link"), url)
        return tags

    def oci_manifest(self, base: str, repository: str, reference: str) -> dict[str, Any]:
        url = f"{base}/v2/{repository}/manifests/{reference}"
        body, _ = self._oci_get(base, repository, url, {"Accept": ", ".join(oci.IMAGE_MANIFEST_TYPES)}, "manifest")
        return _json(body, url)

    def oci_blob(self, base: str, repository: str, digest: str) -> bytes:
        url = f"{base}/v2/{repository}/blobs/{digest}"
        return self._oci_get(base, repository, url, {}, "chart layer")[0]

    def _oci_get(
        self, base: str, repository: str, url: str, headers: Mapping[str, str], what: str
    ) -> tuple[bytes, Any]:
        """``GET`` on the registry, answering a ``401`` bearer challenge once (the token realm must be allowed too)."""
        sent = dict(headers)
        token = self._tokens.get(repository)
        if token:
            sent["Authorization"] = f"Bearer {token}"
        try:
            return self.get(url, headers=sent, what=what)
        except _Unauthorized as e:
            token = self._token(e.challenge, base, repository)
            self._tokens[repository] = token
            try:
                return self.get(url, headers={**headers, "Authorization": f"Bearer {token}"}, what=what)
            except _Unauthorized:
                reason = f"{what}: the registry refused its own token (check sources.credentials)"
                raise RenderError(reason, where=shown(url)) from None

    def _token(self, challenge: str, base: str, repository: str) -> str:
        bearer = next(
            (c for c in oci.parse_challenges(challenge) if c.scheme == "bearer" and c.params.get("realm")), None
        )
        if bearer is None:
            raise RenderError("registry asked for credentials: give them in sources.credentials", where=shown(base))
        realm = bearer.params["realm"]
        query = oci.token_query(bearer.params.get("service"), bearer.params.get("scope") or oci.pull_scope(repository))
        credential = self.auth(f"oci://{urlsplit(base).netloc}/{repository}")
        sent = {"Authorization": credential.header()} if credential is not None else {}
        body, _ = Client(self.allowed, lambda _u: None, self.timeout, self._pool).get(
            oci.token_url(realm, query), headers=sent, what="registry token"
        )
        try:
            return oci.token_of(body)[0]
        except ValueError:
            raise RenderError("the registry's token service answered no token", where=shown(realm)) from None


def _discard(response: Any) -> None:
    """Read what is left of ``response`` (a few bytes of an error body) so its connection can be used again."""
    response.drain_conn()
    response.release_conn()


class _Unauthorized(Exception):
    def __init__(self, challenge: str) -> None:
        super().__init__(challenge)
        self.challenge = challenge


def _json(body: bytes, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise RenderError("the registry answered something that is not JSON", where=shown(url)) from None
    if not isinstance(doc, dict):
        raise RenderError("the registry answered JSON that is not an object", where=shown(url))
    return doc
