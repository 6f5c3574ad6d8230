"""What every test server shares: a free loopback port, a child process serving on one (started, waited for until
it accepts, stopped afterwards) and an in-process HTTP server on a thread of its own (bound, and so listening,
before anyone is told its port: race-free)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def child(
    argv: Sequence[str], port: int, log: Path, what: str, timeout: float = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` run with its output in ``log``, yielded once ``127.0.0.1:port`` accepts a connection (the test fails
    with ``what`` and the log if it exits or ``timeout`` s pass first); terminated afterwards (killed after 10 s)."""
    with log.open("w") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{what} did not start: {log.read_text()}")
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def http_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """``handler`` served by a ``ThreadingHTTPServer`` on a free loopback port, on a daemon thread; yields the port;
    shut down (and the thread joined) afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
