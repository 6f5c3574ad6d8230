"""Notifications (issue 14 item 5): the receivers in gitops.yaml, the pure events built from results, and delivery to
local HTTP receivers that record what they got (and to the GitHub stand-in for the commit status)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitops_job.config.load import load_config
from gitops_job.config.notifications import REASONS, Receiver, SecretRef
from gitops_job.errors import ConfigError, ErrorGroup, GitopsJobError
from gitops_job.github.client import GitHub, RetryPolicy
from gitops_job.identity import ObjectId
from gitops_job.notify.events import (
    Event,
    commit_state,
    drift_events,
    events_of,
    slack_payload,
    summary,
)
from gitops_job.notify.receivers import Delivery, deliver, warnings
from gitops_job.outcomes import Action, RunResult
from gitops_job.reconcile.results import Applied, ApplyResult, DriftFinding, Manager, Plan, PlanEntry, StackRun
from tests.githubstub import GitHubStub
from tests.helpers import cm, config, git_repo, gitops_job, write
from tests.httprecorder import Recorder

SHA = "1a2b3c4d5e6f" + "0" * 28
AT = "2026-12-03T10:00:00Z"
NS = "gitops-job-system"
SECRET = "s3cr3t-T0KEN-planted"  # planted in every secret; no output may contain it
FAST = RetryPolicy(attempts=1, backoff=0.01, backoff_max=0.05, max_wait=1, request_interval=0, write_interval=0)
REFUSED = "an inline secret is refused (not shown here):"
WEB = ObjectId("apps", "Deployment", "apps", "web")


def clock() -> str:
    return AT


def result(*runs: StackRun, revision: str = SHA, plan: Plan | None = None) -> ApplyResult:
    return ApplyResult("prod", revision, runs, plan=plan)


OK = StackRun("app", RunResult.SUCCEEDED, applied=(Applied(WEB, Action.UPDATE, ok=True),))
FAILED = StackRun("db", RunResult.FAILED, applied=(Applied(WEB, Action.CREATE, ok=False),), error="1 object failed")
SKIPPED = StackRun("web", RunResult.SKIPPED)
IN_SYNC = StackRun("base", RunResult.SUCCEEDED, in_sync=True)


# -- the pure events ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "reason", "severity", "message"),
    [
        (OK, "ApplySucceeded", "info", f"revision {SHA}: 1 updated"),
        (FAILED, "ApplyFailed", "error", f"revision {SHA}: 1 failed\n1 object failed"),
        (SKIPPED, "ApplyFailed", "error", f"revision {SHA}: not applied: a stack it depends on did not succeed"),
    ],
)
def test_apply_events(run: StackRun, reason: str, severity: str, message: str) -> None:
    [event] = events_of(result(run), NS, clock)
    assert (event.stack, event.reason, event.severity, event.message) == (run.stack, reason, severity, message)
    assert event.metadata == {"result": run.result.value}


def test_a_stack_in_sync_announces_nothing() -> None:
    assert events_of(result(IN_SYNC), NS, clock) == []
    assert [e.stack for e in events_of(result(IN_SYNC, OK, FAILED), NS, clock)] == ["app", "db"]


def test_flux_event_shape() -> None:
    [event] = events_of(result(OK), NS, clock)
    assert event.flux() == {
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": NS, "name": "gitops-job.prod.app"},
        "severity": "info",
        "timestamp": AT,
        "message": f"revision {SHA}: 1 updated",
        "reason": "ApplySucceeded",
        "metadata": {"revision": SHA, "target": "prod", "stack": "app", "result": "succeeded"},
        "reportingController": "gitops-job",
    }


def _drift_plan() -> Plan:
    db = ObjectId("", "ConfigMap", "apps", "db")
    entries = (PlanEntry(WEB, "app", Action.UPDATE), PlanEntry(db, "db", Action.UPDATE))
    drift = (
        DriftFinding(WEB, "spec.replicas", "3", "5", (Manager("kubectl-edit", "Update"),)),
        DriftFinding(WEB, "spec.paused", "(absent)", "true"),
        DriftFinding(db, "data.v", "1", "2", (Manager("kubectl-edit", "Update"),)),
    )
    return Plan("prod", entries, drift=drift, drift_checked=True, stacks=("app", "db"))


@pytest.mark.parametrize(("corrected", "severity", "then"), [(True, "info", "corrected by this apply"),
                                                             (False, "error", "not corrected")])  # fmt: skip
def test_drift_events_per_stack(corrected: bool, severity: str, then: str) -> None:
    events = drift_events(_drift_plan(), NS, SHA, AT, corrected=corrected)
    assert [(e.stack, e.reason, e.severity) for e in events] == [
        ("app", "DriftDetected", severity),
        ("db", "DriftDetected", severity),
    ]
    assert events[0].message == (
        f"revision {SHA}: 1 object(s) drifted from git ({then}):\n"
        "  Deployment/apps/web spec.replicas: 3 → 5 (manager: kubectl-edit)\n"
        "  Deployment/apps/web spec.paused: (absent) → true (manager: unknown)"
    )
    assert events[0].metadata == {"driftObjects": "1", "corrected": str(corrected).lower()}


def test_an_apply_with_a_drift_checked_plan_reports_drift_before_the_apply() -> None:
    events = events_of(result(OK, FAILED, plan=_drift_plan()), NS, clock)
    assert [(e.stack, e.reason, e.severity) for e in events] == [
        ("app", "DriftDetected", "info"),  # app's apply succeeded: corrected
        ("app", "ApplySucceeded", "info"),
        ("db", "DriftDetected", "error"),  # db's failed: still drifted
        ("db", "ApplyFailed", "error"),
    ]
    assert events_of(result(OK, plan=Plan("prod", ())), NS, clock)[0].reason == "ApplySucceeded"


def test_a_plan_only_run_reports_its_drift_as_not_corrected() -> None:
    events = events_of(ApplyResult("prod", SHA, (), plan=_drift_plan()), NS, clock)
    assert [(e.stack, e.reason, e.severity, e.metadata["corrected"]) for e in events] == [
        ("app", "DriftDetected", "error", "false"),
        ("db", "DriftDetected", "error", "false"),
    ]
    assert summary("prod", SHA, events) == "gitops-job prod @ 1a2b3c4d5e6f: 2 drifted"
    assert commit_state(events) == "failure"


def test_summary_slack_and_commit_state() -> None:
    events = events_of(result(OK, FAILED), NS, clock)
    assert summary("prod", SHA, events) == "gitops-job prod @ 1a2b3c4d5e6f: 1 applied, 1 failed"
    assert commit_state(events) == "failure"
    assert commit_state(events[:1]) == "success"
    tricky = Event("prod", "a<b>", NS, "ApplyFailed", "error", "x & <y>", SHA, AT)
    payload = slack_payload("prod", SHA, [tricky])
    assert payload == {
        "text": "gitops-job prod @ 1a2b3c4d5e6f: 1 failed",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*gitops-job prod @ 1a2b3c4d5e6f: 1 failed*"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": ":x: *a&lt;b&gt;* ApplyFailed\n```x &amp; &lt;y&gt;```"},
            },
        ],
    }


def test_slack_payload_stays_within_slacks_limits() -> None:
    events = [Event("prod", f"s{i}", NS, "ApplySucceeded", "info", "m" * 5000, SHA, AT) for i in range(60)]
    blocks = slack_payload("prod", SHA, events)["blocks"]
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks)
    assert blocks[-1]["text"]["text"] == "… and 12 more event(s)"


# -- the config -------------------------------------------------------------------------------------------------------


def _repo(root: Path, notifications: str) -> Path:
    (root / "a").mkdir(exist_ok=True)
    (root / "gitops.yaml").write_text("stacks: [{name: a, path: a}]\nnotifications:\n" + textwrap.indent(
        textwrap.dedent(notifications), "  "))  # fmt: skip
    return root


def _errors(root: Path, notifications: str) -> list[str]:
    with pytest.raises(GitopsJobError) as info:
        load_config(_repo(root, notifications))
    e = info.value
    assert isinstance(e, ConfigError | ErrorGroup)
    return [str(x) for x in e.errors] if isinstance(e, ErrorGroup) else [str(e)]


def test_every_receiver_key_is_loaded(tmp_path: Path) -> None:
    config = load_config(_repo(tmp_path, """\
        receivers:
          - {name: hook, type: webhook, url: {env: HOOK_URL}, hmacKey: {file: /run/secrets/hmac},
             events: [ApplyFailed, DriftDetected], timeout: 2s}
          - {name: chat, type: slack, url: {file: /run/secrets/slack}}
          - {name: commits, type: github, token: {env: GH_TOKEN}, repository: octo/app,
             apiUrl: "http://127.0.0.1:1", context: deploy/prod}
        """))  # fmt: skip
    assert config.receivers == (
        Receiver("hook", "webhook", url=SecretRef(env="HOOK_URL"), hmac_key=SecretRef(file="/run/secrets/hmac"),
                 events=("ApplyFailed", "DriftDetected"), timeout=2.0),
        Receiver("chat", "slack", url=SecretRef(file="/run/secrets/slack")),
        Receiver("commits", "github", token=SecretRef(env="GH_TOKEN"), repository="octo/app",
                 api_url="http://127.0.0.1:1", context="deploy/prod"),
    )  # fmt: skip
    assert config.receivers[1].events == REASONS


def test_no_notifications_no_receivers(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "gitops.yaml").write_text("stacks: [{name: a, path: a}]\n")
    assert load_config(tmp_path).receivers == ()


def test_inline_secrets_are_refused_and_never_shown(tmp_path: Path) -> None:
    errors = _errors(tmp_path, f"""\
        receivers:
          - {{name: hook, type: webhook, url: "https://hooks.example.com/{SECRET}", hmacKey: {SECRET}}}
          - {{name: gh, type: github, token: {SECRET}, repository: octo/app}}
        """)  # fmt: skip
    advice = "{env: VARIABLE} or {file: PATH}, and remove it from the file (and from git history, if it was committed)"
    assert errors == [
        f"config: gitops.yaml:4: notifications.receivers[0].url: {REFUSED} give url as {advice}",
        f"config: gitops.yaml:4: notifications.receivers[0].hmacKey: {REFUSED} give hmacKey as {advice}",
        f"config: gitops.yaml:5: notifications.receivers[1].token: {REFUSED} give token as {advice}",
    ]
    assert not any(SECRET in e for e in errors)


def test_inline_secret_refused_from_the_cli_without_showing_it(tmp_path: Path) -> None:
    _repo(tmp_path, f'receivers: [{{name: hook, type: slack, url: "https://hooks.slack.com/services/{SECRET}"}}]\n')
    (tmp_path / "a/cm.yaml").write_text(cm("x", "default"))
    run = gitops_job(Path("/nonexistent"), "render", "--repo", str(tmp_path), ok=False)
    assert run.returncode != 0
    assert "notifications.receivers[0].url: an inline secret is refused" in run.stderr
    assert SECRET not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("receiver", "error"),
    [
        ("{name: h, type: webhook}", "notifications.receivers[0]: a webhook receiver needs 'url'"),
        ("{name: h, type: github, token: {env: T}}",
         "notifications.receivers[0]: a github receiver needs 'repository'"),
        ("{name: h, type: slack, url: {env: U}, hmacKey: {env: K}}",
         "notifications.receivers[0].hmacKey: 'hmacKey' is for webhook receivers, not slack"),
        ("{name: h, type: slack, url: {env: U, file: /f}}",
         "notifications.receivers[0].url: give exactly one of env or file, not env and file"),
        ("{name: h, type: slack, url: {}}",
         "notifications.receivers[0].url: give exactly one of env or file, not neither"),
        ("{name: h, type: slack, url: {vault: x}}", "notifications.receivers[0].url.vault: unknown key 'vault'"),
        ("{name: h, type: slack, url: {env: U}, events: [Applied]}",
         "notifications.receivers[0].events[0]: expected one of ApplySucceeded, ApplyFailed, DriftDetected"),
        ("{name: h, type: teams, url: {env: U}}", "notifications.receivers[0].type: expected one of webhook, slack"),
        ("{name: h, type: github, token: {env: T}, repository: app}",
         "notifications.receivers[0].repository: expected owner/name, got 'app'"),
    ],
)  # fmt: skip
def test_receiver_config_errors(tmp_path: Path, receiver: str, error: str) -> None:
    errors = _errors(tmp_path, f"receivers: [{receiver}]\n")
    assert any(error in e for e in errors), errors


def test_duplicate_receiver_names(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path, "receivers: [{name: h, type: slack, url: {env: A}}, {name: h, type: slack, url: {env: B}}]\n"
    )
    assert errors == ["config: gitops.yaml:3: notifications.receivers[1].name: duplicate receiver name 'h' "
                      "(also notifications.receivers[0])"]  # fmt: skip


# -- delivery to local receivers ------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Any:
    with Recorder() as r:
        yield r


def _deliver(receivers: list[Receiver], res: ApplyResult, env: dict[str, str], **kw: Any) -> list[Delivery]:
    return deliver(receivers, res, namespace=NS, env=env, clock=clock, **kw)


def _shown(deliveries: list[Delivery]) -> str:
    return "\n".join([*map(str, deliveries), *warnings(deliveries)])


def test_webhook_gets_flux_events_signed_with_hmac(receiver: Recorder, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(SECRET + "\n")
    hook = Receiver("hook", "webhook", url=SecretRef(env="HOOK"), hmac_key=SecretRef(file=str(tmp_path / "key")))
    env = {"HOOK": f"{receiver.url}/hooks/{SECRET}?token={SECRET}"}
    [d] = _deliver([hook], result(OK, FAILED), env)
    assert (d.ok, d.sent, str(d)) == (True, 2, f"receiver hook (webhook): delivered: 2 event(s) to {receiver.url}")
    assert [r.path for r in receiver.requests] == [f"/hooks/{SECRET}?token={SECRET}"] * 2
    first, second = receiver.requests
    assert first.json() == events_of(result(OK), NS, clock)[0].flux()
    assert second.json()["reason"] == "ApplyFailed" and second.json()["severity"] == "error"
    for r in receiver.requests:
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["User-Agent"].startswith("gitops-job/")
        expected = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.headers["X-Signature"] == expected
    assert SECRET not in _shown([d])


def test_webhook_without_hmac_sends_no_signature(receiver: Recorder) -> None:
    [d] = _deliver([Receiver("hook", "webhook", url=SecretRef(env="HOOK"))], result(OK), {"HOOK": receiver.url})
    assert d.ok and "X-Signature" not in receiver.requests[0].headers


def test_slack_gets_one_message(receiver: Recorder) -> None:
    chat = Receiver("chat", "slack", url=SecretRef(env="SLACK"))
    [d] = _deliver([chat], result(OK, FAILED), {"SLACK": f"{receiver.url}/services/{SECRET}"})
    assert (d.ok, d.sent) == (True, 1)
    [r] = receiver.requests
    assert r.json() == slack_payload("prod", SHA, events_of(result(OK, FAILED), NS, clock))
    assert r.json()["text"] == "gitops-job prod @ 1a2b3c4d5e6f: 1 applied, 1 failed"


def test_events_a_receiver_does_not_select_are_not_sent(receiver: Recorder) -> None:
    hook = Receiver("hook", "webhook", url=SecretRef(env="HOOK"), events=("ApplyFailed",))
    [d] = _deliver([hook], result(OK), {"HOOK": receiver.url})
    assert (d.ok, d.skipped, receiver.requests) == (True, True, [])
    [d] = _deliver([hook], result(OK, FAILED), {"HOOK": receiver.url})
    assert [r.json()["reason"] for r in receiver.requests] == ["ApplyFailed"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_failing_receivers_are_reported_never_raised_and_never_show_secrets(receiver: Recorder, tmp_path: Path) -> None:
    receiver.status = 500
    with Recorder(delay=2.0) as slow, Recorder() as fine:
        port = _closed_port()
        receivers = [
            Receiver("broken", "webhook", url=SecretRef(env="BROKEN"), hmac_key=SecretRef(env="KEY")),
            Receiver("slow", "slack", url=SecretRef(env="SLOW"), timeout=0.3),
            Receiver("refused", "webhook", url=SecretRef(env="REFUSED")),
            Receiver("unset", "slack", url=SecretRef(env="NOT_SET")),
            Receiver("nofile", "slack", url=SecretRef(file=str(tmp_path / "missing"))),
            Receiver("ok", "webhook", url=SecretRef(env="OK")),  # the others fail: this one still gets its event
        ]
        env = {
            "BROKEN": f"{receiver.url}/x/{SECRET}",
            "KEY": SECRET,
            "SLOW": f"{slow.url}/{SECRET}",
            "REFUSED": f"http://user:{SECRET}@127.0.0.1:{port}/{SECRET}",
            "OK": f"{fine.url}/ok",
        }
        deliveries = _deliver(receivers, result(OK), env)
    assert [(d.receiver, d.ok) for d in deliveries] == [
        ("broken", False), ("slow", False), ("refused", False), ("unset", False), ("nofile", False), ("ok", True),
    ]  # fmt: skip
    details = [d.detail for d in deliveries[:5]]
    assert details == [
        f"{receiver.url} answered HTTP 500 (0 of 1 event(s) delivered)",
        f"{slow.url} did not answer within 0.3s",
        f"cannot connect to http://127.0.0.1:{port}: connection refused (0 of 1 event(s) delivered)",
        "environment variable NOT_SET is not set",
        f"cannot read secret file {tmp_path / 'missing'}: No such file or directory",
    ]
    assert warnings(deliveries)[0] == (
        f"warning: notification receiver broken (webhook): FAILED: {receiver.url} answered HTTP 500 "
        "(0 of 1 event(s) delivered); the run's result is unchanged"
    )
    assert SECRET not in _shown(deliveries)
    assert len(fine.requests) == 1


# -- the GitHub commit status ---------------------------------------------------------------------------------------


def _client(api_url: str, token: str, repository: str, timeout: float) -> GitHub:
    return GitHub(api_url, token, repository, retry=FAST)


@pytest.mark.parametrize(("runs", "state"), [((OK,), "success"), ((OK, FAILED), "failure")])
def test_github_commit_status_on_the_applied_commit(github: GitHubStub, runs: tuple[StackRun, ...], state: str) -> None:
    github.repo("octo/app").commits.add(SHA)
    gh = Receiver("commits", "github", token=SecretRef(env="GH"), repository="octo/app", api_url=github.url)
    [d] = _deliver([gh], result(*runs), {"GH": github.token}, github=_client)
    assert d.ok, d
    [status] = github.statuses("octo/app", SHA)
    assert (status["state"], status["context"]) == (state, "gitops-job/prod")
    assert status["description"] == summary("prod", SHA, events_of(result(*runs), NS, clock))
    assert github.token not in _shown([d])


def test_github_status_failure_is_reported_without_the_token(github: GitHubStub) -> None:
    gh = Receiver("commits", "github", token=SecretRef(env="GH"), repository="octo/app", api_url=github.url)
    [d] = _deliver([gh], result(OK), {"GH": SECRET}, github=_client)  # the stub does not know this token
    assert not d.ok, d
    assert "401" in d.detail or "token" in d.detail, d
    assert SECRET not in _shown([d])
    github.violations.clear()


def test_github_receiver_without_a_client_fails_and_says_so() -> None:
    gh = Receiver("commits", "github", token=SecretRef(env="GH"), repository="octo/app")
    [d] = _deliver([gh], result(OK), {"GH": SECRET})
    assert (d.ok, d.detail) == (False, "no GitHub client was given to deliver with")


def test_github_status_is_skipped_for_a_revision_that_is_not_a_commit(github: GitHubStub) -> None:
    gh = Receiver("commits", "github", token=SecretRef(env="GH"), repository="octo/app", api_url=github.url)
    [d] = _deliver([gh], result(OK, revision="v1.2"), {"GH": github.token})
    assert (d.ok, d.skipped, github.statuses("octo/app")) == (True, True, [])


# -- apply against the cluster --------------------------------------------------------------------------------------


def test_apply_notifies_and_a_500_receiver_does_not_fail_it(
    tmp_path: Path,
    kubeconfig: Path,
    namespace: str,
    api_client: client.ApiClient,
    monkeypatch: pytest.MonkeyPatch,
    github: GitHubStub,
) -> None:
    with Recorder() as hook, Recorder() as chat, Recorder(status=500) as broken:
        receivers = textwrap.dedent("""\
            notifications:
              receivers:
                - {name: hook, type: webhook, url: {env: T_HOOK_URL}, hmacKey: {file: key}}
                - {name: chat, type: slack, url: {env: T_SLACK_URL}}
                - {name: broken, type: webhook, url: {env: T_BROKEN_URL}}
                - {name: commits, type: github, token: {env: T_GH_TOKEN}, repository: octo/app, apiUrl: STUB}
            """).replace("STUB", github.url)  # fmt: skip
        write(tmp_path, {
            "gitops.yaml": config(namespace, f"  - name: app\n    path: app\n    namespace: {namespace}\n") + receivers,
            "app/a.yaml": cm("a", namespace),
        })  # fmt: skip
        sha = git_repo(tmp_path)
        key = tmp_path / "hmac.key"
        key.write_text(SECRET)
        text = (tmp_path / "gitops.yaml").read_text().replace("{file: key}", f"{{file: {key}}}")
        (tmp_path / "gitops.yaml").write_text(text)
        monkeypatch.setenv("T_HOOK_URL", f"{hook.url}/h/{SECRET}")
        monkeypatch.setenv("T_SLACK_URL", f"{chat.url}/services/{SECRET}")
        monkeypatch.setenv("T_BROKEN_URL", f"{broken.url}/b/{SECRET}")
        monkeypatch.setenv("T_GH_TOKEN", github.token)
        github.repo("octo/app").commits.add(sha)
        run = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "--revision", sha)  # exits 0
        again = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "--revision", sha, "-o", "json")

    assert f"warning: notification receiver broken (webhook): FAILED: {broken.url} answered HTTP 500" in run.stderr
    assert f"notified: receiver hook (webhook): delivered: 1 event(s) to {hook.url}" in run.stderr
    for output in (run.stdout, run.stderr, again.stdout, again.stderr):
        assert SECRET not in output and github.token not in output
    [status] = github.statuses("octo/app", sha)  # the second apply was in sync: no event, so no status either
    assert (status["state"], status["context"], status["description"]) == (
        "success", "gitops-job/t", f"gitops-job t @ {sha[:12]}: 1 applied"
    )  # fmt: skip
    [request] = hook.requests  # the second apply was in sync: nothing announced
    event = request.json()
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace,
                                       "name": "gitops-job.t.app"}  # fmt: skip
    assert (event["reason"], event["severity"], event["metadata"]["revision"]) == ("ApplySucceeded", "info", sha)
    assert event["message"] == f"revision {sha}: 1 created, 0 unchanged"  # the inventory Event's message
    assert request.headers["X-Signature"] == "sha256=" + hmac.new(SECRET.encode(), request.body, "sha256").hexdigest()
    inventory = client.CoreV1Api(api_client).read_namespaced_config_map("gitops-job.t.app", namespace)
    assert inventory.metadata.name == event["involvedObject"]["name"]
    events = client.CoreV1Api(api_client).list_namespaced_event(namespace).items
    assert any(
        (e.reason, e.message, e.involved_object.name) == (event["reason"], event["message"], "gitops-job.t.app")
        for e in events
    )  # the webhook's event is the inventory's Kubernetes Event: same object, reason and message
    [message] = chat.requests
    assert message.json()["text"] == f"gitops-job t @ {sha[:12]}: 1 applied"
    assert len(broken.requests) == 1
    assert json.loads(again.stdout)  # -o json stays one JSON document: notices go to stderr


def test_a_failed_apply_is_announced_as_apply_failed(
    tmp_path: Path, kubeconfig: Path, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PVC that no provisioner binds: the stack's wait times out, the apply fails (exit non-zero), and the
    receiver still gets the ApplyFailed event, with the reason in its message."""
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": namespace},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "never-provisioned",
                    "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    with Recorder() as hook:
        write(tmp_path, {
            "gitops.yaml": config(namespace, f"  - {{name: app, path: app, namespace: {namespace}, timeout: 2s}}\n")
            + "notifications:\n  receivers: [{name: hook, type: webhook, url: {env: T_HOOK_URL}}]\n",
            "app/pvc.yaml": json.dumps(pvc) + "\n",
        })  # fmt: skip
        sha = git_repo(tmp_path)
        monkeypatch.setenv("T_HOOK_URL", hook.url)
        run = gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "--revision", sha, ok=False)
    assert run.returncode != 0, run.stdout + run.stderr
    [request] = hook.requests
    event = request.json()
    assert (event["reason"], event["severity"], event["metadata"]["result"]) == ("ApplyFailed", "error", "failed")
    assert event["message"].startswith(f"revision {sha}: 1 created")
    assert "PersistentVolumeClaim/" in event["message"], event["message"]
