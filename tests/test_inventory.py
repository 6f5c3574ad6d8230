"""reconcile/inventory.py's codec, table-driven and pure: what the ConfigMap holds, the round trip, inventories written
by older versions, and the clear error a damaged one gives. ``read``/``write``/``read_all`` against the real API
server, in the test's namespace, their writes read in its audit log."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from kubernetes import client

from gitops_job.errors import InventoryError, LeaseError
from gitops_job.identity import ObjectId
from gitops_job.kube import Kube
from gitops_job.model import LABEL_TARGET
from gitops_job.outcomes import Origin, RunResult
from gitops_job.reconcile import inventory
from gitops_job.reconcile.inventory import KEEP_RUNS, Inventory, Run, _decode, _encode
from tests.kube import AuditLog

CM = ObjectId("", "ConfigMap", "apps", "settings")
NS = ObjectId("", "Namespace", "", "apps")
DEPLOY = ObjectId("apps", "Deployment", "apps", "web")
RUN = Run("abc123", "2026-01-02T03:04:05Z", "2026-01-02T03:04:09Z", "succeeded", {"created": 2, "pruned": 1}, "ok")
FAILED = Run("def456", "2026-01-03T00:00:00Z", "2026-01-03T00:00:01Z", "failed", {}, "apply: boom")


def stored(data: dict[str, str] | None, rv: str | None = "7") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "gitops-job.t.app", "namespace": "state"}
    if rv is not None:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def doc(**fields: Any) -> dict[str, str]:
    return {"inventory.json": json.dumps(fields)}


# -- encode ------------------------------------------------------------------------------------------------------------
def test_encode_writes_the_documented_configmap() -> None:
    inv = Inventory("t", "app", "state", frozenset({DEPLOY, NS, CM}), "abc123", (RUN,), "7", "github.com/o/r")
    cm = _encode(inv)
    assert {k: v for k, v in cm.items() if k != "data"} == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "gitops-job.t.app",
            "namespace": "state",
            "labels": {
                LABEL_TARGET: "t",
                "app.kubernetes.io/managed-by": "gitops-job",
                "gitops-job.io/inventory-of": "app",
            },
            "resourceVersion": "7",
        },
    }
    assert list(cm["data"]) == ["inventory.json"]
    assert json.loads(cm["data"]["inventory.json"]) == {
        "target": "t",
        "stack": "app",
        "repository": "github.com/o/r",
        "revision": "abc123",
        "objects": [["", "ConfigMap", "apps", "settings"], ["", "Namespace", "", "apps"],
                    ["apps", "Deployment", "apps", "web"]],
        "runs": [{"revision": "abc123", "started": "2026-01-02T03:04:05Z", "finished": "2026-01-02T03:04:09Z",
                  "result": "succeeded", "counts": {"created": 2, "pruned": 1}, "message": "ok", "origin": "unknown"}],
    }  # fmt: skip


def test_encode_of_an_unstored_inventory_carries_no_resource_version() -> None:
    assert "resourceVersion" not in _encode(Inventory("t", "app", "state"))["metadata"]


def test_encode_is_deterministic_whatever_the_set_order() -> None:
    a = Inventory("t", "app", "state", frozenset([CM, NS, DEPLOY]))
    b = Inventory("t", "app", "state", frozenset([DEPLOY, CM, NS]))
    assert _encode(a)["data"] == _encode(b)["data"]


# -- round trip --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "inv",
    [
        pytest.param(Inventory("t", "app", "state", resource_version="1"), id="empty"),
        pytest.param(Inventory("t", "app", "state", frozenset({CM, NS, DEPLOY}), resource_version="2"), id="objects"),
        pytest.param(
            Inventory("t", "app", "state", frozenset({CM}), "abc123", (RUN, FAILED), "3", "github.com/o/r"),
            id="everything",
        ),
        pytest.param(Inventory("prod", "web-1", "gitops-job-system", resource_version="99"), id="other-names"),
        pytest.param(
            Inventory(
                "t",
                "app",
                "state",
                frozenset({CM}),
                "abc123",
                (replace(RUN, drift=("ConfigMap/ns/a data.v: 1 → 9 (manager: kubectl-edit)",)),),
                "5",
            ),
            id="a-run-that-corrected-drift",
        ),
        pytest.param(
            Inventory(
                "t", "app", "state", frozenset({ObjectId("example.com", "Widget", "a/b", "ü~x")}), resource_version="4"
            ),
            id="odd-characters",
        ),
    ],
)
def test_round_trip(inv: Inventory) -> None:
    assert _decode(inv.target, inv.stack, inv.namespace, _encode(inv)) == inv


def test_decode_takes_the_resource_version_of_the_stored_configmap() -> None:
    cm = _encode(Inventory("t", "app", "state", resource_version="1"))
    cm["metadata"]["resourceVersion"] = "512"
    assert _decode("t", "app", "state", cm).resource_version == "512"


# -- what older versions wrote -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(None, Inventory("t", "app", "state", resource_version="7"), id="no-data"),
        pytest.param({}, Inventory("t", "app", "state", resource_version="7"), id="no-key"),
        pytest.param(doc(), Inventory("t", "app", "state", resource_version="7"), id="empty-document"),
        pytest.param(
            doc(objects=[["", "ConfigMap", "apps", "settings"]], revision="abc123"),
            Inventory("t", "app", "state", frozenset({CM}), "abc123", resource_version="7", repository=None),
            id="before-repositories",
        ),
        pytest.param(
            doc(runs=[{"revision": "r", "started": "s", "finished": "f", "result": "succeeded"}]),
            Inventory("t", "app", "state", runs=(Run("r", "s", "f", "succeeded", {}, ""),), resource_version="7"),
            id="run-without-counts-or-message",
        ),
        pytest.param(
            doc(runs=[{"revision": "r", "started": "s", "finished": "f", "result": "succeeded"}]),
            Inventory(
                "t",
                "app",
                "state",
                runs=(Run("r", "s", "f", RunResult.SUCCEEDED, origin=Origin.UNKNOWN),),
                resource_version="7",
            ),
            id="run-before-origins-reads-as-unknown",
        ),
        pytest.param(
            doc(runs=[{"revision": "r", "started": "s", "finished": "f", "result": "failed", "origin": "cronjob"}]),
            Inventory(
                "t",
                "app",
                "state",
                runs=(Run("r", "s", "f", RunResult.FAILED, origin=Origin.CRONJOB),),
                resource_version="7",
            ),
            id="run-with-origin",
        ),
        pytest.param(
            doc(
                runs=[
                    {
                        "revision": "r",
                        "started": "s",
                        "finished": "f",
                        "result": "succeeded",
                        "origin": "satellite",
                        "prediction": {"objects": 2},
                    }
                ]
            ),
            Inventory("t", "app", "state", runs=(Run("r", "s", "f", RunResult.SUCCEEDED),), resource_version="7"),
            id="run-from-a-newer-version-origin-unknown-extra-keys-ignored",
        ),
        pytest.param(
            doc(objects=None, runs=None, repository=None),
            Inventory("t", "app", "state", resource_version="7"),
            id="nulls",
        ),
    ],
)
def test_decode_of_older_inventories(data: dict[str, str] | None, expected: Inventory) -> None:
    assert _decode("t", "app", "state", stored(data)) == expected


# -- damaged: a clear error naming the ConfigMap -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cm", "detail"),
    [
        pytest.param(
            stored({"inventory.json": "{not json"}),
            "inventory.json is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            id="not-json",
        ),
        pytest.param(
            stored({"inventory.json": "[1, 2]"}), "inventory.json holds a JSON list, not an object", id="list"
        ),
        pytest.param(stored({"inventory.json": '"x"'}), "inventory.json holds a JSON str, not an object", id="string"),
        pytest.param(
            stored(doc(objects=[["", "ConfigMap", "settings"]])),
            'an object entry is ["", "ConfigMap", "settings"], not [group, kind, namespace, name]',
            id="object-of-three",
        ),
        pytest.param(
            stored(doc(objects=["ConfigMap/apps/settings"])),
            'an object entry is "ConfigMap/apps/settings", not [group, kind, namespace, name]',
            id="object-as-string",
        ),
        pytest.param(
            stored(doc(objects=[["", "ConfigMap", "apps", 7]])),
            'an object entry is ["", "ConfigMap", "apps", 7], not [group, kind, namespace, name]',
            id="object-with-a-number",
        ),
        pytest.param(
            stored(doc(runs=[{"revision": "r", "result": "succeeded"}])),
            'a run is {"revision": "r", "result": "succeeded"}, without started, finished',
            id="run-missing-times",
        ),
        pytest.param(
            stored(doc(runs=["r"])), 'a run is "r", without revision, started, finished, result', id="run-as-string"
        ),
        pytest.param(
            stored(doc(objects=[["x" * 110, "Kind", "ns"]])),
            f'an object entry is ["{"x" * 110}", "K..., not [group, kind, namespace, name]',
            id="long-entry-shortened",
        ),
        pytest.param(stored(doc(), rv=None), "no 'resourceVersion'", id="no-resource-version"),
        pytest.param(
            stored(doc(runs=[{"revision": "r", "started": "s", "finished": "f", "result": "maybe"}])),
            'a run\'s result is "maybe", not one of succeeded, failed, skipped',
            id="unknown-run-result",
        ),
    ],
)
def test_decode_of_a_damaged_inventory_says_what_and_where(cm: dict[str, Any], detail: str) -> None:
    with pytest.raises(InventoryError) as err:
        _decode("t", "app", "state", cm)
    assert err.value.where == "ConfigMap/state/gitops-job.t.app"
    assert err.value.reason == (
        f"cannot read the stack's inventory ({detail}): it was changed by hand or by an incompatible version of "
        "gitops-job. Restore it, or delete it: the next apply writes it anew (objects removed from git meanwhile "
        "are then not pruned)"
    )
    assert str(err.value).startswith("inventory: ConfigMap/state/gitops-job.t.app: cannot read")


# -- runs kept ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("before", "after"), [(0, 1), (1, 2), (KEEP_RUNS - 1, KEEP_RUNS), (KEEP_RUNS, KEEP_RUNS)])
def test_with_run_keeps_the_newest_first_up_to_keep_runs(before: int, after: int) -> None:
    old = tuple(Run(f"r{i}", "s", "f", "succeeded") for i in range(before))
    newest = Run("new", "s", "f", "failed")
    runs = Inventory("t", "app", "state", runs=old).with_run(newest).runs
    assert runs == (newest, *old)[:after]
    assert len(runs) == after


# -- read and write, against the real API server -------------------------------------------------------------------
NAME = "gitops-job.t.app"


def server_writes(audit: AuditLog, mark: int) -> list[tuple[str, str, str, int]]:
    """The writes by gitops-job that reached the API server since ``mark``: ``(verb, resource, name, status)``."""
    return [(e["verb"], e["objectRef"]["resource"], e["objectRef"]["name"], e["responseStatus"]["code"])
            for e in audit.writes(mark)]  # fmt: skip


def test_read_of_a_stack_never_applied_is_empty_and_unstored(kube: Kube, namespace: str, audit: AuditLog) -> None:
    mark = audit.mark()
    assert inventory.read(kube, namespace, "t", "app") == Inventory("t", "app", namespace)
    assert server_writes(audit, mark) == []


def test_write_creates_then_replaces_and_read_returns_what_was_written(
    kube: Kube, namespace: str, audit: AuditLog
) -> None:
    mark = audit.mark()
    first = inventory.write(kube, Inventory("t", "app", namespace, frozenset({CM}), repository="github.com/o/r"))
    assert first.resource_version is not None
    second = inventory.write(kube, Inventory("t", "app", namespace, frozenset({CM, NS}), "abc", (RUN,),
                                             first.resource_version, "github.com/o/r"))  # fmt: skip
    assert second.resource_version not in (None, first.resource_version)
    assert server_writes(audit, mark) == [("create", "configmaps", NAME, 201), ("update", "configmaps", NAME, 200)]
    assert inventory.read(kube, namespace, "t", "app") == second


def test_write_over_a_newer_inventory_stops_the_run(kube: Kube, namespace: str, audit: AuditLog) -> None:
    stale = inventory.write(kube, Inventory("t", "app", namespace, frozenset({CM})))
    newer = inventory.write(kube, Inventory("t", "app", namespace, frozenset({NS}),
                                            resource_version=stale.resource_version))  # fmt: skip
    mark = audit.mark()
    with pytest.raises(LeaseError, match="the inventory was changed by someone else during this run"):
        inventory.write(kube, stale)
    assert server_writes(audit, mark) == [("update", "configmaps", NAME, 409)]  # refused by the resourceVersion
    assert inventory.read(kube, namespace, "t", "app") == newer


def test_a_create_whose_answer_was_lost_is_not_another_applier(kube: Kube, namespace: str, audit: AuditLog) -> None:
    inv = Inventory("t", "app", namespace, frozenset({CM}))
    written = inventory.write(kube, inv)  # the create went through ...
    mark = audit.mark()
    again = inventory.write(kube, inv)  # ... and was retried: AlreadyExists, with exactly our content
    assert again.resource_version == written.resource_version
    other = Inventory("t", "app", namespace, frozenset({NS}))
    with pytest.raises(LeaseError):
        inventory.write(kube, other)  # AlreadyExists with someone else's content
    assert server_writes(audit, mark) == [("create", "configmaps", NAME, 409), ("create", "configmaps", NAME, 409)]
    assert inventory.read(kube, namespace, "t", "app") == written


def test_read_all_lists_each_stacks_inventory_by_stack(
    kube: Kube, namespace: str, api_client: client.ApiClient
) -> None:
    for stack in ("web", "api"):
        inventory.write(kube, Inventory("t", stack, namespace, frozenset({CM})))
    inventory.write(kube, Inventory("prod", "web", namespace, frozenset({NS})))  # another target's
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "unrelated"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "no-stack", "labels": {LABEL_TARGET: "t"}}})
    assert [(i.target, i.stack) for i in inventory.read_all(kube, namespace, "t")] == [("t", "api"), ("t", "web")]


def test_read_of_a_damaged_inventory_raises_before_anything_is_written(
    kube: Kube, namespace: str, audit: AuditLog, api_client: client.ApiClient
) -> None:
    damaged = stored({"inventory.json": "[]"}, rv=None)
    damaged["metadata"]["namespace"] = namespace
    client.CoreV1Api(api_client).create_namespaced_config_map(namespace, damaged)
    mark = audit.mark()
    with pytest.raises(InventoryError, match="holds a JSON list") as err:
        inventory.read(kube, namespace, "t", "app")
    assert err.value.where == f"ConfigMap/{namespace}/{NAME}"
    assert server_writes(audit, mark) == []
