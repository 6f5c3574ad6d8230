"""The fast path is never wrong: it may only say "unchanged" where a real server-side dry-run changes nothing.

Seeded random trials against the real API server: objects are applied by gitops-job, then their live state is mutated
by other field managers (values, list items, ownership) and the desired manifests are varied (values, list items,
defaults made explicit, quantities and numbers in another representation, reordering). For every pair the verdict
of :func:`proven_unchanged` is checked against a dry-run whose result must equal the live object exactly.
"""

from __future__ import annotations

import copy
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from gitops_job.kube import FIELD_MANAGER, ApiError, Kube
from gitops_job.reconcile.fastpath import proven_unchanged

Obj = dict[str, Any]


def configmap(ns: str, name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "data": {f"k{i}": f"v{i}" for i in range(4)},
    }


def deployment(ns: str, name: str) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.example/app:1.0",
                            "args": ["--port", "8080"],
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "resources": {"limits": {"cpu": "1", "memory": "128Mi"}},
                        },
                        {"name": "sidecar", "image": "registry.example/side:1.0"},
                    ]
                },
            },
        },
    }


def service(ns: str, name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"app": name},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def _container(o: Obj) -> Obj:
    return o["spec"]["template"]["spec"]["containers"][0]


# Variations of the desired manifest: (applies to kind, name, function).
DESIRED: list[tuple[str, str, Callable[[Obj], None]]] = [
    ("*", "identical", lambda o: None),
    ("*", "label value", lambda o: o["metadata"].setdefault("labels", {}).update(app="other")),
    ("*", "extra label", lambda o: o["metadata"].setdefault("labels", {}).update(extra="x")),
    ("*", "drop labels", lambda o: o["metadata"].pop("labels", None)),
    ("*", "annotation", lambda o: o["metadata"].setdefault("annotations", {}).update(note="n")),
    ("ConfigMap", "value", lambda o: o["data"].update(k0="changed")),
    ("ConfigMap", "drop key", lambda o: o["data"].pop("k1")),
    ("ConfigMap", "empty value", lambda o: o["data"].update(k2="")),
    ("Deployment", "replicas", lambda o: o["spec"].update(replicas=1)),
    ("Deployment", "image", lambda o: _container(o).update(image="registry.example/app:1.1")),
    ("Deployment", "cpu as millicores", lambda o: _container(o)["resources"]["limits"].update(cpu="1000m")),
    ("Deployment", "memory in bytes", lambda o: _container(o)["resources"]["limits"].update(memory="134217728")),
    ("Deployment", "memory as a number", lambda o: _container(o)["resources"]["limits"].update(memory=134217728)),
    ("Deployment", "args reordered", lambda o: _container(o)["args"].reverse()),
    ("Deployment", "env reordered", lambda o: _container(o)["env"].reverse()),
    ("Deployment", "env item dropped", lambda o: _container(o)["env"].pop()),
    ("Deployment", "containers reordered", lambda o: o["spec"]["template"]["spec"]["containers"].reverse()),
    ("Deployment", "protocol left to default", lambda o: _container(o)["ports"][0].pop("protocol")),
    ("Deployment", "default made explicit", lambda o: _container(o).update(imagePullPolicy="IfNotPresent")),
    ("Deployment", "strategy default explicit", lambda o: o["spec"].update(strategy={"type": "RollingUpdate"})),
    ("Service", "targetPort as string", lambda o: o["spec"]["ports"][0].update(targetPort="8080")),
    ("Service", "ports reordered", lambda o: o["spec"]["ports"].reverse()),
    ("Service", "port number", lambda o: o["spec"]["ports"][1].update(port=9091)),
    ("Service", "sessionAffinity default explicit", lambda o: o["spec"].update(sessionAffinity="None")),
]


def _other_ssa(kube: Kube, rt: Any, base: Obj, patch: Obj, force: bool) -> None:
    patch = copy.deepcopy(patch)
    meta = {"name": base["metadata"]["name"], "namespace": base["metadata"]["namespace"], **patch.pop("metadata", {})}
    body = {"apiVersion": base["apiVersion"], "kind": base["kind"], "metadata": meta, **patch}
    kube.apply(rt, body, force=force, field_manager="other-applier")


def _merge_patch(kube: Kube, rt: Any, base: Obj, patch: Obj) -> None:
    meta = base["metadata"]
    kube.request(
        "PATCH",
        rt.path(meta["namespace"], meta["name"]),
        query=[("fieldManager", "kubectl-edit")],
        body=patch,
        content_type="application/merge-patch+json",
    )


# Mutations of the live object by someone else: (applies to kind, name, function(kube, rt, base)).
LIVE: list[tuple[str, str, Callable[[Kube, Any, Obj], None]]] = [
    ("*", "untouched", lambda k, rt, b: None),
    (
        "*",
        "other applier adds a label",
        lambda k, rt, b: _other_ssa(k, rt, b, {"metadata": {"labels": {"o": "1"}}}, False),
    ),
    (
        "*",
        "other applier takes our label",
        lambda k, rt, b: _other_ssa(k, rt, b, {"metadata": {"labels": {"app": b["metadata"]["name"]}}}, True),
    ),
    (
        "*",
        "edit changes our label",
        lambda k, rt, b: _merge_patch(k, rt, b, {"metadata": {"labels": {"app": "edited"}}}),
    ),
    (
        "*",
        "edit adds an annotation",
        lambda k, rt, b: _merge_patch(k, rt, b, {"metadata": {"annotations": {"e": "1"}}}),
    ),
    ("ConfigMap", "edit changes a value", lambda k, rt, b: _merge_patch(k, rt, b, {"data": {"k0": "edited"}})),
    ("ConfigMap", "edit sets the same value", lambda k, rt, b: _merge_patch(k, rt, b, {"data": {"k0": "v0"}})),
    ("ConfigMap", "edit adds a key", lambda k, rt, b: _merge_patch(k, rt, b, {"data": {"new": "x"}})),
    ("ConfigMap", "other applier takes a key", lambda k, rt, b: _other_ssa(k, rt, b, {"data": {"k3": "v3"}}, True)),
    ("Deployment", "edit scales", lambda k, rt, b: _merge_patch(k, rt, b, {"spec": {"replicas": 2}})),
    (
        "Deployment",
        "other applier owns replicas",
        lambda k, rt, b: _other_ssa(k, rt, b, {"spec": {"replicas": 0}}, True),
    ),
    (
        "Service",
        "edit changes the selector",
        lambda k, rt, b: _merge_patch(k, rt, b, {"spec": {"selector": {"x": "y"}}}),
    ),
]


def _verdicts(kube: Kube, rt: Any, desired: Obj) -> tuple[bool, bool]:
    """The fast path's verdict and the dry-run's, on one stable live object.

    Controllers (the Deployment controller writing status and revision annotations) may change the object between
    reads; the comparison is repeated until the live object's resourceVersion is the same before and after.
    """
    meta = desired["metadata"]
    for _ in range(20):
        live = kube.get(rt, meta["name"], meta["namespace"])
        fast = proven_unchanged(desired, live, FIELD_MANAGER)
        try:
            changed = kube.apply(rt, desired, dry_run=True, force=True) != live
        except ApiError:  # the server refuses the manifest: applying it is certainly not a no-op
            changed = True
        after = kube.get(rt, meta["name"], meta["namespace"])
        if after["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]:
            return fast, changed
        time.sleep(0.1)
    raise AssertionError(f"{rt.kind}/{meta['name']} never stopped changing")


def _draw(rng: random.Random, choices: list[tuple[str, Any]]) -> tuple[str, Any]:
    return choices[0] if rng.random() < 0.35 else rng.choice(choices)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_fast_path_never_says_unchanged_where_dry_run_changes(kube: Kube, namespace: str, seed: int) -> None:
    rng = random.Random(seed)
    verdicts: Counter[str] = Counter()
    makers = {"ConfigMap": configmap, "Deployment": deployment, "Service": service}
    for trial in range(24):
        kind = rng.choice(sorted(makers))
        base = makers[kind](namespace, f"{kind.lower()}-{seed}-{trial}")
        rt = kube.resource_type(base["apiVersion"], kind)
        assert rt is not None
        kube.apply(rt, base)
        # A third of the draws keep the live object or the manifest as applied, so that "proven" cases occur.
        live_name, mutate_live = _draw(rng, [(n, f) for k, n, f in LIVE if k in ("*", kind)])
        mutate_live(kube, rt, base)
        desired_name, mutate_desired = _draw(rng, [(n, f) for k, n, f in DESIRED if k in ("*", kind)])
        desired = copy.deepcopy(base)
        mutate_desired(desired)

        fast, changed = _verdicts(kube, rt, desired)
        case = f"seed {seed} trial {trial}: {kind}, live {live_name!r}, desired {desired_name!r}"
        assert not (fast and changed), f"fast path said unchanged but the dry-run changes the object ({case})"
        verdicts["proven" if fast else ("changed" if changed else "unproven-but-unchanged")] += 1
    # Not vacuous: both verdicts occur in every seed's trials.
    assert verdicts["proven"] > 0 and verdicts["changed"] > 0, verdicts


def test_fast_path_proves_the_common_case(kube: Kube, namespace: str) -> None:
    """Re-planning what we applied, untouched since, never needs a dry-run."""
    for make in (configmap, deployment, service):
        obj = make(namespace, f"common-{make.__name__}")
        rt = kube.resource_type(obj["apiVersion"], obj["kind"])
        assert rt is not None
        kube.apply(rt, obj)
        assert _verdicts(kube, rt, obj) == (True, False), obj["kind"]  # and the server agrees, on one live object
