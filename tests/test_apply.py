"""`gitops-job apply` against the real local cluster: the acceptance path on examples/, then one behaviour per test.

Writes are counted in the API server's audit log (tests/kube.py ``AuditLog``): an object write is a PATCH, PUT,
POST or DELETE by gitops-job's user agent on anything but its own bookkeeping (inventory ConfigMap, Lease, Event).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.helpers import EXAMPLES, cm, config, git_repo, gitops_job, object_writes, write
from tests.kube import AuditLog
from tests.kube import crd as make_crd
from tools.localcluster import build


# -- acceptance: examples/ ---------------------------------------------------------------------------------------------
def test_examples_converge_prune_one_file_refuse_empty_and_status(
    tmp_path: Path, kubeconfig: Path, audit: AuditLog, api_client: client.ApiClient
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    rev1 = git_repo(repo)

    first = gitops_job(kubeconfig, "apply", "--repo", str(repo), "-o", "json")
    doc = json.loads(first.stdout)
    assert doc["ok"] and doc["revision"] == rev1
    assert {s["stack"]: s["result"] for s in doc["stacks"]} == dict.fromkeys(
        ["platform", "podinfo-staging", "podinfo-production", "settings", "cache", "secrets"], "succeeded"
    )

    mark = audit.mark()
    again = gitops_job(kubeconfig, "apply", "--repo", str(repo))
    # The same commit again: every stack is in sync, so not even bookkeeping is written (no Lease, record or Event).
    assert audit.writes(mark) == [], "a second apply of the same commit sent write requests"
    assert again.stdout.count("in sync, nothing written") == 6, again.stdout
    assert "created" not in again.stdout and "updated" not in again.stdout

    # Delete one file: exactly that object is pruned.
    (repo / "secrets" / "database.yaml").unlink()
    write(repo, {"secrets/other.yaml": cm("other-settings", "apps-production")})
    rev2 = git_repo(repo)
    mark = audit.mark()
    pruned = gitops_job(kubeconfig, "apply", "--repo", str(repo), "-s", "secrets")
    deletes = [w for w in object_writes(audit, mark) if w.startswith("delete")]
    assert deletes == ["delete secrets/apps-production/database"], pruned.stdout
    assert "pruned     Secret/apps-production/database" in pruned.stdout

    # Empty a stack's directory: refused, nothing written.
    for f in (repo / "secrets").iterdir():
        f.unlink()
    (repo / "secrets" / ".keep").write_text("")
    git_repo(repo)
    mark = audit.mark()
    refused = gitops_job(kubeconfig, "apply", "--repo", str(repo), "-s", "secrets", ok=False)
    assert refused.returncode == 1
    assert "empty render" in refused.stderr and "secrets" in refused.stderr and "--allow-mass-prune" in refused.stderr
    assert audit.writes(mark) == []

    # status tells the truth: the applied revision per stack, health of every object.
    status = json.loads(gitops_job(kubeconfig, "status", "--repo", str(repo), "-o", "json").stdout)
    by_stack = {s["stack"]: s for s in status["stacks"]}
    assert by_stack["secrets"]["revision"] == rev2
    assert by_stack["platform"]["revision"] == rev1
    assert by_stack["podinfo-staging"]["unhealthy"] == []
    client.AppsV1Api(api_client).patch_namespaced_deployment(
        "podinfo", "apps-staging", {"spec": {"template": {"spec": {"nodeSelector": {"no": "such-node"}}}}}
    )
    text = gitops_job(kubeconfig, "status", "--repo", str(repo), "-s", "podinfo-staging").stdout
    assert "Deployment/apps-staging/podinfo" in text, text
    history = gitops_job(kubeconfig, "history", "--repo", str(repo), "secrets").stdout
    assert rev2[:12] in history and rev1[:12] in history
    events = client.CoreV1Api(api_client).list_namespaced_event("gitops-job-system").items
    assert any(e.reason == "ApplySucceeded" and e.involved_object.name == "gitops-job.local.secrets" for e in events)


# -- behaviours --------------------------------------------------------------------------------------------------------
def test_update_and_prune_disabled(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    write(tmp_path, {
        "gitops.yaml": config(namespace, f"  - name: app\n    path: app\n    namespace: {namespace}\n"),
        "app/a.yaml": cm("a", namespace), "app/b.yaml": cm("b", namespace),
        "app/keep.yaml": cm("keep", namespace, annotations={"gitops-job.io/prune": "disabled"}),
    })  # fmt: skip
    rev1 = git_repo(tmp_path)
    gitops_job(kubeconfig, "apply", "--repo", str(tmp_path))
    assert core.read_namespaced_config_map("a", namespace).metadata.annotations["gitops-job.io/revision"] == rev1

    write(tmp_path, {"app/a.yaml": cm("a", namespace, "2")})
    (tmp_path / "app/keep.yaml").unlink()
    rev2 = git_repo(tmp_path)
    out = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path)).stdout
    assert "updated    ConfigMap/" in out and "retained   ConfigMap/" in out, out
    a = core.read_namespaced_config_map("a", namespace)
    assert a.data == {"v": "2"} and a.metadata.annotations["gitops-job.io/revision"] == rev2
    b = core.read_namespaced_config_map("b", namespace)
    assert b.metadata.annotations["gitops-job.io/revision"] == rev1  # unchanged: not written, keeps its revision
    keep = core.read_namespaced_config_map("keep", namespace)
    assert "gitops-job.io/stack" not in (keep.metadata.labels or {})  # retained and disowned


def test_depends_on_order_and_crd_with_its_custom_resource(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog
) -> None:
    group = f"{namespace[-6:]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"gadgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}  # fmt: skip
    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": namespace},
              "spec": {"size": 3}}  # fmt: skip
    write(tmp_path, {
        "gitops.yaml": config(namespace, "  - name: second\n    path: second\n    dependsOn: [first]\n"
                                         "  - name: first\n    path: first\n"),
        "first/crd.yaml": json.dumps(crd), "first/gadget.yaml": json.dumps(gadget),
        "second/cm.yaml": cm("after", namespace),
    })  # fmt: skip
    git_repo(tmp_path)
    mark = audit.mark()
    try:
        gitops_job(kubeconfig, "apply", "--repo", str(tmp_path))
        applies = [f"{e['objectRef'].get('resource')}/{e['objectRef'].get('name')}" for e in audit.writes(mark)
                   if e["verb"] == "patch"]  # fmt: skip
        assert applies.index(f"customresourcedefinitions/gadgets.{group}") < applies.index("gadgets/g")
        assert applies.index("gadgets/g") < applies.index("configmaps/after")
    finally:  # the CRD is cluster-scoped: the test namespace's deletion would not remove it
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        subprocess.run([str(build.binary("kubectl")), "delete", "crd", f"gadgets.{group}", "--wait=false"],
                       env=env, capture_output=True, check=False)  # fmt: skip


def test_health_timeout_names_the_object_and_why(tmp_path: Path, kubeconfig: Path, namespace: str) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": namespace},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "stuck"}},
                           "template": {"metadata": {"labels": {"app": "stuck"}},
                                        "spec": {"nodeSelector": {"no": "such-node"},
                                                 "containers": [{"name": "c", "image": "example/stuck:1"}]},
                                        }}}  # fmt: skip
    write(tmp_path, {
        "gitops.yaml": config(namespace, "  - name: app\n    path: app\n    timeout: 4s\n"),
        "app/d.yaml": json.dumps(deployment),
    })  # fmt: skip
    git_repo(tmp_path)
    result = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), ok=False)
    assert result.returncode == 1
    assert f"Deployment/{namespace}/stuck" in result.stdout and "unavailable" in result.stdout, result.stdout
    assert "wait:" in result.stdout


def test_in_sync_stack_takes_health_from_its_plans_list(tmp_path: Path, kubeconfig: Path, namespace: str) -> None:
    """A stack with nothing to write is waited on from what its plan just listed: no second LIST of its kinds (a
    scheduled run that changes nothing reads each kind once)."""
    labels = {"app": "idle"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "idle", "namespace": namespace},
                  "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {"containers": [{"name": "c", "image": "example/idle:1"}]},
                                        }}}  # fmt: skip
    write(tmp_path, {"gitops.yaml": config(namespace, "  - name: app\n    path: app\n"),
                     "app/d.yaml": json.dumps(deployment)})  # fmt: skip
    git_repo(tmp_path)
    gitops_job(kubeconfig, "apply", "--repo", str(tmp_path))  # waits until the Deployment is current
    waited = json.loads(gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "-o", "json").stdout)
    unwaited = json.loads(gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "--no-wait", "-o", "json").stdout)
    [stack] = waited["stacks"]
    assert stack["health"][f"Deployment/{namespace}/idle"]["state"] == "current", stack
    assert waited["requests"] == unwaited["requests"], "the in-sync wait listed again what the plan had listed"


def test_impersonation_denied_by_rbac_names_object_and_permission(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient, audit: AuditLog
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "deployer"}})
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "read"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]})  # fmt: skip
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "read"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}]})  # fmt: skip
    write(tmp_path, {
        "gitops.yaml": config(namespace, f"  - name: app\n    path: app\n    namespace: {namespace}\n"
                                         "    serviceAccountName: deployer\n"),
        "app/cm.yaml": cm("denied", namespace),
    })  # fmt: skip
    git_repo(tmp_path)
    mark = audit.mark()
    result = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), ok=False)
    message = result.stdout + result.stderr  # denied at the dry-run every apply starts with: before any write
    assert f"ConfigMap/{namespace}/denied" in message, message
    assert f"system:serviceaccount:{namespace}:deployer" in message and "cannot patch" in message
    assert object_writes(audit, mark) == []


# -- issue 11 ----------------------------------------------------------------------------------------------------------
def _delete_crd(kubeconfig: Path, name: str) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run([str(build.binary("kubectl")), "delete", "crd", name, "--wait=false"],
                   env=env, capture_output=True, check=False)  # fmt: skip


@pytest.mark.parametrize("crd_from", ["plain", "helm"])
def test_item06_crd_in_one_stack_and_its_custom_resources_in_a_later_stack_apply_the_first_time(
    crd_from: str, tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    """Flux's layout: stack controllers holds a CRD (a plain manifest, or in a Helm chart's crds/), stack configs
    (dependsOn controllers) a custom resource of it. The first apply creates both: the CRD's kind is served by the
    time configs is applied, through the discovery every stack's connection shares."""
    group = f"{namespace[-6:]}{crd_from}.example.com"
    definition = json.dumps(make_crd(group, "Gizmo", {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}))  # fmt: skip
    if crd_from == "helm":
        controllers = "  - name: controllers\n    path: chart\n    render: helm\n"
        files = {"chart/Chart.yaml": "apiVersion: v2\nname: controllers\nversion: 0.1.0\n",
                 "chart/crds/gizmo.yaml": definition,
                 "chart/templates/cm.yaml": cm("controller", namespace)}  # fmt: skip
    else:
        controllers = "  - name: controllers\n    path: controllers\n"
        files = {"controllers/crd.yaml": definition}
    gizmo = {"apiVersion": f"{group}/v1", "kind": "Gizmo", "metadata": {"name": "g", "namespace": namespace},
             "spec": {"size": 3}}  # fmt: skip
    write(tmp_path, {
        "gitops.yaml": config(namespace, controllers + "  - name: configs\n    path: configs\n"
                                         "    dependsOn: [controllers]\n"),
        "configs/gizmo.yaml": json.dumps(gizmo), **files,
    })  # fmt: skip
    git_repo(tmp_path)
    try:
        result = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "-o", "json", ok=False)
        assert result.returncode == 0, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        assert {s["stack"]: s["result"] for s in doc["stacks"]} == {"controllers": "succeeded", "configs": "succeeded"}
        live = client.CustomObjectsApi(api_client).get_namespaced_custom_object(group, "v1", namespace, "gizmos", "g")
        assert live["spec"] == {"size": 3}
    finally:
        _delete_crd(kubeconfig, f"gizmos.{group}")


def test_item07_apply_dry_runs_the_rest_of_the_stack_once_its_namespace_exists(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog
) -> None:
    """What the schema check leaves to the server (a Deployment without its required selector) is refused by the
    dry-run apply makes right after the Namespace is created: nothing else of the stack is written."""
    new_ns = f"{namespace}-new"
    meta = {"name": "noselector", "namespace": new_ns}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                  "spec": {"template": {"metadata": {"labels": {"a": "b"}},
                                        "spec": {"containers": [{"name": "c", "image": "x"}]}}}}  # fmt: skip
    write(tmp_path, {
        "gitops.yaml": config(namespace, "  - name: app\n    path: app\n"),
        "app/ns.yaml": json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": new_ns}}),
        "app/cm.yaml": cm("settings", new_ns), "app/d.yaml": json.dumps(deployment),
    })  # fmt: skip
    git_repo(tmp_path)
    mark = audit.mark()
    try:
        result = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), ok=False)
        message = result.stdout + result.stderr
        assert result.returncode == 1, message
        assert f"Deployment/{new_ns}/noselector" in message and "refused by the dry-run" in message, message
        assert "spec.selector: Required value" in message, message
        assert object_writes(audit, mark) == [f"patch namespaces/{new_ns}/{new_ns}"]
    finally:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        subprocess.run([str(build.binary("kubectl")), "delete", "namespace", new_ns, "--wait=false"],
                       env=env, capture_output=True, check=False)  # fmt: skip


def test_item10_a_field_ignored_by_json_pointer_and_changed_out_of_band_survives_an_apply(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    """Argo CD's RespectIgnoreDifferences: an ignored field the manifest sets keeps its live value when apply writes
    the object, so apply writes what the plan shows — b, changed by hand, stays; c, still ours, is not dropped."""
    core = client.CoreV1Api(api_client)

    def settings(a: str) -> str:
        meta = {"name": "settings", "namespace": namespace}
        return json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": a, "b": "1", "c": "1"}}
        )

    stack = (f"  - name: app\n    path: app\n    namespace: {namespace}\n    ignoreDifferences:\n"
             "      - kind: ConfigMap\n        name: settings\n        jsonPointers: [/data/b, /data/c]\n")  # fmt: skip
    write(tmp_path, {"gitops.yaml": config(namespace, stack), "app/cm.yaml": settings("1")})
    git_repo(tmp_path)
    gitops_job(kubeconfig, "apply", "--repo", str(tmp_path))
    core.patch_namespaced_config_map("settings", namespace, {"data": {"b": "by hand"}}, field_manager="someone")

    write(tmp_path, {"app/cm.yaml": settings("2")})
    git_repo(tmp_path)
    plan = json.loads(gitops_job(kubeconfig, "plan", "--repo", str(tmp_path), "-o", "json").stdout)
    (entry,) = [e for e in plan["objects"] if e["id"].endswith("/settings")]
    assert entry["action"] == "update" and not entry.get("conflicts"), entry
    gitops_job(kubeconfig, "apply", "--repo", str(tmp_path))
    assert core.read_namespaced_config_map("settings", namespace).data == {"a": "2", "b": "by hand", "c": "1"}


def test_item07_after_writing_a_crd_apply_dry_runs_the_rest_before_writing_any_of_it(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog
) -> None:
    """A CRD update that tightens its schema (size at most 5) and a custom resource changed to size 10 in one commit:
    the plan's dry-run of the resource ran against the old schema and passed. Once the CRD is written, apply
    dry-runs the rest of the stack again, so the resource is refused before the ConfigMap beside it is written."""
    group = f"{namespace[-6:]}.example.com"

    def definition(maximum: int | None) -> str:
        size: dict[str, Any] = {"type": "integer", **({"maximum": maximum} if maximum else {})}
        spec = {"type": "object", "properties": {"size": size}}
        return json.dumps(make_crd(group, "Gizmo", {"type": "object", "properties": {"spec": spec}}))

    def gizmo(size: int) -> str:
        meta = {"name": "g", "namespace": namespace}
        return json.dumps({"apiVersion": f"{group}/v1", "kind": "Gizmo", "metadata": meta, "spec": {"size": size}})

    stack = "  - name: app\n    path: app\n"
    write(tmp_path, {"gitops.yaml": config(namespace, stack), "app/crd.yaml": definition(None), "app/g.yaml": gizmo(3),
                     "app/cm.yaml": cm("beside", namespace)})  # fmt: skip
    git_repo(tmp_path)
    try:
        gitops_job(kubeconfig, "apply", "--repo", str(tmp_path))
        write(
            tmp_path,
            {"app/crd.yaml": definition(5), "app/g.yaml": gizmo(10), "app/cm.yaml": cm("beside", namespace, "2")},
        )
        git_repo(tmp_path)
        mark = audit.mark()
        result = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), ok=False)
        message = result.stdout + result.stderr
        assert result.returncode == 1, message
        assert f"Gizmo/{namespace}/g" in message and "refused by the dry-run" in message, message
        assert "spec.size: Invalid value: 10" in message, message
        assert object_writes(audit, mark) == [f"patch customresourcedefinitions//gizmos.{group}"]
    finally:
        _delete_crd(kubeconfig, f"gizmos.{group}")
