"""The stack lease against a real API server: acquire, wait, take over an expired Lease, renew, lose, release, break."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gitops_job.errors import LeaseError
from gitops_job.kube import Conflict, Forbidden, Kube, ResourceType
from gitops_job.reconcile.lease import Lease, break_lease, holder_identity, lease_name
from tests.kube import wait_until

NAME = lease_name("prod", "web")
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def leases(kube: Kube) -> ResourceType:
    rt = kube.resource_type("coordination.k8s.io/v1", "Lease")
    assert rt is not None
    return rt


def spec(kube: Kube, namespace: str, name: str = NAME) -> dict[str, Any] | None:
    lease = kube.get(leases(kube), name, namespace)
    return None if lease is None else dict(lease.get("spec") or {})


def micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hand_made_lease(
    kube: Kube, namespace: str, holder: str, renewed: datetime, duration: int, transitions: int
) -> None:
    """A Lease as another run would have left it (written by this test, not by Lease)."""
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": micro(renewed - timedelta(minutes=5)),
            "renewTime": micro(renewed),
            "leaseTransitions": transitions,
        },
    }
    kube.create(leases(kube), body)


def steal(kube: Kube, namespace: str, holder: str) -> None:
    """Another client PUTs its own holderIdentity over the Lease (retrying when the renewer's PUT got in first)."""
    for _ in range(10):
        lease = kube.get(leases(kube), NAME, namespace)
        assert lease is not None
        lease["spec"]["holderIdentity"] = holder
        lease["spec"]["renewTime"] = micro(datetime.now(UTC))
        try:
            kube.replace(leases(kube), lease)
        except Conflict:
            continue
        return
    raise AssertionError("could not steal the lease")


# -- names ------------------------------------------------------------------------------------------------------------
def test_lease_name_is_a_dns_subdomain_per_target_and_stack() -> None:
    assert lease_name("prod", "web") == "gitops-job.prod.web"
    odd = {lease_name("Prod", "web_app"), lease_name("prod", "web-app"), lease_name("prod", "web.app")}
    assert len(odd) == 3
    for name in [*odd, lease_name("x" * 200, "y" * 200)]:
        assert DNS_SUBDOMAIN.fullmatch(name), name
        assert len(name) <= 253


def test_holder_identity_says_where_the_run_is_and_differs_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GITHUB_ACTIONS", "GITLAB_CI", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    local = holder_identity()
    assert re.fullmatch(r"\S+@\S+ pid \d+ [0-9a-f]{6}", local), local
    assert holder_identity() != local

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    monkeypatch.setenv("HOSTNAME", "gitops-job-28374-abcde")
    assert holder_identity().startswith("pod:ops/gitops-job-28374-abcde pid ")

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/platform")
    monkeypatch.setenv("GITHUB_RUN_ID", "123456")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")
    assert holder_identity().startswith("gh-actions:acme/platform/runs/123456/2 pid ")


# -- acquire and wait -------------------------------------------------------------------------------------------------
def test_acquire_creates_the_lease_and_release_frees_it(kube: Kube, namespace: str) -> None:
    with Lease(kube, namespace, NAME, "run-a", ttl=2, wait=0) as lock:
        lock.check()
        assert lock.held and not lock.lost
        held = spec(kube, namespace)
        assert held is not None
        assert held["holderIdentity"] == "run-a"
        assert held["leaseDurationSeconds"] == 2
        assert held["leaseTransitions"] == 0
        assert MICRO_TIME.fullmatch(held["acquireTime"]) and MICRO_TIME.fullmatch(held["renewTime"])
    freed = spec(kube, namespace)
    assert freed is not None and not freed.get("holderIdentity")  # released: the Lease stays, with no holder
    with pytest.raises(LeaseError, match="not held"):
        lock.check()

    with Lease(kube, namespace, NAME, "run-b", ttl=2, wait=0):  # a free Lease is taken at once
        again = spec(kube, namespace)
        assert again is not None
        assert again["holderIdentity"] == "run-b" and again["leaseTransitions"] == 1


def test_a_second_applier_gives_up_after_wait_naming_the_holder(kube: Kube, namespace: str) -> None:
    messages: list[str] = []
    with Lease(kube, namespace, NAME, "run-a pid 1", ttl=2, wait=0):
        started = time.monotonic()
        with (
            pytest.raises(LeaseError) as caught,
            Lease(kube, namespace, NAME, "run-b", ttl=2, wait=1, on_wait=messages.append),
        ):
            pytest.fail("the second lock must not be acquired")
        elapsed = time.monotonic() - started
    text = str(caught.value)
    assert text.startswith(f"lock: Lease/{namespace}/{NAME}: held by run-a pid 1 since ")
    assert "last renewed" in text
    assert "gitops-job break-lease --stack web" in text
    assert 1 <= elapsed < 3
    assert len(messages) == 1 and "held by run-a pid 1" in messages[0]


def test_a_waiting_applier_gets_the_lock_as_soon_as_it_is_released(kube: Kube, namespace: str) -> None:
    messages: list[str] = []
    got: list[float] = []

    def second() -> None:
        with Lease(kube, namespace, NAME, "run-b", ttl=2, wait=20, on_wait=messages.append) as lock:
            got.append(time.monotonic())
            lock.check()

    first = Lease(kube, namespace, NAME, "run-a", ttl=2, wait=0)
    first.acquire()
    waiter = threading.Thread(target=second)
    waiter.start()
    time.sleep(2.5)  # longer than the ttl: renewals keep the second one waiting
    assert not got
    released = time.monotonic()
    first.release()
    waiter.join(10)
    assert got, "the waiting lock was not acquired"
    assert got[0] - released < 1.5  # it polls every second
    assert len(messages) == 1 and "run-a" in messages[0]


def test_an_expired_lease_is_taken_over(kube: Kube, namespace: str) -> None:
    hand_made_lease(kube, namespace, "dead-run", datetime.now(UTC) - timedelta(seconds=60), duration=2, transitions=3)
    started = time.monotonic()
    with Lease(kube, namespace, NAME, "run-b", ttl=2, wait=10):
        assert time.monotonic() - started < 1
        taken = spec(kube, namespace)
        assert taken is not None
        assert taken["holderIdentity"] == "run-b"
        assert taken["leaseTransitions"] == 4
        acquired = datetime.fromisoformat(taken["acquireTime"])
        assert abs((datetime.now(UTC) - acquired).total_seconds()) < 5


def test_a_lease_renewed_in_the_future_counts_as_held(kube: Kube, namespace: str) -> None:
    hand_made_lease(kube, namespace, "skewed-run", datetime.now(UTC) + timedelta(hours=1), duration=1, transitions=0)
    with pytest.raises(LeaseError, match="held by skewed-run"), Lease(kube, namespace, NAME, "run-b", ttl=2, wait=0):
        pass


# -- renew and lose ---------------------------------------------------------------------------------------------------
def test_renewal_keeps_the_lease_fresh(kube: Kube, namespace: str) -> None:
    with Lease(kube, namespace, NAME, "run-a", ttl=1.5, wait=0) as lock:
        first = spec(kube, namespace)
        assert first is not None
        renewals = set()
        deadline = time.monotonic() + 2.5  # longer than the ttl
        while time.monotonic() < deadline:
            now = spec(kube, namespace)
            assert now is not None and now["holderIdentity"] == "run-a"
            renewals.add(now["renewTime"])
            time.sleep(0.2)
        assert len(renewals) >= 3, renewals
        assert max(renewals) > first["renewTime"]
        lock.check()  # held past its ttl: renewals worked


def test_a_lease_taken_away_makes_check_fail_and_release_leaves_it_alone(kube: Kube, namespace: str) -> None:
    with Lease(kube, namespace, NAME, "run-a", ttl=2, wait=0) as lock:
        steal(kube, namespace, "thief")
        wait_until(lambda: lock.lost, 2.5, "the lock to notice it was taken")
        with pytest.raises(LeaseError, match="another applier took it: it is now held by thief"):
            lock.check()
        assert not lock.held
    after = spec(kube, namespace)
    assert after is not None and after["holderIdentity"] == "thief"  # release did not touch someone else's lease


def test_a_deleted_lease_is_lost(kube: Kube, namespace: str) -> None:
    with Lease(kube, namespace, NAME, "run-a", ttl=2, wait=0) as lock:
        assert kube.delete(leases(kube), NAME, namespace)
        wait_until(lambda: lock.lost, 2.5, "the lock to notice the lease was deleted")
        with pytest.raises(LeaseError, match=r"lost the lock .*deleted"):
            lock.check()
    assert spec(kube, namespace) is None  # release did not bring it back


def test_a_holder_that_cannot_renew_loses_the_lock_after_ttl(kube: Kube, namespace: str) -> None:
    """Renewals fail (RBAC taken away mid-run): the lock counts as lost once ttl has passed since the last renewal."""
    user = "lock-tester"
    role = kube.resource_type("rbac.authorization.k8s.io/v1", "Role")
    binding = kube.resource_type("rbac.authorization.k8s.io/v1", "RoleBinding")
    assert role is not None and binding is not None
    rules = [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]
    meta = {"name": "locker", "namespace": namespace}
    kube.create(role, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules})
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "locker"}
    subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
    kube.create(binding, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
                          "roleRef": ref, "subjects": [subject]})  # fmt: skip
    as_user = kube.impersonating(user)

    def allowed() -> bool:
        try:
            as_user.get(leases(kube), NAME, namespace)  # not there yet: None when allowed
        except Forbidden:
            return False
        return True

    wait_until(allowed, 5, "the RoleBinding to take effect")

    with Lease(as_user, namespace, NAME, "run-a", ttl=2, wait=5) as lock:
        kube.delete(binding, "locker", namespace)
        revoked = time.monotonic()
        lost_at = wait_until(lambda: time.monotonic() if lock.lost else None, 4, "the lock to expire")
        assert lost_at - revoked < 2.5  # the last successful renewal was before the revocation
        with pytest.raises(LeaseError, match="expired: no renewal succeeded"):
            lock.check()
    stale = spec(kube, namespace)
    assert stale is not None and stale["holderIdentity"] == "run-a"  # release could not clear it either: it expires


def test_the_original_error_survives_release(kube: Kube, namespace: str) -> None:
    with pytest.raises(RuntimeError, match="apply failed"), Lease(kube, namespace, NAME, "run-a", ttl=2, wait=0):
        raise RuntimeError("apply failed")
    freed = spec(kube, namespace)
    assert freed is not None and not freed.get("holderIdentity")


# -- break-lease ----------------------------------------------------------------------------------------------------
def test_break_lease_breaks_the_lease_and_a_new_run_acquires_at_once(kube: Kube, namespace: str) -> None:
    assert break_lease(kube, namespace, NAME) is None  # no lock
    with Lease(kube, namespace, NAME, "stuck-run", ttl=2, wait=0) as stuck:
        assert break_lease(kube, namespace, NAME) == "stuck-run"
        assert spec(kube, namespace) is None
        started = time.monotonic()
        with Lease(kube, namespace, NAME, "run-b", ttl=2, wait=0) as fresh:
            assert time.monotonic() - started < 1
            wait_until(lambda: stuck.lost, 2.5, "the broken lock to notice")
            fresh.check()
        stuck_reason = stuck.lost_reason
    assert stuck_reason is not None
    after = spec(kube, namespace)
    assert after is not None and not after.get("holderIdentity")  # run-b released it; run-a left it alone
