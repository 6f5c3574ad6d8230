"""Issue 15 item 6, the stack controls: ``suspend`` / ``resume`` (stored on the inventory; ``apply`` and the
scheduled ``reconcile`` leave a suspended stack alone and say so; ``status`` shows it) and ``rollback`` (a commit
that restores the stack's files, or ``--emergency``: applied directly, off-git until a new commit), against the real
local cluster and real git (tests/gitservers.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from tests.gitservers import bare_repo, push
from tests.helpers import cm, config, git, git_repo, gitops_job, object_writes, write
from tests.kube import AuditLog

STACKS = "  - name: app\n    path: app\n  - name: other\n    path: other\n"


def _work(tmp: Path, ns: str, value: str = "1") -> tuple[Path, str]:
    work = tmp / "work"
    write(work, {"gitops.yaml": config(ns, STACKS), "app/cm.yaml": cm("a", ns, value),
                 "other/cm.yaml": cm("b", ns, value)})  # fmt: skip
    return work, git_repo(work)


def _bump(work: Path, ns: str, value: str) -> str:
    write(work, {"app/cm.yaml": cm("a", ns, value), "other/cm.yaml": cm("b", ns, value)})
    return git_repo(work)


@pytest.fixture
def values(api_client: client.ApiClient, namespace: str) -> Callable[[], tuple[str, str]]:
    """The two applied ConfigMaps' values (stack app's, stack other's), read from the cluster."""
    core = client.CoreV1Api(api_client)
    return lambda: tuple(core.read_namespaced_config_map(n, namespace).data["v"] for n in "ab")  # type: ignore[return-value]


def test_suspend_leaves_the_stack_alone_and_says_so_until_resume(
    kubeconfig: Path, namespace: str, tmp_path: Path, values: Callable[[], tuple[str, str]], audit: AuditLog
) -> None:
    bare = bare_repo(tmp_path)
    work, _ = _work(tmp_path, namespace)
    git(work, "remote", "add", "origin", str(bare))  # one repository, applied from the checkout and by reconcile
    push(work, bare)
    repo = ["--repo", str(work)]
    gitops_job(kubeconfig, "apply", *repo)
    suspended = gitops_job(kubeconfig, "suspend", "app", "--reason", "incident 42", "--user", "ana", *repo)
    assert "stack app: suspended by ana: incident 42" in suspended.stdout
    _bump(work, namespace, "2")
    push(work, bare)
    mark = audit.mark()
    applied = gitops_job(kubeconfig, "apply", *repo)  # a suspended stack does not fail the run: exit 0
    assert "stack app: left alone, suspended by ana at " in applied.stdout and ": incident 42;" in applied.stdout
    assert "stack other: succeeded" in applied.stdout
    assert values() == ("1", "2")
    assert not [w for w in object_writes(audit, mark) if w.endswith("/a")], "the suspended stack was written"
    as_json = json.loads(gitops_job(kubeconfig, "apply", *repo, "-o", "json").stdout)
    app = next(s for s in as_json["stacks"] if s["stack"] == "app")
    assert as_json["ok"] and app["result"] == "skipped" and "incident 42" in app["held"]
    # the scheduled run skips it too
    scheduled = gitops_job(kubeconfig, "reconcile", "--repo", f"file://{bare}")
    assert "stack app: left alone, suspended by ana" in scheduled.stdout and values() == ("1", "2")
    status = gitops_job(kubeconfig, "status", *repo)
    assert "suspended" in status.stdout.splitlines()[1]
    assert "stack app: suspended by ana at " in status.stdout and "incident 42" in status.stdout
    doc = json.loads(gitops_job(kubeconfig, "status", *repo, "-o", "json").stdout)
    held = next(s for s in doc["stacks"] if s["stack"] == "app")["suspended"]
    assert (held["user"], held["reason"]) == ("ana", "incident 42") and held["since"].endswith("Z")
    # resume: the next run applies it from git
    resumed = gitops_job(kubeconfig, "resume", "app", *repo)
    assert "stack app: was suspended; resumed" in resumed.stdout
    gitops_job(kubeconfig, "apply", *repo)
    assert values() == ("2", "2")
    again = gitops_job(kubeconfig, "resume", "app", *repo)
    assert "neither suspended nor off-git" in again.stdout


def test_suspend_needs_a_known_stack_and_a_reason(kubeconfig: Path, namespace: str, tmp_path: Path) -> None:
    work, _ = _work(tmp_path, namespace)
    unknown = gitops_job(kubeconfig, "suspend", "nope", "--reason", "x", "--repo", str(work), ok=False)
    assert unknown.returncode == 1 and "nope" in unknown.stderr
    blank = gitops_job(kubeconfig, "suspend", "app", "--reason", " ", "--repo", str(work), ok=False)
    assert blank.returncode == 1 and "needs a reason" in blank.stderr
    missing = gitops_job(kubeconfig, "suspend", "app", "--repo", str(work), ok=False)
    assert missing.returncode == 2 and "--reason" in missing.stderr
