"""Drift on GitHub (issue 14 item 4): the sticky drift issue per target and the stale-plan line on open pull requests.

The pure core by tables; the client against the GitHub stand-in (every call checked against GitHub's OpenAPI
description); then ``gitops-job reconcile`` end to end against the real cluster and the stand-in: a hand edit by
another field manager opens the issue, the same drift leaves it alone, its end closes it; an open pull request's plan
comment gets one stale line; GitHub failing never fails the reconcile; a planted Secret value reaches no issue or
comment."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from kubernetes import client

from gitops_job.config.load import RepoConfig
from gitops_job.github import drift as gd
from gitops_job.github.actions import CONTENT_KEY, marker, publish, reviewed_digest
from gitops_job.github.client import Comment, GitHub, RetryPolicy
from gitops_job.identity import ObjectId
from gitops_job.outcomes import Action, RunResult
from gitops_job.reconcile.pull import Drift, Fetched, Reconciled
from gitops_job.reconcile.results import ApplyResult, DriftFinding, Manager, Plan, PlanEntry, StackRun
from gitops_job.report.markdown import Page, markdown
from tests.githubstub import BOT, GitHubStub
from tests.gitservers import bare_repo, push
from tests.helpers import SCRIPT, config, git_repo, write

REPO = "octo/app"
REV = "e" * 40
WEB = ObjectId("apps", "Deployment", "prod", "web")
DB = ObjectId("", "ConfigMap", "prod", "db")
EDIT = (Manager("kubectl-edit", "Update"),)
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(attempts=1, backoff=0.01, backoff_max=0.02, request_interval=0, write_interval=0)
SCHEMA = json.loads((Path(__file__).parent.parent / "gitops_job/report/schemas/plan.schema.json").read_text())


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def finding(oid: ObjectId = WEB, path: str = "spec.replicas", at: str = "", managers: tuple[Manager, ...] = EDIT,
            before: str = "3", after: str = "5") -> DriftFinding:  # fmt: skip
    return DriftFinding(oid, path, before, after, managers, at)


def seen(*drifted: DriftFinding, mode: Drift = Drift.REPORT, complete: bool = True, **kw: object) -> gd.Observed:
    return gd.Observed("prod", REV, mode, drifted, complete, **kw)  # type: ignore[arg-type]


def _done(drift: Drift, plan: Plan | None = None, applied: ApplyResult | None = None) -> Reconciled:
    fetched = Fetched("file:///r", "main", REV, Path("/r"), cached=False)
    return Reconciled(fetched, drift, RepoConfig(Path("/r"), Path("/r/gitops.yaml"), (), ()), plan, applied)


# -- what a run saw ----------------------------------------------------------------------------------------------------
def _plan(*drift: DriftFinding, failures: bool = False, checked: bool = True) -> Plan:
    from gitops_job.reconcile.results import PlanFailure

    entries = (PlanEntry(WEB, "app", Action.UPDATE), PlanEntry(DB, "db", Action.UPDATE))
    failed = (PlanFailure(DB, "db", None, "boom"),) if failures else ()
    return Plan("prod", entries, failed, drift=drift, drift_checked=checked, stacks=("app", "db"))


def _run(stack: str, ok: bool) -> StackRun:
    return StackRun(stack, RunResult.SUCCEEDED if ok else RunResult.FAILED, error=None if ok else "conflict on data.v")


@pytest.mark.parametrize(
    ("done", "drifted", "complete", "corrected"),
    [
        pytest.param(_done(Drift.REPORT, plan=_plan(finding())), 1, True, 0, id="report: drift"),
        pytest.param(_done(Drift.REPORT, plan=_plan()), 0, True, 0, id="report: none"),
        pytest.param(_done(Drift.REPORT, plan=_plan(failures=True)), 0, False, 0,
                     id="report: a plan failure hides what it could not plan"),
        pytest.param(_done(Drift.CORRECT, applied=ApplyResult(
            "prod", REV, (_run("app", True), _run("db", True)), plan=_plan(finding(), checked=True))), 0, True, 1,
            id="correct: succeeded, drift recorded: corrected"),
        pytest.param(_done(Drift.CORRECT, applied=ApplyResult(
            "prod", REV, (_run("app", True),), plan=_plan(checked=False))), 0, True, 0,
            id="correct: succeeded, drift not recorded: gone anyway"),
        pytest.param(_done(Drift.CORRECT, applied=ApplyResult(
            "prod", REV, (_run("app", True), _run("db", False)),
            plan=_plan(finding(), finding(DB, "data.v"), checked=True))), 1, True, 1,
            id="correct: the failed stack keeps its drift"),
        pytest.param(_done(Drift.CORRECT, applied=ApplyResult(
            "prod", REV, (_run("app", False),), plan=_plan(checked=False))), 0, False, 0,
            id="correct: failed, drift not recorded: unknown"),
    ],
)  # fmt: skip
def test_observed(done: Reconciled, drifted: int, complete: bool, corrected: int) -> None:
    got = gd.observed(done)
    assert (len(got.drifted), got.complete, len(got.corrected)) == (drifted, complete, corrected)
    assert got.target == "prod" and got.revision == REV


# -- the issue: decide, compose ---------------------------------------------------------------------------------------
BODY = gd.issue_body(seen(finding()))


@pytest.mark.parametrize(
    ("observed", "existing", "step"),
    [
        (seen(finding()), None, gd.Step.OPEN),
        (seen(finding()), BODY, gd.Step.KEEP),
        (seen(finding()), BODY.replace("\n", "\r\n"), gd.Step.EDIT),  # anything else in it: edited
        (seen(finding(), finding(DB, "data.v")), BODY, gd.Step.EDIT),
        (seen(), BODY, gd.Step.CLOSE),
        (seen(), None, gd.Step.NONE),
        (seen(complete=False), BODY, gd.Step.NONE),  # nothing drifted as far as a failed plan saw: not closed
        (seen(mode=Drift.CORRECT, corrected=(finding(),)), BODY, gd.Step.CLOSE),
        (seen(mode=Drift.CORRECT, corrected=(finding(),)), None, gd.Step.NONE),  # corrected: no issue opened
    ],
)
def test_issue_step(observed: gd.Observed, existing: str | None, step: gd.Step) -> None:
    assert gd.issue_step(observed, existing).step is step


def test_issue_body_is_a_table_per_object_with_field_values_and_manager() -> None:
    removed = finding(path="spec.paused", before="(absent)", after="true", managers=())
    body = gd.issue_body(seen(finding(at=_at(1)), removed, finding(DB, "data.v", before="1", after="9")))
    assert body.startswith(gd.issue_marker("prod") + "\n### Drift on `prod`\n")
    assert "2 object(s) of target `prod` differ from git at commit `eeeeeeeeeeee`" in body
    assert "#### <code>Deployment/prod/web</code>" in body and "#### <code>ConfigMap/prod/db</code>" in body
    assert "| <code>spec.replicas</code> | <code>3</code> → <code>5</code> | <code>kubectl-edit</code> |" in body
    assert "| <code>spec.paused</code> | <code>(absent)</code> → <code>true</code> | <code>unknown</code> |" in body
    assert "--drift correct" in body and _at(1) not in body  # stable: no times in it


def test_issue_body_escapes_what_the_cluster_holds() -> None:
    body = gd.issue_body(seen(finding(after="a|b</code><img src=x>`x`", path="data.k")))
    assert "a&#124;b&lt;/code&gt;&lt;img src=x&gt;`x`" in body and "<img" not in body


def test_issue_body_stays_within_the_limit() -> None:
    many = [finding(ObjectId("", "ConfigMap", "prod", f"cm-{i}"), "data.v", after="x" * 100) for i in range(2000)]
    body = gd.issue_body(seen(*many))
    assert len(body) <= 65_536
    assert "more object(s): `gitops-job reconcile --drift report -o json` lists every field" in body


def test_correct_mode_failure_says_why() -> None:
    body = gd.issue_body(seen(finding(), mode=Drift.CORRECT, failure="stack app: conflict on <data.v>"))
    assert "could not set it back: stack app: conflict on &lt;data.v&gt;" in body


@pytest.mark.parametrize(
    ("observed", "text"),
    [
        (seen(mode=Drift.CORRECT, corrected=(finding(),)),
         "Drift gone at `eeeeeeeeeeee`; corrected by this run (`gitops-job reconcile --drift correct`):\n\n"
         "- <code>Deployment/prod/web</code>: <code>spec.replicas</code> <code>5</code> → <code>3</code>\n"),
        (seen(mode=Drift.CORRECT), "Drift gone at `eeeeeeeeeeee`; corrected by this run"),
        (seen(), "No longer drifted at `eeeeeeeeeeee`"),
    ],
)  # fmt: skip
def test_closing_comment(observed: gd.Observed, text: str) -> None:
    assert gd.closing_comment(observed).startswith(text)


# -- the stale-plan line ---------------------------------------------------------------------------------------------
DIGEST = "sha256:" + "d" * 64


def plan_comment(target: str = "prod", digest: str = DIGEST, minutes: int = 0) -> Comment:
    body = markdown(None, Page(title="plan", target=target, marker=marker(target), footer=["head `abc`"],
                               digest=digest, counts="Plan: 1 to update"))  # fmt: skip
    key = "<!-- gitops-job:content sha256:" + "c" * 64 + " -->"
    return Comment(1, f"{body.rstrip()}\n{key}\n", "https://x", BOT, T0 + timedelta(minutes=minutes))


def test_stale_line_added_after_the_title_footer_kept_content_key_dropped() -> None:
    before = plan_comment()
    after = gd.marked_stale(before, "prod", REV, [finding(at=_at(5))])
    assert after is not None
    lines = after.split("\n")
    assert lines[0] == marker("prod") and lines[1].startswith("### gitops-job plan")
    assert lines[3].startswith("> ⚠️ **Stale plan:** the live state of `prod` moved since this plan was made")
    assert "<code>Deployment/prod/web</code>" in lines[3] and "re-run the plan" in lines[3]
    assert reviewed_digest(after) == DIGEST, "the reviewed plan's digest must survive"
    assert not CONTENT_KEY.search(after), "the next plan run must edit the comment (and drop the line)"


def test_stale_line_is_replaced_never_appended() -> None:
    once = gd.marked_stale(plan_comment(), "prod", REV, [finding(at=_at(5))])
    assert once is not None
    again = Comment(1, once, "https://x", BOT, T0 + timedelta(minutes=6))  # our edit moved updated_at
    assert gd.marked_stale(again, "prod", REV, [finding(at=_at(5))]) is None, "same drift: left alone"
    more = gd.marked_stale(again, "prod", REV, [finding(at=_at(5)), finding(DB, "data.v", at=_at(7))])
    assert more is not None and more.count("gitops-job:stale") == 1
    assert "<code>ConfigMap/prod/db</code>" in more
    assert f"planned={T0.isoformat()}" in more, "the plan's own time is kept, not our edit's"


@pytest.mark.parametrize(
    ("comment", "findings", "stale"),
    [
        (plan_comment(minutes=10), [finding(at=_at(5))], False),  # planned after the drift: not stale
        (plan_comment(minutes=5), [finding(at=_at(5))], True),  # the same second: stale (cannot tell)
        (plan_comment(minutes=10), [finding(at="")], True),  # a removed field: when is unknown
        (plan_comment(digest=""), [finding(at=_at(5))], False),  # no plan in it (a fork's render-only comment)
        (plan_comment(), [], False),
    ],
)
def test_marked_stale_when(comment: Comment, findings: list[DriftFinding], stale: bool) -> None:
    assert (gd.marked_stale(comment, "prod", REV, findings) is not None) is stale


# -- the client against the stand-in ---------------------------------------------------------------------------------
@pytest.fixture
def gh(github: GitHubStub) -> GitHub:
    github.add_repo(REPO)
    return GitHub(github.url, github.token, REPO, retry=FAST)


def test_issue_opened_kept_edited_closed_found_by_marker_not_title(github: GitHubStub, gh: GitHub) -> None:
    github.add_issue(REPO, "Drift on prod", "someone else's, same title")
    github.add_issue(REPO, "Drift on prod", f"{gd.issue_marker('prod')} but by a person")
    opened = gd.publish(gh, seen(finding()))
    assert opened.issue is gd.Step.OPEN and not opened.warnings
    [ours] = [i for i in github.issues(REPO) if i["user"]["login"] == BOT]
    assert ours["title"] == "Drift on prod" and opened.issue_url == ours["html_url"]
    patches = len(github.sent("PATCH"))
    assert gd.publish(gh, seen(finding())).issue is gd.Step.KEEP
    assert len(github.sent("PATCH")) == patches, "an unchanged body was edited"
    assert gd.publish(gh, seen(finding(), finding(DB, "data.v"))).issue is gd.Step.EDIT
    assert "ConfigMap/prod/db" in github.issues(REPO, "open")[-1]["body"]
    closed = gd.publish(gh, seen())
    assert closed.issue is gd.Step.CLOSE
    assert ours["state"] == "closed" and ours["state_reason"] == "completed"
    [comment] = github.comments_on(REPO, ours["number"])
    assert "No longer drifted at" in comment["body"]
    assert [i["state"] for i in github.issues(REPO)] == ["open", "open", "closed"], "another's issue was touched"
    assert gd.publish(gh, seen(finding())).issue is gd.Step.OPEN, "drift again after the close: a new issue"


def test_open_pulls_and_issues_followed_across_pages(github: GitHubStub, gh: GitHub) -> None:
    for n in range(1, 102):  # two pages of 100
        github.add_pull(REPO, n, head_sha=f"{n:040x}")
    plan = markdown(None, Page(target="prod", marker=marker("prod"), digest=DIGEST, footer=["x"]))
    publish(gh, 3, marker("prod"), plan, DIGEST)
    publish(gh, 100, marker("other"), plan.replace("prod", "other"), DIGEST)
    github.requests.clear()
    done = gd.publish(gh, seen(finding(at="")))
    assert done.stale == (3,) and not done.warnings
    assert [r.query.get("page", "1") for r in github.sent("GET", r"/pulls$")] == ["1", "2"]
    assert [r.query.get("page", "1") for r in github.sent("GET", r"/issues$")] == ["1", "2"]
    assert len(github.sent("PATCH", r"/issues/comments/")) == 1
    [c3] = github.comments_on(REPO, 3)
    assert c3["body"].count("gitops-job:stale") == 1
    [c100] = github.comments_on(REPO, 100)
    assert "gitops-job:stale" not in c100["body"], "another target's plan was marked"
    assert gd.publish(gh, seen(finding(at=""))).stale == (), "marked twice"


def test_a_plan_run_again_drops_the_line_and_is_not_marked_again(github: GitHubStub, gh: GitHub) -> None:
    github.add_pull(REPO, 7, head_sha="a" * 40)
    plan = markdown(None, Page(target="prod", marker=marker("prod"), digest=DIGEST, footer=["x"]))
    publish(gh, 7, marker("prod"), plan, DIGEST)
    drifted = finding(at=datetime.now(UTC).isoformat())  # the hand edit: after the plan was made
    assert gd.publish(gh, seen(drifted)).stale == (7,)
    publish(gh, 7, marker("prod"), plan, DIGEST)  # the same plan, run again: the comment is edited, the line goes
    [comment] = github.comments_on(REPO, 7)
    assert "gitops-job:stale" not in comment["body"] and reviewed_digest(comment["body"]) == DIGEST
    comment["updated_at"] = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert gd.publish(gh, seen(drifted)).stale == (), "a plan made after the drift was marked stale"


def test_refused_calls_are_warnings_naming_the_permission(github: GitHubStub, gh: GitHub) -> None:
    github.add_pull(REPO, 7, head_sha="a" * 40)
    github.fail(403, method="POST", path=r"/issues$", message="Resource not accessible by integration")
    github.fail(403, method="GET", path=r"/pulls$", message="Resource not accessible by integration")
    done = gd.publish(gh, seen(finding()))
    assert done.issue is gd.Step.NONE and len(done.warnings) == 2
    assert "issues: write" in done.warnings[0] and "Resource not accessible" in done.warnings[0]
    assert "pull-requests: read" in done.warnings[1]
    assert github.issues(REPO) == []


def test_report_never_raises(github: GitHubStub) -> None:
    github.add_repo(REPO)
    done = _done(Drift.REPORT, plan=_plan(finding()))
    assert "no token" in gd.report(done, REPO, None, github.url).warnings[0]
    github.fail(500, times=100)
    failed = gd.report(done, REPO, github.token, github.url, lambda u, t, r: GitHub(u, t, r, retry=FAST))
    assert failed.issue is gd.Step.NONE and failed.warnings
    assert "HTTP 500" in failed.warnings[0] and github.token not in " ".join(failed.warnings)
    bad = gd.report(done, "not-a-repo", github.token, github.url)
    assert "owner/name" in bad.warnings[0]


# -- end to end: reconcile against the cluster and the stand-in --------------------------------------------------------
GIT_SECRET = "planted-git-secret-5c1e"
HAND_SECRET = "planted-hand-secret-9b7d"


def _secret(ns: str) -> str:
    meta = {"name": "creds", "namespace": ns}
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"password": GIT_SECRET}})


def _cm(ns: str, value: str = "1") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": ns},
                       "data": {"v": value}})  # fmt: skip


def _reconcile(kubeconfig: Path, stub: GitHubStub, bare: Path, *args: str, token: bool = True
               ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env |= {"KUBECONFIG": str(kubeconfig), "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": stub.url}
    if token:
        env["GITHUB_TOKEN"] = stub.token
    cmd = [SCRIPT, "reconcile", "--repo", str(bare), "-o", "json", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _hand_edit(api: client.ApiClient, ns: str, value: str, password: str) -> None:
    core = client.CoreV1Api(api)
    core.patch_namespaced_config_map("a", ns, {"data": {"v": value}}, field_manager="kubectl-edit")
    encoded = base64.b64encode(password.encode()).decode()
    core.patch_namespaced_secret("creds", ns, {"data": {"password": encoded}}, field_manager="kubectl-edit")


def test_reconcile_reports_drift_on_github(  # noqa: PLR0915 (one story, told in order)
    kubeconfig: Path, namespace: str, tmp_path: Path, api_client: client.ApiClient, github: GitHubStub
) -> None:
    bare = bare_repo(tmp_path)
    work = tmp_path / "work"
    write(work, {"gitops.yaml": config(namespace, "  - name: app\n    path: app\n"), "app/cm.yaml": _cm(namespace),
                 "app/secret.yaml": _secret(namespace)})  # fmt: skip
    git_repo(work)
    push(work, bare)
    github.add_repo(REPO)
    outputs: list[str] = []

    def run(*args: str) -> dict[str, object]:
        done = _reconcile(kubeconfig, github, bare, *args)
        outputs.extend([done.stdout, done.stderr])
        doc = json.loads(done.stdout)
        if "--drift" in args:
            jsonschema.validate(doc, SCHEMA)
        return doc  # type: ignore[no-any-return]

    applied = run()
    assert applied["github"] == {"repository": REPO, "issue": None, "stalePulls": [], "warnings": []}
    # an open pull request planned before the drift, one of another target, one with nothing of ours
    gh = GitHub(github.url, github.token, REPO, retry=FAST)
    for number in (7, 8, 9):
        github.add_pull(REPO, number, head_sha=f"{number:040x}")
    for number, target in ((7, "t"), (8, "other")):
        plan = markdown(None, Page(target=target, marker=marker(target), digest=DIGEST, footer=["head `x`"]))
        publish(gh, number, marker(target), plan, DIGEST)

    _hand_edit(api_client, namespace, "9", HAND_SECRET)
    first = run("--drift", "report")
    assert first["github"]["issue"]["action"] == "opened", first["github"]  # type: ignore[index]
    assert first["github"]["stalePulls"] == [7]  # type: ignore[index]
    [issue] = github.issues(REPO)
    assert issue["title"] == "Drift on t" and issue["state"] == "open"
    assert f"<code>ConfigMap/{namespace}/a</code>" in issue["body"]
    assert "| <code>data.v</code> | <code>1</code> → <code>9</code> | <code>kubectl-edit</code> |" in issue["body"]
    assert f"<code>Secret/{namespace}/creds</code>" in issue["body"] and "&lt;secret #" in issue["body"]
    [c7] = github.comments_on(REPO, 7)
    assert c7["body"].count("gitops-job:stale") == 1 and reviewed_digest(c7["body"]) == DIGEST
    assert "gitops-job:stale" not in github.comments_on(REPO, 8)[0]["body"]

    # the same drift again: the issue and the stale line are left alone
    writes = len(github.sent("PATCH")) + len(github.sent("POST", r"/issues"))
    second = run("--drift", "report")
    assert second["github"]["issue"]["action"] == "unchanged"  # type: ignore[index]
    assert second["github"]["stalePulls"] == []  # type: ignore[index]
    assert len(github.sent("PATCH")) + len(github.sent("POST", r"/issues")) == writes
    assert len(github.issues(REPO)) == 1 and github.comments_on(REPO, 7)[0]["body"].count("gitops-job:stale") == 1

    # --drift correct takes the drifted fields back: the issue gets its final comment, naming them, and is closed
    corrected = run()
    assert corrected["ok"] is True and corrected["github"]["issue"]["action"] == "closed"  # type: ignore[index]
    assert issue["state"] == "closed"
    [final] = github.comments_on(REPO, issue["number"])
    assert "Drift gone at" in final["body"] and "corrected by this run" in final["body"]
    assert f"<code>ConfigMap/{namespace}/a</code>: <code>data.v</code> <code>9</code> → <code>1</code>" in final["body"]
    assert f"<code>Secret/{namespace}/creds</code>" in final["body"]

    # drift again (a new issue), then undone by hand: report mode closes it as no longer drifted
    _hand_edit(api_client, namespace, "7", HAND_SECRET)
    assert run("--drift", "report")["github"]["issue"]["action"] == "opened"  # type: ignore[index]
    _hand_edit(api_client, namespace, "1", GIT_SECRET)
    assert run("--drift", "report")["github"]["issue"]["action"] == "closed"  # type: ignore[index]
    second_issue = github.issues(REPO)[-1]
    assert second_issue["state"] == "closed"
    assert "No longer drifted at" in github.comments_on(REPO, second_issue["number"])[0]["body"]

    # GitHub failing: the reconcile still succeeds and says so, on stderr and in the JSON
    _hand_edit(api_client, namespace, "5", HAND_SECRET)
    github.fail(500, times=1000)
    broken = _reconcile(kubeconfig, github, bare, "--drift", "report")
    outputs.extend([broken.stdout, broken.stderr])
    warnings = json.loads(broken.stdout)["github"]["warnings"]
    assert warnings and "HTTP 500" in warnings[0], warnings
    assert "warning: github:" in broken.stderr and "the reconcile's result is unchanged" in broken.stderr
    github.requests.clear()
    github._faults.clear()
    github.fail(403, method="POST", path=r"/issues$", message="Resource not accessible by integration")
    refused = _reconcile(kubeconfig, github, bare, "--drift", "report")
    outputs.extend([refused.stdout, refused.stderr])
    assert "issues: write" in refused.stderr, refused.stderr
    no_token = _reconcile(kubeconfig, github, bare, "--drift", "report", token=False)
    assert "no token" in no_token.stderr

    # no secret anywhere: not in issues, comments or outputs, neither plain nor base64
    texts = [i["body"] for i in github.issues(REPO)] + [c["body"] for c in github.comments.values()] + outputs
    planted = [GIT_SECRET, HAND_SECRET, *(base64.b64encode(s.encode()).decode() for s in (GIT_SECRET, HAND_SECRET))]
    assert not [p for p in planted for t in texts if p in t], "a secret value reached GitHub or an output"
    assert github.token not in "".join(outputs)


def test_without_a_repository_nothing_reaches_github(
    kubeconfig: Path, namespace: str, tmp_path: Path, github: GitHubStub
) -> None:
    bare = bare_repo(tmp_path)
    work = tmp_path / "work"
    write(work, {"gitops.yaml": config(namespace, "  - name: app\n    path: app\n"), "app/cm.yaml": _cm(namespace)})
    git_repo(work)
    push(work, bare)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")} | {"KUBECONFIG": str(kubeconfig),
           "GITHUB_TOKEN": github.token, "GITHUB_API_URL": github.url}  # fmt: skip
    env_free = subprocess.run([SCRIPT, "reconcile", "--repo", str(bare), "-o", "json"], capture_output=True, text=True,
                              timeout=180, env=env, check=True)  # fmt: skip
    assert "github" not in json.loads(env_free.stdout) and "github" not in env_free.stderr
    assert github.requests == []


def test_a_finding_carries_when_its_manager_last_wrote() -> None:
    """What the stale line compares with a plan comment's time: managedFields' ``time`` of the manager that changed
    the field (none for a field nobody owns)."""
    from gitops_job.reconcile.drift import drift_of

    live = {"data": {"v": "9"}, "metadata": {"managedFields": [
        {"manager": "gitops-job", "operation": "Apply", "time": "2026-12-03T11:00:00Z", "fieldsV1": {"f:data": {}}},
        {"manager": "kubectl-edit", "operation": "Update", "time": "2026-12-03T12:05:00Z",
         "fieldsV1": {"f:data": {"f:v": {}}}},
    ]}}  # fmt: skip
    [edited] = drift_of(DB, {"data": {"v": "9"}}, {"data": {"v": "1"}}, live, "gitops-job", applied_here=True)
    assert edited.at == "2026-12-03T12:05:00Z"
    assert gd.moved_since([edited], T0 + timedelta(minutes=10)) == ()
    assert gd.moved_since([edited], T0 + timedelta(minutes=5)) == (DB,)
    [removed] = drift_of(DB, {"data": {}}, {"data": {"w": "1"}}, {"metadata": {}}, "gitops-job", applied_here=True)
    assert removed.at == ""
