"""In which order objects are applied and deleted: pure functions over identities.

Apply goes in stages, each finished before the next starts (objects within one stage are written concurrently):

0. what others need to exist: CustomResourceDefinitions, Namespaces, ClusterRoles — then the CRDs must be
   Established before anything else is applied;
1. ``*Class`` kinds (StorageClass, IngressClass, PriorityClass, RuntimeClass, GatewayClass, …);
2. everything else, by :data:`KIND_RANK` (each rank its own step): identities and configuration before the
   workloads that mount them, services before workloads, custom resources after every built-in kind;
3. admission webhooks and policies last, so they cannot block the rest of the stack.

Deletes go in the reverse order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from gitops_job.identity import ObjectId

T = TypeVar("T")

FIRST = frozenset({("apiextensions.k8s.io", "CustomResourceDefinition"), ("", "Namespace"),
                   ("rbac.authorization.k8s.io", "ClusterRole")})  # fmt: skip
LAST = frozenset({
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
})  # fmt: skip

#: Stage 2, in order. Kinds not listed (custom resources, newer built-ins) come after all of these.
KIND_RANK: tuple[tuple[str, ...], ...] = (
    ("ResourceQuota", "LimitRange", "NetworkPolicy", "PodDisruptionBudget"),
    ("ServiceAccount", "Secret", "ConfigMap"),
    ("PersistentVolume", "PersistentVolumeClaim"),
    ("ClusterRoleBinding", "Role", "RoleBinding"),
    ("Service", "Endpoints", "EndpointSlice"),
    ("DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "ReplicationController", "Pod", "Job", "CronJob"),
    ("HorizontalPodAutoscaler", "Ingress", "APIService"),
)
_RANK = {kind: i for i, kinds in enumerate(KIND_RANK) for kind in kinds}
CUSTOM_RANK = len(KIND_RANK)


#: The stage of :data:`FIRST`: ``stage(oid) <= FIRST_STAGE`` for Namespaces, CRDs and ClusterRoles only.
FIRST_STAGE = (0, 0)


def stage(oid: ObjectId) -> tuple[int, int]:
    """``(stage, rank)`` of an object: lower goes first."""
    key = (oid.group, oid.kind)
    if key in FIRST:
        return FIRST_STAGE
    if oid.kind.endswith("Class"):
        return (1, 0)
    if key in LAST:
        return (3, 0)
    builtin = "." not in oid.group or oid.group.endswith(".k8s.io")
    return (2, _RANK.get(oid.kind, CUSTOM_RANK) if builtin else CUSTOM_RANK)


def steps(items: Iterable[T], key: Callable[[T], ObjectId]) -> list[list[T]]:
    """``items`` grouped into apply steps, in order; each step's items may be written concurrently."""
    by_step: dict[tuple[int, int], list[T]] = {}
    for item in items:
        by_step.setdefault(stage(key(item)), []).append(item)
    return [by_step[k] for k in sorted(by_step)]


def delete_steps(items: Sequence[T], key: Callable[[T], ObjectId]) -> list[list[T]]:
    """The delete order: apply steps reversed."""
    return list(reversed(steps(items, key)))
