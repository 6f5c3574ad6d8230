"""Golden files for the plan's text and markdown output (what a terminal and a PR comment show).

The plan below is built by the real engine's pieces: ``_display`` normalises, filters and masks exactly as a plan
does, so the golden files show what a reviewer would see. Regenerate after an intended change with
``GITOPS_JOB_UPDATE_GOLDEN=1 pytest tests/test_report_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gitops_job import report
from gitops_job.identity import ObjectId
from gitops_job.mask import Masker
from gitops_job.model import Source
from gitops_job.plan import Action, FieldConflict, Plan, PlanEntry, PlanFailure, _display

GOLDEN = Path(__file__).parent / "golden"
SECRET_OLD, SECRET_NEW = "hunter2-old-value", "hunter2-new-value"


def _cm(name: str, data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "shop", **meta},
        "data": data,
    }


def _plan() -> Plan:
    masker = Masker()
    live_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                   "type": "Opaque", "stringData": {"password": SECRET_OLD, "user": "shop"}}  # fmt: skip
    new_secret = {**live_secret, "stringData": {"password": SECRET_NEW, "user": "shop"}}
    masker.learn([live_secret, new_secret])
    live_cm = _cm("settings", {"mode": "slow", "readme": "run ```make``` first"},
                  uid="0b9f", resourceVersion="42", managedFields=[{"manager": "gitops-job"}])  # fmt: skip
    new_cm = _cm("settings", {"mode": "fast", "readme": "run ```make``` first"})

    def show(obj: dict[str, Any]) -> dict[str, Any]:
        return _display(obj, [], masker)

    src = Source("apps/shop/settings.yaml", 3)
    entries = (
        PlanEntry(ObjectId("", "Namespace", "", "shop"), "platform", Action.CREATE, Source("platform/ns.yaml", 1),
                  after=show({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})),
        PlanEntry(ObjectId("", "ConfigMap", "shop", "settings"), "shop", Action.UPDATE, src,
                  before=show(live_cm), after=show(new_cm),
                  conflicts=(FieldConflict(".data.mode", "kubectl-edit"),)),
        PlanEntry(ObjectId("", "Secret", "shop", "db"), "shop", Action.UPDATE, Source("apps/shop/secret.yaml", 1),
                  before=show(live_secret), after=show(new_secret)),
        PlanEntry(ObjectId("", "ConfigMap", "shop", "legacy"), "shop", Action.PRUNE,
                  before=show(_cm("legacy", {"a": "1"}))),
        PlanEntry(ObjectId("apps", "Deployment", "shop", "web"), "shop", Action.UNCHANGED,
                  Source("apps/shop/web.yaml", 1), proven=True),
    )  # fmt: skip
    failures = (
        PlanFailure(ObjectId("", "Service", "shop", "web"), "shop", Source("apps/shop/web.yaml", 30),
                    masker.scrub(f'Service "web" is invalid: spec.ports[0].port: Invalid value: "{SECRET_NEW}"')),
    )  # fmt: skip
    return Plan("production", entries, failures, {"GET": 5, "PATCH (dry-run)": 2})


@pytest.mark.parametrize(
    ("name", "produce"),
    [
        ("plan.txt", report.text),
        ("plan.md", report.markdown),
    ],
)
def test_golden(name: str, produce: Any) -> None:
    out = produce(_plan())
    assert SECRET_OLD not in out and SECRET_NEW not in out  # the planted secret values never reach the output
    path = GOLDEN / name
    if os.environ.get("GITOPS_JOB_UPDATE_GOLDEN"):
        path.write_text(out)
    assert out == path.read_text(), f"{name} differs from the golden file; review, then regenerate (see docstring)"
