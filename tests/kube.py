"""Small helpers the cluster tests share."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tools.localcluster.audit import complete_lines

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` and the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def condition(obj: dict, type_: str) -> str | None:
    """The status (``"True"``/``"False"``/``"Unknown"``) of condition ``type_`` on ``obj``, or None."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def crd(group: str, kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A namespaced CRD serving ``kind`` in ``group``/v1, with ``schema`` as its OpenAPI v3 schema."""
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


def etcd_put(kubeconfig: Path, key: str, obj: dict[str, Any]) -> None:
    """Store ``obj`` as JSON under ``key`` in the local cluster's etcd, behind the API server's back (it reads JSON as
    well as protobuf): for objects it no longer accepts but may still hold, written by an older version — such as a
    webhook with ``sideEffects: Unknown``, refused by admissionregistration/v1 since Kubernetes 1.22."""
    state = json.loads((kubeconfig.parent / "state.json").read_text())
    body = {"key": _b64(key), "value": _b64(json.dumps(obj))}
    request = urllib.request.Request(
        f"http://127.0.0.1:{state['ports']['etcd']}/v3/kv/put", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class AuditLog:
    """The local API server's audit log of write requests: what really reached the server, not what a client says.

    ``mark()`` remembers where the log ends; ``writes(mark)`` returns the write events since then whose user agent
    starts with ``agent`` (gitops-job's own, by default), dry-runs excluded unless asked for.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def events(self, since: int, agent: str = "gitops-job/") -> list[dict[str, Any]]:
        found = []
        for line in complete_lines(self.path, since):
            event = json.loads(line)
            if str(event.get("userAgent", "")).startswith(agent):
                found.append(event)
        return found

    def writes(self, since: int, agent: str = "gitops-job/", *, dry_run: bool = False) -> list[dict[str, Any]]:
        return [e for e in self.events(since, agent) if ("dryRun=" in e.get("requestURI", "")) == dry_run]
