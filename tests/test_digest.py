"""The plan digest (what ``apply --require-reviewed-plan`` compares with the reviewed plan), table-driven: every change
that must move it does, and what must not (the revision stamp, how "unchanged" was proven, order, bookkeeping) does
not. Pure: plans are built by hand."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest

from gitops_job.identity import ObjectId
from gitops_job.model import ANNOTATION_REVISION, Source
from gitops_job.outcomes import Action
from gitops_job.reconcile.digest import digest
from gitops_job.reconcile.results import FieldConflict, Plan, PlanEntry, PlanFailure

WEB = ObjectId("apps", "Deployment", "apps", "web")
CM = ObjectId("", "ConfigMap", "apps", "settings")
NS = ObjectId("", "Namespace", "", "apps")
OLD = ObjectId("", "ConfigMap", "apps", "old")


def body(oid: ObjectId, revision: str | None = "rev1", **data: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": oid.name}
    if oid.namespace:
        meta["namespace"] = oid.namespace
    if revision:
        meta["annotations"] = {ANNOTATION_REVISION: revision}
    api = f"{oid.group}/v1" if oid.group else "v1"
    return {"apiVersion": api, "kind": oid.kind, "metadata": meta, **({"data": data} if data else {})}


def base() -> Plan:
    return Plan(
        target="prod",
        entries=(
            PlanEntry(CM, "app", Action.UPDATE, Source("app/cm.yaml", 1), body(CM, v="1"), body(CM, v="2")),
            PlanEntry(WEB, "app", Action.UNCHANGED, Source("app/web.yaml", 1), body(WEB), body(WEB)),
            PlanEntry(NS, "base", Action.CREATE, Source("base/ns.yaml", 1), None, body(NS)),
            PlanEntry(OLD, "app", Action.PRUNE, None, body(OLD, v="x"), None),
        ),
        failures=(PlanFailure(ObjectId("", "Secret", "apps", "db"), "app", Source("app/db.yaml", 3), "Forbidden"),),
        requests={"GET": 4, "PATCH (dry-run)": 1},
        stacks=("base", "app"),
    )


def entry(p: Plan, oid: ObjectId, **changes: Any) -> Plan:
    entries = tuple(dataclasses.replace(e, **changes) if e.id == oid else e for e in p.entries)
    return dataclasses.replace(p, entries=entries)


Change = Callable[[Plan], Plan]


def test_the_digest_is_sha256_of_a_canonical_form_that_is_pinned() -> None:
    """Pinned: a new canonical form would make every plan reviewed before an upgrade differ from its apply."""
    d = digest(base())
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", d)
    assert d == "sha256:f227e1db5f50d7a196e76e02d2a21eff0bb8ac20f5d0391711a442e1f377a2dc"


MOVES: dict[str, Change] = {
    "target": lambda p: dataclasses.replace(p, target="staging"),
    "an-updated-value": lambda p: entry(p, CM, after=body(CM, v="3")),
    "the-live-value": lambda p: entry(p, CM, before=body(CM, v="0")),
    "an-action": lambda p: entry(p, CM, action=Action.RECREATE),
    "create-becomes-adopt": lambda p: entry(p, NS, action=Action.ADOPT, before=body(NS)),
    "a-conflict": lambda p: entry(p, CM, conflicts=(FieldConflict(".data.v", "kubectl"),)),
    "a-conflicts-manager": lambda p: entry(
        entry(p, CM, conflicts=(FieldConflict(".data.v", "kubectl"),)),
        CM,
        conflicts=(FieldConflict(".data.v", "helm"),),
    ),
    "an-entrys-stack": lambda p: entry(p, CM, stack="other"),
    "an-unchanged-object-becomes-changed": lambda p: entry(p, WEB, action=Action.UPDATE),
    "an-unchanged-object-added": lambda p: dataclasses.replace(
        p, entries=(*p.entries, PlanEntry(ObjectId("", "Service", "apps", "web"), "app", Action.UNCHANGED))
    ),
    "an-unchanged-object-renamed": lambda p: entry(p, WEB, id=dataclasses.replace(WEB, name="web2")),
    "a-pruned-object-dropped": lambda p: dataclasses.replace(p, entries=p.entries[:3]),
    "a-failures-message": lambda p: dataclasses.replace(
        p, failures=(dataclasses.replace(p.failures[0], message="Invalid"),)
    ),
    "a-failure-resolved": lambda p: dataclasses.replace(p, failures=()),
    "a-label-other-than-the-stamp": lambda p: entry(
        p, CM, after={**body(CM, v="2"), "metadata": {**body(CM)["metadata"], "labels": {"tier": "web"}}}
    ),
    "a-secret-token": lambda p: entry(p, CM, after=body(CM, v="<secret #2>")),
}


def test_the_base_plan_has_secret_token_one() -> None:
    # the "a-secret-token" row compares against this: the same place, another token
    p = entry(base(), CM, after=body(CM, v="<secret #1>"))
    assert digest(p) != digest(entry(base(), CM, after=body(CM, v="<secret #2>")))


@pytest.mark.parametrize("change", list(MOVES.values()), ids=list(MOVES))
def test_what_moves_the_digest(change: Change) -> None:
    assert digest(change(base())) != digest(base())


KEEPS: dict[str, Change] = {
    "the-revision-stamp-of-a-changed-object": lambda p: entry(
        p, CM, before=body(CM, "rev9", v="1"), after=body(CM, "rev9", v="2")
    ),
    "no-revision-stamp-at-all": lambda p: entry(p, CM, before=body(CM, None, v="1"), after=body(CM, None, v="2")),
    "proven-by-the-fast-path-or-dry-run": lambda p: entry(p, WEB, proven=True),
    "an-unchanged-objects-content": lambda p: entry(p, WEB, before=body(WEB, v="a"), after=body(WEB, v="a")),
    "an-unchanged-objects-source": lambda p: entry(p, WEB, source=Source("elsewhere.yaml", 9)),
    "a-source-file-and-line": lambda p: entry(p, CM, source=Source("app/moved.yaml", 40)),
    "a-note": lambda p: entry(p, NS, note="owned by kubectl"),
    "deferred": lambda p: entry(p, NS, deferred=True),
    "entry-order": lambda p: dataclasses.replace(p, entries=tuple(reversed(p.entries))),
    "request-counts": lambda p: dataclasses.replace(p, requests={"GET": 400}),
    "strays": lambda p: dataclasses.replace(p, strays=(("app", ObjectId("", "ConfigMap", "apps", "stray")),)),
    "stack-order": lambda p: dataclasses.replace(p, stacks=("app", "base")),
    "a-failures-source": lambda p: dataclasses.replace(p, failures=(dataclasses.replace(p.failures[0], source=None),)),
}


@pytest.mark.parametrize("change", list(KEEPS.values()), ids=list(KEEPS))
def test_what_leaves_the_digest_alone(change: Change) -> None:
    reference = base()
    changed = change(reference)
    assert changed != reference
    assert digest(changed) == digest(reference)


def test_failure_order_leaves_the_digest_alone() -> None:
    two = dataclasses.replace(base(), failures=(PlanFailure(OLD, "app", None, "x"), *base().failures))
    swapped = dataclasses.replace(two, failures=tuple(reversed(two.failures)))
    assert digest(swapped) == digest(two)


def test_key_order_in_a_body_leaves_the_digest_alone() -> None:
    after = body(CM, v="2")
    reordered = dict(reversed(list(after.items())))
    assert list(reordered) != list(after)
    assert digest(entry(base(), CM, after=reordered)) == digest(entry(base(), CM, after=after))


def test_the_stamp_is_left_out_without_touching_the_plan() -> None:
    p = base()
    before = dataclasses.replace(p)
    digest(p)
    assert p == before
    assert p.entries[0].after == body(CM, v="2")
