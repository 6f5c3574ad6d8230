"""The plan against the real API server: classification, CRD + CR in one stack, defaults, conflicts, ignoreDifferences,
secrets (rows S1, S2, S3, S5), and the request budget (zero writes; LISTs instead of per-object requests)."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gitops_job.config.load import IgnoreDifference, Stack
from gitops_job.identity import ObjectId
from gitops_job.kube import FIELD_MANAGER, ApiError, Kube
from gitops_job.model import RenderedObject, Source
from gitops_job.outcomes import Action
from gitops_job.reconcile.mask import LAST_APPLIED
from gitops_job.reconcile.plan import plan
from gitops_job.reconcile.results import Plan
from gitops_job.report.json import json_text, to_json
from gitops_job.report.markdown import markdown
from gitops_job.report.text import diff as entry_diff
from gitops_job.report.text import text as plan_text
from tests.kube import crd as make_crd
from tests.kube import etcd_put, wait_until

SCHEMA = json.loads((Path(__file__).parent.parent / "gitops_job/report/schemas/plan.schema.json").read_text())


def rendered(body: dict[str, Any], stack: str = "app", line: int = 1) -> RenderedObject:
    return RenderedObject(
        ObjectId.of(body), copy.deepcopy(body), Source(f"{stack}/{body['metadata']['name']}.yaml", line), stack
    )


def cm(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def secret(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": data}


def deployment(ns: str, name: str, replicas: int = 1, image: str = "registry.example/app:1") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    }


def apply_all(kube: Kube, *bodies: dict[str, Any], manager: str = FIELD_MANAGER) -> None:
    for body in bodies:
        rt = kube.resource_type(body["apiVersion"], body["kind"])
        assert rt is not None
        kube.apply(rt, body, field_manager=manager)


def run(kube: Kube, *bodies: dict[str, Any], stacks: dict[str, Stack] | None = None) -> Plan:
    before = kube.writes
    result = plan(kube, "test", [rendered(b) for b in bodies], stacks or {"app": Stack("app", "app")})
    assert kube.writes == before, "planning wrote to the cluster"
    jsonschema.validate(to_json(result), SCHEMA)
    return result


def actions(p: Plan) -> dict[str, Action]:
    return {str(e.id): e.action for e in p.entries}


def all_output(p: Plan) -> str:
    return plan_text(p) + json_text(p) + markdown(p)


def test_create_update_unchanged_are_classified(kube: Kube, namespace: str) -> None:
    apply_all(kube, cm(namespace, "same", a="1"), cm(namespace, "changed", a="1"), deployment(namespace, "web"))
    result = run(
        kube,
        cm(namespace, "same", a="1"),
        cm(namespace, "changed", a="2"),
        cm(namespace, "new", a="1"),
        deployment(namespace, "web"),
    )
    assert actions(result) == {
        f"ConfigMap/{namespace}/changed": Action.UPDATE,
        f"ConfigMap/{namespace}/new": Action.CREATE,
        f"ConfigMap/{namespace}/same": Action.UNCHANGED,
        f"Deployment/{namespace}/web": Action.UNCHANGED,
    }
    update = next(e for e in result.entries if e.action is Action.UPDATE)
    assert "-  a: '1'" in entry_diff(update) and "+  a: '2'" in entry_diff(update)
    assert plan_text(result).splitlines()[0] == "1 to create, 1 to update, 0 to prune, 2 unchanged"


def test_nothing_changed_costs_lists_not_per_object_requests(kube: Kube, namespace: str) -> None:
    bodies = [cm(namespace, f"c{i}", k=str(i)) for i in range(40)] + [deployment(namespace, f"d{i}") for i in range(10)]
    apply_all(kube, *bodies)
    kube.requests.clear()
    result = run(kube, *bodies)
    assert result.count(Action.UNCHANGED) == 50
    assert all(e.proven for e in result.entries)
    assert kube.requests.get("PATCH (dry-run)", 0) == 0
    assert sum(kube.requests.values()) <= 6  # 2 discovery + 2 LISTs + mutating-admission checks


def test_server_defaulted_fields_are_not_a_change(kube: Kube, namespace: str) -> None:
    """Applied by someone else first (so no fast path), then planned: defaults the server filled in show no diff."""
    body = deployment(namespace, "defaults")
    apply_all(kube, body, manager="kubectl")
    result = run(kube, body)
    entry = result.entries[0]
    assert not entry.proven
    assert entry.action is Action.UNCHANGED, entry_diff(entry)


def test_drift_made_by_hand_shows_exactly_that_field(kube: Kube, namespace: str) -> None:
    body = deployment(namespace, "drift", replicas=2)
    apply_all(kube, body)
    rt = kube.resource_type("apps/v1", "Deployment")
    assert rt is not None
    kube.request(
        "PATCH",
        rt.path(namespace, "drift"),
        query=[("fieldManager", "kubectl-edit")],
        body={"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "hand/edit:2"}]}}}},
        content_type="application/strategic-merge-patch+json",
    )
    result = run(kube, body)
    entry = result.entries[0]
    assert entry.action is Action.UPDATE
    changed = [line for line in entry_diff(entry).splitlines() if line[:1] in "+-"]
    assert changed == ["-      - image: hand/edit:2", "+      - image: registry.example/app:1"]


def test_c4_conflict_names_field_and_manager(kube: Kube, namespace: str) -> None:
    body = cm(namespace, "owned", a="1")
    apply_all(kube, {**body, "data": {"a": "theirs"}}, manager="someone-else")
    result = run(kube, body)
    entry = result.entries[0]
    assert entry.action is Action.UPDATE
    assert [(c.field, c.manager) for c in entry.conflicts] == [(".data.a", "someone-else")]
    assert "conflict: .data.a is owned by someone-else" in plan_text(result)


def test_ignore_differences_hides_the_pointer(kube: Kube, namespace: str) -> None:
    apply_all(kube, deployment(namespace, "scaled", replicas=5))
    rule = IgnoreDifference(kind="Deployment", group="apps", json_pointers=("/spec/replicas",))
    stacks = {"app": Stack("app", "app", ignore_differences=(rule,))}
    assert run(kube, deployment(namespace, "scaled", replicas=1), stacks=stacks).entries[0].action is Action.UNCHANGED
    changed = run(kube, deployment(namespace, "scaled", replicas=1, image="x:2"), stacks=stacks).entries[0]
    assert changed.action is Action.UPDATE
    assert "replicas" not in entry_diff(changed)


def test_crd_and_custom_resource_in_one_stack_plan_as_create(kube: Kube, namespace: str) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    crd = make_crd(group, "Gadget", {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    cr = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1", "namespace": namespace}}
    result = run(kube, crd, cr)
    assert actions(result) == {
        f"CustomResourceDefinition/gadgets.{group}": Action.CREATE,
        f"Gadget/{namespace}/g1": Action.CREATE,
    }
    cr_entry = next(e for e in result.entries if e.id.kind == "Gadget")
    assert "CRD is created by this plan" in cr_entry.note
    assert not result.failures


def test_v1_object_rejected_by_the_api_schema_fails_the_plan_naming_it(kube: Kube, namespace: str) -> None:
    good = cm(namespace, "fine", a="1")
    bad = deployment(namespace, "broken")
    bad["spec"]["replicas"] = "three"
    result = run(kube, good, bad)
    assert [str(f.id) for f in result.failures] == [f"Deployment/{namespace}/broken"]
    assert "replicas" in result.failures[0].message
    assert str(result.failures[0]).startswith(f"Deployment/{namespace}/broken (app/broken.yaml:1): ")
    assert actions(result) == {f"ConfigMap/{namespace}/fine": Action.CREATE}  # everything else still planned
    assert kube.get(kube.resource_type("v1", "ConfigMap"), "fine", namespace) is None  # type: ignore[arg-type]


def test_s1_secret_changes_show_keys_and_markers_only(kube: Kube, namespace: str) -> None:
    apply_all(kube, secret(namespace, "db", user="admin", password="hunter2-old", removed="gone-value"))
    desired = secret(namespace, "db", user="admin", password="hunter2-new", added="fresh-value")
    result = run(kube, desired)
    entry = result.entries[0]
    assert entry.action is Action.UPDATE  # changed Secrets are always listed
    text = all_output(result)
    for value in ("hunter2-old", "hunter2-new", "gone-value", "fresh-value", "admin"):
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in text, f"{form!r} leaked"
    diff = entry_diff(entry)
    assert "-  password: '<secret #" in diff and "+  password: '<secret #" in diff and "+  added: '<secret #" in diff
    # the unchanged key keeps one token on both sides; the changed one gets a new token
    user_lines = [line for line in diff.splitlines() if "user:" in line]
    assert all(line.startswith(" ") for line in user_lines), user_lines


def test_s2_secret_rejected_by_the_api_names_object_not_value(kube: Kube, namespace: str) -> None:
    bad = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad", "namespace": namespace}}
    bad["data"] = {"password": 12345}
    bad_sensitive = secret(namespace, "also-bad", token="s3cr3t-token-value")
    bad_sensitive["type"] = "kubernetes.io/tls"  # requires tls.crt and tls.key: rejected, message may echo data
    result = run(kube, bad, bad_sensitive)
    assert {str(f.id) for f in result.failures} == {f"Secret/{namespace}/bad", f"Secret/{namespace}/also-bad"}
    text = all_output(result)
    assert "12345" not in text and "s3cr3t-token-value" not in text


def test_s3_last_applied_annotation_is_masked(kube: Kube, namespace: str) -> None:
    live = secret(namespace, "legacy", password="from-client-side-apply")
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(live),
    }
    apply_all(kube, live, manager="kubectl-client-side-apply")
    result = run(kube, secret(namespace, "legacy", password="rotated-value"))
    text = all_output(result)
    assert "from-client-side-apply" not in text and "rotated-value" not in text
    before = result.entries[0].before
    assert before is not None
    assert before["metadata"]["annotations"][LAST_APPLIED].startswith("<secret #")


def test_s5_secret_value_reused_elsewhere_is_masked_there_too(kube: Kube, namespace: str) -> None:
    value = "shared-api-key-123"
    config = cm(namespace, "client", API_KEY=value, URL=f"https://user:{value}@api.example")
    dep = deployment(namespace, "consumer")
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "KEY", "value": value}]
    result = run(kube, secret(namespace, "api", key=value), config, dep)
    text = all_output(result)
    assert value not in text and base64.b64encode(value.encode()).decode() not in text
    assert text.count("<secret #1>") >= 3


# -- mutating admission and the fast path ------------------------------------------------------------------------------
def test_a_mutating_webhook_turns_the_fast_path_off_only_for_the_kinds_it_intercepts(
    kube: Kube, namespace: str
) -> None:
    """A MutatingWebhookConfiguration on ConfigMap updates: ConfigMaps are dry-run (the webhook's change would only
    show there), Deployments are still proven unchanged without one. The webhook points at a closed port and
    ignores failures, so the dry-runs still answer; it is removed at the end, and then ConfigMaps are proven too."""
    bodies = [cm(namespace, "c", k="1"), deployment(namespace, "d")]
    apply_all(kube, *bodies)
    rt = kube.resource_type("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
    assert rt is not None
    name = f"gitops-job-test-{uuid.uuid4().hex[:8]}"
    hook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "configmaps.test.gitops-job.io",
            "clientConfig": {"url": "https://127.0.0.1:9/mutate"},
            "rules": [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 1,
        }],
    }  # fmt: skip
    kube.apply(rt, hook)
    try:
        result = run(kube, *bodies)
        proven = {str(e.id): e.proven for e in result.entries}
        assert proven == {f"ConfigMap/{namespace}/c": False, f"Deployment/{namespace}/d": True}
        assert result.count(Action.UNCHANGED) == 2
    finally:
        kube.delete(rt, name)
    result = run(kube, *bodies)
    assert all(e.proven for e in result.entries)


@pytest.mark.parametrize(
    ("rule", "resource", "mutates"),
    [
        ({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]},
         ("", "v1", "configmaps", True), True),
        ({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]},
         ("", "v1", "configmaps", True), False),  # creates are always dry-run anyway
        ({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]},
         ("apps", "v1", "deployments", True), True),
        ({"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments/scale"]},
         ("apps", "v1", "deployments", True), False),  # a subresource, not what apply writes
        ({"operations": ["UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]},
         ("", "v1", "secrets", True), True),
        ({"operations": ["UPDATE"], "apiGroups": ["extensions"], "apiVersions": ["v1beta1"],
          "resources": ["deployments"]}, ("apps", "v1", "deployments", True), True),  # matchPolicy Equivalent
        ({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"],
          "scope": "Cluster"}, ("", "v1", "configmaps", True), False),
    ],
)  # fmt: skip
def test_admission_rules_matching(rule: dict[str, Any], resource: tuple[str, str, str, bool], mutates: bool) -> None:
    from gitops_job.kube import ResourceType
    from gitops_job.reconcile.admission import admission_rules

    group, version, plural, namespaced = resource
    rt = ResourceType(group, version, plural.title(), plural, namespaced, frozenset())
    (parsed,) = admission_rules({"webhooks": [{"rules": [rule]}]})
    assert parsed.may_mutate(rt) is mutates
    exact = admission_rules({"spec": {"matchConstraints": {"matchPolicy": "Exact", "resourceRules": [rule]}}})
    assert exact[0].may_mutate(rt) is (mutates and rule["apiGroups"] != ["extensions"])


@pytest.mark.parametrize(
    ("body", "live", "pointers", "expected"),
    [
        ({"data": {"a": "1", "b": "1"}}, {"data": {"a": "0", "b": "hand"}}, ["/data/b"],
         {"data": {"a": "1", "b": "hand"}}),
        ({"data": {"a": "1", "b": "1"}}, {"data": {"a": "0"}}, ["/data/b"], {"data": {"a": "1"}}),  # none live: out
        ({"data": {"a": "1"}}, {"data": {"b": "hand"}}, ["/data/b"], {"data": {"a": "1"}}),  # not set: not added
        ({"data": {"a": "1"}}, None, ["/data/a"], {"data": {"a": "1"}}),  # a new object is written as rendered
        ({"spec": {"c": [{"i": "x"}, {"i": "y"}]}}, {"spec": {"c": [{"i": "x"}, {"i": "live"}]}}, ["/spec/c/1/i"],
         {"spec": {"c": [{"i": "x"}, {"i": "live"}]}}),
        ({"m": {"a/b": 1}}, {"m": {"a/b": 2}}, ["/m/a~1b"], {"m": {"a/b": 2}}),
        ({"spec": {"r": 3, "x": 1}}, {"spec": {"r": 5, "x": 0}}, ["/spec"], {"spec": {"r": 5, "x": 0}}),
        # what gitops-job sets itself is never taken from the live object
        ({"metadata": {"labels": {"a": "1", "gitops-job.io/stack": "app"}}},
         {"metadata": {"labels": {"a": "2", "gitops-job.io/stack": "other"}}}, ["/metadata/labels"],
         {"metadata": {"labels": {"a": "2", "gitops-job.io/stack": "app"}}}),
        ({"metadata": {"annotations": {"gitops-job.io/revision": "new"}}},
         {"metadata": {"annotations": {"x": "y", "gitops-job.io/revision": "old"}}}, ["/metadata/annotations"],
         {"metadata": {"annotations": {"x": "y", "gitops-job.io/revision": "new"}}}),
        ({"metadata": {"name": "n"}}, {"metadata": {"labels": {"gitops-job.io/stack": "x"}}}, ["/metadata/labels"],
         {"metadata": {"name": "n"}}),
    ],
)  # fmt: skip
def test_item10_applied_manifest_takes_ignored_fields_from_the_live_object(
    body: dict[str, Any], live: dict[str, Any] | None, pointers: list[str], expected: dict[str, Any]
) -> None:
    from gitops_job.reconcile.normalize import pointer_path, respecting_ignored

    before = copy.deepcopy(body)
    assert respecting_ignored(body, live, [pointer_path(p) for p in pointers]) == expected
    assert body == before, "the rendered manifest is never changed"


def test_item19_f7_a_webhook_without_side_effects_none_blocks_dry_run_plan_says_so_never_unchanged(
    kube: Kube, kubeconfig: Path, namespace: str
) -> None:
    """Row F7, with real registrations: a validating webhook (sideEffects Unknown) on ConfigMaps and a mutating one
    (sideEffects Some) on Deployment updates, as an older cluster may still hold them (v1 refuses to create them: they
    are stored in etcd directly). The API server refuses every dry-run they intercept; the plan fails exactly those
    objects with what to do, never "unchanged" — the fast path's "unchanged" stands only where it is true (a
    validating webhook cannot change an object, and an unchanged object is not written)."""
    same, changed, dep = cm(namespace, "same", k="1"), cm(namespace, "changed", k="1"), deployment(namespace, "d")
    apply_all(kube, same, changed, dep)
    name = f"gitops-job-test-{uuid.uuid4().hex[:8]}"
    configmaps = {"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                  "resources": ["configmaps"]}  # fmt: skip
    deployments = {"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}
    hooks = {  # kind -> (webhook name, sideEffects, rule)
        "ValidatingWebhookConfiguration": (f"configmaps.{name}.gitops-job.io", "Unknown", configmaps),
        "MutatingWebhookConfiguration": (f"deployments.{name}.gitops-job.io", "Some", deployments),
    }
    for kind, (hook, side_effects, rule) in hooks.items():
        webhook = {"name": hook, "clientConfig": {"url": "https://127.0.0.1:9/hook"}, "rules": [rule],
                   "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                   "objectSelector": {}, "failurePolicy": "Ignore", "matchPolicy": "Equivalent",
                   "sideEffects": side_effects, "admissionReviewVersions": ["v1"], "timeoutSeconds": 1}  # fmt: skip
        if kind.startswith("Mutating"):
            webhook["reinvocationPolicy"] = "Never"
        meta = {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": "2026-01-01T00:00:00Z"}
        stored = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": meta,
            "webhooks": [webhook],
        }
        etcd_put(kubeconfig, f"/registry/{kind.lower()}s/{name}", stored)
    cm_rt = kube.resource_type("v1", "ConfigMap")
    assert cm_rt is not None

    def refused() -> bool:
        try:
            kube.apply(cm_rt, cm(namespace, "probe"), dry_run=True)
        except ApiError as e:
            return "does not support dry run" in e.reason
        return False

    try:
        wait_until(refused, 30, "the API server to load the webhooks")
        result = run(kube, same, cm(namespace, "changed", k="2"), cm(namespace, "new"), dep)
        assert {str(e.id): (e.action, e.proven) for e in result.entries} == {
            f"ConfigMap/{namespace}/same": (Action.UNCHANGED, True)}  # fmt: skip
        failed = {str(f.id): f.message for f in result.failures}
        assert set(failed) == {f"ConfigMap/{namespace}/changed", f"ConfigMap/{namespace}/new",
                               f"Deployment/{namespace}/d"}  # fmt: skip
        for oid, message in failed.items():
            hook = hooks["ValidatingWebhookConfiguration" if "ConfigMap" in oid else "MutatingWebhookConfiguration"][0]
            assert f'admission webhook "{hook}" does not support dry run' in message, message
            assert "because of the cluster, not the manifest" in message and "sideEffects: None" in message
            assert "not reported unchanged" in message
    finally:
        for kind in hooks:
            rt = kube.resource_type("admissionregistration.k8s.io/v1", kind)
            assert rt is not None
            kube.delete(rt, name)


def test_type_of_reads_an_id_without_a_version_at_the_groups_preferred_version(kube: Kube) -> None:
    """Inventories and prune candidates name group and kind only: one lookup serves them all, at the version the
    API server prefers (autoscaling serves HorizontalPodAutoscaler at v2 and v1; v2 is preferred)."""
    hpa, cm = kube.type_of("autoscaling", "HorizontalPodAutoscaler"), kube.type_of("", "ConfigMap")

    assert hpa is not None and (hpa.version, hpa.plural) == ("v2", "horizontalpodautoscalers")
    assert cm is not None and (cm.api_version, cm.namespaced) == ("v1", True)
    assert kube.type_of("apps", "ConfigMap") is None and kube.type_of("example.com", "Widget") is None
