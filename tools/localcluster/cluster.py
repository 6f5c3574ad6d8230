"""Start, stop and inspect a local control plane (etcd → kube-apiserver → controller-manager → scheduler → kwok).

Each cluster lives in its own state directory (PKI, etcd data, logs, kubeconfig, ``state.json`` with PIDs and ports),
so several clusters can run side by side. Standard library only: ``make cluster-up`` needs nothing but Python.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import build

# The controllers' client rate towards the API server. At the defaults (20 QPS, burst 30) the controller-manager
# takes 100-190 s to observe 500 new Deployments; a real cluster's control plane is sized for its load, so is this one.
CLIENT_RATE = ("--kube-api-qps=200", "--kube-api-burst=400")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODE_NAME = "kwok-node-0"
_KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
    "volume/fast/pv-bind.yaml",
    "volume/fast/pv-delete.yaml",
    "volume/fast/pvc-provision.yaml",
    "volume/fast/pvc-delete.yaml",
)
# The default StorageClass served by kwok's volume stages (kustomize/stage/volume/fast/storage-class.yaml): PVCs bind.
_STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "kwok-volume", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kwok.x-k8s.io/volume",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}
_SANS = "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"


class ClusterError(RuntimeError):
    """Starting or talking to the local cluster failed; the message names the component and shows its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"pki: openssl {args[0]} failed: {proc.stderr.strip()}")


def make_pki(pki: Path) -> None:
    """A fresh CA, apiserver serving cert, admin client cert (``O=system:masters``) and service-account key pair."""
    if shutil.which("openssl") is None:
        raise ClusterError("pki: openssl not found; install it (Debian/Ubuntu: apt-get install openssl)")
    pki.mkdir(parents=True, exist_ok=True)
    ec = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"]
    for key in ("ca", "apiserver", "admin"):
        _openssl([*ec, f"{key}.key"], pki)
    _openssl(
        ["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=gitops-job-local-ca", "-days", "3650",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-out", "ca.crt"],
        pki,
    )  # fmt: skip
    leaves = {
        "apiserver": ("/CN=kube-apiserver", f"extendedKeyUsage=serverAuth\nsubjectAltName={_SANS}\n"),
        "admin": ("/O=system:masters/CN=gitops-job-admin", "extendedKeyUsage=clientAuth\n"),
    }
    for name, (subject, ext) in leaves.items():
        (pki / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" + ext)
        _openssl(["req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr"], pki)
        _openssl(
            ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "365",
             "-set_serial", str(secrets.randbits(63)), "-extfile", f"{name}.ext", "-out", f"{name}.crt"],
            pki,
        )  # fmt: skip
    _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key"], pki)
    _openssl(["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], pki)


def _kubeconfig(pki: Path, server: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "local", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        },
        indent=2,
    )


def _kwok_config(stages_dir: Path) -> str:
    # kwok applies no defaults to a KwokConfiguration read from a file: set every parallelism option ourselves.
    options = """apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.244.0.0/16
  nodeIP: 127.0.0.1
  manageAllNodes: true
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 4
  podsOnNodeSyncParallelism: 1
  enableDebuggingHandlers: false
  enableProfilingHandler: false
"""
    return "\n---\n".join([options, *((stages_dir / s).read_text() for s in _KWOK_STAGES)])


# Tests count the writes that reached the API server from this log (zero for every validation failure).
_AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""


def _node(name: str) -> dict[str, Any]:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "1000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    pid: int
    alive: bool


class LocalCluster:
    """One local control plane rooted at ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir).resolve()

    # -- paths ---------------------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def audit_log(self) -> Path:
        """Every write request (verb, user, user agent, object, dry-run or not), one JSON line each."""
        return self.state_dir / "logs" / "audit.log"

    def log(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._state_file().read_text()))
        except FileNotFoundError:
            return {"processes": {}}

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self._state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_file())

    @property
    def server(self) -> str:
        return str(self.state()["server"])

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def up(self, timeout: float = 90.0) -> None:
        """Start every component and wait for ``/readyz`` and a Ready node; on failure stop what was started."""
        if any(p.alive for p in self.status()):
            raise ClusterError(f"a cluster already runs in {self.state_dir}; stop it first (down)")
        missing = [c.name for c in build.COMPONENTS if c.name not in {"helm", "kustomize"} and not c.present()]
        if missing:
            raise ClusterError(f"binaries not built: {', '.join(missing)}; run `python -m tools.localcluster build`")
        for sub in ("pki", "etcd-data", "logs"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        (self.state_dir / "logs").mkdir(parents=True)
        make_pki(self.pki)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        server = f"https://127.0.0.1:{api_port}"
        self._save({"server": server, "ports": {"etcd": etcd_port, "etcd-peer": peer_port, "apiserver": api_port},
                    "processes": {}})  # fmt: skip
        self.kubeconfig.write_text(_kubeconfig(self.pki, server))
        (self.state_dir / "kwok.yaml").write_text(_kwok_config(build.kwok_stages_dir()))
        (self.state_dir / "audit-policy.yaml").write_text(_AUDIT_POLICY)
        deadline = time.monotonic() + timeout
        try:
            self._start("etcd", self._etcd_args(etcd_port, peer_port))
            self._start("kube-apiserver", self._apiserver_args(etcd_port, api_port))
            self._wait("kube-apiserver", deadline, self._readyz_ok)
            kc = str(self.kubeconfig)
            self._start("kube-controller-manager", [
                "--kubeconfig", kc, "--leader-elect=false", "--secure-port=0",
                "--root-ca-file", str(self.pki / "ca.crt"),
                "--service-account-private-key-file", str(self.pki / "sa.key"),
                "--cluster-signing-cert-file", str(self.pki / "ca.crt"),
                "--cluster-signing-key-file", str(self.pki / "ca.key"),
                "--node-monitor-grace-period=60s", *CLIENT_RATE,
            ])  # fmt: skip
            self._start("kube-scheduler", ["--kubeconfig", kc, "--leader-elect=false", "--secure-port=0", *CLIENT_RATE])
            self._start("kwok", [
                "--kubeconfig", kc, "--config", str(self.state_dir / "kwok.yaml"),
                "--manage-all-nodes=true", "--node-ip=127.0.0.1",
            ])  # fmt: skip
            self.request("POST", "/api/v1/nodes", _node(NODE_NAME), ok_statuses=(201, 409))
            self._wait("kwok", deadline, self._node_ready)
            self.request("POST", "/apis/storage.k8s.io/v1/storageclasses", _STORAGE_CLASS, ok_statuses=(201, 409))
        except BaseException:
            self.down()
            raise

    def down(self, grace: float = 10.0) -> list[str]:
        """Stop every component this state directory started, by PID, in reverse order. Returns what was stopped."""
        state = self.state()
        stopped = []
        for name in reversed(COMPONENTS):
            pid = state["processes"].get(name)
            if pid is None:
                continue
            if _is_ours(pid, name):
                _terminate(pid, grace)
                stopped.append(name)
            del state["processes"][name]
            self._save(state)
        return stopped

    def status(self) -> list[ProcessInfo]:
        procs = self.state()["processes"]
        return [ProcessInfo(n, procs[n], _is_ours(procs[n], n)) for n in COMPONENTS if n in procs]

    def kill(self, component: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one component (used by tests that simulate a dying API server)."""
        pid = self.state()["processes"][component]
        os.kill(pid, sig)
        _wait_exit(pid, 10.0)

    # -- talking to the API server -------------------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def request(
        self, method: str, path: str, body: Any = None, ok_statuses: tuple[int, ...] = (200,), timeout: float = 5.0
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=timeout) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        if status not in ok_statuses:
            raise ClusterError(f"{method} {path}: HTTP {status}: {raw[:300].decode(errors='replace')}")
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def _readyz_ok(self) -> bool:
        try:
            return self.request("GET", "/readyz", timeout=2.0) == "ok"
        except (ClusterError, OSError):
            return False

    def _node_ready(self) -> bool:
        try:
            node = self.request("GET", f"/api/v1/nodes/{NODE_NAME}", timeout=2.0)
        except (ClusterError, OSError):
            return False
        conditions = node.get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    # -- processes -----------------------------------------------------------------------------------------------
    def _etcd_args(self, port: int, peer: int) -> list[str]:
        client, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
        return [
            "--name=local", f"--data-dir={self.state_dir / 'etcd-data'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=local={peer_url}", "--unsafe-no-fsync=true", "--log-level=warn",
        ]  # fmt: skip

    def _apiserver_args(self, etcd_port: int, port: int) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.state_dir / 'apiserver-certs'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
            "--allow-privileged=true", "--profiling=false",
            f"--audit-policy-file={self.state_dir / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}",
            # One file, never rotated (the default rotates at 100 MB, and a reader's byte mark would then point into
            # the new file): a 20,000-object benchmark writes a few hundred MB.
            "--audit-log-format=json", "--audit-log-mode=blocking", "--audit-log-maxsize=1000000",
        ]  # fmt: skip

    def _start(self, name: str, args: list[str]) -> None:
        binary = build.binary(name)
        with self.log(name).open("ab") as log:
            proc = subprocess.Popen(
                [str(binary), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.state_dir,
            )  # fmt: skip
        state = self.state()
        state["processes"][name] = proc.pid
        self._save(state)
        time.sleep(0.2)
        self._check_alive(name, proc.pid)

    def _check_alive(self, name: str, pid: int) -> None:
        if not _is_ours(pid, name):
            raise ClusterError(f"{name} exited during startup\n{self.log_tail(name)}")

    def _wait(self, name: str, deadline: float, ready: Any) -> None:
        """Poll ``ready()`` until true; fail naming ``name`` if any component dies or the deadline passes."""
        while not ready():
            for p in self.status():
                if not p.alive:
                    raise ClusterError(f"{p.name} exited while waiting for {name}\n{self.log_tail(p.name)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {name} to become ready\n{self.log_tail(name)}")
            time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            tail = self.log(name).read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return f"(no log at {self.log(name)})"
        return f"--- last {len(tail)} lines of {self.log(name)} ---\n" + "\n".join(tail)


def _is_ours(pid: int, name: str) -> bool:
    """True if ``pid`` runs and is the component we started (guards against PID reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return not _zombie(pid) and Path(cmdline.split(b"\0", 1)[0].decode(errors="replace")).name == name


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap if it is our child
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return True
        time.sleep(0.05)
    return False


def _zombie(pid: int) -> bool:
    """Exited but not yet reaped (or gone altogether)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _terminate(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_exit(pid, grace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_exit(pid, 5.0)
