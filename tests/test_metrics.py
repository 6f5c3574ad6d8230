"""Issue 14 item 6, metrics for a job that does not live long: `apply --pushgateway URL` pushes one group per job +
target to Debian's `prometheus-pushgateway`, started on a loopback port for each test and read back from /metrics.
The families themselves (report/metrics.py) are a pure function of the results, tested by tables."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gitops_job.identity import ObjectId
from gitops_job.notify.metrics import public_url, push, registry
from gitops_job.outcomes import Action, RunResult, Verdict
from gitops_job.reconcile.results import (
    Applied,
    ApplyResult,
    DriftFinding,
    Plan,
    PlanEntry,
    PlanFailure,
    Pruned,
    StackRun,
)
from gitops_job.report.metrics import OBJECT_RESULTS, RunMetrics, Sample, objects, report_metrics, run_metrics
from tests.helpers import cm, config, git_repo, gitops_job, write
from tests.pushgateway import group, scrape
from tests.serving import free_port


# -- the pure part: results → families -----------------------------------------------------------------------------
def _id(name: str) -> ObjectId:
    return ObjectId("", "ConfigMap", "ns", name)


def _stack(name: str, result: RunResult = RunResult.SUCCEEDED, **by_action: int) -> StackRun:
    """A stack's run: ``create=2, update=1, recreate=…, adopt=…, unchanged=…, prune=…, retain=…, failed=…``."""
    entries, applied, pruned = [], [], []
    for action in (Action.CREATE, Action.UPDATE, Action.RECREATE, Action.ADOPT):
        for i in range(by_action.get(action.value, 0)):
            entries.append(PlanEntry(_id(f"{name}-{action}-{i}"), name, action))
            applied.append(Applied(_id(f"{name}-{action}-{i}"), action, ok=True))
    for i in range(by_action.get("failed", 0)):
        applied.append(Applied(_id(f"{name}-failed-{i}"), Action.UPDATE, ok=False, message="boom"))
    entries += [PlanEntry(_id(f"{name}-u-{i}"), name, Action.UNCHANGED) for i in range(by_action.get("unchanged", 0))]
    pruned += [Pruned(_id(f"{name}-p-{i}"), Verdict.PRUNED) for i in range(by_action.get("prune", 0))]
    pruned += [Pruned(_id(f"{name}-r-{i}"), Verdict.RETAINED) for i in range(by_action.get("retain", 0))]
    return StackRun(name, result, Plan("prod", tuple(entries)), tuple(applied), tuple(pruned))


def _sample_map(m: RunMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, s.labels): s.value for s in m.samples}


@pytest.mark.parametrize(
    ("stacks", "expected"),
    [
        ((), dict.fromkeys(OBJECT_RESULTS, 0)),
        ((_stack("a", create=2, unchanged=3),), {"created": 2, "updated": 0, "unchanged": 3, "pruned": 0}),
        (  # a recreate and an adoption update an object that existed; retained and failed count nowhere
            (_stack("a", update=1, recreate=1, adopt=1, prune=2, retain=1), _stack("b", failed=1, unchanged=4)),
            {"created": 0, "updated": 3, "unchanged": 4, "pruned": 2},
        ),
    ],
    ids=["nothing", "one-stack", "two-stacks-folded"],
)
def test_objects_sum_every_stack_into_four_results(stacks: tuple[StackRun, ...], expected: dict[str, int]) -> None:
    assert objects(ApplyResult("prod", "abc", stacks)) == expected


def test_objects_of_a_run_that_raised_are_all_zero() -> None:
    assert objects(None) == dict.fromkeys(OBJECT_RESULTS, 0)


def _drift_plan(n: int) -> Plan:
    findings = tuple(DriftFinding(_id(f"d{i}"), "data.v", "1", "2") for i in range(n))
    return Plan("prod", (), drift=(*findings, *findings), drift_checked=True)  # two fields each: counted once


@pytest.mark.parametrize(
    ("result", "ok", "drift", "revision"),
    [
        (ApplyResult("prod", "abc123", (_stack("a", create=1),)), True, 0, "abc123"),
        (ApplyResult("prod", "abc123", (_stack("a", create=1),), plan=_drift_plan(3)), True, 3, "abc123"),
        (
            ApplyResult("prod", "abc123", (_stack("a", RunResult.FAILED, failed=1),), plan=_drift_plan(2)),
            False,
            2,
            None,
        ),
        (ApplyResult("prod", "abc123", (_stack("a"), _stack("b", RunResult.SKIPPED))), False, 0, None),
        (None, False, 0, None),
    ],
    ids=["success", "success-with-drift", "failed", "skipped", "raised"],
)
def test_run_metrics_push_last_success_and_revision_only_on_success(
    result: ApplyResult | None, ok: bool, drift: int, revision: str | None
) -> None:
    m = run_metrics("prod", result, duration=1.5, finished=1_700_000_000.0)
    assert m.target == "prod" and m.succeeded is ok
    want = {
        ("gitops_job_reconcile_duration_seconds", ()): 1.5,
        **{("gitops_job_objects", (("result", k),)): float(v) for k, v in objects(result).items()},
        ("gitops_job_drift_objects", ()): drift,
    }
    if revision is not None:
        want[("gitops_job_last_success_timestamp_seconds", ())] = 1_700_000_000.0
        want[("gitops_job_last_applied_info", (("revision", revision),))] = 1
    assert _sample_map(m) == want


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:9091", "http://127.0.0.1:9091"),
        ("https://bot:s3cret@push.example.com:9091/base", "https://push.example.com:9091/base"),
        ("https://token@push.example.com/", "https://push.example.com/"),
        ("http://u:p@[::1]:9091", "http://[::1]:9091"),
    ],
)
def test_public_url_strips_credentials(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_registry_holds_only_the_runs_families() -> None:
    m = RunMetrics(
        "prod", True, (Sample("gitops_job_drift_objects", 2), Sample("gitops_job_objects", 1, (("result", "created"),)))
    )
    names = {f.name for f in registry(m).collect()}
    assert names == {"gitops_job_drift_objects", "gitops_job_objects"}  # no process_* or python_* of the default


def test_a_failed_push_is_a_warning_that_names_the_gateway_without_credentials() -> None:
    port = free_port()  # nothing listens there
    warning = push(f"http://bot:s3cret@127.0.0.1:{port}", run_metrics("prod", None, 1.0, 0.0), timeout=2)
    assert warning is not None
    assert f"Pushgateway http://127.0.0.1:{port}:" in warning and "s3cret" not in warning and "bot" not in warning
    assert "refused" in warning.lower(), warning
    bad = push("not a url", run_metrics("prod", None, 1.0, 0.0))
    assert bad is not None and "not an http(s) URL" in bad


# -- against a real Pushgateway -------------------------------------------------------------------------------------
def test_push_put_on_success_post_on_failure_keeps_the_last_success(pushgateway: str) -> None:
    ok = ApplyResult("prod", "rev1", (_stack("a", create=2, unchanged=1),), plan=_drift_plan(1))
    assert push(pushgateway, run_metrics("prod", ok, 2.0, 1_700_000_000.0)) is None
    first = scrape(pushgateway)
    g = group("prod")
    assert {k: v for k, v in first.items() if not k[0].startswith("push_")} == {
        ("gitops_job_reconcile_duration_seconds", g): 2.0,
        ("gitops_job_last_success_timestamp_seconds", g): 1_700_000_000.0,
        ("gitops_job_objects", group("prod", result="created")): 2.0,
        ("gitops_job_objects", group("prod", result="updated")): 0.0,
        ("gitops_job_objects", group("prod", result="unchanged")): 1.0,
        ("gitops_job_objects", group("prod", result="pruned")): 0.0,
        ("gitops_job_drift_objects", g): 1.0,
        ("gitops_job_last_applied_info", group("prod", revision="rev1")): 1.0,
    }
    assert first["push_failure_time_seconds", g] == 0

    time.sleep(1.1)  # push_time_seconds has a resolution the next push must visibly move
    assert push(pushgateway, run_metrics("prod", None, 0.5, 1_700_000_100.0)) is None  # a failed run
    second = scrape(pushgateway)
    assert second["gitops_job_reconcile_duration_seconds", g] == 0.5
    assert second["gitops_job_objects", group("prod", result="created")] == 0.0
    assert second["gitops_job_drift_objects", g] == 0.0
    # The last success and the revision applied are those of the successful run, not erased.
    assert second["gitops_job_last_success_timestamp_seconds", g] == 1_700_000_000.0
    assert second["gitops_job_last_applied_info", group("prod", revision="rev1")] == 1.0
    assert second["push_time_seconds", g] > first["push_time_seconds", g]

    # The next success replaces the whole group (PUT): the old revision's series is gone.
    ok2 = ApplyResult("prod", "rev2", (_stack("a", unchanged=3),))
    assert push(pushgateway, run_metrics("prod", ok2, 1.0, 1_700_000_200.0)) is None
    third = scrape(pushgateway)
    info = {k for k in third if k[0] == "gitops_job_last_applied_info"}
    assert info == {("gitops_job_last_applied_info", group("prod", revision="rev2"))}
    assert third["gitops_job_last_success_timestamp_seconds", g] == 1_700_000_200.0

    # Another target is a group of its own.
    assert push(pushgateway, run_metrics("staging", ok2, 1.0, 1.0)) is None
    fourth = scrape(pushgateway)
    assert fourth["gitops_job_last_success_timestamp_seconds", g] == 1_700_000_200.0
    assert fourth["gitops_job_last_success_timestamp_seconds", group("staging")] == 1.0


def test_apply_pushes_the_run_and_a_broken_run_keeps_the_last_success(
    tmp_path: Path, kubeconfig: Path, namespace: str, pushgateway: str
) -> None:
    repo = tmp_path / "repo"
    write(repo, {
        "gitops.yaml": config(namespace, f"  - name: app\n    path: app\n    namespace: {namespace}\n"),
        "app/a.yaml": cm("a", namespace),
        "app/b.yaml": cm("b", namespace),
    })  # fmt: skip
    rev1 = git_repo(repo)
    before = time.time()
    gitops_job(kubeconfig, "apply", "--repo", str(repo), "--no-wait", "--pushgateway", pushgateway)
    first = scrape(pushgateway)
    g = group("t")
    ours = {k: v for k, v in first.items() if k[0] != "gitops_job_reconcile_duration_seconds" and "time" not in k[0]}
    assert ours == {
        ("gitops_job_objects", group("t", result="created")): 2.0,
        ("gitops_job_objects", group("t", result="updated")): 0.0,
        ("gitops_job_objects", group("t", result="unchanged")): 0.0,
        ("gitops_job_objects", group("t", result="pruned")): 0.0,
        ("gitops_job_drift_objects", g): 0.0,
        ("gitops_job_last_applied_info", group("t", revision=rev1)): 1.0,
    }
    assert 0 < first["gitops_job_reconcile_duration_seconds", g] < 120
    last_success = first["gitops_job_last_success_timestamp_seconds", g]
    assert before <= last_success <= time.time()

    # One file changed, one deleted: one updated, one pruned.
    write(repo, {"app/a.yaml": cm("a", namespace, value="2")})
    (repo / "app" / "b.yaml").unlink()
    rev2 = git_repo(repo)
    gitops_job(kubeconfig, "apply", "--repo", str(repo), "--no-wait", "--pushgateway", pushgateway)
    second = scrape(pushgateway)
    assert second["gitops_job_objects", group("t", result="updated")] == 1.0
    assert second["gitops_job_objects", group("t", result="pruned")] == 1.0
    assert second["gitops_job_objects", group("t", result="created")] == 0.0
    assert {k for k in second if k[0] == "gitops_job_last_applied_info"} == {
        ("gitops_job_last_applied_info", group("t", revision=rev2))
    }
    last_success = second["gitops_job_last_success_timestamp_seconds", g]

    # A broken render fails the run before it has a result: pushed anyway, the last success kept.
    write(repo, {"app/a.yaml": "kind: [unclosed\n"})
    git_repo(repo)
    time.sleep(1.1)
    broken = gitops_job(kubeconfig, "apply", "--repo", str(repo), "--pushgateway", pushgateway, ok=False)
    assert broken.returncode != 0
    third = scrape(pushgateway)
    assert third["gitops_job_last_success_timestamp_seconds", g] == last_success
    assert ("gitops_job_last_applied_info", group("t", revision=rev2)) in third
    assert third["gitops_job_objects", group("t", result="updated")] == 0.0
    assert third["push_time_seconds", g] > second["push_time_seconds", g]


def test_apply_with_an_unreachable_gateway_warns_and_succeeds(tmp_path: Path, kubeconfig: Path, namespace: str) -> None:
    repo = tmp_path / "repo"
    write(repo, {
        "gitops.yaml": config(namespace, f"  - name: app\n    path: app\n    namespace: {namespace}\n"),
        "app/a.yaml": cm("a", namespace),
    })  # fmt: skip
    git_repo(repo)
    port = free_port()
    done = gitops_job(
        kubeconfig, "apply", "--repo", str(repo), "--no-wait", "--pushgateway", f"http://bot:s3cret@127.0.0.1:{port}"
    )
    assert done.returncode == 0
    assert f"warning: metrics not pushed to the Pushgateway http://127.0.0.1:{port}:" in done.stderr, done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    assert "created" in done.stdout


@pytest.mark.parametrize(
    ("plan", "ok"),
    [(_drift_plan(2), True), (Plan("prod", (), (PlanFailure(_id("x"), "app", None, "boom"),)), False), (None, False)],
    ids=["reported", "plan-failed", "raised"],
)
def test_report_metrics_push_duration_drift_and_success_only(plan: Plan | None, ok: bool) -> None:
    """A report applied nothing: its objects and last applied revision are not pushed (the gateway keeps the last
    apply's), and the push adds (POST), never replaces the group."""
    m = report_metrics("prod", plan, duration=2.0, finished=1_700_000_000.0)
    want = {("gitops_job_reconcile_duration_seconds", ()): 2.0,
            ("gitops_job_drift_objects", ()): plan.drift_count if plan else 0}  # fmt: skip
    if ok:
        want["gitops_job_last_success_timestamp_seconds", ()] = 1_700_000_000.0
    assert (_sample_map(m), m.succeeded, m.replace) == (want, ok, False)


def test_only_a_successful_apply_replaces_the_group() -> None:
    assert run_metrics("prod", ApplyResult("prod", "abc", (_stack("a", create=1),)), 1, 1).replace
    assert not run_metrics("prod", ApplyResult("prod", "abc", (_stack("a", RunResult.FAILED),)), 1, 1).replace
