"""One applier at a time: a ``coordination.k8s.io/v1`` Lease per target and stack.

The protocol. A run *acquires* the Lease ``gitops-job.<target>.<stack>`` by creating it with its own
``spec.holderIdentity``, or — when it exists but is free (no holder) or expired (``renewTime + leaseDurationSeconds``
is in the past) — by taking it over with a PUT guarded by ``metadata.resourceVersion`` (``leaseTransitions`` + 1).
Two runs racing for it cannot both win: the loser's create or PUT fails with 409 and it goes back to waiting. While a
run holds the Lease, a daemon thread *renews* it every ``ttl / 3`` seconds (again a resourceVersion-guarded PUT). When a
renewal finds another holder, finds the Lease gone, or no renewal has succeeded for ``ttl`` seconds, the lock is *lost*
and :meth:`Lease.check` raises — the apply code calls it before each step that must not run twice (prune, inventory
writes). On exit the run *releases* the Lease by clearing ``holderIdentity`` with a resourceVersion-guarded PUT, so it
never clears a holder other than itself; the object stays (a few hundred bytes per stack) and keeps its transition
count, and a run needs no ``delete`` permission except to break a lease with :func:`break_lease`.

Clocks: expiry is judged by *our* UTC clock against the ``renewTime`` the holder wrote with *its* clock, so the two
clocks must agree to well within ``ttl`` (NTP does that). A ``renewTime`` in the future counts as held. A holder
considers its lock lost after ``ttl`` seconds without a successful renewal, measured from when that renewal was *sent*
(monotonic clock), and writes ``leaseDurationSeconds = ceil(ttl)``: it gives up no later than another run may take
over.

Over 400 lines because the protocol above is one state machine (acquire, wait, take over, renew, lose, release,
break), and each transition's error message names the holder and what to do.
"""

from __future__ import annotations

import contextlib
import copy
import getpass
import hashlib
import math
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from gitops_job.errors import LeaseError
from gitops_job.identity import ObjectId
from gitops_job.kube import Conflict, Forbidden, Kube, NotFound, ResourceType, timestamp

LEASE_API_VERSION = "coordination.k8s.io/v1"
LEASE_PREFIX = "gitops-job"
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MAX_NAME = 253
_RBAC_HINT = "it needs get, create and update on leases.coordination.k8s.io in that namespace (delete for break-lease)"


def _hint(e: Forbidden) -> str:
    """The RBAC hint, unless an admission webhook or policy (not RBAC) refused."""
    return "" if "admission" in e.reason.lower() else f"; {_RBAC_HINT}"


# -- names ------------------------------------------------------------------------------------------------------------
def lease_name(target: str, stack: str) -> str:
    """``gitops-job.<target>.<stack>``: the Lease that serialises applies of ``stack`` to ``target``.

    Target and stack names are DNS labels (the config schema says so), which makes this a valid DNS subdomain. A part
    that is not one is made one (lowercased, other characters turned into ``-``) and the name gets a short hash of the
    original parts, so two different pairs never share a Lease.
    """
    parts = [_dns_label(target), _dns_label(stack)]
    name = ".".join([LEASE_PREFIX, *parts])
    if parts == [target, stack] and len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(f"{target}\0{stack}".encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9].rstrip('-.')}-{digest}"


def _dns_label(text: str) -> str:
    if _DNS_LABEL.fullmatch(text):
        return text
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return label or "x"


def _parse_name(name: str) -> tuple[str, str] | None:
    """``(target, stack)`` from a name :func:`lease_name` made; None for any other name."""
    prefix, _, rest = name.partition(".")
    target, _, stack = rest.partition(".")
    if prefix == LEASE_PREFIX and _DNS_LABEL.fullmatch(target) and _DNS_LABEL.fullmatch(stack):
        return target, stack
    return None


def holder_identity() -> str:
    """Who this run is, for humans reading the Lease, and unique per run.

    ``gh-actions:<repository>/runs/<run id>/<attempt>`` in GitHub Actions, ``gitlab-ci:<project>/jobs/<job id>`` in
    GitLab CI, ``pod:<namespace>/<pod>`` in a Kubernetes pod, else ``<user>@<host>``; then `` pid <pid> <random>``
    so that two runs on one machine (or two attempts of one CI job) differ.
    """
    env = os.environ
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        repository = env.get("GITHUB_REPOSITORY", "?")
        who = f"gh-actions:{repository}/runs/{env['GITHUB_RUN_ID']}/{env.get('GITHUB_RUN_ATTEMPT', '1')}"
    elif env.get("GITLAB_CI") == "true" and env.get("CI_JOB_ID"):
        who = f"gitlab-ci:{env.get('CI_PROJECT_PATH', '?')}/jobs/{env['CI_JOB_ID']}"
    elif env.get("KUBERNETES_SERVICE_HOST"):
        who = f"pod:{env.get('POD_NAMESPACE') or _pod_namespace()}/{env.get('HOSTNAME') or socket.gethostname()}"
    else:
        who = f"{_user()}@{socket.gethostname()}"
    return f"{who} pid {os.getpid()} {secrets.token_hex(3)}"


def _pod_namespace() -> str:
    try:
        return _SA_NAMESPACE.read_text().strip() or "?"
    except OSError:
        return "?"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers) and no USER/LOGNAME
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


# -- time -------------------------------------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _ago(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "an unknown time"
    seconds = (now - t).total_seconds()
    stamp = timestamp(t)
    if seconds < 0:
        return f"{stamp} ({-seconds:.0f}s in the future by our clock)"
    if seconds < 120:
        return f"{stamp} ({seconds:.0f}s ago)"
    if seconds < 7200:
        return f"{stamp} ({seconds / 60:.0f} min ago)"
    return f"{stamp} ({seconds / 3600:.1f} h ago)"


# -- the Lease as we read it ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Holding:
    """What a Lease object says about its holder."""

    holder: str | None
    acquired: datetime | None
    renewed: datetime | None
    duration: int | None
    transitions: int

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> _Holding:
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            holder=str(spec.get("holderIdentity") or "") or None,
            acquired=_parse_time(spec.get("acquireTime")),
            renewed=_parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime")),
            duration=duration if isinstance(duration, int) and duration > 0 else None,
            transitions=transitions if isinstance(transitions, int) and transitions >= 0 else 0,
        )

    def held(self, now: datetime) -> bool:
        """Held by someone and not expired by our clock (no renewal time or duration: expired, nothing says alive)."""
        if self.holder is None or self.renewed is None or self.duration is None:
            return False
        return self.renewed + timedelta(seconds=self.duration) > now

    def describe(self, now: datetime) -> str:
        return f"{self.holder} since {_ago(self.acquired, now)}, last renewed {_ago(self.renewed, now)}"


def _lease_type(kube: Kube, where: str) -> ResourceType:
    rt = kube.resource_type(LEASE_API_VERSION, "Lease")
    if rt is None:
        raise LeaseError(f"the API server does not serve {LEASE_API_VERSION} Lease, which the lock needs", where=where)
    return rt


def _for_write(lease: Mapping[str, Any]) -> dict[str, Any]:
    """A live Lease to PUT back: resourceVersion kept (the guard), managedFields dropped (the server keeps them)."""
    body = copy.deepcopy(dict(lease))
    body.setdefault("apiVersion", LEASE_API_VERSION)
    body.setdefault("kind", "Lease")
    body.setdefault("metadata", {}).pop("managedFields", None)
    body.setdefault("spec", {})
    return body


# -- the lock ---------------------------------------------------------------------------------------------------------
class Lease:
    """The Lease ``namespace/name`` held by ``holder`` for the duration of a ``with`` block.

    ``ttl``: the lease duration and the time after which a holder that could not renew counts as gone; renewed every
    ``ttl / 3`` seconds. ``wait``: how long to wait for another holder before :class:`LeaseError`. ``on_wait``: called
    once with a message when the lock is held by someone else and this run starts waiting. ``poll``: how often to look
    again while waiting.
    """

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        holder: str,
        ttl: float = 30.0,
        wait: float = 300.0,
        on_wait: Callable[[str], None] | None = None,
        *,
        poll: float = 1.0,
    ) -> None:
        if ttl < 1:
            raise ValueError(f"lock ttl must be at least 1 second, not {ttl}")
        if not holder:
            raise ValueError("lock holder must not be empty")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.holder = holder
        self.ttl = float(ttl)
        self.wait = max(0.0, float(wait))
        self.on_wait = on_wait
        self.poll = max(0.05, float(poll))
        self.where = str(ObjectId("coordination.k8s.io", "Lease", namespace, name))
        self._state = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease: dict[str, Any] | None = None  # as we last wrote it: its resourceVersion guards the next PUT
        self._renewed = 0.0  # time.monotonic() when the last successful write was sent
        self._lost: str | None = None
        self._held = False

    # -- public ------------------------------------------------------------------------------------------------------
    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    @property
    def held(self) -> bool:
        """Acquired, not released and not lost."""
        return self._held and not self.lost

    @property
    def lost(self) -> bool:
        """True once the lock was lost: another applier took it, it was deleted, or it expired unrenewed."""
        return self._lost_reason() is not None

    @property
    def lost_reason(self) -> str | None:
        """Why the lock was lost (None while it is held)."""
        return self._lost_reason()

    def check(self) -> None:
        """Raise :class:`LeaseError` when the lock was lost: call it before any step that must not run twice."""
        if not self._held:
            raise LeaseError("the lock is not held (not acquired yet, or released)", where=self.where)
        reason = self._lost_reason()
        if reason is not None:
            raise LeaseError(
                f"lost the lock held as {self.holder}: {reason}; stopping before changing anything else — "
                "run again once the other applier is done",
                where=self.where,
            )

    def acquire(self) -> None:
        """Take the Lease, waiting up to ``wait`` seconds for another holder; :class:`LeaseError` when it stays held."""
        if self._held:
            raise LeaseError("the lock is held already (a Lease is not reentrant)", where=self.where)
        rt = _lease_type(self.kube, self.where)
        deadline = time.monotonic() + self.wait
        told = False
        while True:
            sent = time.monotonic()
            lease = self._try_take(rt)
            if isinstance(lease, dict):
                self._start(lease, sent)
                return
            if lease is None:  # raced with another writer: look again (almost) at once
                if time.monotonic() > deadline + self.poll:
                    raise LeaseError("the lease kept changing under us; try again", where=self.where)
                time.sleep(random.uniform(0.0, 0.1))
                continue
            now = _now()
            if not told and self.on_wait is not None:
                self.on_wait(f"waiting up to {self.wait:g}s for the lock {self.where} held by {lease.describe(now)}")
                told = True
            left = deadline - time.monotonic()
            if left <= 0:
                raise LeaseError(self._still_held(lease, now), where=self.where)
            time.sleep(min(self.poll, left))

    def release(self) -> None:
        """Stop renewing and give the Lease up if it is still ours; never raises (a failed release just expires)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.ttl + 1)
        if not self._held:
            return
        self._held = False
        with contextlib.suppress(Exception):  # the lease then expires after ttl; the run's own outcome matters more
            self._clear_holder()

    # -- acquire -----------------------------------------------------------------------------------------------------
    def _try_take(self, rt: ResourceType) -> dict[str, Any] | _Holding | None:
        """One attempt: the Lease we now hold, whom it is held by, or None when a race was lost (try again at once)."""
        try:
            lease = self.kube.get(rt, self.name, self.namespace)
        except Forbidden as e:
            raise LeaseError(f"may not read the lease: {e.reason}{_hint(e)}", where=self.where) from None
        now = _now()
        if lease is None:
            body: dict[str, Any] = {
                "apiVersion": LEASE_API_VERSION,
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**self._spec(now), "acquireTime": timestamp(now, micro=True), "leaseTransitions": 0},
            }
            try:
                return dict(self.kube.create(rt, body, where=self.where))
            except Conflict:  # created by someone else in between (or by our own retried POST)
                return None
            except NotFound as e:
                raise LeaseError(f"cannot create the lease: {e.reason}", where=self.where) from None
            except Forbidden as e:
                raise LeaseError(f"may not create the lease: {e.reason}{_hint(e)}", where=self.where) from None
        state = _Holding.of(lease)
        if state.holder != self.holder and state.held(now):
            return state
        body = _for_write(lease)
        spec = body["spec"]
        if state.holder != self.holder:
            spec["acquireTime"] = timestamp(now, micro=True)
            spec["leaseTransitions"] = state.transitions + 1
        spec.update(self._spec(now))
        try:
            return dict(self.kube.replace(rt, body, where=self.where))
        except (Conflict, NotFound):  # someone else wrote or deleted it first
            return None
        except Forbidden as e:
            raise LeaseError(f"may not update the lease: {e.reason}{_hint(e)}", where=self.where) from None

    def _spec(self, now: datetime) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": math.ceil(self.ttl),
            "renewTime": timestamp(now, micro=True),
        }

    def _still_held(self, state: _Holding, now: datetime) -> str:
        names = _parse_name(self.name)
        if names is None:
            fix = f"`kubectl delete lease -n {self.namespace} {self.name}`"
        else:
            fix = f"`gitops-job break-lease --stack {names[1]} --target {names[0]}`"
        return (
            f"held by {state.describe(now)} (lease duration {state.duration}s); gave up after waiting {self.wait:g}s. "
            f"If that run is still going, try again when it is done; if that run is gone, break the lock with {fix}"
        )

    # -- renew -------------------------------------------------------------------------------------------------------
    def _start(self, lease: dict[str, Any], sent: float) -> None:
        with self._state:
            self._lease = lease
            self._renewed = sent
            self._lost = None
        self._held = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-renewer {self.name}", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            if not self._renew():
                return

    def _renew(self) -> bool:
        """One renewal (a few PUTs if unrelated writes move the resourceVersion); False once the lock is lost."""
        if self._lost_reason() is not None:
            return False
        with self._state:
            lease = self._lease
            renewed = self._renewed
        assert lease is not None
        sent = time.monotonic()
        # No request of a renewal may outlive the lock: bound it by the time left before we would count it lost.
        kube = self.kube.with_deadline(max(0.1, renewed + self.ttl - sent))
        if self.kube.deadline is not None:
            kube.deadline = min(kube.deadline or math.inf, self.kube.deadline)
        rt = _lease_type(self.kube, self.where)
        error: Exception | None = None
        for _ in range(3):
            if self._stop.is_set():
                return True
            body = _for_write(lease)
            body["spec"].update(self._spec(_now()))
            try:
                written = kube.replace(rt, body, where=self.where)
            except NotFound:
                return self._lose("the lease was deleted (someone ran `gitops-job break-lease`?)")
            except Conflict:
                try:
                    current = kube.get(rt, self.name, self.namespace)
                except Exception as e:
                    error = e
                    break
                if current is None:
                    return self._lose("the lease was deleted (someone ran `gitops-job break-lease`?)")
                holder = _Holding.of(current).holder
                if holder != self.holder:
                    who = f"another applier took it: it is now held by {holder}" if holder else "someone released it"
                    return self._lose(who)
                lease = current  # still ours; something else (labels, annotations) moved the resourceVersion
                continue
            except Exception as e:  # unreachable, forbidden, deadline: try again at the next tick, until ttl runs out
                error = e
                break
            with self._state:
                self._lease = dict(written)
                self._renewed = sent
            return True
        if error is not None and time.monotonic() - renewed >= self.ttl:
            return self._lose(self._expired_reason(renewed, error))
        return self._lost_reason() is None  # False once ttl has passed since the last successful renewal

    def _lose(self, reason: str) -> bool:
        with self._state:
            if self._lost is None:
                self._lost = reason
        return False

    def _lost_reason(self) -> str | None:
        with self._state:
            if self._lost is None and self._held and time.monotonic() - self._renewed >= self.ttl:
                self._lost = self._expired_reason(self._renewed, None)
            return self._lost

    def _expired_reason(self, renewed: float, error: Exception | None) -> str:
        reason = f"it expired: no renewal succeeded for {time.monotonic() - renewed:.1f}s (ttl {self.ttl:g}s)"
        return f"{reason}; last error: {error}" if error is not None else reason

    # -- release -----------------------------------------------------------------------------------------------------
    def _clear_holder(self) -> None:
        """Clear ``holderIdentity`` with a resourceVersion-guarded PUT, only while the holder is still us."""
        with self._state:
            lease = self._lease
        if lease is None:
            return
        rt = _lease_type(self.kube, self.where)
        for _ in range(3):
            body = _for_write(lease)
            body["spec"].pop("holderIdentity", None)
            body["spec"]["renewTime"] = timestamp(_now(), micro=True)
            try:
                self.kube.replace(rt, body, where=self.where)
            except NotFound:
                return
            except Conflict:
                current = self.kube.get(rt, self.name, self.namespace)
                if current is None or _Holding.of(current).holder != self.holder:
                    return  # gone, or someone else's now: not ours to release
                lease = current
                continue
            return


def break_lease(kube: Kube, namespace: str, name: str) -> str | None:
    """Break a lock: delete the Lease and return who held it (None when there was no Lease or it had no holder).

    The delete is guarded by the uid and resourceVersion we read, so the holder returned is exactly the one evicted.
    A run that still holds the lock notices at its next renewal and stops at its next :meth:`Lease.check`.
    """
    where = str(ObjectId("coordination.k8s.io", "Lease", namespace, name))
    rt = _lease_type(kube, where)
    for _ in range(5):
        lease = kube.get(rt, name, namespace)
        if lease is None:
            return None
        meta = lease.get("metadata") or {}
        try:
            if not kube.delete(rt, name, namespace, uid=meta.get("uid"), resource_version=meta.get("resourceVersion"),
                               where=where):  # fmt: skip
                return None
        except Conflict:  # renewed or taken over between our read and the delete: read again
            continue
        except Forbidden as e:
            raise LeaseError(f"may not delete the lease: {e.reason}{_hint(e)}", where=where) from None
        return _Holding.of(lease).holder
    raise LeaseError("the lease kept changing while we tried to delete it; try again", where=where)
