"""Real git servers for the tests: bare repositories served over smart HTTP (``git http-backend`` behind a small
threaded HTTP server, with basic auth when a token is set) and over ssh (Debian's ``sshd`` on a loopback port, as a
non-daemon child, with a generated host key pinned in a ``known_hosts`` and a generated deploy key).

Race-free: the HTTP server binds port 0 before it serves (its port is known, and accepting, before a client is
started); sshd is waited for until its port accepts a connection (a port taken meanwhile: another one is tried);
its log is read only after it has exited.
"""

from __future__ import annotations

import base64
import getpass
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.serving import free_port, http_thread

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def bare_repo(root: Path, name: str = "repo.git") -> Path:
    """A new bare repository under ``root`` (default branch main), served by both servers."""
    path = root / name
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "config", "http.receivepack", "true"], check=True)
    subprocess.run(["git", "-C", str(path), "config", "uploadpack.allowAnySHA1InWant", "true"], check=True)
    return path


def push(work: Path, bare: Path, *, force: bool = False) -> None:
    """Push ``work``'s main to ``bare`` (a path: no server involved)."""
    args = ["git", "-C", str(work), "push", "-q", *(["--force"] if force else []), str(bare), "HEAD:refs/heads/main"]
    subprocess.run(args, check=True, capture_output=True)


@dataclass
class HttpGitServer:
    root: Path
    token: str | None
    port: int = 0
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Authorization
    commands: list[str] = field(default_factory=list)  # protocol v2 commands served (ls-refs, fetch), in order

    def url(self, name: str = "repo.git", user: str | None = None) -> str:
        return f"http://{user + '@' if user else ''}127.0.0.1:{self.port}/{name}"


@contextmanager
def http_git_server(root: Path, token: str | None = None, username: str = "x-access-token") -> Iterator[HttpGitServer]:
    """Smart HTTP over ``root``'s bare repositories; with ``token``, basic auth ``username:token`` is required."""
    server_state = HttpGitServer(root, token)
    expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode() if token else None
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _serve(self) -> None:
            auth = self.headers.get("Authorization")
            with lock:
                server_state.requests.append((self.command, self.path, auth))
            if expected is not None and auth != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else self._chunked()
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": username if expected else "",
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
            if self.command == "POST" and expected in (None, auth):
                command = re.search(rb"command=([a-z-]+)", body)
                with lock:
                    server_state.commands.append(command.group(1).decode() if command else "?")
            done = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True, check=False)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            headers = [line.split(":", 1) for line in head.decode("latin-1").split("\r\n") if ":" in line]
            status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
            self.send_response(status)
            for k, v in headers:
                if k.lower() != "status":
                    self.send_header(k, v.strip())
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _chunked(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return b""
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()

        do_GET = _serve
        do_POST = _serve

    with http_thread(Handler) as server_state.port:  # bound (and listening) before anyone is told the port
        yield server_state


@dataclass(frozen=True)
class SshGitServer:
    port: int
    deploy_key: Path  # the private half; its public half is the only authorized key
    known_hosts: Path  # the server's host key, pinned for [127.0.0.1]:port
    user: str

    def url(self, bare: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare}"


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@contextmanager
def ssh_git_server(tmp: Path) -> Iterator[SshGitServer]:
    """sshd on a loopback port (not a daemon: our child, stopped afterwards), accepting only a generated deploy key
    for the current user, with a generated host key pinned in ``known_hosts``."""
    tmp.mkdir(parents=True, exist_ok=True)
    host_key, deploy_key = tmp / "host_ed25519", tmp / "deploy_ed25519"
    _keygen(host_key)
    _keygen(deploy_key)
    (tmp / "authorized_keys").write_text((tmp / "deploy_ed25519.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    for _attempt in range(5):
        port = free_port()
        config = tmp / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {tmp / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
            "LogLevel VERBOSE\n"
        )
        log = tmp / f"sshd-{port}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline and not _accepts(port):
            time.sleep(0.05)
        if proc.poll() is None and _accepts(port):
            break
        proc.kill()
        proc.wait()
    else:
        raise RuntimeError(f"sshd did not start; its log:\n{log.read_text()}")
    known = tmp / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {(tmp / 'host_ed25519.pub').read_text()}")
    try:
        yield SshGitServer(port, deploy_key, known, getpass.getuser())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
