"""Row P2: the plan-only identity of deploy/plan-identity.yaml, on the real local cluster.

The manifests are loaded from the file users copy, with names adapted to this test: the test's namespace is both the
allowed application namespace and the inventory namespace (where the ServiceAccount lives); a second namespace is
not allowed; the cluster-scoped objects (policy, binding, ClusterRole and its binding) get unique names and are
removed at the end. The account's token comes from the TokenRequest API, as `kubectl create token` gets it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from tests.conftest import made_namespace
from tests.helpers import cm, config, git_repo, gitops_job, write
from tests.kube import AuditLog, wait_until

MANIFEST = Path(__file__).parent.parent / "deploy" / "plan-identity.yaml"
SA = "gitops-job-plan"
DOC_USER = "system:serviceaccount:gitops-job-system:gitops-job-plan"
POLICY_DENIAL = "ValidatingAdmissionPolicy"


def adapted(ns: str, suffix: str) -> list[dict[str, Any]]:
    """deploy/plan-identity.yaml for this test: namespaces → ``ns``, cluster-scoped names made unique."""
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "Namespace", "ServiceAccount", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
        "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Role", "RoleBinding",
    ], kinds  # fmt: skip
    user = f"system:serviceaccount:{ns}:{SA}"
    out = []
    for doc in docs[1:]:  # the test's namespace stands in for gitops-job-system and apps
        meta = doc["metadata"]
        if "namespace" in meta:
            meta["namespace"] = ns
        else:
            meta["name"] = f"{meta['name']}-{suffix}"
        for subject in doc.get("subjects", []):
            subject["namespace"] = ns
        if doc["kind"] == "ValidatingAdmissionPolicy":
            cond = doc["spec"]["matchConditions"][0]
            assert DOC_USER in cond["expression"]
            cond["expression"] = cond["expression"].replace(DOC_USER, user)
        if doc["kind"] == "ValidatingAdmissionPolicyBinding":
            doc["spec"]["policyName"] = f"{doc['spec']['policyName']}-{suffix}"
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-{suffix}"
        out.append(doc)
    return out


def kubeconfig_for(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig with the admin kubeconfig's server and CA, authenticating with ``token`` only."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    ctx = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == ctx["cluster"])
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "plan",
        "clusters": [{"name": "local", "cluster": cluster["cluster"]}],
        "users": [{"name": "plan", "user": {"token": token}}],
        "contexts": [{"name": "plan", "context": {"cluster": "local", "user": "plan"}}],
    }))  # fmt: skip
    path.chmod(0o600)
    return path


def token_client(api_client: client.ApiClient, token: str) -> client.ApiClient:
    """A Python client to the same server that authenticates with ``token`` instead of the admin certificate."""
    admin = api_client.configuration
    conf = client.Configuration()
    conf.host, conf.ssl_ca_cert, conf.verify_ssl = admin.host, admin.ssl_ca_cert, admin.verify_ssl
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def body_of(e: ApiException) -> dict[str, Any]:
    try:
        return dict(json.loads(e.body))
    except (TypeError, ValueError):
        return {"message": str(e.body)}


def wait_for_policy(plan_core: client.CoreV1Api, admin_core: client.CoreV1Api, ns: str, timeout: float = 30) -> None:
    """Until the policy denies a real write of the plan identity (a new binding takes a moment to take effect)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        name = f"probe-{uuid.uuid4().hex[:6]}"
        try:
            plan_core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
            admin_core.delete_namespaced_config_map(name, ns)  # written: the policy is not active yet
            last = "a real write went through"
        except ApiException as e:
            last = f"HTTP {e.status}: {body_of(e).get('message')}"
            if e.status == 403 and POLICY_DENIAL in last:
                return
        time.sleep(0.3)
    raise AssertionError(f"the policy did not start denying real writes within {timeout}s; last: {last}")


@pytest.fixture
def plan_identity(
    namespace: str, kubeconfig: Path, api_client: client.ApiClient, dyn: DynamicClient, tmp_path: Path
) -> Iterator[tuple[Path, client.ApiClient]]:
    """The manifests applied for ``namespace``; yields a kubeconfig and a Python client with the account's token."""
    suffix = uuid.uuid4().hex[:8]
    docs = adapted(namespace, suffix)
    created: list[dict[str, Any]] = []
    plan_api: client.ApiClient | None = None
    try:
        for doc in docs:
            dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"]).create(
                body=doc, namespace=doc["metadata"].get("namespace")
            )
            created.append(doc)
        admin_core = client.CoreV1Api(api_client)
        request = {"spec": {"expirationSeconds": 600}}
        token = admin_core.create_namespaced_service_account_token(SA, namespace, request).status.token
        plan_api = token_client(api_client, token)
        wait_for_policy(client.CoreV1Api(plan_api), admin_core, namespace)
        yield kubeconfig_for(kubeconfig, token, tmp_path / "plan-kubeconfig"), plan_api
    finally:
        if plan_api is not None:
            plan_api.close()
        for doc in reversed(created):
            if "namespace" not in doc["metadata"]:  # namespaced ones go with the test's namespace
                dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"]).delete(name=doc["metadata"]["name"])


def widen(api_client: client.ApiClient, ns: str) -> None:
    """Bind the plan identity to every verb on every resource in ``ns`` (as if given the apply identity's rights)."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    rules = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    rbac.create_namespaced_role(ns, {"metadata": {"name": "everything"}, "rules": rules})
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "everything"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "everything"},
        "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": ns}],
    })  # fmt: skip


def can_read_namespace(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespace(ns)
    except ApiException as e:
        if e.status != 403:
            raise
        return False
    return True


@pytest.fixture
def other_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A namespace the plan identity has no rights in."""
    with made_namespace(api_client, f"t-p2-other-{uuid.uuid4().hex[:6]}") as name:
        yield name


def committed(root: Path, ns: str, objects: dict[str, str]) -> Path:
    write(root, {"gitops.yaml": config(ns, "  - name: app\n    path: app\n"), **objects})
    git_repo(root)
    return root


def successful(audit: AuditLog, mark: int) -> list[str]:
    """Write requests by gitops-job since ``mark`` that the server accepted (dry-runs included)."""
    events = audit.writes(mark) + audit.writes(mark, dry_run=True)
    return [e["requestURI"] for e in events if (e.get("responseStatus") or {}).get("code", 0) < 400]


def test_plan_identity_plans_but_cannot_write(
    namespace: str,
    plan_identity: tuple[Path, client.ApiClient],
    api_client: client.ApiClient,
    audit: AuditLog,
    tmp_path: Path,
) -> None:
    plan_kubeconfig, plan_api = plan_identity
    admin_core = client.CoreV1Api(api_client)
    repo = committed(tmp_path / "repo", namespace, {"app/a.yaml": cm("a", namespace), "app/b.yaml": cm("b", namespace)})

    # (a) plan works with the plan identity: 2 to create.
    planned = gitops_job(plan_kubeconfig, "plan", "--repo", str(repo))
    assert "2 to create" in planned.stdout, planned.stdout

    # (b) apply with the plan identity: refused, nothing written.
    mark = audit.mark()
    applied = gitops_job(plan_kubeconfig, "apply", "--repo", str(repo), ok=False)
    out = applied.stdout + applied.stderr
    assert applied.returncode == 1, out
    # It stops at its first request that plan does not need (reading the inventory namespace), before any write.
    assert "forbidden" in out and SA in out, out
    real = [e for e in audit.writes(mark) if (e.get("responseStatus") or {}).get("code", 0) < 400]
    assert real == [], f"the plan identity wrote: {[e['requestURI'] for e in real]}\n{out}"
    for name in ("a", "b"):
        with pytest.raises(ApiException) as missing:
            admin_core.read_namespaced_config_map(name, namespace)
        assert missing.value.status == 404

    # (b') Even with RBAC widened to everything in the namespace (a mistaken binding), the policy refuses the writes.
    plan_core = client.CoreV1Api(plan_api)
    widen(api_client, namespace)
    wait_until(lambda: can_read_namespace(plan_core, namespace), 30, "the widened Role to take effect")
    mark = audit.mark()
    applied = gitops_job(plan_kubeconfig, "apply", "--repo", str(repo), ok=False)
    out = applied.stdout + applied.stderr
    assert applied.returncode == 1, out
    assert POLICY_DENIAL in out and "may only dry-run" in out, out
    real = [e for e in audit.writes(mark) if (e.get("responseStatus") or {}).get("code", 0) < 400]
    assert real == [], f"the plan identity wrote: {[e['requestURI'] for e in real]}\n{out}"
    assert not [e for e in audit.writes(mark) if e["objectRef"].get("resource") == "configmaps"]

    # (d) a direct real write with the token: denied by the policy (HTTP 403); the same request as a dry-run passes.
    body = {"metadata": {"name": "direct"}, "data": {"v": "1"}}
    with pytest.raises(ApiException) as denied:
        plan_core.create_namespaced_config_map(namespace, body)
    message = str(body_of(denied.value).get("message"))
    assert denied.value.status == 403, message
    assert POLICY_DENIAL in message and "may only dry-run" in message, message
    dry = plan_core.create_namespaced_config_map(namespace, body, dry_run="All")
    assert dry.metadata.name == "direct"
    with pytest.raises(ApiException) as missing:
        admin_core.read_namespaced_config_map("direct", namespace)
    assert missing.value.status == 404


def plan_outside(ns: str, other: str, plan_kubeconfig: Path, audit: AuditLog, root: Path) -> str:
    """Plan a ConfigMap in ``other`` with the plan identity: refused (exit 1), nothing written; returns the output."""
    repo = committed(root, ns, {"app/x.yaml": cm("x", other)})
    mark = audit.mark()
    planned = gitops_job(plan_kubeconfig, "plan", "--repo", str(repo), ok=False)
    out = planned.stdout + planned.stderr
    assert planned.returncode == 1, out
    assert successful(audit, mark) == []
    return out


def test_plan_identity_cannot_plan_outside_its_namespaces(
    namespace: str, other_namespace: str, plan_identity: tuple[Path, client.ApiClient], audit: AuditLog, tmp_path: Path
) -> None:
    plan_kubeconfig, plan_api = plan_identity

    # (c) plan of an object in a namespace the identity has no Role in: refused by RBAC, naming the namespace.
    out = plan_outside(namespace, other_namespace, plan_kubeconfig, audit, tmp_path / "repo")
    assert "forbidden" in out and f"{SA}" in out and "configmaps" in out and other_namespace in out, out

    # Not even a dry-run gets through there (RBAC, before admission).
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(plan_api).create_namespaced_config_map(
            other_namespace, {"metadata": {"name": "y"}}, dry_run="All"
        )
    assert denied.value.status == 403 and POLICY_DENIAL not in str(denied.value.body)


def test_plan_outside_its_namespaces_names_the_object(
    namespace: str, other_namespace: str, plan_identity: tuple[Path, client.ApiClient], audit: AuditLog, tmp_path: Path
) -> None:
    out = plan_outside(namespace, other_namespace, plan_identity[0], audit, tmp_path / "repo")
    assert f"ConfigMap/{other_namespace}/x" in out, out
