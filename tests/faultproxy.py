"""A fault-injecting HTTP proxy in front of a real kube-apiserver, for tests.

``FaultProxy`` listens on plain HTTP on ``127.0.0.1`` (a free port) and forwards every request over TLS to the API
server named by a kubeconfig, authenticating upstream with that kubeconfig's client certificate (or bearer token).
Clients talk to it through the kubeconfig it writes (``proxy.kubeconfig``: ``http://127.0.0.1:<port>``, no
credentials), so the python ``kubernetes`` client and ``kubectl`` both work unchanged. The upstream identity is the
cluster admin, so ``Impersonate-*`` headers sent by a client pass through and take effect; a client's own
``Authorization`` header is dropped.

Forwarding is faithful: method, path and query, headers (minus hop-by-hop ones), body; status, headers and body back.
Responses stream: a chunked or close-delimited upstream body (``?watch=true``) is relayed to the client chunk by chunk
as it arrives. Each client connection gets its own thread and its own keep-alive upstream connection.

Faults, all changeable while the proxy runs (thread-safe)::

    with FaultProxy(kubeconfig) as proxy:
        proxy.delay(0.5)                      # every request waits 0.5 s before the proxy acts on it
        proxy.throttle(0.5, retry_after=2)    # every 2nd request: 429 + Retry-After + a Kubernetes Status body
        proxy.cut()                           # close every connection; new ones are reset (ECONNRESET)
        proxy.restore()
        proxy.cut_for(1.0)                    # cut, and restore by itself after 1 s
        proxy.on_request(hook)                # hook(RequestInfo) -> Action | None, for every request
        proxy.reset()                         # no delay, no throttle, no hooks, not cut
        proxy.log, proxy.writes(), proxy.clear_log()

A request goes through these steps, in order:

1. It is numbered (``seq``) and logged as pending (``LogRecord.outcome == "pending"``).
2. The hooks run in registration order; the first that returns an action other than ``None`` decides. ``Call(fn,
   then)`` runs ``fn()`` right there (in the connection's thread, before anything reaches the API server) and
   continues with ``then``. A hook is ordinary code, so it may also act itself and return ``None``; an exception in a
   hook answers 500 and is kept in ``proxy.errors``.
3. If no hook decided (a hook's ``Forward()`` does decide), the throttle may answer 429 instead. It is
   deterministic: with fraction ``f`` the requests that push an exact running sum of ``f`` past the next whole number
   are throttled (``0.5`` → every 2nd, ``1/3`` → every 3rd, ``1`` → all).
4. The delay, if any, is waited out. Cutting or stopping the proxy ends the wait, and so does the client hanging up:
   such a request is never forwarded (outcome ``cut`` / ``client-gone``).
5. The action is carried out:

   ``Forward()``
       send it to the API server and relay the answer.
   ``Respond(status, body, headers)``
       answer without reaching the API server. ``Respond.kube_status(code, reason, message, retry_after)`` builds a
       proper ``kind: Status`` answer; ``Respond.too_many_requests(retry_after)`` is the throttle's 429.
   ``Drop()``
       reset this connection without an answer (the client sees a connection error); the proxy stays up.
   ``Cut(duration=None)``
       like ``Drop`` and the proxy enters the cut state (restored after ``duration`` seconds if given).

``at_nth(n, action, where=is_write)`` makes a hook that returns ``action`` for the n-th matching request only, e.g.
``proxy.on_request(at_nth(3, Call(lambda: os.kill(pid, SIGKILL), then=Drop())))`` kills a client when its 3rd write
arrives and keeps that write from the API server.

``proxy.log`` lists a ``LogRecord`` per request (in arrival order) with the outcome so far: the status goes in as soon
as the status line is sent, so a running watch shows up with status 200. A write is POST/PUT/PATCH/DELETE without a
``dryRun`` query parameter; ``proxy.writes()`` lists the writes that were forwarded.

Caveats: upstream is HTTP/1.1 only, and protocol upgrades (``kubectl exec``/``attach``/``port-forward``) are not
relayed. If the API server cannot be reached, the client's connection is reset (as if the server were gone) rather
than answered with a 502. A client that hangs up during a delay or a streamed answer is noticed within ~0.1 s even if
the stream is idle (a client that only half-closes its side counts as gone); during any other answer, at the next
write to it.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import select
import shutil
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

__all__ = [
    "Action",
    "Call",
    "Cut",
    "Drop",
    "FaultProxy",
    "Forward",
    "Hook",
    "LogRecord",
    "RequestInfo",
    "Respond",
    "at_nth",
    "is_write",
]

_log = logging.getLogger(__name__)

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
# Request headers the proxy sets itself (or must not pass on) in addition to the hop-by-hop ones.
_REQUEST_DROP = _HOP_BY_HOP | {"host", "authorization", "content-length", "expect"}
_RESPONSE_DROP = _HOP_BY_HOP | {"content-length"}
_CHUNK = 64 * 1024
_REAP_INTERVAL = 0.1
_STOP_TIMEOUT = 1.5
_CONNECT_TIMEOUT = 5.0


# -- requests and actions ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestInfo:
    """One request as the proxy received it. ``headers`` has lower-case names (repeated headers joined by ", ")."""

    seq: int
    time: float  # time.monotonic() when the request line was read
    method: str
    path: str
    query: Mapping[str, str]  # first value of each parameter
    raw_query: str
    headers: Mapping[str, str]
    body: bytes
    client: tuple[str, int]

    @property
    def target(self) -> str:
        """Path and query as sent."""
        return f"{self.path}?{self.raw_query}" if self.raw_query else self.path

    @property
    def is_dry_run(self) -> bool:
        return self.method in _MUTATING and bool(self.query.get("dryRun"))

    @property
    def is_write(self) -> bool:
        return self.method in _MUTATING and not self.is_dry_run

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch", "").lower() in {"true", "1"} or "/watch/" in self.path

    @property
    def user_agent(self) -> str | None:
        return self.headers.get("user-agent")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Action:
    """What to do with a request: ``Forward``, ``Respond``, ``Drop``, ``Cut`` or ``Call``."""

    __slots__ = ()


@dataclass(frozen=True)
class Forward(Action):
    """Send the request to the API server (the same as a hook returning ``None``, but the throttle is skipped)."""


@dataclass(frozen=True)
class Respond(Action):
    """Answer without reaching the API server. A ``str`` body is sent as UTF-8."""

    status: int
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def kube_status(cls, code: int, reason: str, message: str = "", retry_after: int | None = None) -> Respond:
        """A Kubernetes ``Status`` failure, as the API server sends it (with ``Retry-After`` if given)."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message or reason,
            "reason": reason,
            "code": code,
        }
        headers = {"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
        if retry_after is not None:
            status["details"] = {"retryAfterSeconds": retry_after}
            headers["Retry-After"] = str(retry_after)
        return cls(code, json.dumps(status).encode(), headers)

    @classmethod
    def too_many_requests(cls, retry_after: int = 2) -> Respond:
        return cls.kube_status(429, "TooManyRequests", "Too many requests, please try again later.", retry_after)

    def encoded(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


@dataclass(frozen=True)
class Drop(Action):
    """Reset this client connection without an answer; the proxy stays up."""


@dataclass(frozen=True)
class Cut(Action):
    """Reset this connection and enter the cut state (``proxy.cut()``), restored after ``duration`` s if given."""

    duration: float | None = None


@dataclass(frozen=True)
class Call(Action):
    """Call ``fn()`` now, before anything is forwarded, then carry on with ``then`` (``None``: forward)."""

    fn: Callable[[], object]
    then: Action | None = None


Hook = Callable[[RequestInfo], Action | None]


def is_write(req: RequestInfo) -> bool:
    return req.is_write


def at_nth(n: int, action: Action, where: Callable[[RequestInfo], bool] = is_write) -> Hook:
    """A hook returning ``action`` for the ``n``-th request (counting from 1) for which ``where`` holds, once."""
    lock = threading.Lock()
    seen = 0

    def hook(req: RequestInfo) -> Action | None:
        nonlocal seen
        if not where(req):
            return None
        with lock:
            seen += 1
            hit = seen == n
        return action if hit else None

    return hook


@dataclass(frozen=True)
class LogRecord:
    """What happened to one request.

    ``outcome`` is one of ``pending``, ``forwarded``, ``throttled``, ``responded``, ``dropped``, ``cut``,
    ``client-gone`` (hung up during the delay), ``upstream-error`` (the API server could not be reached or broke off:
    the client's connection was reset) or ``hook-error``. ``status`` is the status sent to the client (None while
    pending or when none was sent); ``retry_after`` the ``Retry-After`` seconds sent, if any (from the throttle, a
    hook or the API server).
    """

    seq: int
    time: float
    method: str
    path: str
    query: Mapping[str, str]
    is_write: bool
    is_dry_run: bool
    user_agent: str | None
    status: int | None = None
    forwarded: bool = False
    retry_after: int | None = None
    outcome: str = "pending"


# -- the proxy ---------------------------------------------------------------------------------------------------------
class _Abort(Exception):
    """Reset the client connection now (no answer)."""


@dataclass(frozen=True)
class _Upstream:
    host: str
    port: int
    sni: str | None
    context: ssl.SSLContext
    token: str | None

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"


class _UpstreamConnection(http.client.HTTPSConnection):
    """A TLS connection to the API server: bounded connect, unbounded reads (watches), a handle for cutting it."""

    def __init__(self, upstream: _Upstream) -> None:
        super().__init__(upstream.host, upstream.port, timeout=_CONNECT_TIMEOUT, context=upstream.context)
        self._upstream = upstream
        self.raw: socket.socket | None = None  # kept after close() so a cut can shut a response's socket down

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self._upstream.context.wrap_socket(sock, server_hostname=self._upstream.sni)
        except BaseException:
            sock.close()
            raise
        tls.settimeout(None)
        self.sock = self.raw = tls

    def kill(self) -> None:
        """Unblock whoever reads from this connection (from any thread)."""
        if self.raw is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self.raw, socket.SHUT_RDWR)  # the plain socket's, not SSLSocket's


class _Conn:
    """One client connection and its upstream connection."""

    def __init__(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        self.sock = sock
        self.addr = addr
        self.upstream: _UpstreamConnection | None = None
        self.streaming = False  # relaying an open-ended (chunked / close-delimited) body
        self.delayed = False  # waiting out proxy.delay()
        self.killed = threading.Event()
        self.gone = False  # the client hung up
        self.thread: threading.Thread | None = None

    def kill(self) -> None:
        """Close the client side abortively and unblock the connection's thread (from any thread)."""
        self.killed.set()
        _set_linger0(self.sock)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if self.upstream is not None:
            self.upstream.kill()


def _set_linger0(sock: socket.socket) -> None:
    """Make ``close()`` send a RST, the way a vanished server's kernel answers."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _Server(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), socketserver.BaseRequestHandler)  # unused: see process_request

    def process_request(self, request: Any, client_address: Any) -> None:
        self.proxy._accepted(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("faultproxy: error on connection from %s", client_address, exc_info=True)


class FaultProxy:
    """A fault-injecting reverse proxy to the API server of ``kubeconfig``; see the module docstring."""

    def __init__(self, kubeconfig: Path | str) -> None:
        self._source = Path(kubeconfig)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._tmp: Path | None = None
        self._upstream: _Upstream | None = None
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[_Conn] = set()
        self._kubeconfig: Path | None = None
        # faults
        self._delay = 0.0
        self._throttle = Fraction(0)
        self._throttle_sum = Fraction(0)
        self._retry_after = 2
        self._cut = False
        self._cut_until: float | None = None
        self._hooks: list[Hook] = []
        # bookkeeping
        self._seq = 0
        self._records: dict[int, LogRecord] = {}
        self._errors: list[BaseException] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._tmp = Path(tempfile.mkdtemp(prefix="faultproxy-"))
        try:
            self._upstream = _load_upstream(self._source, self._tmp)
            self._server = _Server(self)
            self._kubeconfig = self._tmp / "kubeconfig"
            self._kubeconfig.write_text(_kubeconfig_for(self.url))
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        for target, name in ((self._serve, "faultproxy-accept"), (self._reap, "faultproxy-reaper")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and wait (briefly) for the proxy's threads to end."""
        if self._server is None or self._stopping.is_set():
            return
        deadline = time.monotonic() + _STOP_TIMEOUT
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.kill()
        with self._lock:
            threads = [*self._threads, *(c.thread for c in self._conns if c.thread is not None)]
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            _log.warning("faultproxy: threads still running after stop: %s", alive)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- where it listens --------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultProxy not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for ``url`` without credentials (exists while the proxy runs)."""
        if self._kubeconfig is None:
            raise RuntimeError("FaultProxy not started")
        return self._kubeconfig

    # -- faults ------------------------------------------------------------------------------------------------------
    def delay(self, seconds: float) -> None:
        """Every request waits ``seconds`` before the proxy acts on it (0: no delay)."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._delay = float(seconds)

    def throttle(self, fraction: float, retry_after: int = 2) -> None:
        """Answer ``fraction`` of the requests (evenly spread, deterministic) with 429 and ``Retry-After``."""
        if not 0 <= fraction <= 1:
            raise ValueError("throttle fraction must be within [0, 1]")
        with self._lock:
            self._throttle = Fraction(fraction).limit_denominator(1000)
            self._throttle_sum = Fraction(0)
            self._retry_after = int(retry_after)

    def cut(self, duration: float | None = None) -> None:
        """Close every client connection; until ``restore()`` (or ``duration`` s) new ones are reset."""
        with self._lock:
            self._cut = duration is None
            self._cut_until = None if duration is None else time.monotonic() + duration
            conns = list(self._conns)
        for conn in conns:
            conn.kill()

    def cut_for(self, seconds: float) -> None:
        self.cut(seconds)

    def restore(self) -> None:
        with self._lock:
            self._cut = False
            self._cut_until = None

    @property
    def is_cut(self) -> bool:
        with self._lock:
            return self._is_cut_locked()

    def _is_cut_locked(self) -> bool:
        return self._cut or (self._cut_until is not None and time.monotonic() < self._cut_until)

    def on_request(self, fn: Hook) -> Callable[[], None]:
        """Add a hook (called for every request, in registration order); returns a function that removes it."""
        with self._lock:
            self._hooks.append(fn)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._hooks.remove(fn)

        return remove

    def clear_hooks(self) -> None:
        with self._lock:
            self._hooks.clear()

    def reset(self) -> None:
        """No delay, no throttle, no hooks, not cut (the log stays)."""
        self.delay(0)
        self.throttle(0)
        self.clear_hooks()
        self.restore()

    # -- what happened -----------------------------------------------------------------------------------------------
    @property
    def log(self) -> list[LogRecord]:
        with self._lock:
            return [self._records[k] for k in sorted(self._records)]

    def writes(self) -> list[LogRecord]:
        """The write requests (POST/PUT/PATCH/DELETE, not dry-run) that reached the API server."""
        return [r for r in self.log if r.is_write and r.forwarded]

    def clear_log(self) -> None:
        with self._lock:
            self._records.clear()

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by hooks and ``Call`` functions."""
        with self._lock:
            return list(self._errors)

    @property
    def active_streams(self) -> int:
        """Open-ended answers (watches) being relayed right now."""
        with self._lock:
            return sum(c.streaming for c in self._conns)

    @property
    def connection_count(self) -> int:
        """Client connections open right now."""
        with self._lock:
            return len(self._conns)

    # -- internals: connections --------------------------------------------------------------------------------------
    def _serve(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.05)

    def _accepted(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        with self._lock:
            refuse = self._stopping.is_set() or self._is_cut_locked()
            if not refuse:
                conn = _Conn(sock, addr)
                conn.thread = threading.Thread(
                    target=self._run_conn, args=(conn,), name=f"faultproxy-conn-{addr[1]}", daemon=True
                )
                self._conns.add(conn)
        if refuse:
            _set_linger0(sock)
            sock.close()
            return
        assert conn.thread is not None
        conn.thread.start()

    def _run_conn(self, conn: _Conn) -> None:
        assert self._server is not None
        try:
            _Handler(conn, self._server)
        except _Abort:
            _set_linger0(conn.sock)
        except Exception:
            _log.debug("faultproxy: connection from %s ended with an error", conn.addr, exc_info=True)
            _set_linger0(conn.sock)
        finally:
            if conn.upstream is not None:
                conn.upstream.close()
            with contextlib.suppress(OSError):
                conn.sock.close()
            with self._lock:
                self._conns.discard(conn)

    def _reap(self) -> None:
        """Notice clients that hang up during a streamed answer, and end the stream (frees the upstream watch)."""
        while not self._stopping.wait(_REAP_INTERVAL):
            with self._lock:
                watched = [c for c in self._conns if c.streaming or c.delayed]
            for conn in watched:
                if _hung_up(conn.sock):
                    conn.gone = True
                    conn.kill()

    # -- internals: decisions ----------------------------------------------------------------------------------------
    def _arrived(self, info: RequestInfo) -> None:
        rec = LogRecord(
            seq=info.seq, time=info.time, method=info.method, path=info.path, query=info.query,
            is_write=info.is_write, is_dry_run=info.is_dry_run, user_agent=info.user_agent,
        )  # fmt: skip
        with self._lock:
            self._records[info.seq] = rec

    def _note(self, seq: int, **changes: Any) -> None:
        with self._lock:
            rec = self._records.get(seq)
            if rec is not None:
                self._records[seq] = replace(rec, **changes)

    def _next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def _decide(self, info: RequestInfo) -> tuple[Action, str]:
        """The action for a request and the outcome to log if it is an answer from the proxy."""
        with self._lock:
            hooks = list(self._hooks)
        action: Action | None = None
        try:
            for hook in hooks:
                action = hook(info)
                if action is not None:
                    break
            while isinstance(action, Call):
                action.fn()
                action = action.then
        except Exception as e:
            _log.warning("faultproxy: hook failed on %s %s", info.method, info.target, exc_info=True)
            with self._lock:
                self._errors.append(e)
            return Respond.kube_status(500, "InternalError", f"faultproxy hook failed: {e!r}"), "hook-error"
        if isinstance(action, Forward):
            return action, "forwarded"
        if action is not None:
            return action, "responded"
        with self._lock:
            if self._throttle:
                before = self._throttle_sum
                self._throttle_sum += self._throttle
                if int(self._throttle_sum) > int(before):
                    return Respond.too_many_requests(self._retry_after), "throttled"
        return Forward(), "forwarded"

    def _wait_delay(self, conn: _Conn) -> None:
        with self._lock:
            seconds = self._delay
        if seconds > 0:
            conn.delayed = True
            try:
                conn.killed.wait(seconds)  # cut, stop and the client hanging up end the wait
            finally:
                conn.delayed = False

    def _blocked(self) -> bool:
        with self._lock:
            return self._stopping.is_set() or self._is_cut_locked()


def _hung_up(sock: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


# -- the per-connection handler ----------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = None
    server: _Server

    def __init__(self, conn: _Conn, server: _Server) -> None:
        self.conn = conn
        self.proxy = server.proxy
        super().__init__(conn.sock, conn.addr, server)

    def handle(self) -> None:
        try:
            super().handle()
        except (_Abort, OSError, http.client.HTTPException, ValueError):
            _set_linger0(self.conn.sock)

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("faultproxy: " + format, *args)

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler dispatches to do_<METHOD>: relay every method.
        if name.startswith("do_"):
            return self._relay
        raise AttributeError(name)

    # -- one request -------------------------------------------------------------------------------------------------
    def _relay(self) -> None:
        proxy = self.proxy
        received = time.monotonic()
        body, has_body = self._read_body()
        parts = urlsplit(self.path)
        path = parts.path or "/"
        query: dict[str, str] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(k, v)
        headers: dict[str, str] = {}
        for k, v in self.headers.items():
            key = k.lower()
            headers[key] = f"{headers[key]}, {v}" if key in headers else v
        info = RequestInfo(
            seq=proxy._next_seq(), time=received, method=self.command, path=path,
            query=MappingProxyType(query), raw_query=parts.query, headers=MappingProxyType(headers), body=body,
            client=(str(self.client_address[0]), int(self.client_address[1])),
        )  # fmt: skip
        proxy._arrived(info)
        action, outcome = proxy._decide(info)
        if not isinstance(action, Cut):
            proxy._wait_delay(self.conn)
            if self.conn.killed.is_set() or proxy._blocked():
                proxy._note(info.seq, outcome="client-gone" if self.conn.gone else "cut")
                raise _Abort
        if isinstance(action, Respond):
            self._respond(info, action, outcome)
        elif isinstance(action, Drop):
            proxy._note(info.seq, outcome="dropped")
            raise _Abort
        elif isinstance(action, Cut):
            proxy._note(info.seq, outcome="cut")
            proxy.cut(action.duration)
            raise _Abort
        else:
            self._forward(info, body, has_body)

    def _read_body(self) -> tuple[bytes, bool]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise _Abort
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in {b"\r\n", b"\n", b""}:
                        pass  # trailers
                    return b"".join(chunks), True
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise _Abort
                chunks.append(chunk)
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if length is None:
            return b"", False
        n = int(length)
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            raise _Abort
        return data, True

    def _respond(self, info: RequestInfo, action: Respond, outcome: str) -> None:
        body = action.encoded()
        retry_after = None
        self.send_response_only(action.status)
        for k, v in action.headers.items():
            if k.lower() in _RESPONSE_DROP:
                continue
            if k.lower() == "retry-after":
                retry_after = _int_or_none(v)
            self.send_header(k, v)
        no_body = info.method == "HEAD" or action.status in {204, 304} or action.status < 200
        if not no_body:
            self.send_header("Content-Length", str(len(body)))
        self.proxy._note(info.seq, status=action.status, retry_after=retry_after, outcome=outcome)
        self.end_headers()
        if not no_body:
            self.wfile.write(body)

    def _forward(self, info: RequestInfo, body: bytes, has_body: bool) -> None:
        proxy, conn = self.proxy, self.conn
        upstream = proxy._upstream
        assert upstream is not None
        drop = _REQUEST_DROP | _connection_tokens(self.headers.get_all("Connection") or [])
        out = [(k, v) for k, v in self.headers.items() if k.lower() not in drop]
        if upstream.token:
            out.append(("Authorization", f"Bearer {upstream.token}"))
        if has_body or body:
            out.append(("Content-Length", str(len(body))))
        out.append(("Host", upstream.netloc))
        resp = None
        for attempt in range(2):
            if conn.upstream is None:
                conn.upstream = _UpstreamConnection(upstream)
            up = conn.upstream
            reused = up.sock is not None
            try:
                if up.sock is None:
                    up.connect()
                up.putrequest(info.method, info.target, skip_host=True, skip_accept_encoding=True)
                for k, v in out:
                    up.putheader(k, v)
                proxy._note(info.seq, forwarded=True)
                up.endheaders(body if body else None)
                resp = up.getresponse()
                break
            except (OSError, http.client.HTTPException):
                up.close()
                # A kept-alive connection the API server had closed: try once more on a fresh one.
                if reused and attempt == 0 and not proxy._blocked():
                    continue
                proxy._note(info.seq, outcome="upstream-error")
                raise _Abort from None
        assert resp is not None
        try:
            self._relay_response(info, resp)
        except BaseException:
            resp.close()
            if conn.upstream is not None:
                conn.upstream.close()  # the answer was not read to its end: the connection is unusable
            raise

    def _relay_response(self, info: RequestInfo, resp: http.client.HTTPResponse) -> None:
        proxy, conn = self.proxy, self.conn
        status = resp.status
        drop = _RESPONSE_DROP | _connection_tokens(resp.msg.get_all("Connection") or [])
        headers = [(k, v) for k, v in resp.msg.items() if k.lower() not in drop]
        retry_after = _int_or_none(resp.getheader("Retry-After"))
        no_body = info.method == "HEAD" or status in {204, 304} or status < 200
        length = resp.getheader("Content-Length") if not resp.chunked else None
        self.send_response_only(status, resp.reason)
        for k, v in headers:
            self.send_header(k, v)
        if no_body:
            if length is not None:
                self.send_header("Content-Length", length)
            mode = "none"
        elif length is not None and length.strip().isdigit():
            self.send_header("Content-Length", length.strip())
            mode = "length"
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "close")
            mode = "close"
        else:
            self.send_header("Transfer-Encoding", "chunked")
            mode = "chunked"
        proxy._note(info.seq, status=status, retry_after=retry_after, outcome="forwarded")
        conn.streaming = mode in {"chunked", "close"}  # before the client can see the status line
        try:
            self.end_headers()
            if mode == "none":
                resp.read()
                return
            while True:
                try:
                    data = resp.read1(_CHUNK)
                except (OSError, http.client.HTTPException, ValueError):
                    proxy._note(info.seq, outcome="upstream-error")
                    raise _Abort from None
                if not data:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if mode == "chunked" else data)
            if mode == "chunked":
                self.wfile.write(b"0\r\n\r\n")
            elif mode == "close":
                self.close_connection = True
        finally:
            conn.streaming = False
            resp.close()


def _connection_tokens(values: Iterable[str]) -> set[str]:
    return {t.strip().lower() for v in values for t in v.split(",") if t.strip()}


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


# -- kubeconfigs -------------------------------------------------------------------------------------------------------
def _named(items: list[dict[str, Any]] | None, name: str, what: str, path: Path) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return dict(item.get(what) or {})
    raise ValueError(f"{path}: no {what} named {name!r}")


def _load_upstream(path: Path, tmp: Path) -> _Upstream:
    """Server address, TLS context and credentials of the current context of the kubeconfig at ``path``."""
    cfg = yaml.safe_load(path.read_text()) or {}
    ctx_name = cfg.get("current-context")
    if not ctx_name:
        raise ValueError(f"{path}: no current-context")
    context = _named(cfg.get("contexts"), ctx_name, "context", path)
    cluster = _named(cfg.get("clusters"), context.get("cluster", ""), "cluster", path)
    user = _named(cfg.get("users"), context.get("user", ""), "user", path) if context.get("user") else {}
    base = path.resolve().parent

    def material(key: str) -> tuple[Path | None, bytes | None]:
        """(file, data) for ``key`` / ``key-data``; relative file paths are relative to the kubeconfig."""
        if user.get(f"{key}-data") or cluster.get(f"{key}-data"):
            return None, base64.b64decode(user.get(f"{key}-data") or cluster[f"{key}-data"])
        value = user.get(key) or cluster.get(key)
        return (base / Path(value).expanduser(), None) if value else (None, None)

    server = urlsplit(str(cluster.get("server", "")))
    if server.scheme != "https" or not server.hostname:
        raise ValueError(f"{path}: FaultProxy needs an https server, got {cluster.get('server')!r}")
    tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    tls.set_alpn_protocols(["http/1.1"])
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    else:
        ca_file, ca_data = material("certificate-authority")
        if ca_file is not None:
            tls.load_verify_locations(cafile=str(ca_file))
        elif ca_data is not None:
            tls.load_verify_locations(cadata=ca_data.decode())
    cert_file, cert_data = material("client-certificate")
    key_file, key_data = material("client-key")
    if cert_data is not None:
        cert_file = tmp / "client.crt"
        cert_file.write_bytes(cert_data)
    if key_data is not None:
        key_file = tmp / "client.key"
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_data)
    token = user.get("token")
    if user.get("tokenFile") and not token:
        token = (base / Path(user["tokenFile"])).read_text().strip()
    if cert_file is not None and key_file is not None:
        tls.load_cert_chain(str(cert_file), str(key_file))
    elif not token:
        raise ValueError(f"{path}: user {context.get('user')!r} has neither a client certificate nor a token")
    return _Upstream(
        host=server.hostname,
        port=server.port or 443,
        sni=cluster.get("tls-server-name") or server.hostname,
        context=tls,
        token=token,
    )


def _kubeconfig_for(url: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "faultproxy", "cluster": {"server": url}}],
            "users": [{"name": "faultproxy", "user": {}}],
            "contexts": [{"name": "faultproxy", "context": {"cluster": "faultproxy", "user": "faultproxy"}}],
            "current-context": "faultproxy",
        },
        indent=2,
    )
