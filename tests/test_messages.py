"""Item 18 (messages) against the real local cluster: Ctrl-C during an apply says how far it got and a re-run
converges; an inventory create whose answer was lost (and was retried) is not "another applier"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client

from gitops_job.errors import Interrupted, LeaseError
from gitops_job.identity import ObjectId
from gitops_job.kube import Kube
from gitops_job.reconcile import inventory
from gitops_job.reconcile.context import Settings
from gitops_job.reconcile.run import ApplyOptions, run_apply
from tests.faultproxy import Call, Drop, FaultProxy, RequestInfo
from tests.helpers import cm, config, git_repo, write


def test_item18_ctrl_c_during_apply_names_the_partly_applied_stack_and_a_rerun_converges(
    tmp_path: Path, kubeconfig: Path, namespace: str
) -> None:
    """Ctrl-C arrives while stack b writes (a, b, c in dependsOn order): the error names b as partly applied, a as
    finished, c as not started, and says a re-run converges; b's lock is released, so the re-run does not wait."""
    repo = tmp_path / "repo"
    stacks = "".join(f"  - {{name: {s}, path: {s}, namespace: {namespace}{deps}}}\n"
                     for s, deps in (("a", ""), ("b", ", dependsOn: [a]"), ("c", ", dependsOn: [b]")))  # fmt: skip
    files = {"gitops.yaml": config(namespace, stacks)}
    files |= {f"{s}/cm-{i}.yaml": cm(f"{s}-{i}", namespace) for s in "abc" for i in range(3)}
    write(repo, files)
    git_repo(repo)
    settings = Settings(repo=repo, kubeconfig=str(kubeconfig))
    options = ApplyOptions(wait=False, lock_wait=0)
    applied = 0

    def ctrl_c_in_stack_b(what: str, done: int, total: int) -> None:
        nonlocal applied
        if what == "applied":
            applied += 1
            if applied == 4:  # stack a wrote its 3 objects; this is stack b's first
                raise KeyboardInterrupt

    with pytest.raises(Interrupted) as interrupted:
        run_apply(settings, options, progress=ctrl_c_in_stack_b)

    message = str(interrupted.value)
    assert message.startswith("interrupted: Ctrl-C during apply: stack b may be partly applied"), message
    assert "finished: a; not started: c." in message and "Run `gitops-job apply` again to converge" in message
    again = run_apply(settings, options)  # lock_wait=0: a lock left held would fail this at once
    assert again.ok and [r.result for r in again.stacks] == ["succeeded"] * 3
    assert [r.in_sync for r in again.stacks] == [True, False, False]


def test_item18_ctrl_c_before_any_write_says_nothing_was_written(
    tmp_path: Path, kubeconfig: Path, namespace: str
) -> None:
    repo = tmp_path / "repo"
    write(repo, {"gitops.yaml": config(namespace, f"  - {{name: a, path: a, namespace: {namespace}}}\n"),
                 "a/cm.yaml": cm("a", namespace)})  # fmt: skip
    git_repo(repo)

    def ctrl_c(what: str, done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="before any write: nothing was written"):
        run_apply(Settings(repo=repo, kubeconfig=str(kubeconfig)), ApplyOptions(wait=False), progress=ctrl_c)


def test_item18_an_inventory_create_retried_after_a_lost_answer_is_not_another_applier(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    """The first POST of the inventory reaches the API server but its answer is lost (the connection drops): the
    client retries, gets 409 AlreadyExists, finds the stored inventory is exactly what it wrote, and goes on. A
    different inventory stored meanwhile is still refused."""
    core = client.CoreV1Api(api_client)
    lost = []

    def create_then_drop(req: RequestInfo) -> Call | None:
        if req.method != "POST" or not req.path.endswith(f"/namespaces/{namespace}/configmaps") or lost:
            return None
        lost.append(req.seq)
        return Call(lambda: core.create_namespaced_config_map(namespace, json.loads(req.body)), then=Drop())

    oid = ObjectId("", "ConfigMap", namespace, "settings")
    with FaultProxy(kubeconfig) as proxy:
        proxy.on_request(create_then_drop)
        kube = Kube.connect(str(proxy.kubeconfig))
        try:
            stored = inventory.write(kube, inventory.Inventory("t", "app", namespace, frozenset({oid})))
            other = inventory.Inventory("t", "other", namespace, frozenset({oid}))
            core.create_namespaced_config_map(namespace, {"metadata": {"name": other.name}, "data": {"x": "y"}})
            with pytest.raises(LeaseError, match="another applier"):
                inventory.write(kube, other)
        finally:
            kube.close()

    assert lost, "the fault was never injected"
    assert stored.resource_version is not None
    assert inventory.read(Kube.connect(str(kubeconfig)), namespace, "t", "app").objects == {oid}
