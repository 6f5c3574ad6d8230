"""The helpers many test modules share: the installed CLI, a git repository on disk, the files of a repo config.

One definition each (issue 13: one helper per repeated fixture); the cluster fixtures live in tests/conftest.py, the
cluster-side helpers (audit log, CRDs, waiting) in tests/kube.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.kube import AuditLog

#: The installed ``gitops-job`` console script of this interpreter's environment.
SCRIPT = str(Path(sys.executable).parent / "gitops-job")
#: The repository's examples/ (the acceptance repo).
EXAMPLES = Path(__file__).parent.parent / "examples"


def gitops_job(kubeconfig: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI against the cluster of ``kubeconfig`` (as ``$KUBECONFIG``); with ``ok``, assert it succeeded."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=180, env=env)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def git(root: Path, *args: str) -> str:
    """``git -C root args…``; its stdout (fails the test when git fails)."""
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def git_repo(root: Path) -> str:
    """Commit everything under ``root`` (a repository on branch main, made on first use); the new commit's sha."""
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "change")
    return git(root, "rev-parse", "HEAD").strip()


def write(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` (repo-relative path -> content) under ``root``, making directories as needed."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def cm(name: str, ns: str, value: str = "1", annotations: dict[str, str] | None = None) -> str:
    """A ConfigMap manifest (one JSON line, valid YAML) with ``data: {v: value}``."""
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": value}}) + "\n"


def config(ns: str, stacks: str) -> str:
    """A gitops.yaml with target ``t`` (inventories in ``ns``) and the ``stacks`` given as YAML list items."""
    return f"targets:\n  - name: t\n    inventoryNamespace: {ns}\nstacks:\n{stacks}"


def object_writes(audit: AuditLog, mark: int) -> list[str]:
    """Writes by gitops-job to objects it manages (bookkeeping excluded), as ``verb resource/namespace/name``."""
    found = []
    for e in audit.writes(mark):
        ref = e.get("objectRef") or {}
        resource, name = ref.get("resource", ""), ref.get("name", "")
        if resource in ("leases", "events") or (resource == "configmaps" and name.startswith("gitops-job.")):
            continue
        found.append(f"{e['verb']} {resource}/{ref.get('namespace', '')}/{name}")
    return found
