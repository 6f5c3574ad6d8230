"""The fault-injecting proxy, against the real local API server."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from tests.faultproxy import Call, Cut, Drop, FaultProxy, Forward, RequestInfo, Respond, at_nth
from tests.kube import wait_until
from tools.localcluster import build

pytestmark = pytest.mark.cluster

ROOT_CA = "kube-root-ca.crt"  # the controller-manager puts it into every namespace


@pytest.fixture
def proxy(kubeconfig: Path) -> Iterator[FaultProxy]:
    p = FaultProxy(kubeconfig).start()
    try:
        yield p
    finally:
        started = time.monotonic()
        p.stop()
        assert time.monotonic() - started < 2.0


@pytest.fixture
def papi(proxy: FaultProxy) -> Iterator[client.ApiClient]:
    """A python kubernetes client that talks through the proxy."""
    api = config.new_client_from_config(config_file=str(proxy.kubeconfig))
    yield api
    api.close()


def raw(
    proxy: FaultProxy,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request to the proxy with http.client (no retries, no client-side magic)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        resp = c.getresponse()
        return resp.status, resp.msg, resp.read()
    finally:
        if conn is None:
            c.close()


def kubectl(proxy: FaultProxy, cache: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    cmd = [str(build.binary("kubectl")), "--kubeconfig", str(proxy.kubeconfig), "--cache-dir", str(cache), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw)


def configmap_names(api_client: client.ApiClient, namespace: str) -> set[str]:
    items = client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items
    return {cm.metadata.name for cm in items} - {ROOT_CA}


def read_until_closed(resp: http.client.HTTPResponse) -> float:
    """Read a streamed answer until it ends or breaks; how long that took."""
    started = time.monotonic()
    try:
        while resp.read1(65536):
            pass
    except (OSError, http.client.HTTPException):
        pass
    return time.monotonic() - started


# -- forwarding --------------------------------------------------------------------------------------------------------
def test_get_list_create_through_proxy(proxy: FaultProxy, papi: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(papi)
    assert core.read_namespace(namespace).metadata.name == namespace
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "one"}, "data": {"k": "v"}})
    listed = core.list_namespaced_config_map(namespace)
    # (kube-root-ca.crt may or may not be there yet: the controller-manager publishes it after the namespace exists)
    assert "one" in {cm.metadata.name for cm in listed.items}
    assert client.VersionApi(papi).get_code().major

    log = proxy.log
    assert [(r.method, r.status, r.forwarded, r.outcome) for r in log] == [
        ("GET", 200, True, "forwarded"),
        ("POST", 201, True, "forwarded"),
        ("GET", 200, True, "forwarded"),
        ("GET", 200, True, "forwarded"),
    ]
    assert [r.seq for r in log] == sorted(r.seq for r in log)
    assert log[0].path == f"/api/v1/namespaces/{namespace}"
    assert all(r.user_agent and r.user_agent.startswith("OpenAPI-Generator/") for r in log)
    assert [(r.method, r.path) for r in proxy.writes()] == [("POST", f"/api/v1/namespaces/{namespace}/configmaps")]
    proxy.clear_log()
    assert proxy.log == []


def test_server_side_apply_and_dry_run(proxy: FaultProxy, namespace: str, api_client: client.ApiClient) -> None:
    manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: {namespace}\ndata:\n  a: '1'\n"
    path = f"/api/v1/namespaces/{namespace}/configmaps/ssa"
    headers = {"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"}
    status, _, body = raw(proxy, "PATCH", f"{path}?fieldManager=fp-test&dryRun=All", manifest.encode(), headers)
    assert status == 201, body
    assert configmap_names(api_client, namespace) == set()  # dry run: nothing stored
    status, _, body = raw(proxy, "PATCH", f"{path}?fieldManager=fp-test&force=true", manifest.encode(), headers)
    assert status == 201, body
    assert json.loads(body)["data"] == {"a": "1"}

    live = client.CoreV1Api(api_client).read_namespaced_config_map("ssa", namespace)
    assert live.data == {"a": "1"}
    assert [(m.manager, m.operation) for m in live.metadata.managed_fields] == [("fp-test", "Apply")]
    dry, real = proxy.log
    assert (dry.is_dry_run, dry.is_write, dry.query["dryRun"]) == (True, False, "All")
    assert (real.is_dry_run, real.is_write, real.query) == (False, True, {"fieldManager": "fp-test", "force": "true"})
    assert [r.seq for r in proxy.writes()] == [real.seq]


def test_impersonation_passes_through_and_client_authorization_is_dropped(
    proxy: FaultProxy, namespace: str, api_client: client.ApiClient
) -> None:
    # A bogus bearer token from the client is not passed on: the proxy's admin identity is used.
    status, _, _ = raw(proxy, "GET", f"/api/v1/namespaces/{namespace}", headers={"Authorization": "Bearer bogus"})
    assert status == 200

    robot = config.new_client_from_config(config_file=str(proxy.kubeconfig))
    robot.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:robot")
    try:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(robot).list_namespaced_config_map(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:robot" in json.loads(denied.value.body)["message"]

        rbac = client.RbacAuthorizationV1Api(api_client)
        rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "read-cm"}, "rules": [rule]})
        subject = {"kind": "ServiceAccount", "name": "robot", "namespace": namespace}
        role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"}
        rbac.create_namespaced_role_binding(
            namespace, {"metadata": {"name": "robot"}, "subjects": [subject], "roleRef": role_ref}
        )

        def allowed() -> bool:
            try:
                client.CoreV1Api(robot).list_namespaced_config_map(namespace)
            except ApiException as e:
                assert e.status == 403
                return False
            return True

        wait_until(allowed, 10, "the RoleBinding to take effect for the impersonated ServiceAccount")
    finally:
        robot.close()
    assert {r.status for r in proxy.log} >= {200, 403}


def test_watch_streams_events_live(
    proxy: FaultProxy, papi: client.ApiClient, namespace: str, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(papi)
    # Returns once the status line is in, i.e. once the API server has started the watch.
    resp = core.list_namespaced_config_map(namespace, watch=True, timeout_seconds=20, _preload_content=False)
    assert proxy.active_streams == 1
    assert [(r.query.get("watch"), r.status) for r in proxy.log] == [("true", 200)]
    created = time.monotonic()
    client.CoreV1Api(api_client).create_namespaced_config_map(namespace, {"metadata": {"name": "live"}})
    seen = None
    for line in iter_resp_lines(resp):
        event = json.loads(line)
        if event["object"]["metadata"]["name"] == "live":
            seen = time.monotonic()
            break
    assert seen is not None
    assert event["type"] == "ADDED"
    assert seen - created < 3.0  # live, not when the 20 s watch ends

    # The client hangs up mid-stream: the proxy notices, ends the upstream watch and keeps serving.
    resp.close()
    resp.release_conn()
    wait_until(lambda: proxy.active_streams == 0, 3, "the proxy to notice the client hung up")
    assert core.read_namespace(namespace).metadata.name == namespace


# -- faults ------------------------------------------------------------------------------------------------------------
def test_delay(proxy: FaultProxy, papi: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(papi)

    def timed() -> float:
        started = time.monotonic()
        core.read_namespace(namespace)
        return time.monotonic() - started

    assert timed() < 0.4
    proxy.delay(0.5)
    assert 0.5 <= timed() < 1.5
    proxy.delay(0)
    assert timed() < 0.4

    # A client that gives up during the delay: its write never reaches the API server.
    proxy.delay(5)
    impatient = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=0.3)
    body = json.dumps({"metadata": {"name": "never"}}).encode()
    with pytest.raises(TimeoutError):
        raw(proxy, "POST", f"/api/v1/namespaces/{namespace}/configmaps", body, conn=impatient)
    impatient.close()
    wait_until(lambda: proxy.log[-1].outcome == "client-gone", 1, "the proxy to notice the client hung up")
    assert (proxy.log[-1].is_write, proxy.log[-1].forwarded) == (True, False)
    proxy.delay(0)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("never", namespace)
    assert missing.value.status == 404


def test_throttle_answers_429_without_forwarding(proxy: FaultProxy, namespace: str) -> None:
    proxy.throttle(0.5, retry_after=3)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)  # one keep-alive connection
    answers = [raw(proxy, "GET", f"/api/v1/namespaces/{namespace}", conn=conn) for _ in range(4)]
    conn.close()
    assert [status for status, _, _ in answers] == [200, 429, 200, 429]
    _, headers, body = answers[1]
    assert headers["Retry-After"] == "3"
    assert headers["Content-Type"] == "application/json"
    status = json.loads(body)
    assert {k: status[k] for k in ("kind", "apiVersion", "status", "reason", "code")} == {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests", "code": 429,
    }  # fmt: skip
    assert status["details"] == {"retryAfterSeconds": 3}
    assert [(r.status, r.forwarded, r.retry_after, r.outcome) for r in proxy.log] == [
        (200, True, None, "forwarded"),
        (429, False, 3, "throttled"),
        (200, True, None, "forwarded"),
        (429, False, 3, "throttled"),
    ]
    proxy.throttle(1 / 3)
    assert [raw(proxy, "GET", "/version")[0] for _ in range(6)] == [200, 200, 429, 200, 200, 429]
    proxy.throttle(0)
    assert raw(proxy, "GET", "/version")[0] == 200


def test_cut_and_restore(proxy: FaultProxy, papi: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(papi)
    core.read_namespace(namespace)
    kept = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert raw(proxy, "GET", "/version", conn=kept)[0] == 200
    watcher = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    watcher.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=20")
    watch = watcher.getresponse()
    assert watch.status == 200

    proxy.cut()
    assert proxy.is_cut
    assert read_until_closed(watch) < 1.0  # the open watch breaks off
    with pytest.raises((OSError, http.client.HTTPException)):
        raw(proxy, "GET", "/version", conn=kept)  # the kept-alive connection was closed
    started = time.monotonic()
    with pytest.raises((OSError, http.client.HTTPException)):
        raw(proxy, "GET", "/version")  # a new connection is reset
    with pytest.raises((urllib3.exceptions.HTTPError, OSError)):
        core.read_namespace(namespace)
    assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + 2.0  # a reset connection is dropped by its own handler thread, a moment later
    while proxy.connection_count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.connection_count == 0

    proxy.restore()
    assert core.read_namespace(namespace).metadata.name == namespace

    proxy.cut_for(0.5)
    with pytest.raises((OSError, http.client.HTTPException)):
        raw(proxy, "GET", "/version")
    time.sleep(0.6)
    assert not proxy.is_cut
    assert raw(proxy, "GET", "/version")[0] == 200
    watcher.close()
    kept.close()


def test_hooks_respond_forward_and_cut(proxy: FaultProxy, namespace: str) -> None:
    seen: list[RequestInfo] = []

    def hook(req: RequestInfo) -> Respond | Forward | None:
        seen.append(req)
        if req.path == "/teapot":
            return Respond(418, "short and stout", {"Content-Type": "text/plain", "X-Test": "yes"})
        return Forward() if req.path == "/version" else None

    remove = proxy.on_request(hook)
    proxy.throttle(1.0)  # a hook's Forward() skips the throttle; a hook's None does not
    status, headers, body = raw(proxy, "POST", "/teapot?dryRun=All&x=1&x=2", b"{}", {"User-Agent": "fp-test"})
    assert (status, headers["X-Test"], body) == (418, "yes", b"short and stout")
    assert raw(proxy, "GET", "/version")[0] == 200
    assert raw(proxy, "GET", "/healthz")[0] == 429
    req = seen[0]
    assert (req.method, req.path, req.query, req.body, req.user_agent) == (
        "POST", "/teapot", {"dryRun": "All", "x": "1"}, b"{}", "fp-test",
    )  # fmt: skip
    assert (req.is_dry_run, req.is_write, req.target) == (True, False, "/teapot?dryRun=All&x=1&x=2")
    assert [(r.status, r.forwarded, r.outcome) for r in proxy.log] == [
        (418, False, "responded"),
        (200, True, "forwarded"),
        (429, False, "throttled"),
    ]
    remove()
    proxy.reset()

    proxy.on_request(at_nth(2, Drop(), where=lambda r: r.path == "/version"))
    assert raw(proxy, "GET", "/version")[0] == 200
    with pytest.raises((OSError, http.client.HTTPException)):
        raw(proxy, "GET", "/version")
    assert raw(proxy, "GET", "/version")[0] == 200
    assert not proxy.is_cut
    assert [r.outcome for r in proxy.log][-3:] == ["forwarded", "dropped", "forwarded"]

    proxy.reset()
    called: list[int] = []
    proxy.on_request(at_nth(1, Call(lambda: called.append(1), then=Cut(duration=0.4)), where=lambda r: True))
    with pytest.raises((OSError, http.client.HTTPException)):
        raw(proxy, "GET", "/version")
    assert called == [1]
    assert proxy.is_cut
    with pytest.raises((OSError, http.client.HTTPException)):
        raw(proxy, "GET", "/version")
    wait_until(lambda: not proxy.is_cut, 2, "the cut to end by itself")
    assert raw(proxy, "GET", "/version")[0] == 200
    assert [(r.outcome, r.forwarded) for r in proxy.log][-2:] == [("cut", False), ("forwarded", True)]

    def boom(req: RequestInfo) -> None:
        raise RuntimeError("hook bug")

    proxy.reset()
    proxy.on_request(boom)
    assert raw(proxy, "GET", "/version")[0] == 500
    assert [str(e) for e in proxy.errors] == ["hook bug"]


def test_hook_kills_kubectl_at_third_write(
    proxy: FaultProxy, namespace: str, api_client: client.ApiClient, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    names = [f"cm-{i}" for i in range(5)]
    for name in names:
        doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": name}}
        (manifests / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    procs: list[subprocess.Popen[str]] = []
    proxy.on_request(at_nth(3, Call(lambda: os.kill(procs[0].pid, signal.SIGKILL), then=Drop())))
    cmd = [
        str(build.binary("kubectl")), "--kubeconfig", str(proxy.kubeconfig), "--cache-dir", str(tmp_path / "cache"),
        "apply", "--server-side", "-n", namespace, "-f", str(manifests),
    ]  # fmt: skip
    procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    _, err = procs[0].communicate(timeout=30)
    assert procs[0].returncode == -signal.SIGKILL, err

    writes = proxy.writes()
    assert [r.method for r in writes] == ["PATCH", "PATCH"]
    applied = {r.path.rsplit("/", 1)[1] for r in writes}
    assert len(applied) == 2
    assert applied <= set(names)
    attempted = [r for r in proxy.log if r.is_write]
    assert [(r.forwarded, r.outcome) for r in attempted] == [
        (True, "forwarded"),
        (True, "forwarded"),
        (False, "dropped"),
    ]
    assert all(r.user_agent and r.user_agent.startswith("kubectl") for r in attempted)
    assert configmap_names(api_client, namespace) == applied


def test_kubectl_through_proxy(proxy: FaultProxy, namespace: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    got = kubectl(proxy, cache, "get", "namespace", namespace, "-o", "name")
    assert (got.returncode, got.stdout.strip()) == (0, f"namespace/{namespace}"), got.stderr
    made = kubectl(proxy, cache, "-n", namespace, "create", "configmap", "x", "--from-literal=k=v")
    assert made.returncode == 0, made.stderr
    assert [(r.method, r.status) for r in proxy.writes()] == [("POST", 201)]

    # client-go waits out a 429's Retry-After and tries again.
    is_get_x = lambda r: r.method == "GET" and r.path.endswith("/configmaps/x")  # noqa: E731
    proxy.on_request(at_nth(1, Respond.too_many_requests(retry_after=1), where=is_get_x))
    started = time.monotonic()
    got = kubectl(proxy, cache, "-n", namespace, "get", "configmap", "x", "-o", "jsonpath={.data.k}")
    assert (got.returncode, got.stdout) == (0, "v"), got.stderr
    assert time.monotonic() - started >= 1.0
    tries = [r for r in proxy.log if is_get_x(r)]
    assert [(r.status, r.forwarded, r.retry_after) for r in tries] == [(429, False, 1), (200, True, None)]
    assert all(r.user_agent and r.user_agent.startswith("kubectl/") for r in proxy.log)


# -- robustness --------------------------------------------------------------------------------------------------------
def test_stop_is_quick_with_open_connections(kubeconfig: Path, namespace: str) -> None:
    proxy = FaultProxy(kubeconfig).start()
    kept = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert raw(proxy, "GET", "/version", conn=kept)[0] == 200
    watcher = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    watcher.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=30")
    watch = watcher.getresponse()
    assert watch.status == 200
    proxy.delay(30)
    delayed: list[BaseException] = []

    def slow_request() -> None:
        try:
            raw(proxy, "GET", "/version")
        except (OSError, http.client.HTTPException) as e:
            delayed.append(e)

    slow = threading.Thread(target=slow_request)
    slow.start()
    wait_until(lambda: any(r.outcome == "pending" for r in proxy.log), 3, "the delayed request to arrive")

    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2.0
    assert read_until_closed(watch) < 1.0
    slow.join(2)
    assert not slow.is_alive()
    assert len(delayed) == 1
    assert not [t.name for t in threading.enumerate() if t.name.startswith("faultproxy")]
    assert not proxy.kubeconfig.exists()
    watcher.close()
    kept.close()


def test_kubeconfig_with_embedded_credentials(kubeconfig: Path, tmp_path: Path) -> None:
    """The proxy reads the CA and client certificate from ``*-data`` fields as well as from files."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    base = kubeconfig.parent
    for section, keys in (("clusters", ["certificate-authority"]), ("users", ["client-certificate", "client-key"])):
        for entry in cfg[section]:
            inner = entry["cluster" if section == "clusters" else "user"]
            for key in keys:
                if key in inner:  # file → embedded data
                    inner[f"{key}-data"] = base64.b64encode((base / inner.pop(key)).read_bytes()).decode()
                elif f"{key}-data" in inner:  # embedded data → file
                    target = tmp_path / key
                    target.write_bytes(base64.b64decode(inner.pop(f"{key}-data")))
                    inner[key] = str(target)
    converted = tmp_path / "kubeconfig"
    converted.write_text(yaml.safe_dump(cfg))
    with FaultProxy(converted) as proxy:
        status, _, body = raw(proxy, "GET", "/api/v1/namespaces/default")
        assert status == 200, body
