"""Is an applied object healthy yet? One pure function, :func:`status`, answers from the live object alone.

The wait stage reads each applied object back (a plain JSON dict, as the API server returns it) and asks
:func:`status` for a :class:`Health`: a :class:`~gitops_job.outcomes.HealthState` and a short reason. No I/O happens
here, so every rule is unit-testable from a literal dict.

States:

* ``CURRENT`` — the object has reached what its spec asks for; stop waiting for it.
* ``IN_PROGRESS`` — a controller is still working (or has not looked yet); keep waiting.
* ``FAILED`` — the object will not get there without a change (deadline exceeded, Job failed, CRD names rejected …).
* ``NOT_FOUND`` — the caller found no object (it passes ``None``).

Rules every object goes through first: ``None`` → NOT_FOUND; a ``metadata.deletionTimestamp`` → IN_PROGRESS
("being deleted"). Then the object's (API group, kind) picks a rule from :data:`RULES`; kinds not in the table get
the generic rule.

==================================  ==============================================================================
(group, kind)                       CURRENT when …
==================================  ==============================================================================
apps Deployment                     generation observed; ``spec.replicas`` (unset = 1, 0 allowed) updated, no old
                                    replicas left, all available. ``Progressing=False`` with reason
                                    ``ProgressDeadlineExceeded`` → FAILED. ``spec.paused`` → CURRENT once observed
                                    (a paused rollout never finishes; the spec asked for the pause).
apps StatefulSet                    generation observed; all replicas ready, none extra; RollingUpdate: every
                                    replica at ``updateRevision`` (``currentRevision == updateRevision``), or with a
                                    ``partition`` p, ``replicas - p`` updated; OnDelete: ready is enough.
apps DaemonSet                      generation observed; ``desiredNumberScheduled`` pods scheduled, updated (not
                                    for OnDelete) and available.
apps ReplicaSet, core               generation observed; ``spec.replicas`` pods exist, ready and available, none
ReplicationController               extra. ``ReplicaFailure=True`` (e.g. quota) is reported as the reason.
batch Job                           condition ``Complete=True``; ``Failed=True`` or ``FailureTarget=True`` → FAILED
                                    with the condition's reason; ``spec.suspend`` → CURRENT (suspended on purpose).
core Pod                            phase Succeeded, or ``Ready=True``. Phase Failed → FAILED; a container waiting in
                                    CrashLoopBackOff / InvalidImageName / ErrImageNeverPull → FAILED; any other
                                    waiting reason (ImagePullBackOff, ErrImagePull …) or Unschedulable is named.
core PersistentVolumeClaim          phase Bound; Lost → FAILED; else IN_PROGRESS ("PVC Pending").
core Namespace                      phase Active; Terminating → IN_PROGRESS.
core Service                        type LoadBalancer: ``status.loadBalancer.ingress`` non-empty; other types at once.
apiextensions.k8s.io CRD            ``Established=True``; ``NamesAccepted=False`` → FAILED.
apiregistration.k8s.io APIService   ``Available=True`` (False/missing → IN_PROGRESS with the condition's reason).
policy PodDisruptionBudget          generation observed.
anything else (generic)             see below.
==================================  ==============================================================================

The generic rule, for custom resources and every kind without a row (kstatus-style conventions):

1. ``status.observedGeneration`` present and below ``metadata.generation`` → IN_PROGRESS.
2. ``Stalled=True`` → FAILED; ``Reconciling=True`` → IN_PROGRESS (the Flux / kstatus abnormal-true conditions).
3. A ``Ready`` condition (else ``Available``): True → CURRENT; False → FAILED if its reason mentions "fail" or
   "stall" (``InstallFailed``, ``ReconciliationFailed`` …), else IN_PROGRESS; Unknown → IN_PROGRESS. A condition
   whose own ``observedGeneration`` is below ``metadata.generation`` is stale → IN_PROGRESS.
4. Otherwise CURRENT: objects with no status or conditions (ConfigMap, Secret, RBAC, CronJob …) are current as
   soon as they exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gitops_job.outcomes import HealthState
from gitops_job.reconcile.results import Health

Obj = Mapping[str, Any]


def _current(reason: str) -> Health:
    return Health(HealthState.CURRENT, reason)


def _progress(reason: str) -> Health:
    return Health(HealthState.IN_PROGRESS, reason)


def _failed(reason: str) -> Health:
    return Health(HealthState.FAILED, reason)


# -- small readers -------------------------------------------------------------------------------------------------
def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _int(section: Obj, key: str, default: int = 0) -> int:
    value = section.get(key)
    return value if isinstance(value, int) else default


def _want(obj: Obj) -> int:
    """``spec.replicas``, which the API server defaults to 1 when unset."""
    return _int(_spec(obj), "replicas", 1)


def condition(obj: Obj, type_: str) -> Obj | None:
    """The condition of type ``type_`` in ``status.conditions``, or None."""
    for c in _status(obj).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return c
    return None


def _is(obj: Obj, type_: str, value: str = "True") -> bool:
    c = condition(obj, type_)
    return c is not None and c.get("status") == value


def _why(c: Obj, limit: int = 120) -> str:
    """``Reason: message`` of a condition, the message cut to ``limit`` characters."""
    reason, message = str(c.get("reason") or ""), " ".join(str(c.get("message") or "").split())
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    return ": ".join(p for p in (reason, message) if p) or f"{c.get('type')}={c.get('status')}"


def _unobserved(obj: Obj, *, required: bool) -> Health | None:
    """IN_PROGRESS while the controller has not seen the latest spec (``required``: a missing field counts too)."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = _status(obj).get("observedGeneration")
    if not isinstance(generation, int):
        return None
    if isinstance(observed, int):
        if observed < generation:
            return _progress(f"generation {generation} not observed yet (observed {observed})")
        return None
    return _progress(f"generation {generation} not observed yet") if required else None


# -- per-kind rules ------------------------------------------------------------------------------------------------
def _deployment(obj: Obj) -> Health:
    if waiting := _unobserved(obj, required=True):
        return waiting
    progressing = condition(obj, "Progressing")
    if progressing and progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        return _failed(f"rollout failed: {_why(progressing)}")
    st, want = _status(obj), _want(obj)
    updated, total, available = _int(st, "updatedReplicas"), _int(st, "replicas"), _int(st, "availableReplicas")
    if _spec(obj).get("paused"):
        return _current(f"rollout paused ({updated}/{want} replicas updated)")
    if updated < want:
        return _progress(f"{updated}/{want} replicas updated")
    if total > updated:
        return _progress(f"{total - updated} old replicas pending termination")
    if available < want:
        return _progress(f"{available}/{want} replicas available ({want - available} unavailable)")
    return _current(f"{want}/{want} replicas updated and available")


def _statefulset(obj: Obj) -> Health:
    if waiting := _unobserved(obj, required=True):
        return waiting
    st, want = _status(obj), _want(obj)
    total, ready, updated = _int(st, "replicas"), _int(st, "readyReplicas"), _int(st, "updatedReplicas")
    if ready < want:
        return _progress(f"{ready}/{want} replicas ready")
    if total > want:
        return _progress(f"{total - want} extra replicas pending termination")
    strategy = _spec(obj).get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return _current(f"{ready}/{want} replicas ready (OnDelete: pods update when deleted)")
    partition = _int(strategy.get("rollingUpdate") or {}, "partition")
    if partition > 0:
        target = max(want - partition, 0)
        if updated < target:
            return _progress(f"{updated}/{target} replicas updated (partition {partition})")
        return _current(f"partitioned rollout done: {updated}/{target} replicas updated (partition {partition})")
    if st.get("currentRevision") != st.get("updateRevision"):
        return _progress(f"{updated}/{want} replicas updated to revision {st.get('updateRevision')}")
    return _current(f"{ready}/{want} replicas ready at revision {st.get('currentRevision')}")


def _daemonset(obj: Obj) -> Health:
    if waiting := _unobserved(obj, required=True):
        return waiting
    st = _status(obj)
    desired = _int(st, "desiredNumberScheduled")
    scheduled, updated, available = (
        _int(st, "currentNumberScheduled"),
        _int(st, "updatedNumberScheduled"),
        _int(st, "numberAvailable"),
    )
    if scheduled < desired:
        return _progress(f"{scheduled}/{desired} pods scheduled")
    on_delete = (_spec(obj).get("updateStrategy") or {}).get("type") == "OnDelete"
    if not on_delete and updated < desired:
        return _progress(f"{updated}/{desired} pods updated")
    if available < desired:
        return _progress(f"{available}/{desired} pods available ({desired - available} unavailable)")
    return _current(f"{available}/{desired} pods available")


def _replicaset(obj: Obj) -> Health:
    if waiting := _unobserved(obj, required=True):
        return waiting
    st, want = _status(obj), _want(obj)
    total, ready, available = _int(st, "replicas"), _int(st, "readyReplicas"), _int(st, "availableReplicas")
    failure = condition(obj, "ReplicaFailure")
    note = f" ({_why(failure)})" if failure and failure.get("status") == "True" else ""
    if total < want:
        return _progress(f"{total}/{want} pods created{note}")
    if total > want:
        return _progress(f"{total - want} extra pods pending termination")
    if ready < want:
        return _progress(f"{ready}/{want} pods ready{note}")
    if available < want:
        return _progress(f"{available}/{want} pods available")
    return _current(f"{available}/{want} pods available")


def _job(obj: Obj) -> Health:
    for type_ in ("Failed", "FailureTarget"):
        failed = condition(obj, type_)
        if failed and failed.get("status") == "True":
            return _failed(f"Job failed: {_why(failed)}")
    st = _status(obj)
    succeeded = _int(st, "succeeded")
    if _is(obj, "Complete"):
        return _current(f"Job complete ({succeeded} succeeded)")
    if _spec(obj).get("suspend"):
        return _current("Job suspended")
    completions = _spec(obj).get("completions")
    of = f"/{completions}" if isinstance(completions, int) else ""
    return _progress(
        f"Job running: {_int(st, 'active')} active, {succeeded}{of} succeeded, {_int(st, 'failed')} failed"
    )


# A container waiting for one of these reasons will not start without a change to the pod.
_FATAL_WAITING = frozenset({"CrashLoopBackOff", "InvalidImageName", "ErrImageNeverPull"})


def _pod(obj: Obj) -> Health:
    st = _status(obj)
    phase = st.get("phase")
    if phase == "Succeeded":
        return _current("Pod succeeded")
    if phase == "Failed":
        return _failed(f"Pod failed: {st.get('reason') or st.get('message') or 'phase Failed'}")
    for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason and reason not in {"ContainerCreating", "PodInitializing"}:
            health = _failed if reason in _FATAL_WAITING else _progress
            return health(f"container {cs.get('name')} waiting: {reason}")
    if _is(obj, "Ready"):
        return _current("Pod ready")
    scheduled = condition(obj, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        return _progress(f"Pod not scheduled: {_why(scheduled)}")
    return _progress(f"Pod {phase or 'Pending'}, not ready")


def _pvc(obj: Obj) -> Health:
    phase = _status(obj).get("phase") or "Pending"
    if phase == "Bound":
        return _current(f"PVC Bound to {_spec(obj).get('volumeName') or 'a volume'}")
    if phase == "Lost":
        return _failed("PVC Lost: its volume is gone")
    return _progress(f"PVC {phase}")


def _namespace(obj: Obj) -> Health:
    phase = _status(obj).get("phase")
    if phase == "Active":
        return _current("Namespace Active")
    return _progress(f"Namespace {phase or 'not yet Active'}")


def _service(obj: Obj) -> Health:
    type_ = _spec(obj).get("type") or "ClusterIP"
    if type_ != "LoadBalancer":
        return _current(f"{type_} Service")
    if (_status(obj).get("loadBalancer") or {}).get("ingress"):
        return _current("load balancer has an ingress")
    return _progress("waiting for load balancer ingress")


def _crd(obj: Obj) -> Health:
    names = condition(obj, "NamesAccepted")
    if names and names.get("status") == "False":
        return _failed(f"CRD names not accepted: {_why(names)}")
    if _is(obj, "Established"):
        return _current("CRD Established")
    return _progress("waiting for CRD to be Established")


def _apiservice(obj: Obj) -> Health:
    available = condition(obj, "Available")
    if available and available.get("status") == "True":
        return _current("APIService Available")
    return _progress(f"APIService not Available: {_why(available)}" if available else "APIService not Available yet")


def _pdb(obj: Obj) -> Health:
    if waiting := _unobserved(obj, required=True):
        return waiting
    return _current(f"PDB observed ({_int(_status(obj), 'disruptionsAllowed')} disruptions allowed)")


def _generic(obj: Obj) -> Health:
    if waiting := _unobserved(obj, required=False):
        return waiting
    stalled = condition(obj, "Stalled")
    if stalled and stalled.get("status") == "True":
        return _failed(f"Stalled: {_why(stalled)}")
    reconciling = condition(obj, "Reconciling")
    if reconciling and reconciling.get("status") == "True":
        return _progress(f"Reconciling: {_why(reconciling)}")
    ready = condition(obj, "Ready") or condition(obj, "Available")
    if ready is None:
        return _current("exists" if not _status(obj).get("conditions") else "no Ready condition")
    type_, value = ready.get("type"), ready.get("status")
    generation, seen = (obj.get("metadata") or {}).get("generation"), ready.get("observedGeneration")
    if isinstance(generation, int) and isinstance(seen, int) and seen < generation:
        return _progress(f"{type_} condition is for generation {seen}, not {generation}")
    if value == "True":
        return _current(f"{type_}")
    reason = str(ready.get("reason") or "").lower()
    if value == "False" and ("fail" in reason or "stall" in reason):
        return _failed(f"not {type_}: {_why(ready)}")
    return _progress(f"not {type_}: {_why(ready)}")


Rule = Callable[[Obj], Health]

# (API group, kind) → rule; the core group is "". Documented in the module docstring.
RULES: Mapping[tuple[str, str], Rule] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("", "ReplicationController"): _replicaset,
    ("batch", "Job"): _job,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Namespace"): _namespace,
    ("", "Service"): _service,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("apiregistration.k8s.io", "APIService"): _apiservice,
    ("policy", "PodDisruptionBudget"): _pdb,
}


def status(obj: Obj | None) -> Health:
    """The health of one live object (``None``: the object was not found). Pure: reads nothing but ``obj``."""
    if obj is None:
        return Health(HealthState.NOT_FOUND, "object not found")
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return _progress("being deleted")
    api_version = str(obj.get("apiVersion") or "")
    group = api_version.rpartition("/")[0]
    return RULES.get((group, str(obj.get("kind") or "")), _generic)(obj)
