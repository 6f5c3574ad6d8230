"""reconcile/order.py: the apply stages, the kind ranks within stage 2, and the delete order. Pure: no cluster."""

from __future__ import annotations

import pytest

from gitops_job.identity import ObjectId
from gitops_job.reconcile import order

CUSTOM = order.CUSTOM_RANK


def oid(group: str, kind: str, name: str = "x", namespace: str = "") -> ObjectId:
    return ObjectId(group, kind, namespace, name)


@pytest.mark.parametrize(
    ("group", "kind", "expected"),
    [
        # stage 0: what everything else needs to exist
        pytest.param("apiextensions.k8s.io", "CustomResourceDefinition", (0, 0), id="crd-first"),
        pytest.param("", "Namespace", (0, 0), id="namespace-first"),
        pytest.param("rbac.authorization.k8s.io", "ClusterRole", (0, 0), id="clusterrole-first"),
        # stage 1: *Class kinds, built in or not
        pytest.param("storage.k8s.io", "StorageClass", (1, 0), id="storageclass"),
        pytest.param("networking.k8s.io", "IngressClass", (1, 0), id="ingressclass"),
        pytest.param("scheduling.k8s.io", "PriorityClass", (1, 0), id="priorityclass"),
        pytest.param("gateway.networking.k8s.io", "GatewayClass", (1, 0), id="gatewayclass-crd"),
        # stage 2, by KIND_RANK
        pytest.param("", "ResourceQuota", (2, 0), id="quota-rank0"),
        pytest.param("networking.k8s.io", "NetworkPolicy", (2, 0), id="networkpolicy-rank0"),
        pytest.param("", "ServiceAccount", (2, 1), id="serviceaccount-rank1"),
        pytest.param("", "Secret", (2, 1), id="secret-rank1"),
        pytest.param("", "ConfigMap", (2, 1), id="configmap-rank1"),
        pytest.param("", "PersistentVolumeClaim", (2, 2), id="pvc-rank2"),
        pytest.param("rbac.authorization.k8s.io", "ClusterRoleBinding", (2, 3), id="clusterrolebinding-rank3"),
        pytest.param("rbac.authorization.k8s.io", "RoleBinding", (2, 3), id="rolebinding-rank3"),
        pytest.param("", "Service", (2, 4), id="service-rank4"),
        pytest.param("discovery.k8s.io", "EndpointSlice", (2, 4), id="endpointslice-rank4"),
        pytest.param("apps", "Deployment", (2, 5), id="deployment-rank5"),
        pytest.param("batch", "CronJob", (2, 5), id="cronjob-rank5"),
        pytest.param("", "Pod", (2, 5), id="pod-rank5"),
        pytest.param("autoscaling", "HorizontalPodAutoscaler", (2, 6), id="hpa-rank6"),
        pytest.param("networking.k8s.io", "Ingress", (2, 6), id="ingress-rank6"),
        pytest.param("apiregistration.k8s.io", "APIService", (2, 6), id="apiservice-rank6"),
        # stage 2, after every listed built-in kind
        pytest.param("example.com", "Widget", (2, CUSTOM), id="custom-resource-last-rank"),
        pytest.param("example.com", "Service", (2, CUSTOM), id="custom-kind-named-like-builtin"),
        pytest.param("example.com", "ClusterRole", (2, CUSTOM), id="custom-clusterrole-not-first"),
        pytest.param("coordination.k8s.io", "Lease", (2, CUSTOM), id="unlisted-builtin-with-custom"),
        # stage 3: admission last
        pytest.param("admissionregistration.k8s.io", "MutatingWebhookConfiguration", (3, 0), id="mutating-webhook"),
        pytest.param("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", (3, 0), id="validating-webhook"),
        pytest.param("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", (3, 0), id="vap"),
        pytest.param("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", (3, 0), id="vap-binding"),
    ],
)
def test_stage(group: str, kind: str, expected: tuple[int, int]) -> None:
    assert order.stage(oid(group, kind)) == expected


@pytest.mark.parametrize(
    ("kind", "namespace"),
    [pytest.param("ConfigMap", "", id="no-namespace"), pytest.param("ConfigMap", "apps", id="namespaced")],
)
def test_stage_depends_on_group_and_kind_only(kind: str, namespace: str) -> None:
    assert order.stage(oid("", kind, "a", namespace)) == order.stage(oid("", kind, "zzz", "other")) == (2, 1)


def test_first_stage_is_the_first_stage_only() -> None:
    firsts = [oid(g, k) for g, k in sorted(order.FIRST)]
    assert all(order.stage(o) <= order.FIRST_STAGE for o in firsts)
    assert order.stage(oid("storage.k8s.io", "StorageClass")) > order.FIRST_STAGE


def test_no_kind_is_ranked_twice() -> None:
    kinds = [kind for rank in order.KIND_RANK for kind in rank]
    assert len(kinds) == len(set(kinds))


NS = oid("", "Namespace", "apps")
CRD = oid("apiextensions.k8s.io", "CustomResourceDefinition", "widgets.example.com")
CLASS = oid("storage.k8s.io", "StorageClass", "fast")
SA = oid("", "ServiceAccount", "app", "apps")
CM = oid("", "ConfigMap", "settings", "apps")
SVC = oid("", "Service", "app", "apps")
DEPLOY = oid("apps", "Deployment", "app", "apps")
WIDGET = oid("example.com", "Widget", "w", "apps")
HOOK = oid("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "policy")


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([DEPLOY], [[DEPLOY]], id="one"),
        pytest.param(
            [HOOK, WIDGET, DEPLOY, SVC, CM, SA, CLASS, CRD, NS],
            [[CRD, NS], [CLASS], [CM, SA], [SVC], [DEPLOY], [WIDGET], [HOOK]],
            id="every-stage-input-order-kept-within-a-step",
        ),
        pytest.param([SA, CM, NS], [[NS], [SA, CM]], id="same-rank-one-step"),
        pytest.param([WIDGET, DEPLOY], [[DEPLOY], [WIDGET]], id="custom-after-workloads"),
    ],
)
def test_steps(items: list[ObjectId], expected: list[list[ObjectId]]) -> None:
    assert order.steps(items, lambda o: o) == expected


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param(
            [NS, CRD, CM, DEPLOY, HOOK, WIDGET],
            [[HOOK], [WIDGET], [DEPLOY], [CM], [NS, CRD]],
            id="reverse-of-apply",
        ),
        pytest.param([SA, CM], [[SA, CM]], id="one-step-order-kept"),
    ],
)
def test_delete_steps(items: list[ObjectId], expected: list[list[ObjectId]]) -> None:
    assert order.delete_steps(items, lambda o: o) == expected


def test_steps_group_any_item_by_its_key() -> None:
    items = [("deploy", DEPLOY), ("ns", NS), ("cm", CM)]
    assert order.steps(items, lambda item: item[1]) == [[("ns", NS)], [("cm", CM)], [("deploy", DEPLOY)]]
