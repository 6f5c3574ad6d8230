"""The pull-request flow end to end: real event payloads (``@octokit/webhooks-examples``), the ``GITHUB_*`` variables
the runner sets, the GitHub stand-in (every request and response checked against GitHub's OpenAPI description), the
local cluster, real git, and the CLI as the action runs it (``gitops-job plan|apply --github``).

Rows F3 (cluster unreachable during a PR plan), M7 (fork PR: never the cluster, render-only comment), M8 (shell
metacharacters in PR title and branch) and S5/O5 again (no secret in the comment, summary, outputs or artifacts).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitops_job.github import actions
from gitops_job.github.client import ActionsContext, GitHub
from gitops_job.identity import ObjectId
from gitops_job.outcomes import Action
from gitops_job.reconcile.context import Settings
from gitops_job.reconcile.results import Plan
from gitops_job.reconcile.run import ApplyOptions
from tests.githubstub import FakeClock, GitHubStub, webhook_example
from tests.helpers import SCRIPT, cm, git_repo, write
from tests.kube import AuditLog
from tests.test_github import FAST

REPO = "acme/deploy"
PR = 7
SECRET = "hunter2-planted-Secret-value"


@dataclass
class Flow:
    root: Path
    tmp: Path
    ns: str
    kubeconfig: Path
    stub: GitHubStub
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def env(self, event: str, payload: dict[str, Any], sha: str, ref: str, name: str) -> dict[str, str]:
        path = self.tmp / f"{name}.event.json"
        path.write_text(json.dumps(payload))
        for f in ("summary", "output"):
            (self.tmp / f"{name}.{f}").touch()
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(path),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SHA": sha,
            "GITHUB_REF": ref,
            "GITHUB_API_URL": self.stub.url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_STEP_SUMMARY": str(self.tmp / f"{name}.summary"),
            "GITHUB_OUTPUT": str(self.tmp / f"{name}.output"),
            "GITHUB_TOKEN": self.stub.token,
        }

    def run(self, env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([SCRIPT, *args, "--repo", str(self.root)], capture_output=True, text=True, env=env,
                                timeout=240)  # fmt: skip
        self.runs.append(result)
        assert (result.returncode == 0) == ok, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def plan(self, sha: str, name: str, *args: str, ok: bool = True, **pr: Any) -> subprocess.CompletedProcess[str]:
        env = self.env("pull_request", pull_request_event(sha, **pr), sha, f"refs/pull/{PR}/merge", name)
        return self.run(env, "plan", "--github", "--artifact-dir", str(self.tmp / name), *args, ok=ok)

    def apply(self, merge_sha: str, name: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = self.env("push", push_event(merge_sha), merge_sha, "refs/heads/main", name)
        return self.run(env, "apply", "--github", "--artifact-dir", str(self.tmp / name), *args, ok=ok)

    def outputs(self, name: str) -> dict[str, str]:
        lines = (self.tmp / f"{name}.output").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def comments(self) -> list[dict[str, Any]]:
        return self.stub.comments_on(REPO, PR)

    def everything_written(self) -> str:
        """Every output of every run: stdout, stderr, summaries, outputs, artifacts, and every body sent to GitHub."""
        texts = [r.stdout + r.stderr for r in self.runs]
        outputs = [p for p in self.tmp.rglob("*") if p.is_file() and not p.is_relative_to(self.root)]
        texts += [p.read_text() for p in outputs if not p.name.endswith(".event.json")]
        texts += [json.dumps(r.body) for r in self.stub.requests if r.body is not None]
        return "\n".join(texts)


def dead_kubeconfig(flow: Flow) -> Path:
    """The cluster's kubeconfig pointed at a port where nothing listens."""
    dead = flow.tmp / "dead-kubeconfig"
    dead.write_text(re.sub(r"https://127\.0\.0\.1:\d+", "https://127.0.0.1:9", flow.kubeconfig.read_text()))
    return dead


def pull_request_event(head_sha: str, *, action: str = "synchronize", fork: bool = False, title: str = "",
                       branch: str = "") -> dict[str, Any]:  # fmt: skip
    payload = webhook_example("pull_request", action)
    payload["number"] = PR
    pr = payload["pull_request"]
    pr["number"] = PR
    pr["head"]["sha"] = head_sha
    for side in ("head", "base"):
        if pr[side].get("repo"):
            pr[side]["repo"]["full_name"] = REPO
            pr[side]["repo"]["fork"] = False
    if fork:
        pr["head"]["repo"]["full_name"] = "mallory/deploy"
        pr["head"]["repo"]["fork"] = True
    if title:
        pr["title"] = title
    if branch:
        pr["head"]["ref"] = branch
    payload["repository"]["full_name"] = REPO
    return payload


def push_event(sha: str) -> dict[str, Any]:
    payload = webhook_example("push")
    payload.update(ref="refs/heads/main", after=sha)
    payload["repository"].update(full_name=REPO, default_branch="main")
    return payload


def secret(ns: str) -> str:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns},
            "stringData": {"password": SECRET}}  # fmt: skip
    return json.dumps(body) + "\n"


@pytest.fixture
def flow(tmp_path: Path, namespace: str, kubeconfig: Path, github: GitHubStub) -> Flow:
    root = tmp_path / "repo"
    write(root, {
        "gitops.yaml": f"targets:\n  - name: t\n    inventoryNamespace: {namespace}\n"
                       "stacks:\n  - name: app\n    path: app\n",
        "app/settings.yaml": cm("settings", namespace, "1") + "---\n" + cm("flags", namespace, "on"),
        "app/secret.yaml": secret(namespace),
    })  # fmt: skip
    github.add_repo(REPO)
    return Flow(root, tmp_path, namespace, kubeconfig, github)


def assert_no_secret(flow: Flow) -> None:
    everything = flow.everything_written()
    for form in (SECRET, base64.b64encode(SECRET.encode()).decode()):
        assert form not in everything, "a planted secret value reached an output"


# -- the acceptance path -----------------------------------------------------------------------------------------------
def test_pr_comment_edited_in_place_then_merge_applies_reports_and_sets_status(
    flow: Flow, audit: AuditLog, api_client: client.ApiClient
) -> None:
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)

    first = flow.plan(head, "plan1")
    (comment,) = flow.comments()
    body = comment["body"]
    assert body.startswith("<!-- gitops-job:comment target=t config=gitops.yaml -->"), body
    assert "gitops-job plan · `t`" in body, body
    assert "**3 to create, 0 to update, 0 to prune, 0 unchanged**" in body
    assert f"`ConfigMap/{flow.ns}/settings`" in body and "```diff" in body
    assert (
        "<!-- gitops-job:digest sha256:" in body and "[run](https://github.com/acme/deploy/actions/runs/4242)" in body
    )
    outputs = flow.outputs("plan1")
    assert (
        outputs["has-changes"] == "true" and outputs["created"] == "3" and outputs["plan-digest"].startswith("sha256:")
    )
    assert outputs["plan-digest"] in body
    summary = (flow.tmp / "plan1.summary").read_text()
    assert "gitops-job plan · `t`" in summary
    assert json.loads((flow.tmp / "plan1" / "plan.json").read_text())["digest"] == outputs["plan-digest"]
    assert "ConfigMap/" + flow.ns + "/flags" in (flow.tmp / "plan1" / "plan.md").read_text()
    assert "3 to create" in first.stdout

    # The same plan again: the comment is found and left alone (no POST, no PATCH).
    posts, patches = len(flow.stub.sent("POST", "/comments")), len(flow.stub.sent("PATCH"))
    flow.plan(head, "plan2")
    assert len(flow.stub.sent("POST", "/comments")) == posts == 1
    assert len(flow.stub.sent("PATCH")) == patches == 0

    # A new commit on the PR: the same comment is edited in place.
    write(flow.root, {"app/settings.yaml": cm("settings", flow.ns, "2") + "---\n" + cm("flags", flow.ns, "on")})
    head2 = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head2)
    flow.plan(head2, "plan3")
    (comment,) = flow.comments()
    assert len(flow.stub.sent("PATCH", r"/issues/comments/\d+$")) == 1
    reviewed = flow.outputs("plan3")["plan-digest"]
    assert reviewed in comment["body"] and reviewed != outputs["plan-digest"]

    # Merge: the merge commit is applied; the plan is the reviewed one; the PR comment and a commit status say so.
    merge = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head2, merged=True, merge_commit_sha=merge)
    mark = audit.mark()
    applied = flow.apply(merge, "apply1")
    assert audit.writes(mark), "apply wrote nothing"
    (comment,) = flow.comments()
    body = comment["body"]
    assert "gitops-job apply · `t`" in body and f"applied {merge[:12]}: 3 created" in body, body
    assert f"Applied exactly the plan reviewed here (`{reviewed}`)" in body
    assert "| app | succeeded |" in body
    (status,) = flow.stub.statuses(REPO, merge)
    assert status["state"] == "success" and status["context"] == "gitops-job/t", status
    assert status["target_url"] == "https://github.com/acme/deploy/actions/runs/4242"
    assert flow.outputs("apply1")["created"] == "3"
    assert "::warning" not in applied.stderr, applied.stderr
    live = client.CoreV1Api(api_client).read_namespaced_config_map("settings", flow.ns)
    assert live.data == {"v": "2"} and live.metadata.annotations["gitops-job.io/revision"] == merge
    assert_no_secret(flow)


def test_plan_moved_between_review_and_merge_is_flagged_or_refused(
    flow: Flow, audit: AuditLog, api_client: client.ApiClient
) -> None:
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)
    flow.plan(head, "plan")
    reviewed = flow.outputs("plan")["plan-digest"]
    # Between review and merge the cluster moves: someone creates one of the objects by hand.
    core = client.CoreV1Api(api_client)
    # (with the value git has, so applying over it is no conflict; the plan still differs: update, not create).
    core.create_namespaced_config_map(flow.ns, {"metadata": {"name": "flags"}, "data": {"v": "on"}})
    merge = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head, merged=True, merge_commit_sha=merge)

    mark = audit.mark()
    refused = flow.apply(merge, "strict", "--require-reviewed-plan", ok=False)
    assert refused.returncode == 1
    assert "review: " in refused.stderr and reviewed in refused.stderr, refused.stderr
    assert "nothing was written" in refused.stderr
    assert audit.writes(mark) == [], "a refused apply wrote"
    (comment,) = flow.comments()
    assert "❌ gitops-job apply" in comment["body"] and "Nothing was applied." in comment["body"]
    (status,) = flow.stub.statuses(REPO, merge)
    assert status["state"] == "failure"

    loud = flow.apply(merge, "loud", "--adopt")  # the object made by hand is not ours: taken over only when asked
    assert "::warning title=gitops-job::the plan to apply" in loud.stderr, loud.stderr
    (comment,) = flow.comments()
    assert "**Not the reviewed plan:**" in comment["body"] and reviewed in comment["body"]
    assert "Not the reviewed plan" in (flow.tmp / "loud.summary").read_text()
    assert core.read_namespaced_config_map("flags", flow.ns).data == {"v": "on"}


# -- F3, M7, M8 --------------------------------------------------------------------------------------------------------
def test_f3_cluster_unreachable_during_pr_plan(flow: Flow, tmp_path: Path) -> None:
    """F3. The API server is unreachable: the comment says so and shows nothing as if it were a plan; exit 1."""
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)
    env = flow.env("pull_request", pull_request_event(head), head, f"refs/pull/{PR}/merge", "f3")
    env["KUBECONFIG"] = str(dead_kubeconfig(flow))
    result = flow.run(env, "plan", "--github", ok=False)
    assert result.returncode == 1 and "cluster" in result.stderr
    (comment,) = flow.comments()
    body = comment["body"]
    assert "❌ gitops-job plan" in body and "The cluster was unreachable." in body, body
    assert "to create" not in body and "```diff" not in body and "No changes" not in body
    # Nothing was compared with the cluster: the outputs say so, never "no changes" (item 12.9).
    assert flow.outputs("f3")["compared"] == "false" and flow.outputs("f3")["has-changes"] == ""
    assert flow.outputs("f3")["plan-digest"] == ""


def test_m7_fork_pr_is_rendered_only_and_never_reaches_the_cluster(flow: Flow) -> None:
    """M7. A fork's pull request: render and validate only (offline), the comment says so; the cluster is never
    asked anything (its kubeconfig points at a dead port: any request would fail the run); a read-only token
    cannot comment, which is a warning only."""
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head, head_repo="mallory/deploy")
    env = flow.env("pull_request", pull_request_event(head, fork=True), head, f"refs/pull/{PR}/merge", "fork")
    env["KUBECONFIG"] = str(dead_kubeconfig(flow))
    flow.stub.fail(403, method="POST", path=f"/repos/{REPO}/issues/{PR}/comments",
                   message="Resource not accessible by integration")  # fmt: skip
    result = flow.run(env, "plan", "--github")
    assert "::warning title=gitops-job::the comment could not be posted" in result.stderr
    summary = (flow.tmp / "fork.summary").read_text()
    assert "comes from a fork" in summary and "rendered and validated 3 objects in 1 stack(s)" in summary
    assert "```diff" not in summary
    # With a token that may comment, the same run posts the render-only comment.
    flow.run(env, "plan", "--github")
    (comment,) = flow.comments()
    assert "comes from a fork" in comment["body"] and "to create" not in comment["body"]
    assert_no_secret(flow)


def test_m8_shell_metacharacters_in_title_and_branch_are_data(flow: Flow, tmp_path: Path) -> None:
    """M8. PR title and branch name full of shell syntax: nothing runs, the run succeeds, outputs stay one line."""
    canary = tmp_path / "pwned"
    title = f"$(touch {canary}) `touch {canary}` \"; touch {canary}; echo '\n::set-output name=x::y"
    branch = f"main;touch${{IFS}}{canary}|$(id)"
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)
    flow.plan(head, "m8", title=title, branch=branch)
    assert not canary.exists()
    assert set(flow.outputs("m8")) == {"compared", "has-changes", "created", "updated", "pruned", "plan-digest"}
    (comment,) = flow.comments()
    assert "gitops-job plan · `t`" in comment["body"]


# -- action.yml and the CLI --------------------------------------------------------------------------------------------
def test_the_actions_run_step_drives_the_real_cli(flow: Flow) -> None:
    """The action's own run step (from action.yml, as the runner would execute it with its inputs in `env:`) with
    the real gitops-job: the flags it passes exist, the kubeconfig given as content reaches the cluster, and the
    comment, outputs and artifact files appear."""
    from tests.test_workflows import step_script

    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)
    env = flow.env("pull_request", pull_request_event(head), head, f"refs/pull/{PR}/merge", "action")
    runner_temp = flow.tmp / "runner-temp"
    runner_temp.mkdir()
    env.pop("KUBECONFIG")
    env.update(
        RUNNER_TEMP=str(runner_temp),
        GITOPS_JOB=SCRIPT,
        INPUT_COMMAND="plan",
        INPUT_CONFIG="gitops.yaml",
        INPUT_TARGET="t",
        INPUT_STACK="app",
        INPUT_KUBECONFIG=flow.kubeconfig.read_text(),
        INPUT_COMMENT="true",
        INPUT_EXIT_CODE="true",
        INPUT_REQUIRE_REVIEWED_PLAN="false",
        INPUT_WORKING_DIRECTORY=str(flow.root),
    )
    result = subprocess.run(["bash", "-c", step_script("run")], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 3, f"exit {result.returncode}: {result.stdout}\n{result.stderr}"  # --exit-code
    (comment,) = flow.comments()
    assert "**3 to create, 0 to update, 0 to prune, 0 unchanged**" in comment["body"]
    outputs = flow.outputs("action")
    assert outputs["has-changes"] == "true" and outputs["created"] == "3"
    artifacts = Path(outputs["artifact-dir"])
    assert {p.name for p in artifacts.iterdir()} == {"plan.md", "plan.json"}
    assert not list(runner_temp.glob("kubeconfig.*")), "the kubeconfig written from content was left behind"
    assert flow.kubeconfig.read_text() not in result.stdout + result.stderr


# -- issue 12: the loop on real GitHub ---------------------------------------------------------------------------------
def merge_push_event(sha: str, message: str, earlier: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """A push of a merge: its head commit ``sha`` with ``message``, after the ``earlier`` (sha, message) commits."""
    payload = push_event(sha)
    head = {**payload["head_commit"], "id": sha, "message": message}
    payload["head_commit"] = head
    payload["commits"] = [*({**head, "id": s, "message": m} for s, m in earlier), head]
    return payload


def apply_in_process(flow: Flow, monkeypatch: pytest.MonkeyPatch, payload: dict[str, Any], name: str,
                     clock: FakeClock, *, require: bool = False) -> actions.Outcome:  # fmt: skip
    """``apply --github`` as the CLI runs it, in this process, with a client whose waits pass on ``clock`` (the
    stub's clock too): an index lag of 10 s costs no time."""
    sha = payload["after"]
    for k, v in flow.env("push", payload, sha, "refs/heads/main", name).items():
        monkeypatch.setenv(k, v)
    flow.stub.clock = clock.now

    def connect(ctx: ActionsContext) -> GitHub:
        return GitHub(ctx.api_url, flow.stub.token, ctx.repository, retry=FAST, sleep=clock.sleep, clock=clock.now)

    options = actions.Options(artifact_dir=flow.tmp / name, require_reviewed_plan=require)
    settings = Settings(repo=flow.root, kubeconfig=str(flow.kubeconfig))
    return actions.run_apply(settings, ApplyOptions(), options, connect=connect)


@pytest.mark.parametrize(
    ("lag", "message"),
    [(10, "Update the settings"), (3600, f"Merge pull request #{PR} from acme/settings")],
    ids=["index-lags-10s", "index-empty-number-in-message"],
)
def test_item12_1_merge_right_after_merging_applies_the_reviewed_plan_strictly(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, lag: float, message: str
) -> None:
    """Acceptance: the commits->pulls index is empty for 10 s after the merge (or longer: then the number in the
    merge message, confirmed by GET /pulls/N): ``--require-reviewed-plan`` applies the reviewed plan."""
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)
    flow.plan(head, "plan")
    reviewed = flow.outputs("plan")["plan-digest"]
    merge = git_repo(flow.root)
    clock = FakeClock()
    flow.stub.clock = clock.now
    flow.stub.add_pull(REPO, PR, head_sha=head, merged=True, merge_commit_sha=merge, index_lag=lag)

    outcome = apply_in_process(flow, monkeypatch, merge_push_event(merge, message), "apply", clock, require=True)

    assert outcome.error is None and outcome.result is not None and outcome.result.ok, outcome.error
    assert not outcome.warnings, outcome.warnings
    (comment,) = flow.comments()
    assert f"Applied exactly the plan reviewed here (`{reviewed}`)" in comment["body"]
    assert sum(clock.slept) < 30
    (status,) = flow.stub.statuses(REPO, merge)
    assert status["state"] == "success"


def test_item12_1_a_merge_queue_batch_updates_every_comment(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    """One push merges #7 and #8 (a merge queue's batch): both pull requests are found (here by their messages, the
    index still empty), each comment is updated, and the one whose reviewed plan is the applied plan says so."""
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)
    flow.plan(head, "plan")
    reviewed = flow.outputs("plan")["plan-digest"]
    first = git_repo(flow.root)
    second = git_repo(flow.root)
    clock = FakeClock()
    flow.stub.clock = clock.now
    flow.stub.add_pull(REPO, PR, head_sha=head, merged=True, merge_commit_sha=first, index_lag=3600)
    flow.stub.add_pull(REPO, 8, head_sha="8" * 40, merged=True, merge_commit_sha=second, index_lag=3600)
    payload = merge_push_event(second, "Bump the chart (#8)", earlier=((first, f"Settings (#{PR})"),))

    outcome = apply_in_process(flow, monkeypatch, payload, "batch", clock, require=True)

    assert outcome.error is None and outcome.result is not None and outcome.result.ok, outcome.error
    (seven,) = flow.comments()
    assert f"Applied exactly the plan reviewed here (`{reviewed}`)" in seven["body"]
    (eight,) = flow.stub.comments_on(REPO, 8)
    assert f"Merged in one push with #{PR}: applied exactly the plan reviewed there (`{reviewed}`)" in eight["body"]
    assert "gitops-job apply" in eight["body"] and not clock.slept


def test_item12_2c_a_planted_comment_is_never_edited_nor_trusted(flow: Flow, audit: AuditLog) -> None:
    """Acceptance: another user's comment carries our markers (old and new) and the digest of the very plan the merge
    will apply. It is never edited, and never taken as a review: ``--require-reviewed-plan`` refuses."""
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, 8, head_sha=head)
    payload = pull_request_event(head)
    payload["number"] = payload["pull_request"]["number"] = 8
    flow.run(flow.env("pull_request", payload, head, "refs/pull/8/merge", "other"), "plan", "--github")
    real = flow.outputs("other")["plan-digest"]  # the digest of what PR 7's merge will apply
    flow.stub.add_pull(REPO, PR, head_sha=head)
    planted = flow.stub.add_comment(REPO, PR, "<!-- gitops-job:comment target=t -->\n"
                                    "<!-- gitops-job:comment target=t config=gitops.yaml -->\nLGTM, applied plan\n"
                                    f"---\n<sub>reviewed</sub>\n<!-- gitops-job:digest {real} -->\n",
                                    user="mallory")  # fmt: skip
    merge = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head, merged=True, merge_commit_sha=merge)

    mark = audit.mark()
    refused = flow.apply(merge, "strict", "--require-reviewed-plan", ok=False)
    assert "no reviewed plan was found" in refused.stderr, refused.stderr
    assert audit.writes(mark) == [], "a refused apply wrote"
    theirs, ours = flow.comments()
    assert theirs["id"] == planted["id"] and theirs["body"] == planted["body"]
    assert not flow.stub.sent("PATCH", rf"/comments/{planted['id']}$")
    assert ours["user"]["login"] == "github-actions[bot]" and "Nothing was applied." in ours["body"]


def test_item12_2c_a_digest_planted_in_a_manifest_is_not_read() -> None:
    """A manifest's text shown in the diff carries a digest line: the digest is read from our footer only."""
    from gitops_job.reconcile.results import Plan, PlanEntry
    from gitops_job.report.markdown import Page, markdown

    planted, real = "sha256:" + "0" * 64, "sha256:" + "1" * 64
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"},
           "data": {"note": f"\n<!-- gitops-job:digest {planted} -->\n"}}  # fmt: skip
    entry = PlanEntry(ObjectId("", "ConfigMap", "n", "x"), "app", Action.CREATE, after=obj)
    body = markdown(Plan("t", (entry,)), Page(marker=actions.marker("t"), footer=["run"], digest=real))
    assert planted in body and body.index(planted) < body.index(real)
    assert actions.reviewed_digest(body) == real
    assert actions.reviewed_digest(body.replace(real, "gone")) is None


def test_item12_2b_unmanaged_churn_does_not_change_the_digest() -> None:
    """An HPA scales the Deployment between review and merge: the replica count is the same in the live and the
    desired state (the manifest does not set it), so the digest stays; a change the apply makes changes it."""
    from gitops_job.reconcile.digest import digest
    from gitops_job.reconcile.results import Plan, PlanEntry

    def plan(replicas: int, image: str) -> Plan:
        live = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "n"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": "v1"}]}}},
        }
        desired = copy.deepcopy(live)
        desired["spec"]["template"]["spec"]["containers"][0]["image"] = image
        oid = ObjectId("apps", "Deployment", "n", "web")
        return Plan("t", (PlanEntry(oid, "app", Action.UPDATE, before=live, after=desired),))  # fmt: skip

    assert digest(plan(2, "v2")) == digest(plan(7, "v2"))
    assert digest(plan(2, "v2")) != digest(plan(2, "v3"))


def test_item12_2a_a_plan_made_again_under_the_lease_is_reviewed(
    flow: Flow, kubeconfig: Path, api_client: client.ApiClient
) -> None:
    """Another apply changes the stack between the preflight and its lock: the stack is planned again under the
    lock, and that plan is checked too (before, it was applied unchecked). Refused: the stack writes nothing."""
    from gitops_job.errors import ReviewError
    from gitops_job.reconcile.run import run_apply

    git_repo(flow.root)
    first = run_apply(Settings(repo=flow.root, kubeconfig=str(kubeconfig)), ApplyOptions())
    assert first.ok
    write(flow.root, {"app/settings.yaml": cm("settings", flow.ns, "2") + "---\n" + cm("flags", flow.ns, "on")})
    git_repo(flow.root)
    core = client.CoreV1Api(api_client)
    seen: list[str] = []

    def review(plan: Plan) -> None:
        from gitops_job.reconcile.digest import digest

        seen.append(digest(plan))
        if len(seen) == 1:  # after the preflight, before the lock: someone else writes the stack
            core.patch_namespaced_config_map("settings", flow.ns, {"data": {"v": "by hand"}})
            core.patch_namespaced_config_map("gitops-job.t.app", flow.ns, {"metadata": {"annotations": {"x": "1"}}})
        elif seen[-1] != seen[0]:
            raise ReviewError("not the reviewed plan")

    result = run_apply(Settings(repo=flow.root, kubeconfig=str(kubeconfig)), ApplyOptions(review=review))

    assert len(seen) == 2 and seen[0] != seen[1]
    (run,) = result.stacks
    assert not result.ok and run.error is not None and "review: not the reviewed plan" in run.error, run.error
    assert core.read_namespaced_config_map("settings", flow.ns).data == {"v": "by hand"}  # nothing written


def test_item12_3_dependabot_is_rendered_only_and_stays_green(flow: Flow) -> None:
    """Dependabot's runs get a read-only token and no Actions secrets: render and validate only, never the cluster
    (its kubeconfig is dead here), the comment's 403 is a warning, exit 0; the outputs say nothing was compared."""
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head, user="dependabot[bot]")
    env = flow.env("pull_request", pull_request_event(head), head, f"refs/pull/{PR}/merge", "dependabot")
    env.update(KUBECONFIG=str(dead_kubeconfig(flow)), GITHUB_ACTOR="dependabot[bot]")
    flow.stub.fail(403, method="POST", path=f"/repos/{REPO}/issues/{PR}/comments",
                   message="Resource not accessible by integration")  # fmt: skip
    result = flow.run(env, "plan", "--github")
    assert "::warning title=gitops-job::the comment could not be posted" in result.stderr
    summary = (flow.tmp / "dependabot.summary").read_text()
    assert "runs as Dependabot" in summary and "rendered and validated 3 objects" in summary
    outputs = flow.outputs("dependabot")
    assert outputs["compared"] == "false" and outputs["has-changes"] == "" and outputs["created"] == ""


def test_item12_3_a_pr_inside_a_repository_forked_from_a_template_is_planned(flow: Flow) -> None:
    """The GitOps repository is itself a fork (``head.repo.fork`` is true on both sides): its own PRs are no fork
    PRs and get the plan against the cluster."""
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)
    payload = pull_request_event(head)
    for side in ("head", "base"):
        payload["pull_request"][side]["repo"]["fork"] = True
    flow.run(flow.env("pull_request", payload, head, f"refs/pull/{PR}/merge", "template"), "plan", "--github")
    (comment,) = flow.comments()
    assert "**3 to create, 0 to update, 0 to prune, 0 unchanged**" in comment["body"]
    assert flow.outputs("template")["compared"] == "true"


def test_item12_6_github_errors_after_the_apply_are_warnings(flow: Flow) -> None:
    """The apply succeeded; then GitHub refuses the comment edit and the status: two warnings, exit 0, the apply
    report printed, and the status was attempted although the comment failed."""
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head)
    flow.plan(head, "plan")
    merge = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head, merged=True, merge_commit_sha=merge)
    flow.stub.fail(403, method="PATCH", message="Resource not accessible by integration")
    flow.stub.fail(403, method="POST", path="/statuses/", message="Resource not accessible by integration")

    applied = flow.apply(merge, "apply")

    assert "::warning title=gitops-job::the apply is done, but its result could not be reported on #7" in applied.stderr
    assert "::warning title=gitops-job::the apply is done, but its commit status could not be set" in applied.stderr
    assert "3 created" in applied.stdout, applied.stdout
    assert flow.stub.sent("POST", f"/statuses/{merge}$")


def test_item12_9_a_fork_pr_says_nothing_was_compared(flow: Flow) -> None:
    head = git_repo(flow.root)
    flow.stub.add_pull(REPO, PR, head_sha=head, head_repo="mallory/deploy")
    env = flow.env("pull_request", pull_request_event(head, fork=True), head, f"refs/pull/{PR}/merge", "fork")
    env["KUBECONFIG"] = str(dead_kubeconfig(flow))
    flow.run(env, "plan", "--github")
    outputs = flow.outputs("fork")
    assert outputs["compared"] == "false" and outputs["has-changes"] == "", outputs
    assert outputs["created"] == outputs["updated"] == outputs["pruned"] == outputs["plan-digest"] == ""
