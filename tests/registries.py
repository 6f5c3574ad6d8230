"""Real container registries for the tests: Debian's ``docker-registry`` (distribution 2.8) on a loopback port with a
generated config.yml and a temp storage dir, with no auth, htpasswd auth (a bcrypt line made by Apache's
``htpasswd``) or token auth (a small token server here that signs RS256 JWTs with a generated key whose certificate
is the registry's ``rootcertbundle``); images pushed through the registry's HTTP API (blob upload, manifest PUT);
and ``Front``, a counting HTTP front end for a registry that can page tag lists the way the OCI Distribution spec
describes (``n``, ``last``, ``Link: <…>; rel="next"``: distribution 2.8 ignores ``n``), give an ``ETag``, answer 429
with ``Retry-After``, or point its ``Link`` at another host.

Fixtures (registered in conftest.py): ``registry`` (no auth), ``registry_htpasswd``, ``registry_token``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import gzip
import hashlib
import http.client
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.serving import child, free_port, http_thread

DOCKER_REGISTRY = "/usr/bin/docker-registry"  # Debian's docker-registry (tools/system-tools)
HTPASSWD = "/usr/bin/htpasswd"  # apache2-utils (tools/system-tools): the registry wants bcrypt lines
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SERVICE, ISSUER = "test-registry", "test-token-issuer"


@dataclass
class RegistryServer:
    """A running docker-registry: ``host`` (``127.0.0.1:PORT``), its users (name → password), its token server."""

    host: str
    root: Path
    users: dict[str, str] = field(default_factory=dict)
    tokens: TokenServer | None = None
    pushers: list[Pusher] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def pusher(self, user: str | None = None) -> Pusher:
        """A pusher authenticated as ``user`` (the first user when the registry has any)."""
        user = user or next(iter(self.users), None)
        pusher = Pusher(self, user, self.users.get(user) if user else None)
        self.pushers.append(pusher)
        return pusher


@contextlib.contextmanager
def docker_registry(
    tmp: Path, auth: str | None = None, users: Mapping[str, str] | None = None
) -> Iterator[RegistryServer]:
    """docker-registry on a free loopback port, storage under ``tmp``; ``auth`` is None, "htpasswd" or "token"."""
    binary = shutil.which("docker-registry") or DOCKER_REGISTRY
    if not Path(binary).exists():
        pytest.fail("docker-registry is not installed: run tools/system-tools (apt-get install it)")
    tmp.mkdir(parents=True, exist_ok=True)
    users = dict(users or ({"alice": "s3cret-Pa55word"} if auth else {}))
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-http-secret"},
    }
    tokens: TokenServer | None = None
    stack = contextlib.ExitStack()
    if auth == "htpasswd":
        lines = [
            subprocess.run([HTPASSWD, "-nbB", "-C", "4", name, password], check=True, capture_output=True, text=True)
            .stdout.strip() for name, password in users.items()
        ]  # fmt: skip
        (tmp / "htpasswd").write_text("\n".join(lines) + "\n")
        config["auth"] = {"htpasswd": {"realm": "test-registry", "path": str(tmp / "htpasswd")}}
    elif auth == "token":
        tokens = stack.enter_context(token_server(tmp, users))
        config["auth"] = {"token": {"realm": tokens.realm, "service": SERVICE, "issuer": ISSUER,
                                    "rootcertbundle": str(tokens.certificate)}}  # fmt: skip
    elif auth is not None:
        raise ValueError(auth)
    (tmp / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    with child([binary, "serve", str(tmp / "config.yml")], port, tmp / "registry.log", "docker-registry"):
        server = RegistryServer(f"127.0.0.1:{port}", tmp, users, tokens)
        with stack:
            try:
                yield server
            finally:
                for pusher in server.pushers:
                    pusher.close()


# --- the token server ------------------------------------------------------------------------------------------


@dataclass
class TokenServer:
    """Docker's token protocol (``GET /token?service=&scope=&account=``, basic auth for a user; or the OAuth2 POST
    with ``grant_type=refresh_token``, whose refresh token for a user is ``refresh-<password>``): anonymous callers
    may pull repositories under ``public/``; a user may pull and push everything. ``issued`` logs (account, scope)."""

    realm: str
    certificate: Path
    issued: list[tuple[str | None, str]] = field(default_factory=list)
    refused: list[str | None] = field(default_factory=list)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@contextlib.contextmanager
def token_server(tmp: Path, users: Mapping[str, str]) -> Iterator[TokenServer]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp / "token.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    def sign(claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signing}.{_b64(key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256()))}"

    state = TokenServer(realm="", certificate=tmp / "token.crt")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            account = None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if users.get(user) != password:
                    with lock:
                        state.refused.append(user)
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "wrong username or password"}]})
                    return
                account = user
            self._grant(account, query.get("scope", []), query.get("service", [""])[0])

        def do_POST(self) -> None:
            """The OAuth2 form (``grant_type=refresh_token``) that clients with an identity token use."""
            form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
            user = next((u for u, p in users.items() if form.get("refresh_token") == [f"refresh-{p}"]), None)
            if form.get("grant_type") != ["refresh_token"] or user is None:
                with lock:
                    state.refused.append(None)
                self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid refresh token"}]})
                return
            self._grant(user, form.get("scope", []), form.get("service", [""])[0], key="access_token")

        def _grant(self, account: str | None, scopes: list[str], service: str, key: str = "token") -> None:
            access = []
            for scope in scopes:
                kind, _, rest = scope.partition(":")
                repo, _, actions = rest.rpartition(":")
                wanted = actions.split(",")
                allowed = wanted if account else [a for a in wanted if a == "pull" and repo.startswith("public/")]
                if allowed:
                    access.append({"type": kind, "name": repo, "actions": allowed})
                with lock:
                    state.issued.append((account, scope))
            t = int(time.time())
            jti = hashlib.sha256(f"{t}{time.monotonic()}".encode()).hexdigest()
            claims = {"iss": ISSUER, "sub": account or "", "aud": service, "exp": t + 300, "nbf": t - 10, "iat": t,
                      "jti": jti, "access": access}  # fmt: skip
            self._answer(200, {key: sign(claims), "expires_in": 300})

        def _answer(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_thread(Handler) as port:
        state.realm = f"http://127.0.0.1:{port}/token"
        yield state


# --- pushing images ----------------------------------------------------------------------------------------------


class _Client:
    """One keep-alive connection to a registry, answering its auth challenge (basic, or a token per scope)."""

    def __init__(self, server: RegistryServer, user: str | None, password: str | None) -> None:
        self.server, self.user, self.password = server, user, password
        self.conn = http.client.HTTPConnection(*server.host.split(":"), timeout=30)
        self.tokens: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None,
                scope: str = "") -> http.client.HTTPResponse:  # fmt: skip
        headers = dict(headers or {})
        for _ in range(2):
            auth = self._auth(scope)
            self.conn.request(method, path, body=body or None, headers={**headers, **auth})
            response = self.conn.getresponse()
            response.body = response.read()  # type: ignore[attr-defined]
            if response.status != 401 or not scope or scope in self.tokens:
                return response
            self._login(scope, response.getheader("WWW-Authenticate", ""))
        return response

    def _auth(self, scope: str) -> dict[str, str]:
        if self.server.tokens is not None:
            return {"Authorization": f"Bearer {self.tokens[scope]}"} if scope in self.tokens else {}
        if self.user:
            return {"Authorization": "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()}
        return {}

    def _login(self, scope: str, challenge: str) -> None:
        if self.server.tokens is None:
            return
        query = urlencode({"service": SERVICE, "scope": scope, **({"account": self.user} if self.user else {})})
        auth = ("Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()) if self.user else ""
        parts = urlsplit(self.server.tokens.realm)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        conn.request("GET", f"{parts.path}?{query}", headers={"Authorization": auth} if auth else {})
        self.tokens[scope] = json.loads(conn.getresponse().read())["token"]
        conn.close()


@dataclass
class Pusher:
    """Pushes tiny real OCI images (a config blob, one empty gzip layer, a manifest per tag) through the HTTP API."""

    server: RegistryServer
    user: str | None
    password: str | None = field(repr=False)
    config: bytes = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                                "diff_ids": []}}).encode()  # fmt: skip
    layer: bytes = gzip.compress(b"\0" * 1024, mtime=0)
    _local: threading.local = field(default_factory=threading.local)
    _clients: list[_Client] = field(default_factory=list)

    def _client(self) -> _Client:
        if not hasattr(self._local, "client"):
            self._local.client = _Client(self.server, self.user, self.password)
            self._clients.append(self._local.client)
        return self._local.client

    def close(self) -> None:
        for client in self._clients:
            client.conn.close()

    @staticmethod
    def digest_of(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def manifest(self, tag: str) -> bytes:
        """The manifest pushed for ``tag`` (its annotation makes every tag's digest its own)."""
        return json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.digest_of(self.config),
                       "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": self.digest_of(self.layer), "size": len(self.layer)}],
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }).encode()  # fmt: skip

    def _blob(self, repo: str, data: bytes) -> None:
        c, scope = self._client(), f"repository:{repo}:pull,push"
        digest = self.digest_of(data)
        if c.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope).status == 200:
            return
        started = c.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        assert started.status == 202, (started.status, started.body)  # type: ignore[attr-defined]
        location = urlsplit(started.getheader("Location", ""))
        done = c.request("PUT", f"{location.path}?{location.query}&digest={digest}", data,
                         {"Content-Type": "application/octet-stream"}, scope=scope)  # fmt: skip
        assert done.status == 201, (done.status, done.body)  # type: ignore[attr-defined]

    def push(self, repo: str, tags: Iterable[str]) -> dict[str, str]:
        """Push ``repo:tag`` for every tag; the digest of each tag's manifest."""
        self._blob(repo, self.config)
        self._blob(repo, self.layer)
        c, scope, out = self._client(), f"repository:{repo}:pull,push", {}
        for tag in tags:
            body = self.manifest(tag)
            put = c.request("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST}, scope=scope)
            assert put.status == 201, (put.status, put.body)  # type: ignore[attr-defined]
            assert put.getheader("Docker-Content-Digest") == self.digest_of(body)
            out[tag] = self.digest_of(body)
        return out

    def push_many(self, repos: Mapping[str, Iterable[str]], workers: int = 8) -> None:
        """Push every repository's tags, ``workers`` connections at once (each repository's tags split among them)."""
        jobs = [(repo, chunk) for repo, tags in repos.items() for chunk in _chunks(list(tags), 100)]
        for repo in repos:  # the blobs once per repository, before its tags arrive from several threads
            self._blob(repo, self.config)
            self._blob(repo, self.layer)
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda job: self._tags_only(*job), jobs):
                pass

    def _tags_only(self, repo: str, tags: list[str]) -> None:
        c, scope = self._client(), f"repository:{repo}:pull,push"
        for tag in tags:
            put = c.request("PUT", f"/v2/{repo}/manifests/{tag}", self.manifest(tag), {"Content-Type": OCI_MANIFEST},
                            scope=scope)  # fmt: skip
            assert put.status == 201, (put.status, put.body)  # type: ignore[attr-defined]


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- the front end: paging, counting, faults ------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request the front end received."""

    method: str
    path: str
    query: Mapping[str, str]
    authorization: bool
    status: int


@dataclass
class Front:
    """A counting HTTP front end for ``upstream`` (``host:port``) on its own loopback port.

    ``page``: answer ``tags/list`` in pages of ``n`` (from the request, else ``page``) after ``last``, with a ``Link``
    to the next page (distribution 2.8 ignores ``n``: this is the spec's pagination over its full, sorted list).
    ``etag``: give tag lists an ``ETag`` and answer ``If-None-Match`` with 304. ``foreign_link``: the next page's
    link names this origin instead. ``hook``: ``hook(method, path, query) -> (status, headers, body) | None`` answers
    in place of the registry (a 429, say)."""

    upstream: str
    page: int | None = None
    etag: bool = False
    foreign_link: str | None = None
    hook: Callable[[str, str, Mapping[str, str]], tuple[int, dict[str, str], bytes] | None] | None = None
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def count(self, method: str = "GET", contains: str = "") -> int:
        return sum(1 for s in self.seen if s.method == method and contains in s.path)


@contextlib.contextmanager
def front(upstream: str, **options: Any) -> Iterator[Front]:
    state = Front(upstream, **options)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            answer = state.hook(self.command, parts.path, query) if state.hook else None
            if answer is None:
                answer = self._upstream(parts.path, query)
            status, headers, body = answer
            with lock:
                state.seen.append(Seen(self.command, parts.path, query, "Authorization" in self.headers, status))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _upstream(self, path: str, query: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
            paging = path.endswith("/tags/list") and (state.page is not None or state.etag)
            target = path if paging else self.path
            conn = http.client.HTTPConnection(*state.upstream.split(":"), timeout=30)
            drop = {"host", "connection", "content-length"}
            conn.request(self.command, target, headers={k: v for k, v in self.headers.items() if k.lower() not in drop})
            response = conn.getresponse()
            body = response.read()
            conn.close()
            keep = {"content-type", "docker-content-digest", "www-authenticate", "docker-distribution-api-version",
                    "etag", "retry-after", "link"}  # fmt: skip
            headers = {k: v for k, v in response.getheaders() if k.lower() in keep}
            if not paging or response.status != 200:
                return response.status, headers, body
            doc = json.loads(body)
            tags = sorted(doc.get("tags") or [])
            if state.page is not None or "n" in query:
                n = int(query.get("n") or state.page or len(tags))
                n = min(n, state.page or n)
                after = [t for t in tags if t > query["last"]] if "last" in query else tags
                tags, rest = after[:n], after[n:]
                if rest:
                    origin = state.foreign_link or ""
                    headers["Link"] = f'<{origin}{path}?{urlencode({"n": n, "last": tags[-1]})}>; rel="next"'
            body = json.dumps({"name": doc["name"], "tags": tags}).encode()
            if state.etag:
                tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                headers["ETag"] = tag
                if self.headers.get("If-None-Match") == tag:
                    return 304, {"ETag": tag}, b""
            return 200, headers, body

    with http_thread(Handler) as state.port:
        yield state


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """docker-registry with no auth, the test's own, on a loopback port."""
    with docker_registry(tmp_path / "registry") as server:
        yield server


@pytest.fixture
def registry_htpasswd(tmp_path: Path) -> Iterator[RegistryServer]:
    """docker-registry with htpasswd (basic) auth; ``.users`` holds the one user and password."""
    with docker_registry(tmp_path / "registry-htpasswd", auth="htpasswd") as server:
        yield server


@pytest.fixture
def registry_token(tmp_path: Path) -> Iterator[RegistryServer]:
    """docker-registry with token auth: anonymous pulls of ``public/*``, the user pulls and pushes everything."""
    with docker_registry(tmp_path / "registry-token", auth="token") as server:
        yield server
