"""``gitops-job reconcile`` (issue 14 items 1, 2, 9) against real git servers (file://, smart HTTP with a token, ssh
with a deploy key) and the real local cluster; and the history guard (a commit that is not a descendant of the one
last applied is refused) for ``apply`` too."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from gitops_job.kube import Kube
from gitops_job.outcomes import RunResult
from gitops_job.reconcile import inventory
from gitops_job.reconcile.context import Settings
from gitops_job.reconcile.lease import Lease, lease_name
from gitops_job.reconcile.run import ApplyOptions, run_apply
from tests.gitservers import bare_repo, http_git_server, push, ssh_git_server
from tests.helpers import SCRIPT, cm, config, git, git_repo, gitops_job, write
from tests.httprecorder import Recorder
from tests.kube import AuditLog
from tests.pushgateway import group, scrape

TOKEN = "planted-token-7f3a9c1e5b"  # searched for in every output


def _work(tmp: Path, ns: str, value: str = "1") -> tuple[Path, str]:
    work = tmp / "work"
    write(work, {"gitops.yaml": config(ns, "  - name: app\n    path: app\n"), "app/cm.yaml": cm("a", ns, value)})
    return work, git_repo(work)


def _work_dir(tmp: Path) -> Path:
    return tmp / "work"


def _amend(work: Path, ns: str, value: str) -> str:
    write(work, {"app/cm.yaml": cm("a", ns, value)})
    git(work, "add", "-A")
    git(work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--amend", "-m", "rewritten")
    return git(work, "rev-parse", "HEAD").strip()


@pytest.fixture
def value(api_client: client.ApiClient, namespace: str) -> Callable[[], str]:
    """The applied ConfigMap's value, read from the cluster."""
    return lambda: client.CoreV1Api(api_client).read_namespaced_config_map("a", namespace).data["v"]


def test_reconcile_file_url_state_dir_second_run_is_ls_remote_only(
    kubeconfig: Path, namespace: str, tmp_path: Path, value: Callable[[], str], audit: AuditLog
) -> None:
    bare = bare_repo(tmp_path)
    work, rev = _work(tmp_path, namespace)
    push(work, bare)
    state = tmp_path / "state"
    args = ["reconcile", "--repo", f"file://{bare}", "--state-dir", str(state)]
    first = gitops_job(kubeconfig, *args)
    assert f"branch main at {rev} (fetched)" in first.stderr
    assert value() == "1"
    # nothing new in git, no drift: one ls-remote, no fetch (the cache's refs do not move), zero writes
    mark = audit.mark()
    second = gitops_job(kubeconfig, *args)
    assert f"at {rev} (cached, nothing fetched)" in second.stderr
    assert audit.writes(mark) == [], "a run with nothing new sent write requests"
    # a new commit is fetched into the cache and applied
    write(work, {"app/cm.yaml": cm("a", namespace, "2")})
    rev2 = git_repo(work)
    push(work, bare)
    third = gitops_job(kubeconfig, *args)
    assert f"at {rev2} (fetched)" in third.stderr and value() == "2"


def test_force_push_is_refused_naming_both_commits_then_allowed_once(
    kubeconfig: Path, namespace: str, tmp_path: Path, value: Callable[[], str]
) -> None:
    bare = bare_repo(tmp_path)
    work, rev = _work(tmp_path, namespace)
    write(work, {"app/cm.yaml": cm("a", namespace, "2")})
    rev2 = git_repo(work)
    push(work, bare)
    args = ["reconcile", "--repo", str(bare)]  # a path; no state dir: a shallow clone per run
    gitops_job(kubeconfig, *args)
    rewritten = _amend(work, namespace, "3")
    push(work, bare, force=True)
    refused = gitops_job(kubeconfig, *args, ok=False)
    assert refused.returncode == 1, refused.stderr
    assert "history: target t: commit" in refused.stderr
    assert rewritten in refused.stderr and rev2 in refused.stderr and "--allow-non-descendant" in refused.stderr
    assert value() == "2", "a refused run wrote"
    gitops_job(kubeconfig, *args, "--allow-non-descendant")
    assert value() == "3"
    # a descendant of the rewritten commit, from a shallow clone: the history is deepened to prove it
    write(work, {"app/cm.yaml": cm("a", namespace, "4")})
    git_repo(work)
    push(work, bare)
    gitops_job(kubeconfig, *args)
    assert value() == "4"
    del rev


def test_apply_refuses_a_non_descendant_commit(
    kubeconfig: Path, namespace: str, tmp_path: Path, value: Callable[[], str]
) -> None:
    work, rev = _work(tmp_path, namespace)
    gitops_job(kubeconfig, "apply", "--repo", str(work))
    rewritten = _amend(work, namespace, "2")
    refused = gitops_job(kubeconfig, "apply", "--repo", str(work), ok=False)
    assert refused.returncode == 1 and rev in refused.stderr and rewritten in refused.stderr
    assert value() == "1"
    gitops_job(kubeconfig, "apply", "--repo", str(work), "--allow-non-descendant")
    assert value() == "2"


@pytest.fixture
def watch_cmdlines() -> Iterator[list[str]]:
    """Every process command line seen while the test runs (polled): the token must never be one of them."""
    seen: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    with contextlib.suppress(OSError):
                        seen.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            stop.wait(0.005)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join()


def test_https_token_from_file_and_env_never_shown(
    kubeconfig: Path, namespace: str, tmp_path: Path, value: Callable[[], str], watch_cmdlines: list[str]
) -> None:
    repos = tmp_path / "srv"
    repos.mkdir()
    bare = bare_repo(repos)
    work, rev = _work(tmp_path, namespace)
    push(work, bare)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    state = tmp_path / "state"
    with http_git_server(repos, token=TOKEN) as server:
        ok = gitops_job(kubeconfig, "reconcile", "--repo", server.url(), "--token-file", str(token_file),
                        "--state-dir", str(state))  # fmt: skip
        assert f"at {rev} (fetched)" in ok.stderr and value() == "1"
        seen = len(server.commands)
        warm = gitops_job(kubeconfig, "reconcile", "--repo", server.url(), "--token-file", str(token_file),
                          "--state-dir", str(state))  # fmt: skip
        assert "(cached, nothing fetched)" in warm.stderr
        assert server.commands[seen:] == ["ls-refs"], "a warm run with nothing new did more than ls-remote"
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "GITOPS_JOB_GIT_TOKEN": TOKEN}
        by_env = subprocess.run([SCRIPT, "reconcile", "--repo", server.url(), "--drift", "report"], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert by_env.returncode == 0, by_env.stderr
        assert any(auth for _, _, auth in server.requests), "the server never saw credentials"
        wrong = tmp_path / "wrong"
        wrong.write_text("not-" + TOKEN)
        denied = gitops_job(kubeconfig, "reconcile", "--repo", server.url(), "--token-file", str(wrong), ok=False)
        assert denied.returncode == 1
        assert "source: " in denied.stderr and "Check the token" in denied.stderr, denied.stderr
        anonymous = gitops_job(kubeconfig, "reconcile", "--repo", server.url(), ok=False)
        assert anonymous.returncode == 1 and "ls-remote failed" in anonymous.stderr
        inline = gitops_job(kubeconfig, "reconcile", "--repo", server.url(user="x:inline-secret-41d2"), ok=False)
        assert inline.returncode == 1 and "carries a password" in inline.stderr  # (on our own command line: a test)
        assert "inline-secret-41d2" not in inline.stdout + inline.stderr
    runs = [ok, warm, by_env, denied, inline, anonymous]
    outputs = [r.stdout for r in runs] + [r.stderr for r in runs]
    assert not [o for o in outputs if TOKEN in o], "the token was printed"
    assert not [c for c in watch_cmdlines if TOKEN in c], "the token was on a command line"
    assert watch_cmdlines, "the command lines were not watched"
    stored = subprocess.run(["grep", "-rl", TOKEN, str(state)], capture_output=True, text=True)
    assert stored.stdout == "", f"the token was stored in the cache: {stored.stdout}"


def test_ssh_deploy_key_and_pinned_host_key(
    kubeconfig: Path, namespace: str, tmp_path: Path, value: Callable[[], str]
) -> None:
    bare = bare_repo(tmp_path)
    work, rev = _work(tmp_path, namespace)
    push(work, bare)
    with ssh_git_server(tmp_path / "sshd") as server:
        keys = ["--ssh-key-file", str(server.deploy_key), "--known-hosts", str(server.known_hosts)]
        ok = gitops_job(kubeconfig, "reconcile", "--repo", server.url(bare), *keys)
        assert f"at {rev} (fetched)" in ok.stderr and value() == "1"
        other = tmp_path / "other_known_hosts"
        other.write_text(f"[127.0.0.1]:{server.port} {(tmp_path / 'sshd' / 'deploy_ed25519.pub').read_text()}")
        pinned = ["--ssh-key-file", str(server.deploy_key), "--known-hosts", str(other)]
        refused = gitops_job(kubeconfig, "reconcile", "--repo", server.url(bare), *pinned, ok=False)
        assert refused.returncode == 1 and "host key" in refused.stderr, refused.stderr


def test_c1_an_older_commit_waiting_for_the_lock_is_refused_once_a_newer_one_was_applied(
    kubeconfig: Path, namespace: str, tmp_path: Path, value: Callable[[], str], kube: Kube
) -> None:
    """Row C1: a scheduled run at A and an apply of B (B descends from A) start together. A passes its preflight
    (it descends from the commit applied before), waits for the lock, B is applied meanwhile; A, once it holds the
    lock, finds B recorded and refuses: A is never applied after B."""
    work = tmp_path / "work"
    gitops = "name: example.com/acme/c1\n" + config(namespace, "  - name: app\n    path: app\n")
    write(work, {"gitops.yaml": gitops, "app/cm.yaml": cm("a", namespace, "x")})
    git_repo(work)
    gitops_job(kubeconfig, "apply", "--repo", str(work))  # X
    write(work, {"app/cm.yaml": cm("a", namespace, "A")})
    rev_a = git_repo(work)
    write(work, {"app/cm.yaml": cm("a", namespace, "B")})
    rev_b = git_repo(work)
    at_b = tmp_path / "at-b"
    git(work, "worktree", "add", "-q", "--detach", str(at_b), rev_b)
    git(work, "checkout", "-q", "--detach", rev_a)

    held = Lease(kube, namespace, lease_name("t", "app"), "test-holder", ttl=30, wait=0)
    held.acquire()
    applied_b: list[subprocess.CompletedProcess[str]] = []

    def meanwhile(_message: str) -> None:  # A waits for the lock: release it and let B through first
        if not applied_b:
            held.release()
            applied_b.append(gitops_job(kubeconfig, "apply", "--repo", str(at_b), "--no-wait"))

    settings = Settings(repo=work, kubeconfig=str(kubeconfig))
    result = run_apply(settings, ApplyOptions(wait=False, lock_wait=60, on_lock_wait=meanwhile))
    assert applied_b and value() == "B", "B was not applied while A waited"
    assert not result.ok
    error = result.stacks[0].error or ""
    assert "history" in error and rev_a in error and rev_b in error, error
    assert value() == "B", "A was applied after B"


def test_c2_two_merges_b_then_c_are_applied_in_order_or_only_c_never_b_after_c(
    kubeconfig: Path, namespace: str, tmp_path: Path, value: Callable[[], str], kube: Kube
) -> None:
    """Row C2: two merges 2 s apart, B then C (C descends from B), each an `apply` of its own; both wait for the lock
    another run holds, then race for it. Whichever wins, C is what stays applied, and B is never applied after C."""
    work = tmp_path / "work"
    write(work, {"gitops.yaml": config(namespace, "  - name: app\n    path: app\n"), "app/cm.yaml": cm("a", namespace)})
    git_repo(work)
    gitops_job(kubeconfig, "apply", "--repo", str(work))
    checkouts = {}
    for name in ("B", "C"):
        write(work, {"app/cm.yaml": cm("a", namespace, name)})
        rev = git_repo(work)
        checkouts[name] = (tmp_path / name, rev)
        git(work, "worktree", "add", "-q", "--detach", str(tmp_path / name), rev)
    held = Lease(kube, namespace, lease_name("t", "app"), "test-holder", ttl=30, wait=0)
    held.acquire()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    runs = {}
    for name in ("B", "C"):
        where = checkouts[name][0]
        runs[name] = subprocess.Popen(
            [SCRIPT, "apply", "--repo", str(where), "--no-wait", "--lock-timeout", "60"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        threading.Event().wait(2)
    held.release()
    outputs = {name: p.communicate(timeout=120)[0] for name, p in runs.items()}
    assert runs["C"].returncode == 0, outputs["C"]
    assert value() == "C", outputs
    inv = inventory.read(kube, namespace, "t", "app")
    applied = [r.revision for r in reversed(inv.runs) if r.result is RunResult.SUCCEEDED]  # oldest first
    rev_b, rev_c = checkouts["B"][1], checkouts["C"][1]
    assert applied[-1] == rev_c, applied
    if runs["B"].returncode != 0:  # C won the lock: B, once it held it, refused to go back
        assert rev_b in outputs["B"] and rev_c in outputs["B"] and "history" in outputs["B"], outputs["B"]
        assert rev_b not in applied
    else:  # B won: applied first, then C
        assert applied[-2:] == [rev_b, rev_c], applied


def test_drift_report_names_the_field_and_its_manager_and_writes_nothing(
    kubeconfig: Path, namespace: str, tmp_path: Path, value: Callable[[], str], audit: AuditLog,
    api_client: client.ApiClient,
) -> None:  # fmt: skip
    bare = bare_repo(tmp_path)
    work, _ = _work(tmp_path, namespace)
    push(work, bare)
    gitops_job(kubeconfig, "reconcile", "--repo", str(bare))
    client.CoreV1Api(api_client).patch_namespaced_config_map(
        "a", namespace, {"data": {"v": "9"}}, field_manager="kubectl-edit"
    )
    mark = audit.mark()
    report = gitops_job(kubeconfig, "reconcile", "--repo", str(bare), "--drift", "report")
    assert "kubectl-edit" in report.stdout and "data.v" in report.stdout, report.stdout
    assert audit.writes(mark) == [] and value() == "9"
    # --drift correct (the default) takes the drifted field back from the manager that changed it (as Flux does),
    # and the run record lists what it corrected
    gitops_job(kubeconfig, "reconcile", "--repo", str(bare))
    assert value() == "1"
    history = gitops_job(kubeconfig, "history", "app", "--repo", str(_work_dir(tmp_path))).stdout
    assert "corrected drift:" in history, history
    assert f"ConfigMap/{namespace}/a data.v: 1 → 9 (manager: kubectl-edit)" in history, history
    status = json.loads(gitops_job(kubeconfig, "status", "--repo", str(_work_dir(tmp_path)), "-o", "json").stdout)
    [stack] = status["stacks"]
    assert stack["lastRun"]["drift"] == [f"ConfigMap/{namespace}/a data.v: 1 → 9 (manager: kubectl-edit)"]
    mark = audit.mark()
    gitops_job(kubeconfig, "reconcile", "--repo", str(bare))  # nothing drifted, nothing new: nothing written
    assert audit.writes(mark) == []


def test_correct_leaves_a_merge_object_s_hand_edited_field_alone(
    kubeconfig: Path, namespace: str, tmp_path: Path, api_client: client.ApiClient
) -> None:
    """``gitops-job.io/ssa: Merge`` means never take fields other managers own: correct mode keeps to it."""
    core = client.CoreV1Api(api_client)
    bare = bare_repo(tmp_path)
    work = tmp_path / "work"
    manifest = cm("a", namespace, "1", annotations={"gitops-job.io/ssa": "Merge"})
    write(work, {"gitops.yaml": config(namespace, "  - name: app\n    path: app\n"), "app/cm.yaml": manifest})
    git_repo(work)
    push(work, bare)
    gitops_job(kubeconfig, "reconcile", "--repo", str(bare))
    core.patch_namespaced_config_map("a", namespace, {"data": {"v": "9"}}, field_manager="kubectl-edit")
    gitops_job(kubeconfig, "reconcile", "--repo", str(bare))
    assert core.read_namespaced_config_map("a", namespace).data["v"] == "9"


def test_reconcile_notifies_and_pushes_drift_in_report_and_correct_modes(
    kubeconfig: Path, namespace: str, tmp_path: Path, api_client: client.ApiClient, pushgateway: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Report mode: the receivers get DriftDetected (not corrected) and the gateway the drift count, the last apply's
    objects and revision kept; correct mode: DriftDetected (corrected) then ApplySucceeded. A receiver answering 500
    fails neither run, and says so."""
    core = client.CoreV1Api(api_client)
    bare = bare_repo(tmp_path)
    work = tmp_path / "work"
    receivers = (
        "notifications:\n  receivers:\n"
        "    - {name: hook, type: webhook, url: {env: T_HOOK_URL}}\n"
        "    - {name: chat, type: slack, url: {env: T_SLACK_URL}}\n"
        "    - {name: broken, type: webhook, url: {env: T_BROKEN_URL}}\n"
    )
    write(work, {"gitops.yaml": config(namespace, "  - name: app\n    path: app\n") + receivers,
                 "app/cm.yaml": cm("a", namespace, "1")})  # fmt: skip
    sha = git_repo(work)
    push(work, bare)
    with Recorder() as hook, Recorder() as chat, Recorder(status=500) as broken:
        monkeypatch.setenv("T_HOOK_URL", f"{hook.url}/h/{TOKEN}")
        monkeypatch.setenv("T_SLACK_URL", f"{chat.url}/services/{TOKEN}")
        monkeypatch.setenv("T_BROKEN_URL", f"{broken.url}/b/{TOKEN}")
        args = ("reconcile", "--repo", str(bare), "--pushgateway", pushgateway)
        gitops_job(kubeconfig, *args)
        applied = scrape(pushgateway)
        assert applied["gitops_job_last_applied_info", group("t", revision=sha)] == 1
        hook.requests.clear()
        chat.requests.clear()
        core.patch_namespaced_config_map("a", namespace, {"data": {"v": "9"}}, field_manager="kubectl-edit")

        report = gitops_job(kubeconfig, *args, "--drift", "report")  # exits 0
        [event] = [r.json() for r in hook.requests]
        assert (event["reason"], event["severity"]) == ("DriftDetected", "error")
        assert f"ConfigMap/{namespace}/a data.v: 1 → 9 (manager: kubectl-edit)" in event["message"]
        assert "not corrected" in event["message"]
        [message] = chat.requests
        assert "1 drifted" in message.json()["text"]
        assert f"receiver broken (webhook): FAILED: {broken.url} answered HTTP 500" in report.stderr
        reported = scrape(pushgateway)
        assert reported["gitops_job_drift_objects", group("t")] == 1
        assert reported["gitops_job_last_applied_info", group("t", revision=sha)] == 1  # kept: nothing was applied
        assert reported["gitops_job_objects", group("t", result="created")] == 1  # the last apply's, kept
        assert (
            reported["gitops_job_last_success_timestamp_seconds", group("t")]
            > applied["gitops_job_last_success_timestamp_seconds", group("t")]
        )  # the job succeeded: it reported
        assert core.read_namespaced_config_map("a", namespace).data["v"] == "9"

        hook.requests.clear()
        corrected = gitops_job(kubeconfig, *args)
        reasons = [(r.json()["reason"], r.json()["severity"]) for r in hook.requests]
        assert reasons == [("DriftDetected", "info"), ("ApplySucceeded", "info")], reasons
        assert "corrected by this apply" in hook.requests[0].json()["message"]
        assert "answered HTTP 500" in corrected.stderr
        assert scrape(pushgateway)["gitops_job_objects", group("t", result="updated")] == 1
    assert core.read_namespaced_config_map("a", namespace).data["v"] == "1"
    for out in (report.stdout, report.stderr, corrected.stdout, corrected.stderr):
        assert TOKEN not in out
