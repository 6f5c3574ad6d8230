"""The validate stage: every check on one stack's rendered objects that needs no write, run before any request that
could write (design invariant 1): required fields, names, scope, duplicates (V4), the stack's allow policy (V5, V6),
size (what etcd can store) and, with discovery, unknown kinds (V2). Pure: the caller says which kinds exist and
whether they are namespaced."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gitops_job.config.load import Stack
from gitops_job.errors import ErrorGroup, GitopsJobError, ValidationError
from gitops_job.identity import ObjectId
from gitops_job.model import RenderedObject

Scopes = Callable[[str, str], bool | None]
"""``(apiVersion, kind) -> namespaced?``, ``apiVersion`` being ``group/version`` (``v1`` for the core group); None
when the kind is unknown."""

RBAC = "rbac.authorization.k8s.io"

#: etcd refuses a request over 1.5 MiB (its default ``--max-request-bytes``), after the API server has accepted the
#: object (and its dry-run): an object larger than this fails mid-apply.
MAX_OBJECT_BYTES = 1536 * 1024

# Built-in kinds by apiVersion: (namespaced kinds, cluster-scoped kinds). Used offline and as a fallback.
_BUILTIN_KINDS = {
    "v1": (
        "ConfigMap Endpoints Event LimitRange PersistentVolumeClaim Pod PodTemplate ReplicationController"
        " ResourceQuota Secret Service ServiceAccount",
        "Namespace Node PersistentVolume",
    ),
    "apps/v1": ("ControllerRevision DaemonSet Deployment ReplicaSet StatefulSet", ""),
    "batch/v1": ("CronJob Job", ""),
    "networking.k8s.io/v1": ("Ingress NetworkPolicy", "IPAddress IngressClass ServiceCIDR"),
    f"{RBAC}/v1": ("Role RoleBinding", "ClusterRole ClusterRoleBinding"),
    "apiextensions.k8s.io/v1": ("", "CustomResourceDefinition"),
    "storage.k8s.io/v1": ("CSIStorageCapacity", "CSIDriver CSINode StorageClass VolumeAttachment"),
    "admissionregistration.k8s.io/v1": (
        "",
        "MutatingWebhookConfiguration ValidatingAdmissionPolicy ValidatingAdmissionPolicyBinding"
        " ValidatingWebhookConfiguration",
    ),
    "policy/v1": ("PodDisruptionBudget", ""),
    "autoscaling/v1": ("HorizontalPodAutoscaler", ""),
    "autoscaling/v2": ("HorizontalPodAutoscaler", ""),
    "coordination.k8s.io/v1": ("Lease", ""),
    "scheduling.k8s.io/v1": ("", "PriorityClass"),
    "discovery.k8s.io/v1": ("EndpointSlice", ""),
    "events.k8s.io/v1": ("Event", ""),
    "node.k8s.io/v1": ("", "RuntimeClass"),
    "certificates.k8s.io/v1": ("", "CertificateSigningRequest"),
    "apiregistration.k8s.io/v1": ("", "APIService"),
    "flowcontrol.apiserver.k8s.io/v1": ("", "FlowSchema PriorityLevelConfiguration"),
    "resource.k8s.io/v1": ("ResourceClaim ResourceClaimTemplate", "DeviceClass ResourceSlice"),
}
_BUILTIN = {
    (api_version, kind): namespaced
    for api_version, scoped in _BUILTIN_KINDS.items()
    for namespaced, kinds in zip((True, False), scoped, strict=True)
    for kind in kinds.split()
}


@dataclass(frozen=True)
class _NameRule:
    """What Kubernetes accepts as a name of some kind, and how to say it."""

    pattern: re.Pattern[str]
    max_length: int
    description: str

    def allows(self, value: object) -> bool:
        return isinstance(value, str) and len(value) <= self.max_length and self.pattern.fullmatch(value) is not None


_DNS_LABEL = _NameRule(
    re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"),
    63,
    "a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63"
    " characters)",
)
_DNS_SUBDOMAIN = _NameRule(
    re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"),
    253,
    "a DNS subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253"
    " characters)",
)
# RBAC objects are named like path segments (``system:aggregate-to-view`` is a valid ClusterRole name).
_PATH_SEGMENT = _NameRule(re.compile(r"(?!\.\.?$)[^/%]+"), 253, "a path segment (no '/' or '%', not '.' or '..')")


def builtin_scopes(group_version: str, kind: str) -> bool | None:
    """Whether a built-in kind is namespaced, from a table of the common ones; None for any other kind."""
    return _BUILTIN.get((group_version, kind))


def crd_scopes(objects: Iterable[RenderedObject]) -> dict[tuple[str, str], bool]:
    """``(apiVersion, kind) -> namespaced?`` for every served version of every CRD among ``objects``."""
    return {key: namespaced for obj in objects if _is_crd(obj) for key, namespaced in _crd_kinds(obj.body)}


def validate(
    objects: Sequence[RenderedObject], stack: Stack, scopes: Scopes, *, discovery: bool
) -> list[RenderedObject]:
    """``objects`` of ``stack``, checked, with the stack's namespace set on namespaced objects that set none.

    ``scopes`` says which kinds exist; CRDs among ``objects`` count as known. With ``discovery`` (``scopes`` asks the
    API server) an unknown kind is an error; offline it is taken as namespaced. Raises :class:`ErrorGroup` of every
    :class:`ValidationError` found. The input objects are never changed: defaulted ones are new objects.
    """
    crds = crd_scopes(objects)
    errors: list[GitopsJobError] = []
    checked: list[RenderedObject] = []
    for obj in objects:
        wrong = _field_problem(obj.body)
        if wrong:
            errors.append(ValidationError(wrong, where=str(obj.source)))
            continue
        api_kind = (obj.body["apiVersion"], obj.body["kind"])
        namespaced = crds[api_kind] if api_kind in crds else scopes(*api_kind)
        out = obj if namespaced is False else _with_namespace(obj, stack.namespace)
        problems = [
            *_unknown_kind(out, namespaced, stack, discovery),
            *_name_problems(out, namespaced, stack),
            *_policy_problems(out, namespaced, stack),
            *_size_problems(out),
        ]
        errors.extend(ValidationError(f"{out.id}: {p}", where=str(out.source)) for p in problems)
        checked.append(out)
    errors.extend(_duplicates(checked))
    if errors:
        raise ErrorGroup(errors)
    return checked


def _is_crd(obj: RenderedObject) -> bool:
    return obj.id.group == "apiextensions.k8s.io" and obj.id.kind == "CustomResourceDefinition"


def _crd_kinds(body: Mapping[str, Any]) -> list[tuple[tuple[str, str], bool]]:
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return []
    group, names, scope, versions = spec.get("group"), spec.get("names"), spec.get("scope"), spec.get("versions")
    kind = names.get("kind") if isinstance(names, dict) else None
    if not (isinstance(group, str) and isinstance(kind, str) and isinstance(versions, list)):
        return []
    if scope not in ("Namespaced", "Cluster"):  # the API server refuses such a CRD; its kind stays unknown
        return []
    return [
        ((f"{group}/{v['name']}", kind), scope == "Namespaced")
        for v in versions
        if isinstance(v, dict) and isinstance(v.get("name"), str) and v.get("served", True)
    ]


def _field_problem(body: Mapping[str, Any]) -> str | None:
    """What is wrong with apiVersion, kind and metadata.name, or None: missing, or not a string (YAML reads
    ``name: 123`` as a number, ``name: yes`` as a boolean)."""
    meta = body.get("metadata")
    fields = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata.name": meta.get("name") if isinstance(meta, dict) else None,
    }
    missing = [name for name, value in fields.items() if value is None or value == ""]
    problems = [f"missing {', '.join(missing)}: every manifest needs apiVersion, kind and metadata.name"]
    problems = problems if missing else []
    problems += [
        f"{name} must be a string, got {_typed_value(value)}{_quote_hint(name, value)}"
        for name, value in fields.items()
        if value is not None and not isinstance(value, str)
    ]
    return "; ".join(problems) or None


def _typed_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__


def _quote_hint(name: str, value: Any) -> str:
    if isinstance(value, bool | int | float):
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        return f'; quote it: {name.rsplit(".", 1)[-1]}: "{shown}"'
    return ""


def _with_namespace(obj: RenderedObject, namespace: str | None) -> RenderedObject:
    """``obj`` with ``metadata.namespace`` set to ``namespace`` when it sets none (a new object; ``obj`` is kept)."""
    if not namespace or obj.body["metadata"].get("namespace"):
        return obj
    body = {**obj.body, "metadata": {**obj.body["metadata"], "namespace": namespace}}
    return replace(obj, id=ObjectId.of(body), body=body)


def _unknown_kind(obj: RenderedObject, namespaced: bool | None, stack: Stack, discovery: bool) -> list[str]:
    if namespaced is not None or not discovery:
        return []
    api_version = obj.body["apiVersion"]
    return [
        f"unknown kind {obj.id.kind} ({api_version}): no CRD in stack {stack.name!r} defines it and the API server"
        " does not serve it; check apiVersion and kind, or add the CRD to the stack"
    ]


def _name_problems(obj: RenderedObject, namespaced: bool | None, stack: Stack) -> list[str]:
    meta = obj.body["metadata"]
    name, namespace, kind = meta["name"], meta.get("namespace"), obj.id.kind
    rule = _PATH_SEGMENT if obj.id.group == RBAC else _DNS_LABEL if _is_namespace(obj) else _DNS_SUBDOMAIN
    problems = []
    if not rule.allows(name):
        problems.append(f"metadata.name {name!r} is not a valid {kind} name: use {rule.description}")
    if namespace and not _DNS_LABEL.allows(namespace):
        problems.append(f"metadata.namespace {namespace!r} is not a valid namespace: use {_DNS_LABEL.description}")
    if namespaced is False and namespace:
        problems.append(f"{kind} is cluster-scoped but sets metadata.namespace {namespace!r}; remove it")
    if namespaced and not namespace:
        problems.append(
            f"{kind} is namespaced but sets no metadata.namespace and stack {stack.name!r} has no namespace;"
            " set one of them"
        )
    return problems


def _size_problems(obj: RenderedObject) -> list[str]:
    size = len(json.dumps(obj.body, separators=(",", ":"), default=str).encode())
    if size <= MAX_OBJECT_BYTES:
        return []
    return [
        f"is {size / 2**20:.2f} MiB ({size} bytes) as JSON, over the {MAX_OBJECT_BYTES} bytes (1.5 MiB) etcd stores"
        " per object: the API server would accept its dry-run, then fail the write; split it into smaller objects"
        " (or keep large data out of the cluster's API)"
    ]


def _policy_problems(obj: RenderedObject, namespaced: bool | None, stack: Stack) -> list[str]:
    """The stack's allow policy: V5 (allow.namespaces), V6 (allow.clusterScoped, allow.clusterKinds, privilege
    escalation from a namespaced stack)."""
    allow = stack.allow
    allowed = allow.namespaces
    problems = []
    if allowed is not None:
        where = f"stack {stack.name!r} may use only allow.namespaces: {', '.join(allowed) or 'none'}"
        if namespaced is not False and obj.id.namespace and obj.id.namespace not in allowed:
            problems.append(f"namespace {obj.id.namespace!r} is refused: {where}")
        if _is_namespace(obj) and obj.id.name not in allowed:
            problems.append(f"Namespace {obj.id.name!r} is refused: {where}")
    escalation = _escalation(obj, stack) if allowed is not None else None
    if escalation:
        problems.append(escalation)
    elif namespaced is False and not allow.cluster_scoped:
        problems.append(f"cluster-scoped {obj.id.kind} is refused: stack {stack.name!r} has allow.clusterScoped: false")
    elif namespaced is False and not _is_namespace(obj) and not _cluster_kind_allowed(obj.id, stack):
        kind = obj.id.kind
        why = (
            f"stack {stack.name!r} is namespaced (allow.namespaces) and lists no cluster-scoped kinds"
            if allow.cluster_kinds is None
            else f"stack {stack.name!r} has allow.clusterKinds: {', '.join(allow.cluster_kinds) or 'none'}"
        )
        problems.append(f"cluster-scoped {kind} is refused: {why}; add {kind} to allow.clusterKinds to allow it")
    return problems


def _cluster_kind_allowed(oid: ObjectId, stack: Stack) -> bool:
    """May ``stack`` hold a cluster-scoped object of this kind? Listed in allow.clusterKinds (``Kind`` or
    ``Kind.group``); without that key: any kind, except in a namespaced stack."""
    kinds = stack.allow.cluster_kinds
    if kinds is None:
        return stack.allow.namespaces is None
    return oid.kind in kinds or f"{oid.kind}.{oid.group}" in kinds


ADMISSION = "admissionregistration.k8s.io"
#: Cluster-wide admission: each sees (and may change or block) requests in every namespace.
ADMISSION_KINDS = frozenset({
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
})  # fmt: skip
AGGREGATE_LABEL = f"{RBAC}/aggregate-to-"
#: RBAC verbs that grant more than the rule says, and the (groups, resources) they act on.
ESCALATING_VERBS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    "escalate": (frozenset({RBAC}), frozenset({"roles", "clusterroles"})),
    "bind": (frozenset({RBAC}), frozenset({"roles", "clusterroles"})),
    "impersonate": (frozenset({"", "authentication.k8s.io"}),
                    frozenset({"users", "groups", "serviceaccounts", "uids", "userextras", "userextras/*"})),
}  # fmt: skip


def _escalation(obj: RenderedObject, stack: Stack) -> str | None:
    """Why an object in a namespaced stack (one with allow.namespaces) would escalate privileges, or None: a
    binding to cluster-admin or a ``system:`` ClusterRole, any ClusterRoleBinding, an admission webhook or policy, a
    ClusterRole aggregated into other roles, a Role or ClusterRole granting escalate, bind or impersonate."""
    stack_kind = f"stack {stack.name!r} is namespaced (allow.namespaces)"
    group, kind = obj.id.group, obj.id.kind
    if group == ADMISSION and kind in ADMISSION_KINDS:
        return (f"{kind} intercepts requests in every namespace and is refused as privilege escalation: {stack_kind};"
                " move it to a stack without allow.namespaces")  # fmt: skip
    if group != RBAC:
        return None
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        return _binding_escalation(obj, stack_kind)
    if kind == "ClusterRole":
        labels = (obj.body.get("metadata") or {}).get("labels") or {}
        aggregated = sorted(k for k, v in labels.items() if str(k).startswith(AGGREGATE_LABEL) and str(v) == "true")
        if aggregated:
            into = str(aggregated[0])[len(AGGREGATE_LABEL) :]
            return (f"label {aggregated[0]} adds its rules to ClusterRole {into!r} (bound elsewhere) and is refused as"
                    f" privilege escalation: {stack_kind}")  # fmt: skip
    if kind in ("Role", "ClusterRole"):
        return _verb_escalation(obj.body.get("rules"), stack_kind)
    return None


def _binding_escalation(obj: RenderedObject, stack_kind: str) -> str | None:
    ref = obj.body.get("roleRef")
    ref = ref if isinstance(ref, dict) else {}
    name = str(ref.get("name", ""))
    if ref.get("kind") == "ClusterRole" and name == "cluster-admin":
        return f"binding ClusterRole cluster-admin is refused as privilege escalation: {stack_kind}"
    if ref.get("kind") == "ClusterRole" and name.startswith("system:"):
        return (f"binding ClusterRole {name} is refused as privilege escalation: {stack_kind}; system: roles belong"
                " to Kubernetes' own components")  # fmt: skip
    if obj.id.kind == "ClusterRoleBinding":
        return (
            f"a ClusterRoleBinding grants its role in every namespace and is refused as privilege escalation:"
            f" {stack_kind}; use a RoleBinding"
        )
    return None


def _verb_escalation(rules: Any, stack_kind: str) -> str | None:
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        verbs, groups, resources = (set(map(str, rule.get(k) or [])) for k in ("verbs", "apiGroups", "resources"))
        for verb, (its_groups, its_resources) in ESCALATING_VERBS.items():
            named = verb in verbs
            wildcard = "*" in verbs and bool(groups & {"*", *its_groups}) and bool(resources & {"*", *its_resources})
            if named or wildcard:
                how = (
                    f"verb {verb}" if named else f"verbs ['*'] on {', '.join(sorted(resources))} (which include {verb})"
                )
                return f"rules[{i}] grants {how} and is refused as privilege escalation: {stack_kind}"
    return None


def _is_namespace(obj: RenderedObject) -> bool:
    return obj.id.group == "" and obj.id.kind == "Namespace"


def _duplicates(objects: Sequence[RenderedObject]) -> list[GitopsJobError]:
    """V4: two objects of the stack with the same group, kind, namespace and name."""
    first: dict[ObjectId, RenderedObject] = {}
    errors: list[GitopsJobError] = []
    for obj in objects:
        other = first.setdefault(obj.id, obj)
        if other is not obj:
            reason = f"duplicate object {obj.id}: defined at {other.source} and {obj.source}"
            errors.append(ValidationError(reason, where=str(obj.source)))
    return errors
