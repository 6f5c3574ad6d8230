"""Smoke tests that prove the local control plane is a real Kubernetes: scheduling and kwok pods, server-side apply and
dry-run, RBAC with ServiceAccount tokens, CRDs, and a clear failure when the API server dies."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from tests.kube import condition, wait_until
from tests.kube import crd as make_crd
from tools.localcluster.audit import complete_lines
from tools.localcluster.cluster import CLIENT_RATE, ClusterError, LocalCluster

MANAGER = "gitops-job-test"


def deployment(name: str, replicas: int = 3) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
            },
        },
    }


def test_server_side_applied_deployment_becomes_available(dyn: DynamicClient, namespace: str) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    applied = dyn.server_side_apply(deployments, body=deployment("web"), namespace=namespace, field_manager=MANAGER)
    managers = {m["manager"] for m in applied.to_dict()["metadata"]["managedFields"]}
    assert MANAGER in managers

    def available() -> dict | None:
        live = deployments.get(name="web", namespace=namespace).to_dict()
        ok = condition(live, "Available") == "True" and live["status"].get("availableReplicas") == 3
        return live if ok else None

    wait_until(available, 60, "Deployment web to become Available with 3 replicas")
    pods = dyn.resources.get(api_version="v1", kind="Pod").get(namespace=namespace, label_selector="app=web").to_dict()
    assert len(pods["items"]) == 3
    for pod in pods["items"]:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] == "kwok-node-0"  # placed by the real scheduler, run by kwok


def test_server_side_dry_run_returns_defaults_and_persists_nothing(dyn: DynamicClient, namespace: str) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    result = dyn.server_side_apply(
        deployments, body=deployment("dry", replicas=1), namespace=namespace, field_manager=MANAGER, dry_run="All"
    ).to_dict()
    # Fields the server sets by defaulting, none of which the request carried.
    assert result["spec"]["strategy"]["type"] == "RollingUpdate"
    assert result["spec"]["progressDeadlineSeconds"] == 600
    assert result["spec"]["revisionHistoryLimit"] == 10
    container = result["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert result["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert result["metadata"]["uid"]

    with pytest.raises(NotFoundError):
        deployments.get(name="dry", namespace=namespace)
    assert deployments.get(namespace=namespace).to_dict()["items"] == []


def test_service_account_forbidden_until_role_binding(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    token = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token

    cfg = client.Configuration()
    cfg.host = api_client.configuration.host
    cfg.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    cfg.api_key = {"BearerToken": token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    with client.ApiClient(cfg) as sa_client:
        sa_core = client.CoreV1Api(sa_client)
        with pytest.raises(ApiException) as denied:
            sa_core.list_namespaced_config_map(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in denied.value.body

        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "cm-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "cm-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )

        def allowed() -> bool:
            try:
                sa_core.list_namespaced_config_map(namespace)
            except ApiException as e:
                assert e.status == 403
                return False
            return True

        wait_until(allowed, 10, "the RoleBinding to grant listing ConfigMaps")
        with pytest.raises(ApiException) as still_denied:  # the grant is exactly what the Role says
            sa_core.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


def test_crd_becomes_established_and_custom_resource_applies(dyn: DynamicClient, namespace: str) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
    }
    crd = make_crd(group, "Widget", schema)
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    dyn.server_side_apply(crds, body=crd, field_manager=MANAGER)
    try:
        wait_until(
            lambda: condition(crds.get(name=crd["metadata"]["name"]).to_dict(), "Established") == "True",
            30,
            "the CRD to become Established",
        )
        widgets = wait_until(lambda: _discover(dyn, f"{group}/v1", "Widget"), 30, "discovery to serve Widget")
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
        dyn.server_side_apply(widgets, body=widget, namespace=namespace, field_manager=MANAGER)
        assert widgets.get(name="w1", namespace=namespace).to_dict()["spec"] == {"size": 3}
        # The CRD's schema is enforced. Server-side apply reports a type mismatch as HTTP 500 "failed to create typed
        # patch object" (a fact the plan engine must classify as invalid input); a create reports it as 422.
        bad = {**widget, "metadata": {"name": "w2"}, "spec": {"size": "three"}}
        with pytest.raises(ApiException) as by_apply:
            dyn.server_side_apply(widgets, body=bad, namespace=namespace, field_manager=MANAGER)
        assert by_apply.value.status == 500
        assert "failed to create typed patch object" in by_apply.value.body
        assert ".spec.size: expected numeric" in by_apply.value.body
        with pytest.raises(ApiException) as by_create:
            widgets.create(body=bad, namespace=namespace)
        assert by_create.value.status == 422
        with pytest.raises(NotFoundError):
            widgets.get(name="w2", namespace=namespace)
    finally:
        crds.delete(name=crd["metadata"]["name"])


def _discover(dyn: DynamicClient, api_version: str, kind: str):  # type: ignore[no-untyped-def]
    try:
        dyn.resources.invalidate_cache()
        return dyn.resources.get(api_version=api_version, kind=kind)
    except Exception:
        return None


@pytest.mark.cluster  # starts a control plane of its own
def test_killed_apiserver_gives_clear_connection_error_not_a_hang(tmp_path: Path) -> None:
    """A second cluster beside the session's one; its API server is killed and a call fails at once, clearly."""
    cluster = LocalCluster(tmp_path / "second")
    cluster.up()
    try:
        from kubernetes import config

        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = client.CoreV1Api(api)
        assert any(ns.metadata.name == "default" for ns in core.list_namespace().items)
        cluster.kill("kube-apiserver")

        started = time.monotonic()
        with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
            core.list_namespace(_request_timeout=5)
        elapsed = time.monotonic() - started
        assert "Connection refused" in str(err.value.reason)
        assert elapsed < 10, f"a dead API server took {elapsed:.1f}s to report"
        api.close()
    finally:
        cluster.down()
    assert not any(p.alive for p in cluster.status())


@pytest.mark.cluster  # starts a control plane of its own
def test_launcher_timeout_names_component_shows_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "slow")
    with pytest.raises(ClusterError) as err:
        cluster.up(timeout=0.01)  # far too short for kube-apiserver to become ready
    message = str(err.value)
    assert "kube-apiserver" in message
    assert "lines of" in message  # the tail of the component's log follows
    assert cluster.status() == []
    # etcd and kube-apiserver both carry the state directory on their command lines.
    leftovers = subprocess.run(["pgrep", "-af", str(cluster.state_dir)], capture_output=True, text=True).stdout
    assert leftovers == "", f"processes of the failed cluster still run:\n{leftovers}"


@pytest.mark.cluster  # starts a control plane of its own
def test_cluster_cli_up_status_down(tmp_path: Path) -> None:
    """The launcher's command line, as `make cluster-up` / `make cluster-down` call it."""
    state = tmp_path / "cli"
    run = [sys.executable, "-m", "tools.localcluster"]
    up = subprocess.run([*run, "up", "--state-dir", str(state)], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == str(state / "kubeconfig")
    try:
        status = subprocess.run([*run, "status", "--state-dir", str(state)], capture_output=True, text=True)
        assert status.returncode == 0
        assert status.stdout.count("running") == 5
    finally:
        down = subprocess.run([*run, "down", "--state-dir", str(state)], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0
    assert "stopped: kwok, kube-scheduler, kube-controller-manager, kube-apiserver, etcd" in down.stdout
    assert subprocess.run(["pgrep", "-f", str(state)], capture_output=True).returncode == 1  # nothing left
    status = subprocess.run([*run, "status", "--state-dir", str(state)], capture_output=True, text=True)
    assert status.returncode == 1


def test_item20_audit_reader_reads_complete_lines_only(tmp_path: Path) -> None:
    """A mark that falls inside a line, and a last line the server is still writing, never reach json.loads."""
    log = tmp_path / "audit.log"
    first, second, third = (json.dumps({"n": n, "pad": "x" * 50}).encode() + b"\n" for n in (1, 2, 3))
    log.write_bytes(first + second[:20])  # the server is halfway through the second event
    mark = log.stat().st_size  # a mark taken now falls inside the second line
    assert complete_lines(log, 0, settle=0.0) == [first.rstrip()]  # the half line is left out, not parsed

    with log.open("ab") as f:
        f.write(second[20:] + third[:10])  # the second is done; the third is being written

    def finish() -> None:
        time.sleep(0.2)
        with log.open("ab") as f:
            f.write(third[10:])

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        lines = complete_lines(log, mark, settle=5.0)  # waits for the line being written, then reads it whole
    finally:
        writer.join()
    assert [json.loads(line)["n"] for line in lines] == [3]  # the second began before the mark: not ours
    assert [json.loads(line)["n"] for line in complete_lines(log, len(first))] == [2, 3]


def test_item20_controllers_get_realistic_client_rates(kubeconfig: Path) -> None:
    """The controller-manager and scheduler talk to the API server at CLIENT_RATE, not client-go's 20 QPS default."""
    pids = LocalCluster(kubeconfig.parent).state()["processes"]
    if not pids:
        pytest.skip("the suite runs against a cluster not started by tools.localcluster")
    for name in ("kube-controller-manager", "kube-scheduler"):
        args = Path(f"/proc/{pids[name]}/cmdline").read_bytes().decode().split("\0")
        assert set(CLIENT_RATE) <= set(args), f"{name} runs with {args}"
