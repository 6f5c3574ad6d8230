"""A local stand-in for api.github.com that holds itself and its clients to GitHub's published contract.

Every request is matched to an operation of GitHub's REST description (``@octokit/openapi``, pinned in
``tools/github_fixtures``) and its path and query parameters and JSON body are validated against it; every response is
validated against the schema of the status code it carries. A failed check is recorded in ``stub.violations`` and
answered with HTTP 500 whose message gives the reason (the ``github`` fixture fails the test at teardown when any
violation was recorded). Objects in responses start from real data — the webhook payloads of
``@octokit/webhooks-examples`` and the description's own examples — with identities and URLs rewritten to this server.

    with GitHubStub() as stub:
        stub.add_pull("octo/app", 7, head_sha="a" * 40)
        GitHub(stub.url, stub.token, "octo/app").upsert_comment(7, "<!-- m -->", "hello")
        assert [r.method for r in stub.requests] == ["GET", "POST"]

Besides the REST operations it answers one GraphQL query, ``query { viewer { login } }`` (how a token learns its own
identity), whose request shape it checks by hand: GraphQL's schema is not part of the REST description.

GitHub's timing is simulated too: ``add_pull(..., index_lag=10)`` keeps a merge commit out of
``GET /commits/{sha}/pulls`` for 10 seconds of ``stub.clock`` (a test may give the stub and the client one fake clock),
and ``slow()`` answers a request only after it took effect and the client's next request arrived (a read timeout).

OpenAPI 3.0 schemas are JSON Schema draft-04 plus a few keywords; ``nullable: true`` is translated to a ``null``
alternative before validation, ``format`` stays an annotation (as jsonschema treats it by default) and the rest of the
OpenAPI-only keywords (``example``, ``readOnly``, ``x-*`` …) are annotations that draft-04 ignores.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tools.github_fixtures import openapi_file, webhook_examples_file

BASE_URI = "urn:github-openapi"
API = "https://api.github.com"
DOCS = "https://docs.github.com/rest"
BOT = "github-actions[bot]"
Json = Any

# --------------------------------------------------------------------------------------------------------------------
# The description: loaded once per process, nullable translated, operations indexed by path template.


def _nullable_to_jsonschema(node: Json) -> Json:
    """OpenAPI 3.0 ``nullable: true`` → a draft-04 ``null`` alternative; example values are left untouched."""
    if isinstance(node, list):
        return [_nullable_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: (v if k in ("example", "examples") else _nullable_to_jsonschema(v)) for k, v in node.items()}
    if out.pop("nullable", False) is not True:
        return out
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [{"type": "null"}, out]}  # nullable beside allOf/oneOf/$ref-only schemas


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query"
    required: bool
    schema: str  # JSON pointer of the parameter's schema in the description


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    literal_segments: int
    params: tuple[Param, ...]
    body_schema: str | None
    body_required: bool
    responses: dict[str, str | None]  # status ("200", "default") -> pointer of the JSON schema, None without content


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class Description:
    """GitHub's REST description with validators for request and response schemas."""

    def __init__(self, doc: dict[str, Json]) -> None:
        comps = doc["components"]
        self.examples: dict[str, Json] = comps["examples"]
        self.schemas: dict[str, Json] = comps["schemas"]
        converted = {
            **doc,
            "paths": _nullable_to_jsonschema(doc["paths"]),
            "components": {
                **comps,
                **{k: _nullable_to_jsonschema(comps[k]) for k in ("schemas", "parameters", "responses")},
            },
        }
        self.doc = converted
        self.registry: Registry[Json] = Registry().with_resource(BASE_URI, DRAFT4.create_resource(converted))
        self.version = doc["info"]["version"]
        self.operations: list[Operation] = []
        for template, item in converted["paths"].items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method in ("parameters", "summary", "description", "servers"):
                    continue
                base = f"/paths/{_escape(template)}/{method}"
                self.operations.append(self._operation(template, method, base, op, shared))

    def _resolve(self, pointer: str, node: Json) -> tuple[str, Json]:
        while isinstance(node, dict) and "$ref" in node:
            pointer = node["$ref"].removeprefix("#")
            node = self.doc
            for part in pointer.strip("/").split("/"):
                key = part.replace("~1", "/").replace("~0", "~")
                node = node[int(key)] if isinstance(node, list) else node[key]
        return pointer, node

    def at(self, pointer: str) -> Json:
        """The node at a JSON pointer of the (translated) description, ``$ref`` followed."""
        return self._resolve("", {"$ref": f"#{pointer}"})[1]

    def _operation(self, template: str, method: str, base: str, op: Json, shared: list[Json]) -> Operation:
        params = []
        multi = set()
        for i, raw in enumerate([*shared, *op.get("parameters", [])]):
            where = (
                f"{base}/parameters/{i - len(shared)}"
                if i >= len(shared)
                else f"/paths/{_escape(template)}/parameters/{i}"
            )
            ptr, p = self._resolve(where, raw)
            if p["in"] in ("path", "query"):
                params.append(Param(p["name"], p["in"], bool(p.get("required")), f"{ptr}/schema"))
            if p.get("x-multi-segment"):
                multi.add(p["name"])
        regex, names = "", []
        for part in re.split(r"(\{[^}]+\})", template):
            if part.startswith("{"):
                name = part[1:-1]
                names.append(name)
                regex += "(.+)" if name in multi else "([^/]+)"
            else:
                regex += re.escape(part)
        body_schema, body_required = None, False
        if "requestBody" in op:
            ptr, rb = self._resolve(f"{base}/requestBody", op["requestBody"])
            if "application/json" in rb.get("content", {}):
                body_schema = f"{ptr}/content/application~1json/schema"
            body_required = bool(rb.get("required"))
        responses: dict[str, str | None] = {}
        for status, raw in op.get("responses", {}).items():
            ptr, resp = self._resolve(f"{base}/responses/{status}", raw)
            has_json = "schema" in resp.get("content", {}).get("application/json", {})
            responses[status] = f"{ptr}/content/application~1json/schema" if has_json else None
        literal = sum(1 for s in template.split("/") if s and not s.startswith("{"))
        return Operation(
            op["operationId"],
            method.upper(),
            template,
            re.compile(regex),
            tuple(names),
            literal,
            tuple(params),
            body_schema,
            body_required,
            responses,
        )

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        found = [
            (op, m) for op in self.operations if op.method == method and (m := op.pattern.fullmatch(path)) is not None
        ]
        if not found:
            return None
        op, m = max(found, key=lambda f: f[0].literal_segments)
        return op, {k: unquote(v) for k, v in zip(op.names, m.groups(), strict=True)}

    @functools.cache  # noqa: B019 (one Description per process)
    def validator(self, pointer: str) -> Draft4Validator:
        return Draft4Validator({"$ref": f"{BASE_URI}#{pointer}"}, registry=self.registry)

    def errors(self, pointer: str, instance: Json) -> str | None:
        """The most relevant reason ``instance`` fails the schema at ``pointer``, or None when it is valid."""
        err = best_match(self.validator(pointer).iter_errors(instance))
        if err is None:
            return None
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        return f"{where}: {err.message[:300]}"

    def example(self, name: str) -> Json:
        return copy.deepcopy(self.examples[name]["value"])

    def properties(self, schema: str) -> set[str]:
        return set(self.schemas[schema]["properties"])


@functools.cache
def description() -> Description:
    """GitHub's REST description, parsed once per process (it is 13 MB)."""
    return Description(json.loads(openapi_file().read_bytes()))


@functools.cache
def _webhook_examples() -> dict[str, list[Json]]:
    return {e["name"]: e["examples"] for e in json.loads(webhook_examples_file().read_bytes())}


def webhook_example(event: str, action: str | None = None, index: int = 0) -> Json:
    """A deep copy of a real webhook payload of ``event`` (and ``action``), e.g. ``("pull_request", "opened")``."""
    found = [p for p in _webhook_examples()[event] if action is None or p.get("action") == action]
    return copy.deepcopy(found[index])


def _coerce(raw: str, schema: Json) -> Json:
    """A query or path string as the value its schema expects (``?page=2`` is the integer 2)."""
    types = schema.get("type")
    kinds = types if isinstance(types, list) else [types]
    if "integer" in kinds and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if "boolean" in kinds and raw in ("true", "false"):
        return raw == "true"
    return raw


def _rewrite(node: Json, replacements: list[tuple[str, str]]) -> Json:
    if isinstance(node, str):
        for old, new in replacements:
            node = node.replace(old, new)
        return node
    if isinstance(node, list):
        return [_rewrite(x, replacements) for x in node]
    if isinstance(node, dict):
        return {k: _rewrite(v, replacements) for k, v in node.items()}
    return node


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------------------------
# The server.


class FakeClock:
    """Time that passes only when someone sleeps: give ``now`` to the stub and to the client, ``sleep`` to the client,
    and a wait of 30 s costs no time at all."""

    def __init__(self) -> None:
        self.t = 1_000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@dataclass(frozen=True)
class Request:
    """One request as the stub received it; ``headers`` has the token replaced by ``<redacted>``."""

    method: str
    path: str
    query: dict[str, str]
    body: Json
    headers: dict[str, str]
    operation: str | None


@dataclass
class Fault:
    status: int
    times: int
    method: str | None
    path: str | None  # a regular expression searched in the request path
    headers: dict[str, str]
    body: Json
    after_serving: bool = False
    hold: bool = False  # serve, then answer only once the next request arrived (the client timed out)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or re.search(self.path, path))


class _Reply(Exception):
    def __init__(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, message: str) -> _Reply:
    return _Reply(status, {"message": message, "documentation_url": DOCS, "status": str(status)})


@dataclass
class _Repo:
    owner: str
    name: str
    data: Json
    pulls: dict[int, Json] = field(default_factory=dict)
    comments: dict[int, list[int]] = field(default_factory=dict)  # issue number -> comment ids, oldest first
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    indexed_at: dict[str, float] = field(default_factory=dict)  # sha -> stub.clock() when commit_pulls lists it
    commits: set[str] = field(default_factory=set)
    statuses: list[Json] = field(default_factory=list)
    issues: dict[int, Json] = field(default_factory=dict)  # issues that are not pull requests

    def next_number(self) -> int:
        return max([0, *self.pulls, *self.issues]) + 1


class GitHubStub:
    """A threaded HTTP server on 127.0.0.1 (a free port) answering a subset of GitHub's REST API from memory."""

    def __init__(self, token: str = "ghs_stubtoken0123456789") -> None:
        self.token = token
        self.spec = description()
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.comments: dict[int, Json] = {}
        self._repos: dict[str, _Repo] = {}
        self._faults: list[Fault] = []
        self._tamper: list[Callable[[Request, Json], Json]] = []
        self._ids = itertools.count(1_000_001)
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None
        self._arrived = threading.Condition(self._lock)
        self.actor = self._user(BOT, 41898282, "Bot")
        #: Branch name -> head sha, for the pull requests a client opens (``POST /pulls`` names a branch).
        self.branches: dict[str, str] = {}
        #: The stub's notion of time (index lag); a test may share a fake clock with the client's sleep.
        self.clock: Callable[[], float] = time.monotonic

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def __enter__(self) -> GitHubStub:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="githubstub", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- state for tests ----------------------------------------------------------------------------------------------
    def _user(self, login: str, uid: int, kind: str = "User") -> Json:
        user = webhook_example("issue_comment", "created")["comment"]["user"]
        old = user["login"]
        user = _rewrite(user, [(API, self.url), (f"/{old}", f"/{quote(login)}")])
        user.update(login=login, id=uid, node_id=f"U_{uid}", type=kind, site_admin=False)
        return user

    def add_repo(self, full_name: str, *, default_branch: str = "main", private: bool = False) -> Json:
        """A repository, built from the description's ``full-repository`` example."""
        owner, name = full_name.split("/")
        data = self.spec.example("full-repository")
        old = data["full_name"]
        data = _rewrite(data, [(API, self.url), (old, full_name)])
        data.update(name=name, full_name=full_name, default_branch=default_branch, private=private, fork=False)
        data["owner"] = self._user(owner, 1000 + len(self._repos), "Organization")
        data.setdefault("has_discussions", False)  # required by the schema, absent from GitHub's own example
        with self._lock:
            self._repos[full_name] = _Repo(owner, name, data)
        return data

    def repo(self, full_name: str) -> _Repo:
        with self._lock:
            if full_name not in self._repos:
                self.add_repo(full_name)
            return self._repos[full_name]

    def add_pull(
        self,
        full_name: str,
        number: int,
        *,
        head_sha: str,
        merged: bool = False,
        merge_commit_sha: str | None = None,
        head_repo: str | None = None,
        base_ref: str = "main",
        index_lag: float = 0.0,
        user: str | None = None,
    ) -> Json:
        """A pull request built from the real ``pull_request.opened`` webhook payload, adjusted.

        ``head_repo`` puts its head in another repository (a fork); ``index_lag`` keeps the merge commit out of
        ``GET /commits/{sha}/pulls`` for that many seconds of ``clock`` (GitHub fills that index after a merge).
        """
        repo = self.repo(full_name)
        payload = webhook_example("pull_request", "opened")
        pr = payload["pull_request"]
        old_repo, old_num = payload["repository"]["full_name"], pr["number"]
        pr = _rewrite(
            pr,
            [
                (API, self.url),
                (old_repo, full_name),
                (f"/pulls/{old_num}", f"/pulls/{number}"),
                (f"/issues/{old_num}", f"/issues/{number}"),
                (f"/pull/{old_num}", f"/pull/{number}"),
            ],
        )
        pr.update(number=number, id=9_000_000 + number, merged=merged, merge_commit_sha=merge_commit_sha,
                  created_at=_now(), updated_at=_now())  # fmt: skip
        pr.setdefault("auto_merge", None)  # required by the REST schema, absent from webhook payloads
        pr["state"] = "closed" if merged else "open"
        pr["merged_at"] = pr["closed_at"] = _now() if merged else None
        pr["head"]["sha"] = head_sha
        pr["base"]["ref"] = base_ref
        pr["base"]["repo"] = copy.deepcopy(repo.data)
        pr["head"]["repo"] = copy.deepcopy(repo.data)
        if user is not None:
            pr["user"] = self._user(user, 49699333, "Bot" if user.endswith("[bot]") else "User")
        if head_repo is not None:
            fork = copy.deepcopy(repo.data)
            fork.update(full_name=head_repo, name=head_repo.split("/")[1], fork=True)
            fork["owner"] = self._user(head_repo.split("/")[0], 5000 + number)
            pr["head"]["repo"] = fork
            pr["head"]["label"] = f"{head_repo.split('/')[0]}:{pr['head']['ref']}"
        with self._lock:
            repo.pulls[number] = pr
            repo.comments.setdefault(number, [])
            repo.commits.add(head_sha)
            if merge_commit_sha:
                repo.commits.add(merge_commit_sha)
                repo.commit_pulls.setdefault(merge_commit_sha, []).append(number)
                repo.indexed_at[merge_commit_sha] = self.clock() + index_lag
        return pr

    def add_issue(self, full_name: str, title: str, body: str, *, user: str = "octocat", state: str = "open") -> Json:
        """An issue (not a pull request) that exists before the test's client runs."""
        repo = self.repo(full_name)
        author = self.actor if user == BOT else self._user(user, 583231)
        return self._new_issue(repo, title, body, author, state)

    def issues(self, full_name: str, state: str | None = None) -> list[Json]:
        """The repository's issues (not pull requests), oldest first; only those in ``state`` when given."""
        with self._lock:
            found = self.repo(full_name).issues.values()
            return [i for i in found if state is None or i["state"] == state]

    def associate(self, full_name: str, sha: str, numbers: list[int]) -> None:
        """What ``GET /repos/{o}/{r}/commits/{sha}/pulls`` lists for ``sha``."""
        repo = self.repo(full_name)
        with self._lock:
            repo.commits.add(sha)
            repo.commit_pulls[sha] = list(numbers)

    def add_comment(self, full_name: str, number: int, body: str, *, user: str = "octocat") -> Json:
        """A comment that exists before the test's client runs (by someone else unless ``user`` is the bot)."""
        author = self.actor if user == BOT else self._user(user, 583231)
        return self._new_comment(self.repo(full_name), number, body, author)

    def comments_on(self, full_name: str, number: int) -> list[Json]:
        with self._lock:
            return [self.comments[i] for i in self.repo(full_name).comments.get(number, [])]

    def statuses(self, full_name: str, sha: str | None = None) -> list[Json]:
        with self._lock:
            return [s for s in self.repo(full_name).statuses if sha is None or s["_sha"] == sha]

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        after_serving: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``headers``) instead of serving them.

        With ``after_serving`` the request takes effect first and only its answer is lost (a 502 from a proxy after
        GitHub created the comment).
        """
        body = {"message": message or f"stub fault {status}", "documentation_url": DOCS, "status": str(status)}
        with self._lock:
            self._faults.append(Fault(status, times, method, path, dict(headers or {}), body, after_serving))

    def slow(self, *, method: str | None = None, path: str | None = None, times: int = 1) -> None:
        """Serve the next ``times`` matching requests, but answer each only once the client's next request arrived
        (at most 10 s later): the client's read timeout fires first, though GitHub did what was asked."""
        with self._lock:
            self._faults.append(Fault(0, times, method, path, {}, None, after_serving=True, hold=True))

    def tamper(self, fn: Callable[[Request, Json], Json]) -> None:
        """Pass the next successful response body through ``fn`` before it is validated (to prove validation bites)."""
        with self._lock:
            self._tamper.append(fn)

    def sent(self, method: str, pattern: str = "") -> list[Request]:
        """The recorded requests with this method whose path matches the regular expression ``pattern``."""
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # -- request handling ---------------------------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Json]:
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        shown = {
            k: (re.sub(r"^(\S+)\s.*$", r"\1 <redacted>", v) if k.lower() == "authorization" else v)
            for k, v in headers.items()
        }
        body: Json = None
        body_error = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                body_error = f"request body is not JSON: {e}"
        graphql = method == "POST" and path == "/graphql"
        found = None if graphql else self.spec.match(method, path)
        request = Request(method, path, query, body, shown, "graphql" if graphql else found[0].id if found else None)
        with self._lock:
            self.requests.append(request)
            self._arrived.notify_all()
        if graphql:
            return self._graphql(headers, body)
        if found is None:
            return self._violation(f"{method} {path}: no operation in GitHub's REST description matches")
        op, path_params = found
        reason = body_error or self._check_request(op, path_params, query, body, raw)
        if reason:
            return self._violation(f"{op.id} ({method} {path}): request {reason}")
        try:
            fault = self._take_fault(method, path)
            if fault is not None and fault.hold:
                self._authenticate(headers)
                status, out, extra = self._serve(op, path_params, query, body)
                with self._lock:
                    seen = len(self.requests)
                    self._arrived.wait_for(lambda: len(self.requests) > seen, timeout=10)
                raise _Reply(status, _public(out), extra)
            if fault is not None and fault.after_serving:
                self._authenticate(headers)
                self._serve(op, path_params, query, body)
            if fault is not None:
                raise _Reply(fault.status, copy.deepcopy(fault.body), fault.headers)
            self._authenticate(headers)
            status, out, extra = self._serve(op, path_params, query, body)
            out = _public(out)
            with self._lock:
                tamper = self._tamper.pop(0) if self._tamper else None
            if tamper is not None:
                out = tamper(request, out)
        except _Reply as r:
            status, out, extra = r.status, r.body, r.headers
        reason = self._check_response(op, status, out)
        if reason:
            return self._violation(f"{op.id} ({method} {path}): response {status} {reason}")
        return status, extra, out

    def _graphql(self, headers: dict[str, str], body: Json) -> tuple[int, dict[str, str], Json]:
        """``POST /graphql``: only ``query { viewer { login } }`` (the token's own identity) is answered."""
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or set(body) - {"query", "variables"}:
            return self._violation("POST /graphql: the body is not {query, variables}")
        if re.sub(r"\s+", " ", body["query"]).strip() not in ("query { viewer { login } }", "{ viewer { login } }"):
            return self._violation(f"POST /graphql: githubstub answers only the viewer's login, not {body['query']!r}")
        try:
            fault = self._take_fault("POST", "/graphql", named=True)
            if fault is not None:
                raise _Reply(fault.status, copy.deepcopy(fault.body), fault.headers)
            self._authenticate(headers)
        except _Reply as r:
            return r.status, r.headers, r.body
        return 200, {}, {"data": {"viewer": {"login": self.actor["login"]}}}

    def _violation(self, reason: str) -> tuple[int, dict[str, str], Json]:
        with self._lock:
            self.violations.append(reason)
        return 500, {}, {"message": f"githubstub contract violation: {reason}", "documentation_url": DOCS}

    def _check_request(
        self, op: Operation, path_params: dict[str, str], query: dict[str, str], body: Json, raw: bytes
    ) -> str | None:
        known = {p.name for p in op.params}
        for name in query:
            if name not in known:
                return f"query parameter {name!r} is not a parameter of this operation"
        for p in op.params:
            source = path_params if p.where == "path" else query
            if p.name not in source:
                if p.required:
                    return f"{p.where} parameter {p.name!r} is required"
                continue
            err = self.spec.errors(p.schema, _coerce(source[p.name], self.spec.at(p.schema)))
            if err:
                return f"{p.where} parameter {p.name!r}={source[p.name]!r}: {err}"
        if op.body_schema is None:
            return "has a body but the operation takes none" if raw.strip() else None
        if not raw:
            return "body is required" if op.body_required else None
        err = self.spec.errors(op.body_schema, body)
        return f"body: {err}" if err else None

    def _check_response(self, op: Operation, status: int, body: Json) -> str | None:
        key = str(status) if str(status) in op.responses else "default" if "default" in op.responses else None
        if key is None:
            if status < 400:
                return f"status {status} is not a documented response of {op.id}"
            return self.spec.errors("/components/schemas/basic-error", body)  # errors GitHub sends everywhere
        pointer = op.responses[key]
        if pointer is None:
            return None if body is None else "has a body but the documented response has no content"
        return self.spec.errors(pointer, body)

    def _take_fault(self, method: str, path: str, *, named: bool = False) -> Fault | None:
        """The first fault for this request (with ``named``, only one whose ``path`` names it)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path) and (fault.path is not None or not named):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _authenticate(self, headers: dict[str, str]) -> None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() not in ("bearer", "token") or token.strip() != self.token:
            raise _error(401, "Bad credentials")

    def _find_repo(self, p: dict[str, str]) -> _Repo:
        repo = self._repos.get(f"{p['owner']}/{p['repo']}")
        if repo is None:
            raise _error(404, "Not Found")
        return repo

    def _serve(
        self, op: Operation, p: dict[str, str], query: dict[str, str], body: Json
    ) -> tuple[int, Json, dict[str, str]]:
        with self._lock:
            repo = self._find_repo(p)
            if op.id == "repos/get":
                return 200, repo.data, {}
            if op.id == "pulls/get":
                return 200, self._pull(repo, int(p["pull_number"])), {}
            if op.id == "issues/get":
                number = int(p["issue_number"])
                return 200, repo.issues.get(number) or self._issue(repo, self._pull(repo, number)), {}
            if op.id == "issues/list-for-repo":
                return self._list_issues(repo, p, query)
            if op.id == "issues/create":
                issue = self._new_issue(repo, body["title"], body.get("body") or "", self.actor, "open")
                return 201, issue, {"Location": issue["url"]}
            if op.id == "issues/update":
                return 200, self._update_issue(repo, int(p["issue_number"]), body), {}
            if op.id == "pulls/list":
                state = query.get("state", "open")
                simple = self.spec.properties("pull-request-simple")
                newest = sorted(repo.pulls.items(), reverse=True)
                head, base = query.get("head"), query.get("base")
                pulls = [{k: v for k, v in pr.items() if k in simple} for _, pr in newest
                         if (state == "all" or pr["state"] == state) and head in (None, pr["head"]["label"])
                         and base in (None, pr["base"]["ref"])]  # fmt: skip
                return self._page(f"/repos/{p['owner']}/{p['repo']}/pulls", query, pulls)
            if op.id == "pulls/create":
                return self._create_pull(repo, body)
            if op.id == "pulls/update":
                pr = self._pull(repo, int(p["pull_number"]))
                pr.update({key: body[key] for key in ("title", "body", "state") if key in body}, updated_at=_now())
                return 200, pr, {}
            if op.id == "issues/list-comments":
                self._issue_or_pull(repo, int(p["issue_number"]))
                items = [self.comments[i] for i in repo.comments[int(p["issue_number"])]]
                if "since" in query:
                    items = [c for c in items if c["updated_at"] >= query["since"]]
                return self._page(f"/repos/{p['owner']}/{p['repo']}/issues/{p['issue_number']}/comments", query, items)
            if op.id == "issues/create-comment":
                self._issue_or_pull(repo, int(p["issue_number"]))
                comment = self._new_comment(repo, int(p["issue_number"]), body["body"], self.actor)
                return 201, comment, {"Location": comment["url"]}
            if op.id == "issues/update-comment":
                comment = self.comments.get(int(p["comment_id"]))
                if comment is None or comment["_repo"] != f"{repo.owner}/{repo.name}":
                    raise _error(404, "Not Found")
                comment.update(body=body["body"], updated_at=_now())
                return 200, comment, {}
            if op.id == "repos/list-pull-requests-associated-with-commit":
                sha = p["commit_sha"]
                if sha not in repo.commits:
                    raise _Reply(422, {"message": f"No commit found for SHA: {sha}", "documentation_url": DOCS})
                simple = self.spec.properties("pull-request-simple")
                indexed = repo.indexed_at.get(sha, 0.0) <= self.clock()
                pulls = [
                    {k: v for k, v in repo.pulls[n].items() if k in simple}
                    for n in (repo.commit_pulls.get(sha, []) if indexed else [])
                ]
                return self._page(f"/repos/{p['owner']}/{p['repo']}/commits/{sha}/pulls", query, pulls)
            if op.id == "repos/create-commit-status":
                return self._create_status(repo, p["sha"], body)
        raise _error(404, f"githubstub does not implement {op.id}")

    def _create_pull(self, repo: _Repo, body: Json) -> tuple[int, Json, dict[str, str]]:
        """``POST /pulls``: a pull request from ``head`` (a branch of this repository, or ``owner:branch``); one
        already open from that head is refused with GitHub's 422."""
        label = body["head"] if ":" in body["head"] else f"{repo.owner}:{body['head']}"
        if any(pr["head"]["label"] == label and pr["state"] == "open" for pr in repo.pulls.values()):
            error = {
                "resource": "PullRequest",
                "code": "custom",
                "message": f"A pull request already exists for {label}.",
            }
            raise _Reply(422, {"message": "Validation Failed", "documentation_url": DOCS, "errors": [error]})
        branch = label.split(":", 1)[1]
        pr = self.add_pull(f"{repo.owner}/{repo.name}", repo.next_number(), base_ref=body["base"],
                           user=self.actor["login"], head_sha=self.branches.get(branch, "0" * 40))  # fmt: skip
        pr.update(title=body.get("title", ""), body=body.get("body"))
        pr["head"].update(ref=branch, label=label)
        return 201, pr, {"Location": pr["url"]}

    def _issue_or_pull(self, repo: _Repo, number: int) -> Json:
        if number in repo.issues:
            return repo.issues[number]
        return self._pull(repo, number)

    def _new_issue(self, repo: _Repo, title: str, body: str, user: Json, state: str) -> Json:
        """An issue built from the real ``issues.opened`` webhook payload, adjusted."""
        payload = webhook_example("issues", "opened")
        old_repo, old_num = payload["repository"]["full_name"], payload["issue"]["number"]
        full = f"{repo.owner}/{repo.name}"
        with self._lock:
            number = repo.next_number()
            issue = _rewrite(
                payload["issue"], [(API, self.url), (old_repo, full), (f"/issues/{old_num}", f"/issues/{number}")]
            )
            now = _now()
            issue.update(id=8_000_000 + number, node_id=f"I_{number}", number=number, title=title, body=body,
                         state=state, user=copy.deepcopy(user), comments=0, created_at=now, updated_at=now, labels=[],
                         assignee=None, assignees=[], milestone=None, locked=False,
                         closed_at=now if state == "closed" else None,
                         author_association="NONE" if user["type"] == "Bot" else "MEMBER")  # fmt: skip
            issue["html_url"] = f"https://github.com/{full}/issues/{number}"
            issue.pop("pull_request", None)
            repo.issues[number] = issue
            repo.comments.setdefault(number, [])
        return issue

    def _update_issue(self, repo: _Repo, number: int, body: Json) -> Json:
        if number not in repo.issues:
            if number in repo.pulls:
                raise _error(422, "githubstub: editing a pull request as an issue is not implemented")
            raise _error(404, "Not Found")
        issue = repo.issues[number]
        for key in ("title", "body"):
            if key in body:
                issue[key] = body[key]
        if body.get("state") in ("open", "closed") and body["state"] != issue["state"]:
            issue["state"] = body["state"]
            issue["closed_at"] = _now() if body["state"] == "closed" else None
            issue["state_reason"] = body.get("state_reason") or (
                "completed" if body["state"] == "closed" else "reopened"
            )
        issue["updated_at"] = _now()
        return issue

    def _list_issues(self, repo: _Repo, p: dict[str, str], query: dict[str, str]) -> tuple[int, Json, dict[str, str]]:
        """``GET /repos/{o}/{r}/issues``: issues and pull requests (as issues), newest first, by state and creator."""
        state = query.get("state", "open")
        found = [*repo.issues.values(), *(self._issue(repo, pr) for pr in repo.pulls.values())]
        found = [i for i in found if state == "all" or i["state"] == state]
        if "creator" in query:
            found = [i for i in found if i["user"]["login"] == query["creator"]]
        found.sort(key=lambda i: i["number"], reverse=query.get("direction", "desc") == "desc")
        return self._page(f"/repos/{p['owner']}/{p['repo']}/issues", query, found)

    def _pull(self, repo: _Repo, number: int) -> Json:
        if number not in repo.pulls:
            raise _error(404, "Not Found")
        return repo.pulls[number]

    def _issue(self, repo: _Repo, pr: Json) -> Json:
        issue = webhook_example("issue_comment", "created")["issue"]
        old = webhook_example("issue_comment", "created")["repository"]["full_name"]
        issue = _rewrite(issue, [(API, self.url), (old, f"{repo.owner}/{repo.name}")])
        issue.update(
            number=pr["number"],
            title=pr["title"],
            body=pr["body"],
            user=pr["user"],
            state=pr["state"],
            url=pr["issue_url"],
            html_url=pr["html_url"],
            comments=len(repo.comments[pr["number"]]),
        )
        issue["pull_request"] = {
            "url": pr["url"],
            "html_url": pr["html_url"],
            "diff_url": pr["diff_url"],
            "patch_url": pr["patch_url"],
            "merged_at": pr["merged_at"],
        }
        return issue

    def _new_comment(self, repo: _Repo, number: int, body: str, user: Json) -> Json:
        template = webhook_example("issue_comment", "created")["comment"]
        cid = next(self._ids)
        full = f"{repo.owner}/{repo.name}"
        kind = "issues" if number in repo.issues else "pull"
        now = _now()
        comment = {k: v for k, v in template.items() if k in self.spec.properties("issue-comment")}
        comment.update(
            id=cid,
            node_id=f"IC_{cid}",
            url=f"{self.url}/repos/{full}/issues/comments/{cid}",
            html_url=f"https://github.com/{full}/{kind}/{number}#issuecomment-{cid}",
            issue_url=f"{self.url}/repos/{full}/issues/{number}",
            body=body,
            user=copy.deepcopy(user),
            created_at=now,
            updated_at=now,
            author_association="NONE" if user["type"] == "Bot" else "MEMBER",
        )
        if "reactions" in comment:
            comment["reactions"] = _rewrite(comment["reactions"], [(template["url"], comment["url"])])
        with self._lock:
            self.comments[cid] = comment
            repo.comments.setdefault(number, []).append(cid)
            if number in repo.issues:
                repo.issues[number]["comments"] += 1
        comment["_repo"] = full  # kept out of responses, see _public
        return comment

    def _create_status(self, repo: _Repo, sha: str, body: Json) -> tuple[int, Json, dict[str, str]]:
        if sha not in repo.commits:
            raise _Reply(422, {"message": f"No commit found for SHA: {sha}", "documentation_url": DOCS})
        status = self.spec.example("status")
        sid = next(self._ids)
        status.update(
            id=sid,
            node_id=f"SC_{sid}",
            url=f"{self.url}/repos/{repo.owner}/{repo.name}/statuses/{sha}",
            state=body["state"],
            description=body.get("description"),
            target_url=body.get("target_url"),
            context=body.get("context", "default"),
            created_at=_now(),
            updated_at=_now(),
            creator=copy.deepcopy(self.actor),
        )
        status["_sha"] = sha
        repo.statuses.append(status)
        return 201, status, {"Location": status["url"]}

    def _page(self, path: str, query: dict[str, str], items: list[Json]) -> tuple[int, Json, dict[str, str]]:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = max(int(query.get("page", 1)), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        links = []

        def link(n: int, rel: str) -> str:
            return f'<{self.url}{path}?{urlencode({**query, "per_page": per_page, "page": n})}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, items[(page - 1) * per_page : page * per_page], headers


_BOOKKEEPING = frozenset({"_repo", "_sha"})


def _public(body: Json) -> Json:
    """Drop the stub's bookkeeping keys (``_repo``, ``_sha``) from what goes on the wire."""
    if isinstance(body, list):
        return [_public(x) for x in body]
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k not in _BOOKKEEPING}
    return body


def _handler_for(stub: GitHubStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "githubstub"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                status, headers, body = stub.handle(self.command, self.path, dict(self.headers.items()), raw)
            except Exception as e:  # a bug in the stub itself: say so rather than hang the client
                with stub._lock:
                    stub.violations.append(
                        f"githubstub crashed on {self.command} {self.path}: {traceback.format_exc()}"
                    )
                status, headers, body = 500, {}, {"message": f"githubstub crashed: {e!r}"}
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            out = {
                "Content-Type": "application/json; charset=utf-8",
                "X-GitHub-Api-Version-Selected": "2022-11-28",
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "4999",
                "X-RateLimit-Reset": str(int(time.time()) + 3600),
            }
            given = {k.lower() for k in headers}
            out = {k: v for k, v in out.items() if k.lower() not in given} | headers
            out["Content-Length"] = str(len(data))
            try:
                for k, v in out.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (see GitHubStub.slow)
                self.close_connection = True

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stub.requests instead
            pass

    return Handler
