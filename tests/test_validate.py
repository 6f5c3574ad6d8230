"""The validate stage, table-driven: required fields, names, scope, namespace defaulting, duplicates (V4), the allow
policy (V5, V6), unknown kinds with discovery (V2) and offline. Pure logic: no cluster."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gitops_job.config.load import AllowPolicy, Stack
from gitops_job.errors import ErrorGroup
from gitops_job.identity import ObjectId
from gitops_job.model import RenderedObject, Source
from gitops_job.reconcile.validate import builtin_scopes, crd_scopes, validate

APP = Stack("app", "app", namespace="apps")
NAMESPACED = Stack("app", "app", namespace="apps", allow=AllowPolicy(namespaces=("apps", "apps-extra")))


def rendered(body: dict[str, Any], file: str = "app/x.yaml", line: int = 1) -> RenderedObject:
    return RenderedObject(ObjectId.of(body), body, Source(file, line), "app")


def manifest(api_version: str, kind: str, name: str, namespace: str | None = None, **rest: Any) -> dict[str, Any]:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **rest}


def cm(name: str = "settings", namespace: str | None = None) -> dict[str, Any]:
    return manifest("v1", "ConfigMap", name, namespace, data={"a": "1"})


def binding(kind: str, role_kind: str, role: str, namespace: str | None = "apps") -> dict[str, Any]:
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}
    return manifest("rbac.authorization.k8s.io/v1", kind, "grant", namespace, roleRef=ref, subjects=[])


def crd(group: str, kind: str, scope: str = "Namespaced", versions: tuple[str, ...] = ("v1",)) -> dict[str, Any]:
    plural = kind.lower() + "s"
    spec = {
        "group": group,
        "names": {"kind": kind, "plural": plural},
        "scope": scope,
        "versions": [{"name": v, "served": True, "storage": v == versions[0]} for v in versions],
    }
    return manifest("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"{plural}.{group}", spec=spec)


def problems(objects: list[dict[str, Any]], stack: Stack = APP, *, discovery: bool = False) -> list[str]:
    """The messages validate raises for ``objects`` (each from its own file, line 1, 2, …)."""
    with pytest.raises(ErrorGroup) as info:
        validate([rendered(b, line=i + 1) for i, b in enumerate(objects)], stack, builtin_scopes, discovery=discovery)
    return [str(e) for e in info.value.errors]


def test_namespace_defaulting_returns_new_objects_and_keeps_the_input() -> None:
    objects = [
        rendered(cm("defaulted")),
        rendered(cm("explicit", "other")),
        rendered(manifest("rbac.authorization.k8s.io/v1", "ClusterRole", "reader")),
    ]
    before = copy.deepcopy(objects)

    out = validate(objects, APP, builtin_scopes, discovery=False)

    assert [o.id for o in out] == [
        ObjectId("", "ConfigMap", "apps", "defaulted"),
        ObjectId("", "ConfigMap", "other", "explicit"),
        ObjectId("rbac.authorization.k8s.io", "ClusterRole", "", "reader"),
    ]
    assert out[0].body["metadata"] == {"name": "defaulted", "namespace": "apps"}
    assert (out[0].source, out[0].stack) == (objects[0].source, objects[0].stack)
    assert out[1:] == objects[1:]
    assert objects == before  # the input objects, bodies included, are unchanged


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"kind": "ConfigMap", "metadata": {"name": "a"}},
            "validate: app/x.yaml:1: missing apiVersion: every manifest needs apiVersion, kind and metadata.name",
            id="no-api-version",
        ),
        pytest.param(
            {"apiVersion": "v1", "metadata": {"name": "a"}}, "validate: app/x.yaml:1: missing kind:", id="no-kind"
        ),
        pytest.param({"apiVersion": "v1", "kind": "ConfigMap"}, "missing metadata.name:", id="no-metadata"),
        pytest.param(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ""}},
            "missing metadata.name:",
            id="empty-name",
        ),
        pytest.param({"metadata": {}}, "missing apiVersion, kind, metadata.name:", id="nothing"),
    ],
)
def test_missing_required_fields_are_reported_at_file_and_line(body: dict[str, Any], expected: str) -> None:
    found = problems([body])

    assert len(found) == 1, found
    assert expected in found[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            cm("Bad_Name"),
            "validate: app/x.yaml:1: ConfigMap/apps/Bad_Name: metadata.name 'Bad_Name' is not a valid ConfigMap name:"
            " use a DNS subdomain",
            id="name-not-a-dns-subdomain",
        ),
        pytest.param(cm("a" * 254), "is not a valid ConfigMap name", id="name-too-long"),
        pytest.param(
            cm("settings", "Apps"),
            "ConfigMap/Apps/settings: metadata.namespace 'Apps' is not a valid namespace: use a DNS label",
            id="namespace-not-a-dns-label",
        ),
        pytest.param(
            manifest("v1", "Namespace", "team.a"),
            "Namespace/team.a: metadata.name 'team.a' is not a valid Namespace name: use a DNS label",
            id="namespace-object-name-not-a-dns-label",
        ),
        pytest.param(
            manifest("rbac.authorization.k8s.io/v1", "ClusterRole", "a/b"),
            "ClusterRole/a/b: metadata.name 'a/b' is not a valid ClusterRole name: use a path segment",
            id="rbac-name-with-slash",
        ),
        pytest.param(
            manifest("rbac.authorization.k8s.io/v1", "ClusterRole", "reader", "apps"),
            "ClusterRole/apps/reader: ClusterRole is cluster-scoped but sets metadata.namespace 'apps'; remove it",
            id="namespace-on-cluster-scoped-kind",
        ),
    ],
)
def test_invalid_names_and_namespaces(body: dict[str, Any], expected: str) -> None:
    found = problems([body])

    assert len(found) == 1, found
    assert expected in found[0]


def test_rbac_names_may_contain_colons() -> None:
    role = rendered(manifest("rbac.authorization.k8s.io/v1", "ClusterRole", "system:aggregate-to-view"))

    assert validate([role], APP, builtin_scopes, discovery=False) == [role]


def test_namespaced_kind_without_any_namespace_is_refused() -> None:
    found = problems([cm("settings")], Stack("app", "app"))

    assert found == [
        "validate: app/x.yaml:1: ConfigMap/settings: ConfigMap is namespaced but sets no metadata.namespace and stack"
        " 'app' has no namespace; set one of them"
    ]


def test_v4_duplicate_object_names_both_sources() -> None:
    objects = [rendered(cm("a"), "app/one.yaml", 3), rendered(cm("a", "apps"), "app/two.yaml", 10)]

    with pytest.raises(ErrorGroup) as info:
        validate(objects, APP, builtin_scopes, discovery=False)

    assert [str(e) for e in info.value.errors] == [
        "validate: app/two.yaml:10: duplicate object ConfigMap/apps/a: defined at app/one.yaml:3 and app/two.yaml:10"
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(cm("a", "apps"), cm("a", "apps-extra"), id="other-namespace"),
        pytest.param(cm("a", "apps"), manifest("v1", "Secret", "a", "apps"), id="other-kind"),
        pytest.param(
            manifest("apps/v1", "Deployment", "a", "apps"),
            manifest("example.com/v1", "Deployment", "a", "apps"),
            id="other-group",
        ),
    ],
)
def test_v4_same_name_is_not_a_duplicate_when_anything_else_differs(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    objects = [rendered(first), rendered(second)]

    assert validate(objects, APP, builtin_scopes, discovery=False) == objects


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            cm("a", "kube-system"),
            "ConfigMap/kube-system/a: namespace 'kube-system' is refused: stack 'app' may use only allow.namespaces:"
            " apps, apps-extra",
            id="namespaced-object-outside",
        ),
        pytest.param(
            manifest("v1", "Namespace", "kube-system"),
            "Namespace/kube-system: Namespace 'kube-system' is refused: stack 'app' may use only allow.namespaces:"
            " apps, apps-extra",
            id="namespace-object-outside",
        ),
        pytest.param(
            manifest("example.com/v1", "Widget", "w", "kube-system"),
            "Widget/kube-system/w: namespace 'kube-system' is refused",
            id="unknown-kind-offline-counts-as-namespaced",
        ),
    ],
)
def test_v5_allow_namespaces_refuses_objects_outside(body: dict[str, Any], expected: str) -> None:
    found = problems([body], NAMESPACED)

    assert len(found) == 1, found
    assert expected in found[0]


def test_v5_allow_namespaces_accepts_allowed_and_defaulted_namespaces() -> None:
    objects = [rendered(cm("a")), rendered(cm("b", "apps-extra")), rendered(manifest("v1", "Namespace", "apps"))]

    out = validate(objects, NAMESPACED, builtin_scopes, discovery=False)

    assert [o.id.namespace for o in out] == ["apps", "apps-extra", ""]


NO_CLUSTER_SCOPED = Stack("app", "app", namespace="apps", allow=AllowPolicy(cluster_scoped=False))
NAMESPACED_ONLY = Stack("app", "app", namespace="apps", allow=AllowPolicy(("apps",), cluster_scoped=False))


@pytest.mark.parametrize(
    ("body", "stack", "expected"),
    [
        pytest.param(
            manifest("storage.k8s.io/v1", "StorageClass", "fast"),
            NO_CLUSTER_SCOPED,
            "StorageClass/fast: cluster-scoped StorageClass is refused: stack 'app' has allow.clusterScoped: false",
            id="cluster-scoped-kind",
        ),
        pytest.param(
            manifest("v1", "Namespace", "apps"),
            NAMESPACED_ONLY,
            "Namespace/apps: cluster-scoped Namespace is refused",
            id="namespace-object",
        ),
        pytest.param(
            binding("RoleBinding", "ClusterRole", "cluster-admin"),
            NAMESPACED,
            "RoleBinding/apps/grant: binding ClusterRole cluster-admin is refused as privilege escalation: stack 'app'"
            " is namespaced (allow.namespaces)",
            id="rolebinding-to-cluster-admin",
        ),
        pytest.param(
            binding("ClusterRoleBinding", "ClusterRole", "cluster-admin", None),
            NAMESPACED,
            "ClusterRoleBinding/grant: binding ClusterRole cluster-admin is refused as privilege escalation",
            id="clusterrolebinding-to-cluster-admin",
        ),
        pytest.param(
            binding("ClusterRoleBinding", "ClusterRole", "view", None),
            NAMESPACED,
            "ClusterRoleBinding/grant: a ClusterRoleBinding grants its role in every namespace and is refused as"
            " privilege escalation: stack 'app' is namespaced (allow.namespaces); use a RoleBinding",
            id="any-clusterrolebinding-from-namespaced-stack",
        ),
        pytest.param(
            binding("ClusterRoleBinding", "ClusterRole", "view", None),
            NAMESPACED_ONLY,
            "ClusterRoleBinding/grant: a ClusterRoleBinding grants its role in every namespace",
            id="escalation-reported-once-with-cluster-scoped-refused",
        ),
    ],
)
def test_v6_cluster_scoped_and_privilege_escalation_refused(body: dict[str, Any], stack: Stack, expected: str) -> None:
    found = problems([body], stack)

    assert len(found) == 1, found
    assert expected in found[0]


@pytest.mark.parametrize(
    ("body", "stack"),
    [
        pytest.param(binding("RoleBinding", "Role", "editor"), NAMESPACED_ONLY, id="rolebinding-to-role"),
        pytest.param(binding("RoleBinding", "ClusterRole", "view"), NAMESPACED_ONLY, id="rolebinding-to-clusterrole"),
        pytest.param(binding("ClusterRoleBinding", "ClusterRole", "cluster-admin", None), APP, id="platform-stack"),
    ],
)
def test_v6_bindings_that_are_allowed(body: dict[str, Any], stack: Stack) -> None:
    objects = [rendered(body)]

    assert validate(objects, stack, builtin_scopes, discovery=False) == objects


def test_v2_unknown_kind_with_discovery() -> None:
    found = problems([manifest("example.com/v1", "Widget", "w", "apps")], discovery=True)

    assert found == [
        "validate: app/x.yaml:1: Widget/apps/w: unknown kind Widget (example.com/v1): no CRD in stack 'app' defines it"
        " and the API server does not serve it; check apiVersion and kind, or add the CRD to the stack"
    ]


def test_v2_crd_in_the_same_stack_counts_as_known_and_gives_the_scope() -> None:
    objects = [
        rendered(crd("example.com", "Widget", versions=("v1", "v1beta1"))),
        rendered(manifest("example.com/v1beta1", "Widget", "w")),
        rendered(crd("example.com", "Fleet", scope="Cluster")),
        rendered(manifest("example.com/v1", "Fleet", "f")),
    ]

    out = validate(objects, APP, builtin_scopes, discovery=True)

    assert out[1].id == ObjectId("example.com", "Widget", "apps", "w")  # namespaced: defaulted
    assert out[3].id == ObjectId("example.com", "Fleet", "", "f")  # cluster-scoped: left alone


def test_v2_crd_version_that_is_not_served_is_unknown() -> None:
    definition = crd("example.com", "Widget", versions=("v1", "v1alpha1"))
    definition["spec"]["versions"][1]["served"] = False

    found = problems([definition, manifest("example.com/v1alpha1", "Widget", "w", "apps")], discovery=True)

    assert len(found) == 1
    assert "unknown kind Widget (example.com/v1alpha1)" in found[0]


def test_v2_offline_unknown_kinds_are_not_errors_and_count_as_namespaced() -> None:
    objects = [
        rendered(manifest("example.com/v1", "Widget", "w")),
        rendered(crd("example.com", "Fleet", scope="Cluster")),
        rendered(manifest("example.com/v1", "Fleet", "f")),
    ]

    out = validate(objects, APP, builtin_scopes, discovery=False)

    assert [o.id.namespace for o in out] == ["apps", "", ""]


def test_v2_scopes_is_the_only_judge_of_known_kinds() -> None:
    served = {("v1", "ConfigMap"): True}  # a cluster that does not serve batch/v1 Job
    objects = [rendered(cm("a")), rendered(manifest("batch/v1", "Job", "j", "apps"))]

    with pytest.raises(ErrorGroup) as info:
        validate(objects, APP, lambda gv, kind: served.get((gv, kind)), discovery=True)

    assert [e.reason.split(": ")[:2] for e in info.value.errors] == [["Job/apps/j", "unknown kind Job (batch/v1)"]]


def test_every_problem_is_collected() -> None:
    found = problems(
        [
            {"kind": "ConfigMap", "metadata": {"name": "a"}},
            cm("Bad"),
            cm("x", "kube-system"),
            cm("dup"),
            cm("dup"),
            manifest("v1", "PersistentVolume", "pv"),
        ],
        Stack("app", "app", namespace="apps", allow=AllowPolicy(("apps",), cluster_scoped=False)),
    )

    assert [f.split(": ")[1] for f in found] == [
        "app/x.yaml:1",
        "app/x.yaml:2",
        "app/x.yaml:3",
        "app/x.yaml:6",
        "app/x.yaml:5",
    ]


@pytest.mark.parametrize(
    ("group_version", "kind", "namespaced"),
    [
        ("v1", "Namespace", False),
        ("v1", "Node", False),
        ("v1", "PersistentVolume", False),
        ("v1", "ConfigMap", True),
        ("v1", "Secret", True),
        ("v1", "Service", True),
        ("v1", "ServiceAccount", True),
        ("v1", "Pod", True),
        ("v1", "PersistentVolumeClaim", True),
        ("apps/v1", "Deployment", True),
        ("apps/v1", "StatefulSet", True),
        ("batch/v1", "CronJob", True),
        ("networking.k8s.io/v1", "Ingress", True),
        ("networking.k8s.io/v1", "IngressClass", False),
        ("rbac.authorization.k8s.io/v1", "Role", True),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", True),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", False),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", False),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", False),
        ("storage.k8s.io/v1", "StorageClass", False),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", False),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", False),
        ("policy/v1", "PodDisruptionBudget", True),
        ("autoscaling/v2", "HorizontalPodAutoscaler", True),
        ("coordination.k8s.io/v1", "Lease", True),
        ("scheduling.k8s.io/v1", "PriorityClass", False),
        ("v1", "Widget", None),
        ("apps/v1beta1", "Deployment", None),
    ],
)
def test_builtin_scopes(group_version: str, kind: str, namespaced: bool | None) -> None:
    assert builtin_scopes(group_version, kind) is namespaced


def test_crd_scopes_reads_every_served_version_and_skips_malformed_crds() -> None:
    broken = manifest("apiextensions.k8s.io/v1", "CustomResourceDefinition", "broken.example.com", spec={"group": 1})
    objects = [
        rendered(crd("example.com", "Widget", versions=("v1", "v2"))),
        rendered(crd("example.com", "Fleet", scope="Cluster")),
        rendered(broken),
        rendered(cm("a", "apps")),
    ]

    assert crd_scopes(objects) == {
        ("example.com/v1", "Widget"): True,
        ("example.com/v2", "Widget"): True,
        ("example.com/v1", "Fleet"): False,
    }


@pytest.mark.parametrize(("size", "refused"), [(1536 * 1024 - 200, False), (1536 * 1024 + 1, True), (1_700_000, True)])
def test_item08_objects_over_etcds_limit_are_refused_naming_object_and_size(size: int, refused: bool) -> None:
    body = cm("big", "apps")
    body["data"] = {"blob": ""}
    body["data"]["blob"] = "x" * (size - len(json.dumps(body, separators=(",", ":"))))
    objects = [rendered(cm("small", "apps")), rendered(body, "app/big.yaml", 3)]
    if not refused:
        assert len(validate(objects, APP, builtin_scopes, discovery=False)) == 2
        return
    with pytest.raises(ErrorGroup) as info:
        validate(objects, APP, builtin_scopes, discovery=False)
    (message,) = [str(e) for e in info.value.errors]
    assert message.startswith("validate: app/big.yaml:3: ConfigMap/apps/big: ")
    assert f"({size} bytes)" in message and "1572864 bytes (1.5 MiB)" in message and "split it" in message


# -- item 14: escalation from a namespaced stack ------------------------------------------------------------------
ADMISSION_V1 = "admissionregistration.k8s.io/v1"
RBAC_V1 = "rbac.authorization.k8s.io/v1"
WITH_CLUSTER_ROLES = Stack(
    "app", "app", namespace="apps", allow=AllowPolicy(namespaces=("apps",), cluster_kinds=("ClusterRole",))
)


def role(kind: str, name: str, *rules: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    body = manifest(RBAC_V1, kind, name, "apps" if kind == "Role" else None, rules=list(rules))
    if labels:
        body["metadata"]["labels"] = labels
    return body


def rule(verbs: list[str], resources: list[str], groups: list[str] | None = None) -> dict[str, Any]:
    return {"apiGroups": groups if groups is not None else [""], "resources": resources, "verbs": verbs}


@pytest.mark.parametrize(
    ("body", "stack", "expected"),
    [
        pytest.param(
            manifest(ADMISSION_V1, "MutatingWebhookConfiguration", "inject", webhooks=[]),
            NAMESPACED,
            "MutatingWebhookConfiguration/inject: MutatingWebhookConfiguration intercepts requests in every namespace"
            " and is refused as privilege escalation: stack 'app' is namespaced (allow.namespaces)",
            id="mutating-webhook",
        ),
        pytest.param(
            manifest(ADMISSION_V1, "ValidatingWebhookConfiguration", "deny", webhooks=[]),
            Stack("app", "app", allow=AllowPolicy(("apps",), cluster_kinds=("ValidatingWebhookConfiguration",))),
            "ValidatingWebhookConfiguration intercepts requests in every namespace and is refused as privilege",
            id="validating-webhook-even-when-listed",
        ),
        pytest.param(
            manifest(ADMISSION_V1, "ValidatingAdmissionPolicyBinding", "deny", spec={}),
            NAMESPACED,
            "ValidatingAdmissionPolicyBinding intercepts requests in every namespace",
            id="admission-policy-binding",
        ),
        pytest.param(
            role("ClusterRole", "more", labels={"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
            WITH_CLUSTER_ROLES,
            "ClusterRole/more: label rbac.authorization.k8s.io/aggregate-to-admin adds its rules to ClusterRole"
            " 'admin' (bound elsewhere) and is refused as privilege escalation",
            id="clusterrole-aggregated-into-admin",
        ),
        pytest.param(
            role("ClusterRole", "more", labels={"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
            WITH_CLUSTER_ROLES,
            "aggregate-to-edit adds its rules to ClusterRole 'edit'",
            id="clusterrole-aggregated-into-edit",
        ),
        pytest.param(
            binding("RoleBinding", "ClusterRole", "system:controller:clusterrole-aggregation-controller"),
            NAMESPACED,
            "RoleBinding/apps/grant: binding ClusterRole system:controller:clusterrole-aggregation-controller is"
            " refused as privilege escalation: stack 'app' is namespaced (allow.namespaces); system: roles belong to"
            " Kubernetes' own components",
            id="rolebinding-to-system-controller-role",
        ),
        pytest.param(
            role("Role", "granter", rule(["escalate", "get"], ["roles"], ["rbac.authorization.k8s.io"])),
            NAMESPACED,
            "Role/apps/granter: rules[0] grants verb escalate and is refused as privilege escalation",
            id="role-with-escalate",
        ),
        pytest.param(
            role("Role", "binder", rule(["bind"], ["clusterroles"], ["rbac.authorization.k8s.io"])),
            NAMESPACED,
            "rules[0] grants verb bind",
            id="role-with-bind",
        ),
        pytest.param(
            role("ClusterRole", "as-anyone", rule(["get"], ["pods"]), rule(["impersonate"], ["users"])),
            WITH_CLUSTER_ROLES,
            "ClusterRole/as-anyone: rules[1] grants verb impersonate",
            id="clusterrole-with-impersonate",
        ),
        pytest.param(
            role("Role", "everything", rule(["*"], ["*"], ["*"])),
            NAMESPACED,
            "rules[0] grants verbs ['*'] on * (which include escalate)",
            id="wildcard-verbs-on-every-resource",
        ),
        pytest.param(
            role("ClusterRole", "reader", rule(["get", "list"], ["pods"])),
            NAMESPACED,
            "ClusterRole/reader: cluster-scoped ClusterRole is refused: stack 'app' is namespaced (allow.namespaces)"
            " and lists no cluster-scoped kinds; add ClusterRole to allow.clusterKinds to allow it",
            id="cluster-scoped-kind-not-listed",
        ),
        pytest.param(
            manifest("storage.k8s.io/v1", "StorageClass", "fast", provisioner="x"),
            WITH_CLUSTER_ROLES,
            "StorageClass/fast: cluster-scoped StorageClass is refused: stack 'app' has allow.clusterKinds:"
            " ClusterRole; add StorageClass to allow.clusterKinds to allow it",
            id="cluster-scoped-kind-not-in-the-list",
        ),
    ],
)
def test_item14_namespaced_stack_refuses_cluster_kinds_and_escalation(
    body: dict[str, Any], stack: Stack, expected: str
) -> None:
    found = problems([body], stack)

    assert len(found) == 1, found
    assert expected in found[0]


@pytest.mark.parametrize(
    ("body", "stack"),
    [
        pytest.param(role("ClusterRole", "reader", rule(["get", "list"], ["pods"])), WITH_CLUSTER_ROLES, id="listed"),
        pytest.param(
            manifest("cert-manager.io/v1", "ClusterIssuer", "ca", spec={}),
            Stack("app", "app", allow=AllowPolicy(("apps",), cluster_kinds=("ClusterIssuer.cert-manager.io",))),
            id="listed-with-group",
        ),
        pytest.param(manifest("v1", "Namespace", "apps"), NAMESPACED, id="own-namespace-needs-no-listing"),
        pytest.param(role("Role", "editor", rule(["*"], ["configmaps", "secrets"])), NAMESPACED, id="wildcard-verbs"),
        pytest.param(binding("RoleBinding", "ClusterRole", "edit"), NAMESPACED, id="rolebinding-to-edit"),
        pytest.param(
            manifest(ADMISSION_V1, "MutatingWebhookConfiguration", "inject", webhooks=[]), APP, id="cluster-stack"
        ),
    ],
)
def test_item14_what_a_namespaced_stack_may_still_hold(body: dict[str, Any], stack: Stack) -> None:
    scopes = {("cert-manager.io/v1", "ClusterIssuer"): False}
    out = validate([rendered(body)], stack, lambda a, k: scopes.get((a, k), builtin_scopes(a, k)), discovery=True)

    assert [o.id.name for o in out] == [body["metadata"]["name"]]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(123, 'metadata.name must be a string, got 123 (a number); quote it: name: "123"', id="number"),
        pytest.param(True, 'metadata.name must be a string, got true (a boolean); quote it: name: "true"', id="bool"),
        pytest.param(["a"], "metadata.name must be a string, got a list", id="list"),
    ],
)
def test_item18_a_name_that_is_not_a_string_says_so_and_how_to_quote_it(name: Any, expected: str) -> None:
    found = problems([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}])

    assert found == [f"validate: app/x.yaml:1: {expected}"]
