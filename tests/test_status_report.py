"""`status` and `history` as people and programs read them (issue 14, item 10).

Pure: the table, the JSON document and where a run came from, by tables and golden files (regenerate after an
intended change with ``GITOPS_JOB_UPDATE_GOLDEN=1 pytest tests/test_status_report.py`` and review the diff). Then
the whole command against the local cluster: apply from CI, from the CronJob and from a terminal, then `status`
(text and `-o json`, checked against its schema) and `history`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest

from gitops_job.identity import ObjectId
from gitops_job.outcomes import HealthState, Origin, RunResult, detect_origin
from gitops_job.reconcile.results import Health, Hold, Run, StackStatus, Status
from gitops_job.report.status import health_text, history_text, status_json, status_text, table
from tests.helpers import SCRIPT, cm, config, git_repo, write

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((Path(__file__).parent.parent / "gitops_job/report/schemas/status.schema.json").read_text())
REV_A, REV_B = "4d5bbfb0a1b2c3d4e5f60718293a4b5c6d7e8f90", "9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddcc"
CUR, PROG, FAIL, GONE = HealthState.CURRENT, HealthState.IN_PROGRESS, HealthState.FAILED, HealthState.NOT_FOUND


def _cms(n: int, state: HealthState = CUR, ns: str = "shop", prefix: str = "cm") -> dict[ObjectId, Health]:
    return {ObjectId("", "ConfigMap", ns, f"{prefix}-{i:02}"): Health(state, "ok") for i in range(n)}


def _status() -> Status:
    web = ObjectId("apps", "Deployment", "shop", "web")
    db = ObjectId("apps", "StatefulSet", "shop", "db")
    shop = {**_cms(10), web: Health(FAIL, "ProgressDeadlineExceeded: RS web-7d has timed out"),
            db: Health(PROG, "1/3 replicas ready\x1b[2J")}  # fmt: skip
    return Status("production", (
        StackStatus("platform", REV_A, Run(REV_A, "2026-12-03T13:00:01Z", "2026-12-03T13:00:04Z",
                                                 RunResult.SUCCEEDED, {"unchanged": 12}, origin=Origin.CRONJOB),
                    _cms(12, ns="", prefix="ns"), drift=0),
        StackStatus("shop", REV_A, Run(REV_B, "2026-12-03T13:05:00Z", "2026-12-03T13:05:41Z",
                                             RunResult.FAILED, {"updated": 1, "failed": 1},
                                             "stage wait: Deployment/shop/web: not healthy in 40s\nmore detail",
                                             origin=Origin.CI),
                    shop),
        StackStatus("legacy", None, Run(REV_B, "2026-11-30T09:00:00Z", "2026-11-30T09:00:02Z",
                                              RunResult.SKIPPED, {},
                                              "dependency shop did not succeed", origin=Origin.UNKNOWN), {}),
        StackStatus("new-stack", None, None),
        StackStatus("paused", REV_A, None, {}, suspended=Hold("ana", "incident 42", "2026-12-03T14:00:00Z")),
        StackStatus("rolled-back", REV_A, None, {}, off_git=Hold("bo", "bad release", "2026-12-03T14:10:00Z",
                                                                 REV_A, REV_B)),
    ))  # fmt: skip


def _runs() -> list[Run]:
    return [
        Run(REV_B, "2026-12-03T13:05:00Z", "2026-12-03T13:05:41Z", RunResult.FAILED,
                  {"updated": 1, "failed": 1}, "stage wait: Deployment/shop/web: not healthy in 40s\nmore",
                  origin=Origin.CI),
        Run(REV_A, "2026-12-03T12:00:00Z", "2026-12-03T12:00:03Z", RunResult.SUCCEEDED,
                  {"updated": 1, "unchanged": 11}, origin=Origin.CRONJOB,
                  drift=("Deployment/shop/web spec.replicas: 2 → 5 (manager: kubectl-edit)",
                         "Deployment/shop/web spec.template.spec.containers[name=web].image: web:1 → web:2"
                         " (manager: kubectl-set)")),
        Run(REV_A, "2026-12-03T11:00:00Z", "2026-12-03T11:00:09Z", RunResult.SUCCEEDED,
                  {"created": 11, "unchanged": 1}, origin=Origin.TERMINAL),
        Run(REV_A, "2026-12-01T11:00:00Z", "2026-12-01T11:00:09Z", RunResult.SUCCEEDED, {}, origin=Origin.UNKNOWN),
    ]  # fmt: skip


def _golden(name: str, out: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GITOPS_JOB_UPDATE_GOLDEN"):
        path.write_text(out)
    assert out == path.read_text(), f"{name} differs from the golden file; review, then regenerate (see docstring)"


# -- the table ---------------------------------------------------------------------------------------------------------
def test_status_table_golden() -> None:
    out = status_text(_status())
    assert "\x1b" not in out  # a reason's control characters are escaped
    _golden("status.txt", out)


def test_history_table_golden() -> None:
    _golden("history.txt", history_text("production", "shop", _runs()))


def test_history_of_a_stack_never_applied() -> None:
    assert history_text("production", "shop", []) == "stack shop: never applied to target production\n"


def test_table_aligns_columns_and_leaves_no_trailing_space() -> None:
    lines = table(("A", "LONG HEADER", "C"), [("wide cell", "x", ""), ("b", "y", "z")])
    assert lines == ["A           LONG HEADER   C", "wide cell   x", "b           y             z"]


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        pytest.param({}, "-", id="no-objects"),
        pytest.param(_cms(12), "12/12 current", id="all-current"),
        pytest.param({**_cms(10), **_cms(2, PROG, prefix="p")}, "10/12 current, 2 in progress", id="in-progress"),
        pytest.param(
            {**_cms(9), **_cms(2, PROG, prefix="p"), **_cms(1, FAIL, prefix="f")},
            "9/12 current, 1 failed",
            id="failed-is-worst",
        ),
        pytest.param({**_cms(1, PROG), **_cms(1, GONE, prefix="g")}, "0/2 current, 1 not found", id="not-found"),
    ],
)
def test_health_column(health: dict[ObjectId, Health], expected: str) -> None:
    assert health_text(health) == expected


# -- the JSON document -------------------------------------------------------------------------------------------------
def test_status_json_golden_and_valid() -> None:
    doc = status_json(_status())
    jsonschema.validate(doc, SCHEMA)
    _golden("status.json", json.dumps(doc, indent=2) + "\n")


def test_status_json_says_drift_is_unknown_unless_known() -> None:
    stacks = {s["stack"]: s for s in status_json(_status())["stacks"]}
    assert stacks["platform"]["drift"] == 0 and stacks["shop"]["drift"] is None
    assert stacks["new-stack"]["lastRun"] is None and stacks["new-stack"]["health"]["worst"] is None


# -- where a run came from ---------------------------------------------------------------------------------------------
POD = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}


@pytest.mark.parametrize(
    ("environ", "in_pod", "expected"),
    [
        pytest.param({}, False, Origin.TERMINAL, id="terminal"),
        pytest.param({"GITHUB_ACTIONS": "true"}, False, Origin.CI, id="github-actions"),
        pytest.param({"CI": "true"}, False, Origin.CI, id="any-ci"),
        pytest.param({"GITHUB_ACTIONS": "false"}, False, Origin.TERMINAL, id="github-actions-false"),
        pytest.param(POD, True, Origin.CRONJOB, id="in-a-pod"),
        pytest.param(POD, False, Origin.TERMINAL, id="service-host-without-the-pod-file"),
        pytest.param({}, True, Origin.TERMINAL, id="pod-file-without-service-host"),
        pytest.param({**POD, "GITHUB_ACTIONS": "true"}, True, Origin.CI, id="ci-runner-in-a-pod-is-ci"),
        pytest.param({"GITOPS_JOB_ORIGIN": "cronjob"}, False, Origin.CRONJOB, id="explicit"),
        pytest.param({"GITOPS_JOB_ORIGIN": "Terminal", **POD}, True, Origin.TERMINAL, id="explicit-wins"),
        pytest.param({"GITOPS_JOB_ORIGIN": "satellite"}, False, Origin.TERMINAL, id="explicit-unknown-ignored"),
    ],
)
def test_detect_origin(environ: dict[str, str], in_pod: bool, expected: Origin) -> None:
    assert detect_origin(environ, in_pod) is expected


@pytest.mark.parametrize(
    ("stored", "expected"),
    [("ci", Origin.CI), ("cronjob", Origin.CRONJOB), (None, Origin.UNKNOWN), ("satellite", Origin.UNKNOWN),
     (3, Origin.UNKNOWN)],
)  # fmt: skip
def test_origin_read_from_a_record(stored: object, expected: Origin) -> None:
    assert Origin.read(stored) is expected


# -- the whole command, on the local cluster ---------------------------------------------------------------------------
_CLEAN = ("GITHUB_ACTIONS", "CI", "GITOPS_JOB_ORIGIN", "KUBERNETES_SERVICE_HOST", "GITOPS_JOB_APPLY_ORIGIN")


def _run(kubeconfig: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    result = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=180,
                            env={**base, "KUBECONFIG": str(kubeconfig), **env})  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_status_after_applies_from_ci_cronjob_and_terminal(tmp_path: Path, kubeconfig: Path, namespace: str) -> None:
    stacks = "".join(f"  - {{name: {s}, path: {s}, namespace: {namespace}}}\n" for s in ("base", "app"))
    write(tmp_path, {"gitops.yaml": config(namespace, stacks), "base/a.yaml": cm("a", namespace),
                     "base/b.yaml": cm("b", namespace), "app/c.yaml": cm("c", namespace)})  # fmt: skip
    rev1 = git_repo(tmp_path)
    repo = ("--repo", str(tmp_path))

    never = _run(kubeconfig, "status", *repo).stdout
    assert never.splitlines()[0].split() == [
        "STACK",
        "REVISION",
        "APPLIED",
        "AT",
        "RESULT",
        "ORIGIN",
        "HEALTH",
        "DRIFT",
    ]
    assert "never applied" in never

    _run(kubeconfig, "apply", *repo, GITHUB_ACTIONS="true")
    write(tmp_path, {"app/c.yaml": cm("c", namespace, "2")})
    rev2 = git_repo(tmp_path)
    _run(kubeconfig, "apply", *repo, "-s", "app", GITOPS_JOB_ORIGIN="cronjob")
    write(tmp_path, {"app/c.yaml": cm("c", namespace, "3")})
    rev3 = git_repo(tmp_path)
    _run(kubeconfig, "apply", *repo, "-s", "app")

    text = _run(kubeconfig, "status", *repo).stdout
    header, base, app = text.splitlines()[:3]
    assert header.startswith("STACK   REVISION       APPLIED AT"), text
    assert base.split()[:2] == ["base", rev1[:12]] and base.split()[3:] == ["succeeded", "ci", "2/2", "current", "-"]
    assert app.split()[:2] == ["app", rev3[:12]] and app.split()[3:] == ["succeeded", "terminal", "1/1", "current", "-"]
    assert header.index("RESULT") == base.index("succeeded") == app.index("succeeded")  # aligned

    doc = json.loads(_run(kubeconfig, "status", *repo, "-o", "json").stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["target"] == "t" and [s["stack"] for s in doc["stacks"]] == ["base", "app"]
    by = {s["stack"]: s for s in doc["stacks"]}
    assert by["base"]["revision"] == rev1 and by["base"]["lastRun"]["origin"] == "ci"
    assert by["app"]["revision"] == rev3 and by["app"]["health"] == {"summary": "1/1 current", "worst": "current",
                                                                     "counts": {"current": 1}}  # fmt: skip
    assert by["app"]["drift"] is None and by["app"]["unhealthy"] == []

    history = _run(kubeconfig, "history", *repo, "app").stdout.splitlines()
    assert history[0].split() == ["FINISHED", "RESULT", "ORIGIN", "REVISION", "COUNTS"]
    assert [line.split()[1:4] for line in history[1:]] == [
        ["succeeded", "terminal", rev3[:12]],
        ["succeeded", "cronjob", rev2[:12]],
        ["succeeded", "ci", rev1[:12]],
    ]
