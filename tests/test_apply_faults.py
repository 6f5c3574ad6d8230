"""Fault, concurrency, bad-input and load rows of the reliability test table: F1 F2 F4 F5 F6 C3 C4 V7 V8 V9 V10 V11
L2, each against the real local control plane.

Faults are injected by ``tests.faultproxy.FaultProxy`` between ``gitops-job`` (run as a subprocess, as a user runs it)
and the API server. After each fault the test checks oracle O:

* O1 — exit 1 and one error naming the phase, the object and the reason (:func:`check_o1`, checked last so that a
  failing O1 never hides the state checks);
* O2 — no object that existed before the run was deleted (except the prune candidates a row lets go);
* O3 — every object the run wrote (per the API server's audit log) carries the run's revision, and every object of
  the stack holds exactly the content of the revision its ``gitops-job.io/revision`` annotation names (no object is
  a mix of two revisions);
* O4 — the inventory lists every live object labelled with our target and stack;
* O6 — a re-run without the fault converges, and the run after that makes zero object writes (audit log: nothing
  but the run's own bookkeeping — inventory ConfigMap, Lease, Event).

O5 (no secret in any output) is not exercised here: these stacks hold no secrets (see the S rows' tests).

Every test has its own namespace, which also holds the stack's inventory and Lease (``inventoryNamespace``), so
tests never share state. Known product bugs are recorded as ``xfail(strict=True, raises=ProductBug)``: only the
oracle check the bug breaks raises :class:`ProductBug`, so any *other* failure in such a test still fails the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from gitops_job.reconcile.context import Settings
from gitops_job.reconcile.run import ApplyOptions, run_apply
from tests.faultproxy import Call, Cut, Drop, FaultProxy, RequestInfo, at_nth
from tests.helpers import SCRIPT
from tests.kube import AuditLog, crd, wait_until

pytestmark = pytest.mark.cluster

TARGET, STACK = "t", "app"
OURS = f"gitops-job.io/target={TARGET},gitops-job.io/stack={STACK}"
REVISION = "gitops-job.io/revision"
INVENTORY = f"gitops-job.{TARGET}.{STACK}"
# Kinds a stack here may hold in the test namespace: kind -> (apiVersion, API group, audit resource name).
KINDS = {
    "ConfigMap": ("v1", "", "configmaps"),
    "Secret": ("v1", "", "secrets"),
    "Service": ("v1", "", "services"),
    "Deployment": ("apps/v1", "apps", "deployments"),
    "PersistentVolumeClaim": ("v1", "", "persistentvolumeclaims"),
}
KIND_OF_RESOURCE = {resource: kind for kind, (_, _, resource) in KINDS.items()}
# The client's retry budget for a refused connection (gitops_job.kube.Kube.request): 4 retries after sleeps of
# 0.5·2^n·U(0.5, 1) s for n = 0..3, i.e. at most 7.5 s (each refused attempt itself fails at once).
RETRY_BUDGET = 7.5

Key = tuple[str, str]  # (kind, name) of an object in the test namespace


class ProductBug(AssertionError):
    """An oracle check failed in the way a known product bug predicts (see the test's xfail reason)."""


def known_bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, raises=ProductBug, reason=reason)


# -- manifests ---------------------------------------------------------------------------------------------------------
def cm(name: str, value: str, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": value}}


def cms(names: Iterable[str], value: str) -> list[dict[str, Any]]:
    return [cm(n, value) for n in names]


def deployment(name: str, app: str, *, replicas: int | None = None, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": app}},
        "template": {
            "metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": "registry.example.invalid/app:1"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def names(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}-{i:02d}" for i in range(start, start + n)]


# -- one test's repo, cluster view and CLI ---------------------------------------------------------------------------
@dataclass
class Env:
    """A repo with one stack (``app``) putting objects into the test namespace, and what the cluster says about it."""

    root: Path
    ns: str
    kubeconfig: Path
    audit: AuditLog
    api: client.ApiClient
    dyn: DynamicClient
    revs: dict[str, dict[Key, dict[str, Any]]] = field(default_factory=dict)  # revision -> manifests by key
    cluster_names: set[str] = field(default_factory=set)  # cluster-scoped objects the test owns (audit filter)

    # -- the repo --------------------------------------------------------------------------------------------------
    def write(self, revision: str, objects: list[dict[str, Any]], stack: str = "") -> None:
        """Make the stack's directory hold exactly ``objects`` (one file each) and remember them as ``revision``."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "gitops.yaml").write_text(
            f"targets:\n  - name: {TARGET}\n    inventoryNamespace: {self.ns}\n"
            f"stacks:\n  - name: {STACK}\n    path: app\n    namespace: {self.ns}\n{stack}"
        )
        app = self.root / "app"
        shutil.rmtree(app, ignore_errors=True)
        app.mkdir(parents=True)
        for obj in objects:
            (app / f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml").write_text(json.dumps(obj, indent=1))
        self.revs[revision] = {(o["kind"], o["metadata"]["name"]): o for o in objects}

    # -- the CLI ---------------------------------------------------------------------------------------------------
    def cli(self, *args: str, via: FaultProxy | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout, env=self.environ(via))

    def popen(self, *args: str, via: FaultProxy) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.environ(via)
        )

    def environ(self, via: FaultProxy | None) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(via.kubeconfig if via else self.kubeconfig)}

    def apply_args(self, revision: str, *extra: str) -> list[str]:
        return ["apply", "--repo", str(self.root), "--revision", revision, "-o", "json", *extra]

    def apply(
        self, revision: str, *extra: str, via: FaultProxy | None = None, ok: bool | None = True
    ) -> subprocess.CompletedProcess[str]:
        result = self.cli(*self.apply_args(revision, *extra), via=via)
        if ok is not None:
            assert (result.returncode == 0) == ok, output(result)
        return result

    def plan(self) -> subprocess.CompletedProcess[str]:
        return self.cli("plan", "--repo", str(self.root), "-o", "json")

    def break_lease(self) -> str:
        """``gitops-job break-lease``: what the docs prescribe after a killed run, instead of waiting out its Lease."""
        result = self.cli("break-lease", "--repo", str(self.root))
        assert result.returncode == 0, output(result)
        return result.stdout

    # -- the cluster -----------------------------------------------------------------------------------------------
    def resource(self, kind: str) -> Any:
        return self.dyn.resources.get(api_version=KINDS[kind][0], kind=kind)

    def objects(
        self, kinds: Iterable[str] = ("ConfigMap", "Deployment"), selector: str | None = None
    ) -> dict[Key, dict[str, Any]]:
        """Live objects of ``kinds`` in the namespace (bookkeeping excluded), by key, as plain dicts."""
        found: dict[Key, dict[str, Any]] = {}
        for kind in kinds:
            for item in self.resource(kind).get(namespace=self.ns, label_selector=selector).items:
                obj = item.to_dict()
                name = obj["metadata"]["name"]
                if name == "kube-root-ca.crt" or name.startswith("gitops-job."):
                    continue
                found[(kind, name)] = obj
        return found

    def live(self, kinds: Iterable[str] = ("ConfigMap", "Deployment")) -> dict[Key, dict[str, Any]]:
        """Live objects labelled with our target and stack."""
        return self.objects(kinds, OURS)

    def uids(self, kinds: Iterable[str] = ("ConfigMap", "Deployment")) -> dict[Key, str]:
        return {k: o["metadata"]["uid"] for k, o in self.objects(kinds).items()}

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.resource(kind).get(name=name, namespace=self.ns).to_dict())
        except NotFoundError:
            return None

    def inventory(self) -> dict[str, Any]:
        cm_ = client.CoreV1Api(self.api).read_namespaced_config_map(INVENTORY, self.ns)
        return dict(json.loads(cm_.data["inventory.json"]))

    def inventory_keys(self) -> set[Key]:
        return {(kind, name) for _, kind, ns, name in self.inventory()["objects"] if ns == self.ns}

    def object_writes(self, mark: int) -> list[tuple[str, Key, int]]:
        """gitops-job's write requests since ``mark`` to the stack's objects (bookkeeping excluded), from the audit
        log: ``(verb, (kind, name), HTTP status)``, denied ones included."""
        found = []
        for e in self.audit.writes(mark):
            ref = e.get("objectRef") or {}
            resource, name, namespace = ref.get("resource", ""), ref.get("name", ""), ref.get("namespace")
            if namespace != self.ns and not (namespace is None and name in self.cluster_names):
                continue
            if resource in ("leases", "events") or (resource == "configmaps" and name.startswith("gitops-job.")):
                continue
            code = int((e.get("responseStatus") or {}).get("code") or 0)
            found.append((e["verb"], (KIND_OF_RESOURCE.get(resource, resource), name), code))
        return found

    def all_writes(self, mark: int) -> list[str]:
        """Every write request by gitops-job since ``mark`` that touched this test's namespace or objects."""
        return [
            f"{e['verb']} {(e.get('objectRef') or {}).get('resource')}/{(e.get('objectRef') or {}).get('name')}"
            for e in self.audit.writes(mark)
            if (e.get("objectRef") or {}).get("namespace") == self.ns
            or (e.get("objectRef") or {}).get("name") in self.cluster_names
        ]

    def steal_lease(self, holder: str) -> None:
        """Another applier takes the stack's Lease: a plain PUT naming another holder (as after an expiry)."""
        api = client.CoordinationV1Api(self.api)
        lease = api.read_namespaced_lease(INVENTORY, self.ns)
        lease.spec.holder_identity = holder
        lease.spec.renew_time = datetime.now(UTC)
        lease.spec.lease_transitions = (lease.spec.lease_transitions or 0) + 1
        api.replace_namespaced_lease(INVENTORY, self.ns, lease)

    def free_lease(self) -> None:
        api = client.CoordinationV1Api(self.api)
        lease = api.read_namespaced_lease(INVENTORY, self.ns)
        lease.spec.holder_identity = None
        api.replace_namespaced_lease(INVENTORY, self.ns, lease)


@pytest.fixture
def env(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog, api_client: client.ApiClient, dyn: DynamicClient
) -> Env:
    return Env(tmp_path / "repo", namespace, kubeconfig, audit, api_client, dyn)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return dict(json.loads(result.stdout))


def stack_objects(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    """The ``objects`` rows of the stack in ``apply -o json`` output: ``{result, object}``."""
    return [o for s in report(result)["stacks"] for o in s["objects"]]


def error_message(result: subprocess.CompletedProcess[str]) -> str:
    """The run's error: the failed stack's ``error`` from ``-o json``, else the ``error:`` the CLI printed."""
    with contextlib.suppress(ValueError):
        errors = [s["error"] for s in report(result)["stacks"] if s.get("error")]
        if errors:
            return "\n".join(errors)
    return result.stderr.strip().removeprefix("error: ")


def is_apply_write(req: RequestInfo) -> bool:
    """A server-side apply of a stack object (not a dry-run, not bookkeeping)."""
    return req.is_write and req.method == "PATCH" and req.query.get("fieldManager") == "gitops-job"


def is_object_delete(req: RequestInfo) -> bool:
    return req.is_write and req.method == "DELETE" and "/leases/" not in req.path


# -- oracle O ----------------------------------------------------------------------------------------------------------
def content(obj: dict[str, Any]) -> Any:
    """The part of an object a revision decides (compared across revisions); None where the test does not care."""
    return obj.get("data") if obj.get("kind") == "ConfigMap" else None


def check_oracle(
    env: Env,
    *,
    revision: str,
    before: dict[Key, str],
    mark: int,
    may_delete: Iterable[Key] = (),
    kinds: Iterable[str] = ("ConfigMap", "Deployment"),
) -> None:
    """O2, O3 and O4 right after a run at ``revision`` that started at audit ``mark`` with ``before`` (uids) live."""
    kinds = tuple(kinds)
    now = env.uids(kinds)
    # O2: nothing that existed before the run was deleted (or replaced), except what the row lets go.
    lost = sorted(k for k, uid in before.items() if k not in set(may_delete) and now.get(k) != uid)
    assert not lost, f"O2: objects that existed before the run were deleted: {lost}"
    # O3: what the run wrote carries its revision; every object holds exactly one revision's content.
    live = env.live(kinds)
    written = {key for verb, key, code in env.object_writes(mark) if verb in ("patch", "create", "update")
               and code < 300}  # fmt: skip
    for key in sorted(written):
        if key in live:
            got = (live[key]["metadata"].get("annotations") or {}).get(REVISION)
            assert got == revision, f"O3: {key} was written by the run at {revision} but is stamped {got}"
    for key, obj in sorted(live.items()):
        rev = (obj["metadata"].get("annotations") or {}).get(REVISION)
        assert rev in env.revs, f"O3: {key} carries revision {rev!r}, not one the repo had"
        desired = env.revs[rev].get(key)
        assert desired is not None, f"O3: {key} is stamped {rev} but revision {rev} has no such object"
        assert content(obj) == content(desired), f"O3: {key} is stamped {rev} but holds {content(obj)!r}"
    # O4: the inventory lists every live object that carries our ownership labels.
    unlisted = sorted(set(live) - env.inventory_keys())
    assert not unlisted, f"O4: labelled objects missing from the inventory: {unlisted}"


def check_converges(
    env: Env, revision: str, *extra: str, kinds: Iterable[str] = ("ConfigMap", "Deployment")
) -> subprocess.CompletedProcess[str]:
    """O6: without the fault, a re-run reaches ``revision`` exactly; the run after it writes no object."""
    env.apply(revision, "--lock-timeout", "60", *extra)
    live = env.live(kinds)
    wanted = env.revs[revision]
    assert set(live) == set(wanted), f"O6: live {sorted(live)} != rendered {sorted(wanted)}"
    for key, obj in live.items():
        assert content(obj) == content(wanted[key]), f"O6: {key} holds {content(obj)!r}"
    assert env.inventory_keys() == set(wanted)
    assert env.inventory()["revision"] == revision
    mark = env.audit.mark()
    again = env.apply(revision, *extra)
    assert env.object_writes(mark) == [], "O6: the run after convergence wrote to objects"
    return again


def check_o1(result: subprocess.CompletedProcess[str], phase: str, *fragments: str) -> str:
    """O1: exit 1 and one error that starts with ``phase`` and names ``fragments`` (the object and the reason)."""
    assert result.returncode == 1, output(result)
    message = error_message(result)
    if not message.startswith(f"{phase}: ") or any(f not in message for f in fragments):
        raise ProductBug(f"O1: expected a {phase!r} error naming {fragments}, got:\n{message}")
    return message


# -- F1 ----------------------------------------------------------------------------------------------------------------
def test_f1_connection_cut_mid_apply_aborts_before_prune(env: Env) -> None:
    """F1. The connection is cut when the 5th of 10 apply writes arrives (40 % are through) and refused for 10 s.

    The table says 60 s; the client's whole retry budget for a refused connection is at most 7.5 s
    (:data:`RETRY_BUDGET`), so 10 s exhausts it just the same and keeps the test short. ``--concurrency 1`` makes
    "the first 40 %" exact. Revision B updates 8 objects, creates 2 and drops 2: the dropped ones must survive.
    """
    env.write("A", cms(names("cm", 10), "A"))
    env.apply("A")
    env.write("B", [*cms(names("cm", 8), "B"), *cms(names("cm", 2, start=10), "B")])
    before, mark = env.uids(), env.audit.mark()
    with FaultProxy(env.kubeconfig) as proxy:
        proxy.on_request(at_nth(5, Cut(RETRY_BUDGET + 2.5), where=is_apply_write))
        started = time.monotonic()
        result = env.apply("B", "--concurrency", "1", via=proxy, ok=False)
        elapsed = time.monotonic() - started
        applied = [r for r in proxy.log if r.is_write and r.method == "PATCH" and r.outcome == "forwarded"]
        cut = [r for r in proxy.log if r.outcome == "cut"]
    assert result.returncode == 1, output(result)
    assert elapsed >= RETRY_BUDGET / 2, "the run gave up before retrying"
    assert len(cut) == 1, [(r.method, r.path, r.outcome) for r in proxy.log]
    # 4 writes went through before the cut. (The one the single worker had already taken when the cut write failed
    # is still sent — it keeps retrying until the connection comes back — and O3 checks it like every write.)
    assert len([r for r in applied if r.seq < cut[0].seq]) == 4, [(r.method, r.path, r.outcome) for r in proxy.log]
    assert not [w for w in env.object_writes(mark) if w[0] == "delete"], "pruned after a failed apply"
    assert env.get("ConfigMap", "cm-08") is not None and env.get("ConfigMap", "cm-09") is not None
    check_oracle(env, revision="B", before=before, mark=mark)
    assert env.inventory()["revision"] == "A", "a failed run recorded its revision as applied"
    check_converges(env, "B")
    check_o1(result, "apply", f"ConfigMap/{env.ns}/{cut[0].path.rsplit('/', 1)[1]}", "cannot reach")


# -- F2 ----------------------------------------------------------------------------------------------------------------
def _kill_at_half_of_applies(kill: Callable[[], None]) -> Callable[[RequestInfo], Any]:
    return at_nth(5, Call(kill, then=Drop()), where=is_apply_write)  # 8 apply writes: 4 are through


def _kill_before_first_delete(kill: Callable[[], None]) -> Callable[[RequestInfo], Any]:
    return at_nth(1, Call(kill, then=Drop()), where=is_object_delete)


def _kill_after_first_delete(kill: Callable[[], None]) -> Callable[[RequestInfo], Any]:
    return at_nth(2, Call(kill, then=Drop()), where=is_object_delete)


@pytest.mark.parametrize(
    ("when", "hook", "deleted"),
    [
        ("a_after_half_of_applies", _kill_at_half_of_applies, 0),
        ("b_before_first_delete", _kill_before_first_delete, 0),
        ("c_after_first_delete", _kill_after_first_delete, 1),
    ],
    ids=["a_after_half_of_applies", "b_before_first_delete", "c_after_first_delete"],
)
def test_f2_sigkill_leaves_no_orphan_and_next_run_converges(
    env: Env, when: str, hook: Callable[[Callable[[], None]], Any], deleted: int
) -> None:
    """F2. The process is SIGKILLed (a) when its 5th of 8 apply writes arrives, (b) at its first prune DELETE,
    (c) at its second DELETE (the first went through). Revision B updates 6, creates 2, drops 4 of 10.

    Right after the kill: the write-ahead inventory lists every labelled object (the new ones included), nothing
    that stays in git is lost. The killed run's Lease is broken with ``gitops-job break-lease`` (the documented remedy
    for a killed job; waiting out its 30 s ttl would do the same, slower); the next run converges.
    """
    env.write("A", cms(names("cm", 10), "A"))
    env.apply("A")
    env.write("B", [*cms(names("cm", 6), "B"), *cms(names("cm", 2, start=10), "B")])
    dropped = {("ConfigMap", n) for n in names("cm", 4, start=6)}
    before, mark = env.uids(), env.audit.mark()
    with FaultProxy(env.kubeconfig) as proxy:
        proc = env.popen(*env.apply_args("B", "--concurrency", "1"), via=proxy)
        proxy.on_request(hook(lambda: os.kill(proc.pid, signal.SIGKILL)))
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"{when}: the run ended on its own ({proc.returncode})"
    gone = sorted(k for k in before if k not in env.uids())
    assert len(gone) == deleted and set(gone) <= dropped, gone
    check_oracle(env, revision="B", before=before, mark=mark, may_delete=dropped)
    assert set(env.revs["B"]) <= env.inventory_keys(), "the write-ahead inventory misses new objects"
    assert f"stack {STACK}: lease held by" in env.break_lease(), "the killed run's lease was not held"
    check_converges(env, "B")


# -- F4 ----------------------------------------------------------------------------------------------------------------
def _deny_deletes_policy(ns: str, protected: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    name = f"deny-delete-{ns}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["configmaps"]}
                ]
            },
            "validations": [
                {"expression": f"!(request.name in {json.dumps(protected)})", "message": "deleting it is forbidden"}
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
        },
    }
    return policy, binding


def _delete_denied(env: Env, name: str) -> bool:
    try:
        client.CoreV1Api(env.api).delete_namespaced_config_map(name, env.ns, dry_run="All")
    except ApiException as e:
        if "deleting it is forbidden" in str(e.body):
            return True
        raise
    return False


def test_f4_admission_policy_denies_prune_deletes(env: Env) -> None:
    """F4. A ValidatingAdmissionPolicy denies DELETE of 3 ConfigMaps that leave git: prune fails naming them and
    they stay in the inventory; once the policy is gone, a re-run deletes them."""
    stale = names("stale", 3)
    env.write("A", [*cms(names("keep", 5), "A"), *cms(stale, "A")])
    env.apply("A")
    env.write("B", cms(names("keep", 5), "B"))
    policy, binding = _deny_deletes_policy(env.ns, stale)
    vap = env.dyn.resources.get(api_version="admissionregistration.k8s.io/v1", kind="ValidatingAdmissionPolicy")
    vapb = env.dyn.resources.get(api_version="admissionregistration.k8s.io/v1", kind="ValidatingAdmissionPolicyBinding")
    vap.create(body=policy)
    try:
        vapb.create(body=binding)
        wait_until(lambda: _delete_denied(env, stale[0]), 30, "the admission policy to take effect")
        before, mark = env.uids(), env.audit.mark()
        result = env.apply("B", ok=False)
        denied = sorted(key[1] for verb, key, code in env.object_writes(mark) if verb == "delete" and code >= 400)
        assert denied == stale, env.object_writes(mark)
        assert {("ConfigMap", n) for n in stale} <= env.inventory_keys(), "a stale object left the inventory"
        check_oracle(env, revision="B", before=before, mark=mark)
    finally:
        with contextlib.suppress(NotFoundError):
            vapb.delete(name=binding["metadata"]["name"])
        vap.delete(name=policy["metadata"]["name"])
    wait_until(lambda: not _delete_denied(env, stale[0]), 30, "the admission policy to be lifted")
    check_converges(env, "B")
    assert all(env.get("ConfigMap", n) is None for n in stale)
    check_o1(result, "prune", *(f"ConfigMap/{env.ns}/{n}" for n in stale), "deleting it is forbidden")


# -- F5 ----------------------------------------------------------------------------------------------------------------
def test_f5_throttled_requests_retried_no_sooner_than_retry_after(env: Env) -> None:
    """F5. 30 % of all requests are answered 429 with ``Retry-After: 2``: the run succeeds, no throttled request is
    sent again sooner than 2 s after it (matched by method, path and query in the proxy's log), in bounded time."""
    env.write("A", cms(names("cm", 4), "A"))
    env.apply("A")
    env.write("B", [*cms(names("cm", 2), "B"), cm("cm-02", "A"), cm("cm-04", "B")])
    before, mark = env.uids(), env.audit.mark()
    with FaultProxy(env.kubeconfig) as proxy:
        proxy.throttle(0.3, retry_after=2)
        started = time.monotonic()
        result = env.apply("B", via=proxy)
        elapsed = time.monotonic() - started
        log = proxy.log
    throttled = [r for r in log if r.outcome == "throttled"]
    assert len(throttled) >= 0.25 * len(log) and len(throttled) >= 5, len(throttled)
    for r in throttled:
        same = [n for n in log if n.seq > r.seq and (n.method, n.path, dict(n.query)) == (r.method, r.path, r.query)]
        assert same, f"{r.method} {r.path} was throttled and never sent again"
        gap = same[0].time - r.time
        assert gap >= 2.0, f"{r.method} {r.path}?{dict(r.query)} retried {gap:.2f}s after a 429 asking for 2 s"
    # Bounded: at most the 2 s pauses back to back, plus the unthrottled run's own time.
    assert elapsed < 2.0 * len(throttled) + 10, f"{elapsed:.1f}s for {len(throttled)} throttled requests"
    assert report(result)["ok"]
    check_oracle(env, revision="B", before=before, mark=mark, may_delete={("ConfigMap", "cm-03")})
    check_converges(env, "B")


# -- F6 ----------------------------------------------------------------------------------------------------------------
def test_f6_latency_hits_stack_deadline_cleanly_before_prune(env: Env) -> None:
    """F6. Every request takes 5 s more and the stack's deadline (``timeout: 20s``, for plan, apply, prune and wait)
    passes: a clean timeout error, nothing pruned, nothing half-written.

    The latency starts when the run takes the stack's lock (a proxy hook turns it on at the Lease write): the
    run-wide dry-run before it has no deadline and would only add half a minute of waiting. The table's 60 s
    deadline is cut to 20 s for the same reason (5 s per request, the same code path)."""
    stack = "    timeout: 20s\n"
    env.write("A", cms(names("cm", 6), "A"), stack)
    env.apply("A")
    env.write("B", cms(names("cm", 5), "B"), stack)
    before, mark = env.uids(), env.audit.mark()
    with FaultProxy(env.kubeconfig) as proxy:

        def slow_from_lock(req: RequestInfo) -> None:
            if req.is_write and "/leases/" in req.path:
                proxy.delay(5)

        proxy.on_request(slow_from_lock)
        started = time.monotonic()
        result = env.apply("B", via=proxy, ok=False)
        elapsed = time.monotonic() - started
    # Without the deadline the run would go on for ~70 s (14 more requests at 5 s each).
    assert elapsed < 60, f"the run took {elapsed:.0f}s: the deadline did not stop it"
    assert not [w for w in env.object_writes(mark) if w[0] == "delete"], "pruned after the deadline passed"
    assert env.get("ConfigMap", "cm-05") is not None
    check_oracle(env, revision="B", before=before, mark=mark)
    assert env.inventory()["revision"] == "A", "a timed-out run recorded its revision as applied"
    check_converges(env, "B")
    # Where the deadline strikes depends on timing (the plan is the preflight's, made before the latency): in apply
    # or in prune's ownership check, which comes before any delete. Either way the stage, the object and the
    # stack's timeout are named.
    message = error_message(result)
    phase = message.split(":", 1)[0]
    assert phase in ("apply", "prune"), message
    check_o1(result, phase, f"ConfigMap/{env.ns}/cm-0", f"stack {STACK}'s timeout (20s) passed")


def test_f6_deadline_mid_apply_stops_before_prune_and_reports_what_was_written(env: Env) -> None:
    """F6, the deadline passing in the middle of apply: the 3rd of 5 apply writes is held up (proxy hook) past the
    stack's ``timeout: 3s``. The run stops before prune, and its report names every object it did write."""
    stack = "    timeout: 3s\n"
    env.write("A", cms(names("cm", 6), "A"), stack)
    env.apply("A")
    env.write("B", cms(names("cm", 5), "B"), stack)
    before, mark = env.uids(), env.audit.mark()
    with FaultProxy(env.kubeconfig) as proxy:
        proxy.on_request(at_nth(3, Call(lambda: time.sleep(4)), where=is_apply_write))
        result = env.apply("B", "--concurrency", "1", via=proxy, ok=False)
        # The held-up write still reaches the API server after the client gave up on it (its answer is lost).
        wait_until(lambda: all(r.outcome != "pending" for r in proxy.log), 10, "the held-up write to be forwarded")
    assert "deadline" in error_message(result), output(result)
    assert not [w for w in env.object_writes(mark) if w[0] == "delete"], "pruned after the deadline passed"
    assert env.get("ConfigMap", "cm-05") is not None
    check_oracle(env, revision="B", before=before, mark=mark)
    assert env.inventory()["revision"] == "A", "a timed-out run recorded its revision as applied"
    written = {f"ConfigMap/{env.ns}/{key[1]}" for verb, key, code in env.object_writes(mark) if verb == "patch"}
    reported = {o["object"].split(" — ")[0] for o in stack_objects(result) if o["result"] in ("updated", "created")}
    check_converges(env, "B")
    assert len(written) >= 2, written
    # A write whose answer was lost (it reached the server after the client gave up) can only be reported as
    # failed with "no answer"; every other write must be reported as done.
    unanswered = {o["object"].split(" — ")[0] for o in stack_objects(result)
                  if o["result"] == "failed" and "no answer" in o["object"]}  # fmt: skip
    if not reported <= written or written - reported - unanswered:
        raise ProductBug(f"the run wrote {sorted(written)} but reports {sorted(reported)}:\n{output(result)}")


# -- C3 ----------------------------------------------------------------------------------------------------------------
def test_c3_lock_taken_mid_run_aborts_before_prune(env: Env) -> None:
    """C3. While the run applies, another applier takes the stack's Lease (a PUT naming another holder); the run's
    first apply write is held up (proxy hook) until its lock renewal (every ttl / 3 = 10 s) has read the Lease
    again. It must stop before prune: the object that left git stays, and it does not release the other's lock."""
    env.write("A", cms(names("cm", 6), "A"))
    env.apply("A")
    env.write("B", cms(names("cm", 5), "B"))
    before, mark = env.uids(), env.audit.mark()

    with FaultProxy(env.kubeconfig) as proxy:

        def take_lock_and_stall() -> None:
            env.steal_lease("another-applier pid 1 c3")
            seen = len(proxy.log)

            def renewal_saw_it() -> bool:  # a renewal PUT fails (409), then the renewer reads the Lease
                return any(r.method == "GET" and r.path.endswith(f"/leases/{INVENTORY}") for r in proxy.log[seen:])

            wait_until(renewal_saw_it, 20, "the run's lock renewal to read the Lease again", interval=0.1)
            time.sleep(0.3)

        proxy.on_request(at_nth(1, Call(take_lock_and_stall), where=is_apply_write))
        result = env.apply("B", via=proxy, ok=False)
    assert not [w for w in env.object_writes(mark) if w[0] == "delete"], "pruned without the lock"
    assert env.get("ConfigMap", "cm-05") is not None
    check_oracle(env, revision="B", before=before, mark=mark)
    lease = client.CoordinationV1Api(env.api).read_namespaced_lease(INVENTORY, env.ns)
    assert lease.spec.holder_identity == "another-applier pid 1 c3", "the run released a lock it no longer held"
    env.free_lease()  # the other applier is done
    check_converges(env, "B")
    check_o1(result, "lock", f"Lease/{env.ns}/{INVENTORY}", "another applier")


def test_c3_lock_taken_between_renewals_aborts_before_prune(env: Env) -> None:
    """C3, without a renewal in between: another applier takes the Lease and writes the inventory (its write-ahead)
    while our run applies. Our run must still stop before prune (the table: its inventory write fails its
    precondition and it aborts before prune)."""
    env.write("A", cms(names("cm", 6), "A"))
    env.apply("A")
    env.write("B", cms(names("cm", 5), "B"))
    before, mark = env.uids(), env.audit.mark()

    def take_over() -> None:
        env.steal_lease("another-applier pid 1 c3b")
        client.CoreV1Api(env.api).patch_namespaced_config_map(
            INVENTORY, env.ns, {"metadata": {"annotations": {"example.com/written-by": "another-applier"}}}
        )

    with FaultProxy(env.kubeconfig) as proxy:
        proxy.on_request(at_nth(1, Call(take_over), where=is_apply_write))
        result = env.apply("B", via=proxy, ok=None)
    assert result.returncode == 1, output(result)
    if env.get("ConfigMap", "cm-05") is None:
        raise ProductBug(f"prune deleted ConfigMap cm-05 after the lock was taken:\n{output(result)}")
    check_oracle(env, revision="B", before=before, mark=mark)
    env.free_lease()
    check_converges(env, "B")


# -- C4 ----------------------------------------------------------------------------------------------------------------
def _c4_drift(env: Env) -> None:
    """Apply a ConfigMap and a Deployment without ``replicas``; then edit ``data.a`` by hand (field manager
    ``kubectl-edit``) and let an "HPA" own ``replicas`` (server-side apply as ``hpa-controller``)."""
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}}
    env.write("A", [settings, deployment("web", "web")])
    env.apply("A", "--no-wait")
    core = client.CoreV1Api(env.api)
    core.patch_namespaced_config_map("settings", env.ns, {"data": {"a": "by hand"}}, field_manager="kubectl-edit")
    hpa = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": env.ns},
           "spec": {"replicas": 3}}  # fmt: skip
    env.resource("Deployment").server_side_apply(
        body=hpa, name="web", namespace=env.ns, field_manager="hpa-controller", force_conflicts=True
    )


def _plan_entries(env: Env) -> dict[str, dict[str, Any]]:
    mark = env.audit.mark()
    planned = env.plan()
    assert planned.returncode == 0, output(planned)
    assert env.all_writes(mark) == [], "plan wrote"
    return {o["id"]: o for o in json.loads(planned.stdout)["objects"]}


def test_c4_hand_edit_conflict_named_force_takes_it_back_hpa_replicas_left_alone(env: Env) -> None:
    """C4. ``plan`` names the manager of the hand edit; ``apply`` refuses without ``--force-conflicts`` and takes
    the field back with it, leaving ``replicas`` to the HPA (and never showing or owning it)."""
    _c4_drift(env)
    entries = _plan_entries(env)
    settings_entry = entries[f"ConfigMap/{env.ns}/settings"]
    assert settings_entry["action"] == "update"
    assert {"field": ".data.a", "manager": "kubectl-edit"} in settings_entry["conflicts"], settings_entry
    web_entry = entries[f"Deployment/{env.ns}/web"]
    assert web_entry["conflicts"] == [] and "replicas" not in (web_entry["diff"] or ""), web_entry

    refused = env.apply("A", "--no-wait", ok=False)
    assert (env.get("ConfigMap", "settings") or {})["data"]["a"] == "by hand"
    check_o1(refused, "apply", f"ConfigMap/{env.ns}/settings", "kubectl-edit", "--force-conflicts")

    env.apply("A", "--no-wait", "--force-conflicts")
    assert (env.get("ConfigMap", "settings") or {})["data"] == {"a": "1", "b": "2"}
    web = env.get("Deployment", "web") or {}
    assert web["spec"]["replicas"] == 3
    owners = {m["manager"]: json.dumps(m.get("fieldsV1", {})) for m in web["metadata"]["managedFields"]}
    assert '"f:replicas"' in owners["hpa-controller"], owners
    assert '"f:replicas"' not in owners.get("gitops-job", ""), owners
    mark = env.audit.mark()
    env.apply("A", "--no-wait")
    assert env.object_writes(mark) == []


def test_c4_plan_shows_only_the_hand_edit_as_a_change(env: Env) -> None:
    """C4. With the hand edit and the HPA's ``replicas`` in place, ``plan`` reports exactly one change: the
    ConfigMap's ``data.a`` (the Deployment, whose only drift is the HPA's field, is unchanged)."""
    _c4_drift(env)
    entries = _plan_entries(env)
    changed = {i: e["diff"] for i, e in entries.items() if e["action"] != "unchanged"}
    diff = changed.get(f"ConfigMap/{env.ns}/settings") or ""
    if set(changed) != {f"ConfigMap/{env.ns}/settings"} or REVISION in diff:
        raise ProductBug(f"plan shows more than the hand edit: {json.dumps(changed, indent=1)}")
    assert "-  a: by hand" in diff and "+  a: '1'" in diff, diff


# -- V7 ----------------------------------------------------------------------------------------------------------------
def test_v7_immutable_selector_change_blocks_unless_forced(env: Env) -> None:
    """V7. A Deployment's ``spec.selector`` changes: plan and apply fail naming the object and the immutable field,
    nothing is deleted or recreated (same uid, no object write); with ``gitops-job.io/force: enabled`` apply
    deletes and recreates it (a new uid)."""
    env.write("A", [deployment("web", "web-a"), cm("settings", "A")])
    env.apply("A", "--no-wait")
    uid = (env.get("Deployment", "web") or {})["metadata"]["uid"]
    env.write("B", [deployment("web", "web-b"), cm("settings", "A")])

    mark = env.audit.mark()
    planned = env.plan()
    assert planned.returncode == 1, output(planned)
    failures = json.loads(planned.stdout)["failures"]
    assert [f["id"] for f in failures] == [f"Deployment/{env.ns}/web"], failures
    assert "immutable" in failures[0]["message"] and "gitops-job.io/force" in failures[0]["message"], failures
    assert env.all_writes(mark) == [], "plan wrote"

    mark = env.audit.mark()
    refused = env.apply("B", "--no-wait", ok=False)
    assert env.all_writes(mark) == [], "apply wrote after a blocking plan error"
    assert (env.get("Deployment", "web") or {})["metadata"]["uid"] == uid
    check_o1(refused, "plan", f"Deployment/{env.ns}/web", "immutable")

    env.write("C", [deployment("web", "web-b", **{"gitops-job.io/force": "enabled"}), cm("settings", "A")])
    mark = env.audit.mark()
    recreated = env.apply("C", "--no-wait")
    assert {"stack": STACK, "result": "recreated", "object": f"Deployment/{env.ns}/web"} in [
        {**o, "object": o["object"].split(" — ")[0]} for o in stack_objects(recreated)
    ], recreated.stdout
    web = env.get("Deployment", "web") or {}
    assert web["metadata"]["uid"] != uid
    assert web["spec"]["selector"] == {"matchLabels": {"app": "web-b"}}
    assert [w[:2] for w in env.object_writes(mark) if w[0] == "delete"] == [("delete", ("Deployment", "web"))]


# -- V8, V9 ------------------------------------------------------------------------------------------------------------
def test_v8_empty_render_refused_unless_allowed(env: Env) -> None:
    """V8. The stack's directory is emptied: refused ("empty render"), zero writes; ``--allow-mass-prune`` prunes."""
    env.write("A", cms(names("cm", 3), "A"))
    env.apply("A")
    env.write("B", [])
    before, mark = env.uids(), env.audit.mark()
    refused = env.apply("B", ok=False)
    assert env.all_writes(mark) == [], "a refused run wrote"
    assert env.uids() == before
    check_o1(refused, "prune", f"stack {STACK}", "empty render", "--allow-mass-prune")

    env.apply("B", "--allow-mass-prune")
    assert env.uids() == {}
    assert env.inventory_keys() == set()


def test_v9_render_dropping_most_of_a_stack_refused(env: Env) -> None:
    """V9. The render drops 6 of a stack's 10 objects (60 %, over the 50 % threshold): refused, zero writes."""
    env.write("A", cms(names("cm", 10), "A"))
    env.apply("A")
    env.write("B", cms(names("cm", 4), "B"))
    before, mark = env.uids(), env.audit.mark()
    refused = env.apply("B", ok=False)
    assert env.all_writes(mark) == [], "a refused run wrote"
    assert env.uids() == before
    check_o1(refused, "prune", f"stack {STACK}", "mass prune", "6 of the 10", "--allow-mass-prune")


# -- V10 ---------------------------------------------------------------------------------------------------------------
def test_v10_inventory_object_relabelled_to_another_stack_left_alone_and_reported(env: Env) -> None:
    """V10 (first half). An object in the inventory is now labelled for another stack (by hand) and leaves the
    render: it is not deleted, and the run says so."""
    env.write("A", [*cms(names("cm", 6), "A"), cm("moved", "A")])
    env.apply("A")
    client.CoreV1Api(env.api).patch_namespaced_config_map(
        "moved", env.ns, {"metadata": {"labels": {"gitops-job.io/stack": "other"}}}
    )
    env.write("B", cms(names("cm", 6), "A"))
    before, mark = env.uids(), env.audit.mark()
    result = env.apply("B")
    assert env.get("ConfigMap", "moved") is not None
    rows = [o for o in stack_objects(result) if o["object"].startswith(f"ConfigMap/{env.ns}/moved")]
    assert rows and rows[0]["result"] == "not ours" and "other" in rows[0]["object"], result.stdout
    check_oracle(env, revision="B", before=before, mark=mark)
    check_converges(env, "B")


def test_v10_labelled_object_missing_from_inventory_left_alone_and_reported(env: Env) -> None:
    """V10 (second half). An object labelled for our target and stack but not in the inventory (made by hand): it is
    not deleted, and the run reports it. (O4 does not apply: the test planted exactly such an object.)"""
    env.write("A", cms(names("cm", 4), "A"))
    env.apply("A")
    stray = cm("stray", "by hand")
    stray["metadata"]["labels"] = {"gitops-job.io/target": TARGET, "gitops-job.io/stack": STACK}
    client.CoreV1Api(env.api).create_namespaced_config_map(env.ns, stray)
    env.write("B", cms(names("cm", 4), "B"))
    planned = env.plan()  # the reviewer sees it before the merge too
    assert json.loads(planned.stdout)["strays"] == [{"id": f"ConfigMap/{env.ns}/stray", "stack": STACK}], planned
    result = env.apply("B")
    assert env.get("ConfigMap", "stray") is not None
    assert ("ConfigMap", "stray") not in env.inventory_keys()
    if f"ConfigMap/{env.ns}/stray" not in result.stdout + result.stderr:
        raise ProductBug(f"the labelled object outside the inventory is not reported:\n{output(result)}")


# -- V11 ---------------------------------------------------------------------------------------------------------------
def test_v11_namespace_pvc_and_crd_retained_and_disowned(env: Env) -> None:
    """V11. A Namespace, a PersistentVolumeClaim and a CRD leave the render: kept, reported as retained, and no
    longer carrying our ownership labels (nor in the inventory)."""
    extra_ns = f"{env.ns}-kept"
    group = f"{env.ns}.example.com"
    crd_name = f"widgets.{group}"
    env.cluster_names |= {extra_ns, crd_name}
    keep = cms(names("cm", 5), "A")
    namespace_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": extra_ns}}
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    widget_crd = crd(group, "Widget", {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    core = client.CoreV1Api(env.api)
    crds = env.dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    try:
        env.write("A", [*keep, namespace_obj, pvc, widget_crd])
        env.apply("A", "--no-wait")
        env.write("B", keep)
        mark = env.audit.mark()
        result = env.apply("B", "--no-wait")
        retained = {o["object"].split(" — ")[0] for o in stack_objects(result) if o["result"] == "retained"}
        assert retained == {f"Namespace/{extra_ns}", f"PersistentVolumeClaim/{env.ns}/data",
                            f"CustomResourceDefinition/{crd_name}"}, result.stdout  # fmt: skip
        assert not [w for w in env.object_writes(mark) if w[0] == "delete"]
        kept = [
            core.read_namespace(extra_ns).metadata.labels or {},
            core.read_namespaced_persistent_volume_claim("data", env.ns).metadata.labels or {},
            crds.get(name=crd_name).to_dict()["metadata"].get("labels") or {},
        ]
        for labels in kept:
            assert "gitops-job.io/target" not in labels and "gitops-job.io/stack" not in labels, labels
        inventory = {tuple(o) for o in env.inventory()["objects"]}
        assert not {o for o in inventory if o[1] in ("Namespace", "PersistentVolumeClaim", "CustomResourceDefinition")}
        mark = env.audit.mark()
        env.apply("B", "--no-wait")
        assert env.object_writes(mark) == []
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(extra_ns)
        with contextlib.suppress(NotFoundError):
            crds.delete(name=crd_name)


# -- L2 ----------------------------------------------------------------------------------------------------------------
def test_l2_unchanged_stack_applied_repeatedly_writes_nothing(env: Env) -> None:
    """L2. An unchanged stack applied again and again: zero write requests (not even the Lease or a run record),
    resourceVersions unchanged.

    The row says 100 times; 20 runs through the Python API (``run_apply``, the CLI's own entry) keep the test
    fast — every run is a full plan against the cluster, so more runs only repeat the same requests.
    """
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}  # fmt: skip
    env.write("A", [*cms(names("cm", 8), "A"), secret, service])
    env.apply("A")
    kinds = ("ConfigMap", "Secret", "Service")
    versions = {k: o["metadata"]["resourceVersion"] for k, o in env.live(kinds).items()}
    assert len(versions) == 10
    settings = Settings(repo=env.root, kubeconfig=str(env.kubeconfig))
    options = ApplyOptions(revision="A", lock_wait=30)
    mark = env.audit.mark()
    for i in range(20):
        result = run_apply(settings, options)
        assert result.ok, (i, result)
        (run,) = result.stacks
        assert run.applied == () and run.pruned == () and run.in_sync, (i, run)
    assert env.audit.writes(mark) == [], "an unchanged stack was written"
    assert {k: o["metadata"]["resourceVersion"] for k, o in env.live(kinds).items()} == versions
