"""Issue 15 item 6, the stack controls: ``suspend`` / ``resume`` (stored on the inventory; ``apply`` and the
scheduled ``reconcile`` leave a suspended stack alone and say so; ``status`` shows it) and ``rollback`` (a commit
that restores the stack's files, or ``--emergency``: applied directly, off-git until a new commit), against the real
local cluster and real git (tests/gitservers.py)."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from gitops_job.identity import ObjectId
from gitops_job.images import annotations as v1
from gitops_job.images.policy import select
from gitops_job.model import RenderedObject, Source
from gitops_job.reconcile import inventory
from gitops_job.reconcile.controls import _lock_put_back
from gitops_job.reconcile.results import Hold
from gitops_job.reconcile.run import ApplyOptions, held_by
from gitops_job.report.workloads import images_text
from tests.gitservers import bare_repo, push
from tests.helpers import cm, config, git, git_repo, gitops_job, object_writes, write
from tests.kube import AuditLog
from tests.registries import RegistryServer
from tests.serving import free_port

STACKS = "  - name: app\n    path: app\n  - name: other\n    path: other\n"


def _work(tmp: Path, ns: str, value: str = "1") -> tuple[Path, str]:
    work = tmp / "work"
    write(work, {"gitops.yaml": config(ns, STACKS), "app/cm.yaml": cm("a", ns, value),
                 "other/cm.yaml": cm("b", ns, value)})  # fmt: skip
    return work, git_repo(work)


def _bump(work: Path, ns: str, value: str) -> str:
    write(work, {"app/cm.yaml": cm("a", ns, value), "other/cm.yaml": cm("b", ns, value)})
    return git_repo(work)


@pytest.fixture
def values(api_client: client.ApiClient, namespace: str) -> Callable[[], tuple[str, str]]:
    """The two applied ConfigMaps' values (stack app's, stack other's), read from the cluster."""
    core = client.CoreV1Api(api_client)
    return lambda: tuple(core.read_namespaced_config_map(n, namespace).data["v"] for n in "ab")  # type: ignore[return-value]


def test_suspend_leaves_the_stack_alone_and_says_so_until_resume(
    kubeconfig: Path, namespace: str, tmp_path: Path, values: Callable[[], tuple[str, str]], audit: AuditLog
) -> None:
    bare = bare_repo(tmp_path)
    work, _ = _work(tmp_path, namespace)
    git(work, "remote", "add", "origin", str(bare))  # one repository, applied from the checkout and by reconcile
    push(work, bare)
    repo = ["--repo", str(work)]
    gitops_job(kubeconfig, "apply", *repo)
    suspended = gitops_job(kubeconfig, "suspend", "app", "--reason", "incident 42", "--user", "ana", *repo)
    assert "stack app: suspended by ana: incident 42" in suspended.stdout
    _bump(work, namespace, "2")
    push(work, bare)
    mark = audit.mark()
    applied = gitops_job(kubeconfig, "apply", *repo)  # a suspended stack does not fail the run: exit 0
    assert "stack app: left alone, suspended by ana at " in applied.stdout and ": incident 42;" in applied.stdout
    assert "stack other: succeeded" in applied.stdout
    assert values() == ("1", "2")
    assert not [w for w in object_writes(audit, mark) if w.endswith("/a")], "the suspended stack was written"
    as_json = json.loads(gitops_job(kubeconfig, "apply", *repo, "-o", "json").stdout)
    app = next(s for s in as_json["stacks"] if s["stack"] == "app")
    assert as_json["ok"] and app["result"] == "skipped" and "incident 42" in app["held"]
    # a run of the suspended stack alone writes nothing and succeeds
    alone = gitops_job(kubeconfig, "apply", *repo, "-s", "app")
    assert "stack app: left alone, suspended by ana" in alone.stdout and "stack other" not in alone.stdout
    # the scheduled run skips it too
    scheduled = gitops_job(kubeconfig, "reconcile", "--repo", f"file://{bare}")
    assert "stack app: left alone, suspended by ana" in scheduled.stdout and values() == ("1", "2")
    status = gitops_job(kubeconfig, "status", *repo)
    assert "suspended" in status.stdout.splitlines()[1]
    assert "stack app: suspended by ana at " in status.stdout and "incident 42" in status.stdout
    doc = json.loads(gitops_job(kubeconfig, "status", *repo, "-o", "json").stdout)
    held = next(s for s in doc["stacks"] if s["stack"] == "app")["suspended"]
    assert (held["user"], held["reason"]) == ("ana", "incident 42") and held["since"].endswith("Z")
    # resume: the next run applies it from git
    resumed = gitops_job(kubeconfig, "resume", "app", *repo)
    assert "stack app: was suspended; resumed" in resumed.stdout
    gitops_job(kubeconfig, "apply", *repo)
    assert values() == ("2", "2")
    again = gitops_job(kubeconfig, "resume", "app", *repo)
    assert "neither suspended nor off-git" in again.stdout


def test_suspend_needs_a_known_stack_and_a_reason(kubeconfig: Path, namespace: str, tmp_path: Path) -> None:
    work, _ = _work(tmp_path, namespace)
    unknown = gitops_job(kubeconfig, "suspend", "nope", "--reason", "x", "--repo", str(work), ok=False)
    assert unknown.returncode == 1 and "nope" in unknown.stderr
    blank = gitops_job(kubeconfig, "suspend", "app", "--reason", " ", "--repo", str(work), ok=False)
    assert blank.returncode == 1 and "needs a reason" in blank.stderr
    missing = gitops_job(kubeconfig, "suspend", "app", "--repo", str(work), ok=False)
    assert missing.returncode == 2 and "--reason" in missing.stderr


# -- the workload controls: each a commit (real git, pushed to a bare repository) -----------------------------------
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # the front end
  namespace: apps
  annotations:
    fluxcd.io/tag.web: semver:~1.2
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.2.0   # bumped by automation
        - name: sidecar
          image: "ghcr.io/acme/envoy:1.30.0"
"""


def _apps(tmp: Path) -> tuple[Path, Path]:
    bare = bare_repo(tmp)
    work = tmp / "work"
    job = (
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once, namespace: apps}\nspec: {template: {spec: "
        "{restartPolicy: Never, containers: [{name: c, image: 'busybox:{{ v }}'}]}}}\n"
    )
    write(work, {"gitops.yaml": config("gitops-job", "  - name: apps\n    path: apps\n    vars: {v: '1.36'}\n"),
                 "apps/web.yaml": DEPLOYMENT, "apps/job.yaml.j2": job})  # fmt: skip
    git_repo(work)
    git(work, "remote", "add", "origin", str(bare))
    push(work, bare)
    return work, bare


def _cli(work: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return gitops_job(work / "no-kubeconfig", *args, "--repo", str(work), ok=ok)


def test_lock_release_unlock_automate_are_commits_that_say_who_and_why(tmp_path: Path) -> None:
    work, bare = _apps(tmp_path)
    listed = _cli(work, "workloads").stdout
    assert listed.splitlines()[0].split() == ["WORKLOAD", "CONTAINER", "IMAGE", "FILTER", "AUTOMATED", "LOCKED"]
    assert "Deployment/apps/web   web" in listed and "semver:~1.2" in listed and "Job/apps/once" in listed
    locked = _cli(work, "lock", "Deployment/apps/web", "--reason", "1.3 leaks memory", "--user", "ana")
    assert "Deployment/apps/web: locked — apps/web.yaml committed as " in locked.stdout
    assert f"pushed to {bare} main" in locked.stdout
    # only the annotation lines changed, and the pushed commit says who and why
    diff = git(bare, "show", "--format=%B", "main")
    assert diff.startswith("lock Deployment/apps/web: 1.3 leaks memory\n\nLocked by ana with `gitops-job lock`.")
    added = [line for line in diff.splitlines() if line.startswith(("+ ", "- ", "+\t", "-\t", "+  ", "-  "))]
    assert added == ['+    fluxcd.io/locked: "true"', '+    fluxcd.io/locked_msg: "1.3 leaks memory"',
                     '+    fluxcd.io/locked_user: "ana"']  # fmt: skip
    shown = json.loads(_cli(work, "workloads", "-o", "json").stdout)
    web = next(w for w in shown["workloads"] if w["id"] == "Deployment/apps/web")
    assert web["locked"] == {"reason": "1.3 leaks memory", "user": "ana"}
    assert "yes (by ana: 1.3 leaks memory)" in _cli(work, "workloads").stdout
    # the row: a locked workload with a newer image is not touched; the refusal names the lock's reason and user
    head = git(bare, "rev-parse", "main")
    refused = _cli(work, "release", "web", "--image", "ghcr.io/acme/web:1.3.0", ok=False)
    assert refused.returncode == 1
    assert "Deployment/apps/web: is locked by ana: 1.3 leaks memory; nothing was changed" in refused.stderr
    assert "--force" in refused.stderr
    assert git(bare, "rev-parse", "main") == head and "web:1.2.0" in (work / "apps/web.yaml").read_text()
    forced = _cli(work, "release", "web", "--image", "ghcr.io/acme/web:1.3.0", "--force", "--user", "bo")
    assert "released" in forced.stdout
    message = git(bare, "log", "-1", "--format=%B", "main")
    assert message.startswith("release Deployment/apps/web: ghcr.io/acme/web:1.3.0\n\nReleased by bo")
    assert "over the workload's lock (locked by ana: 1.3 leaks memory)" in message
    text = (work / "apps/web.yaml").read_text()
    assert text == DEPLOYMENT.replace("web:1.2.0", "web:1.3.0").replace(
        "    fluxcd.io/tag.web: semver:~1.2\n",
        '    fluxcd.io/tag.web: semver:~1.2\n    fluxcd.io/locked: "true"\n'
        '    fluxcd.io/locked_msg: "1.3 leaks memory"\n    fluxcd.io/locked_user: "ana"\n',
    )
    _cli(work, "unlock", "web", "--user", "ana", "--reason", "fixed in 1.3.1")
    assert (work / "apps/web.yaml").read_text() == DEPLOYMENT.replace("web:1.2.0", "web:1.3.0")
    assert git(bare, "log", "-1", "--format=%s", "main").strip() == "unlock Deployment/apps/web: fixed in 1.3.1"
    _cli(work, "automate", "web", "--no-push")
    assert 'fluxcd.io/automated: "true"' in (work / "apps/web.yaml").read_text()
    assert git(bare, "rev-parse", "main") != git(work, "rev-parse", "HEAD"), "--no-push pushed"
    again = _cli(work, "automate", "web")
    assert "nothing to change" in again.stdout
    _cli(work, "deautomate", "web")
    assert (work / "apps/web.yaml").read_text() == DEPLOYMENT.replace("web:1.2.0", "web:1.3.0")
    assert git(bare, "rev-parse", "main") == git(work, "rev-parse", "HEAD")


def test_a_workload_from_a_template_cannot_be_edited_and_says_where_it_comes_from(tmp_path: Path) -> None:
    work, _ = _apps(tmp_path)
    refused = _cli(work, "lock", "Job/apps/once", "--reason", "x", ok=False)
    assert refused.returncode == 1
    assert "Job/apps/once cannot be changed in git here" in refused.stderr
    assert "rendered from the Jinja2 template apps/job.yaml.j2" in refused.stderr
    unknown = _cli(work, "lock", "api", "--reason", "x", ok=False)
    assert "no workload 'api'; the workloads are: Job/apps/once, Deployment/apps/web" in unknown.stderr
    bad_image = _cli(work, "release", "web", "--image", "ghcr.io/acme/other:1", ok=False)
    assert "no container runs an image of ghcr.io/acme/other" in bad_image.stderr


# -- rollback ----------------------------------------------------------------------------------------------------------
def _published(kubeconfig: Path, tmp: Path, ns: str) -> tuple[Path, Path, list[str]]:
    """A checkout whose origin is a bare repository, applied at two revisions (values 1 then 2); a file of stack app
    is added in the second, so a rollback must remove it."""
    bare = bare_repo(tmp)
    work, rev1 = _work(tmp, ns)
    git(work, "remote", "add", "origin", str(bare))
    write(work, {"app/extra.yaml": cm("extra", ns)})
    rev2 = _bump(work, ns, "2")
    push(work, bare)
    git(work, "checkout", "-q", rev1)
    gitops_job(kubeconfig, "apply", "--repo", str(work))
    git(work, "checkout", "-q", "main")
    gitops_job(kubeconfig, "apply", "--repo", str(work))
    return work, bare, [rev1, rev2]


def test_rollback_is_a_commit_that_restores_the_stack_and_says_why(
    kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    values: Callable[[], tuple[str, str]],
    api_client: client.ApiClient,
) -> None:
    work, bare, (rev1, rev2) = _published(kubeconfig, tmp_path, namespace)
    repo = ["--repo", str(work)]
    assert values() == ("2", "2")
    unknown = gitops_job(kubeconfig, "rollback", "app", "--to", "deadbeef", "--reason", "x", *repo, ok=False)
    assert unknown.returncode == 1 and "'deadbeef' is not one of them" in unknown.stderr
    assert rev1[:12] in unknown.stderr and rev2[:12] in unknown.stderr  # it says which are available
    done = gitops_job(kubeconfig, "rollback", "app", "--to", rev1[:10], "--reason", "2 breaks checkout",
                      "--user", "ana", "--reconcile-now", *repo)  # fmt: skip
    assert f"stack app: rollback to {rev1[:12]} committed as " in done.stdout and "(2 file(s))" in done.stdout
    # the cluster is back there (stack app only: stack other stays at 2; the file added since is pruned) ...
    assert values() == ("1", "2")
    names = {c.metadata.name for c in client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items}
    assert "extra" not in names
    # ... and git says why: a new commit on the branch, pushed, naming the revision, who and why
    message = git(bare, "log", "-1", "--format=%B", "main")
    assert message.startswith(f"rollback stack app to {rev1[:12]}: 2 breaks checkout\n\nRolled back by ana")
    assert rev1 in message
    assert git(bare, "log", "-1", "--format=%P", "main").strip() == rev2  # history moves forward
    assert git(bare, "show", "--stat", "--format=", "main").split()[:4] == ["app/cm.yaml", "|", "2", "+-"]
    # the next scheduled run finds nothing to do: the commit is what is applied
    assert "stack app: in sync" in gitops_job(kubeconfig, "reconcile", "--repo", f"file://{bare}").stdout


def test_emergency_rollback_applies_directly_and_stays_off_git_until_a_new_commit(
    kubeconfig: Path, namespace: str, tmp_path: Path, values: Callable[[], tuple[str, str]]
) -> None:
    work, bare, (rev1, rev2) = _published(kubeconfig, tmp_path, namespace)
    repo = ["--repo", str(work)]
    head = git(bare, "rev-parse", "main")
    done = gitops_job(kubeconfig, "rollback", "app", "--to", rev1, "--reason", "outage", "--user", "bo",
                      "--emergency", *repo)  # fmt: skip
    assert "stack app: rolled back to" in done.stdout and "off-git until a new commit" in done.stdout
    assert values() == ("1", "2") and git(bare, "rev-parse", "main") == head  # nothing was committed
    status = gitops_job(kubeconfig, "status", *repo).stdout
    assert "off-git" in status and f"rolled back to {rev1[:12]} by bo" in status and "outage" in status
    doc = json.loads(gitops_job(kubeconfig, "status", *repo, "-o", "json").stdout)
    app = next(s for s in doc["stacks"] if s["stack"] == "app")
    assert app["revision"] == rev1 and app["offGit"]["revision"] == rev1 and app["offGit"]["head"] == rev2
    # the scheduled run (and an apply) of the same head leave the stack alone
    scheduled = gitops_job(kubeconfig, "reconcile", "--repo", f"file://{bare}")
    assert "stack app: left alone, off-git: rolled back to" in scheduled.stdout and values() == ("1", "2")
    # a new commit returns the stack to git
    _bump(work, namespace, "3")
    push(work, bare)
    gitops_job(kubeconfig, "reconcile", "--repo", f"file://{bare}")
    assert values() == ("3", "3")
    after = json.loads(gitops_job(kubeconfig, "status", *repo, "-o", "json").stdout)
    assert next(s for s in after["stacks"] if s["stack"] == "app")["offGit"] is None


# -- images list: deployed vs available, against a real registry (tests/registries.py) -------------------------------
def test_images_list_shows_deployed_against_available_tags(registry: RegistryServer, tmp_path: Path) -> None:
    registry.pusher().push("acme/web", ["1.2.0", "1.2.5", "1.3.0", "latest"])
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    work = tmp_path / "work"
    manifest = DEPLOYMENT.replace("ghcr.io/acme/web", f"{registry.host}/acme/web").replace(
        '"ghcr.io/acme/envoy:1.30.0"', f"{down}/acme/envoy:1.30.0"
    )
    write(work, {"gitops.yaml": config("gitops-job", "  - name: apps\n    path: apps\n"), "apps/web.yaml": manifest})
    env = ["--docker-config", str(tmp_path / "none.json")]  # anonymous, whatever this machine's docker config says
    listed = _cli(work, "images", "list", "web", *env, ok=False)
    assert listed.returncode == 1  # the registry that is down fails its container ...
    lines = listed.stdout.splitlines()
    assert f"container web: {registry.host}/acme/web:1.2.0, filter semver:~1.2" in lines
    rows = [line.split()[:2] for line in lines[lines.index(f"container web: {registry.host}/acme/web:1.2.0, filter "
                                                           "semver:~1.2") + 2:][:4]]  # fmt: skip
    assert rows[:2] == [["1.2.5", "newest"], ["1.2.0", "running,"]]  # the filter's choice, then what runs
    assert sorted(rows[2:]) == [["1.3.0", "outside"], ["latest", "not"]]  # then what it removed, and why
    assert any("sidecar" in line and "error:" in lines[i + 1] for i, line in enumerate(lines))  # ... the rest shows
    assert "could not be listed" in listed.stderr
    doc = json.loads(_cli(work, "images", "list", "Deployment/apps/web", *env, "-o", "json", ok=False).stdout)
    web = doc["containers"][0]
    assert (web["running"], web["newestAllowed"], web["error"]) == ("1.2.0", "1.2.5", None)
    assert doc["containers"][1]["error"] and doc["containers"][1]["tags"] == []


# -- pure parts: which runs a hold stops, and how images list orders and names the tags ------------------------------
REV_A, REV_B, REV_C = "a" * 40, "b" * 40, "c" * 40


@pytest.mark.parametrize(
    ("suspended", "off_git", "revision", "emergency", "held"),
    [
        pytest.param(None, None, REV_A, False, None, id="not-held"),
        pytest.param(Hold("ana", "incident", "T"), None, REV_C, False, "suspended by ana at T: incident;",
                     id="suspended"),
        pytest.param(Hold("ana", "", "T"), None, REV_C, False, "suspended by ana at T;", id="suspended-no-reason"),
        pytest.param(None, Hold("bo", "outage", "T", REV_A, REV_B), REV_B, False, "off-git: rolled back to " + REV_A,
                     id="off-git-same-head"),
        pytest.param(None, Hold("bo", "outage", "T", REV_A, REV_B), REV_A, False, "off-git", id="off-git-its-revision"),
        pytest.param(None, Hold("bo", "outage", "T", REV_A, REV_B), REV_C, False, None, id="off-git-new-commit"),
        pytest.param(None, Hold("bo", "outage", "T", REV_A, REV_B), REV_B + "-dirty", False, "off-git", id="dirty"),
        pytest.param(Hold("ana", "x", "T"), None, REV_A, True, None, id="emergency-applies-anyway"),
    ],
)  # fmt: skip
def test_held_by(
    suspended: Hold | None, off_git: Hold | None, revision: str, emergency: bool, held: str | None
) -> None:
    inv = inventory.Inventory("t", "web", "ns", suspended=suspended, off_git=off_git)
    options = ApplyOptions(off_git=Hold("x", "y", "T", REV_A, REV_B) if emergency else None)
    got = held_by(inv, revision, options)
    assert (got is None) if held is None else (got is not None and held in got)


_MARKED = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
spec:
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:{tag} # {{"$imagepolicy": "apps:web"}}
"""
_KUSTOMIZATION = 'images:\n  - name: web\n    newTag: "{tag}" # {{"$imagepolicy": "apps:web:tag"}}\n'
_LOCKED = _MARKED.replace("  namespace: apps\n", '  namespace: apps\n  annotations:\n    fluxcd.io/locked: "true"\n')


@pytest.mark.parametrize(
    ("now", "restored", "locked"),
    [
        pytest.param(_MARKED.format(tag="1.1.0"), _MARKED.format(tag="1.0.0"), ["Deployment/apps/web"], id="put-back"),
        pytest.param(_MARKED.format(tag="1.0.0"), _MARKED.format(tag="1.0.0") + "# x\n", [], id="same-image"),
        pytest.param(_LOCKED.format(tag="1.1.0"), _LOCKED.format(tag="1.0.0"), [], id="already-locked"),
        pytest.param(_KUSTOMIZATION.format(tag="1.1.0"), _KUSTOMIZATION.format(tag="1.0.0"), [], id="no-workload"),
    ],
)  # fmt: skip
def test_a_rollback_locks_the_workloads_whose_marked_image_it_puts_back(
    now: str, restored: str, locked: list[str]
) -> None:
    changes: dict[str, bytes | None] = {"app/web.yaml": restored.encode()}
    got = _lock_put_back(changes, {"app/web.yaml": now.encode()}, "rollback to 4d5bbfb0a1b2: 1.1 crashes", "ana")
    assert [str(w) for w in got] == locked
    if not locked:
        assert changes == {"app/web.yaml": restored.encode()}  # nothing else is touched
        return
    assert (
        changes["app/web.yaml"]
        == restored.replace(
            "  namespace: apps\n",
            '  namespace: apps\n  annotations:\n    fluxcd.io/locked: "true"\n'
            '    fluxcd.io/locked_msg: "rollback to 4d5bbfb0a1b2: 1.1 crashes"\n    fluxcd.io/locked_user: "ana"\n',
        ).encode()
    )


def test_images_list_orders_the_tags_and_names_a_running_tag_the_registry_lacks() -> None:
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps",
            "annotations": {"fluxcd.io/tag.web": "glob:1.*"}},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "r.io/web:0.9"}]}}}}  # fmt: skip
    w = v1.parse(RenderedObject(ObjectId.of(body), body, Source("web.yaml", 1), "apps"))
    assert w is not None
    tags = ("2.0", "1.1", "1.0", "main-1")
    c = w.containers[0]
    text = images_text(w, [v1.Available(c, tags, select(c.filter, tags))], limit=3)
    lines = [line.split()[:2] for line in text.splitlines()[4:7]]
    assert lines == [["1.1", "newest"], ["0.9", "running"], ["1.0", "allowed"]]
    assert "… 2 more tags (--limit 0 shows every tag)" in text
    assert "not in the registry's tag list" in text


def test_images_list_with_a_wrong_password_names_the_registry_and_prints_no_secret(
    registry_htpasswd: RegistryServer, tmp_path: Path
) -> None:
    registry_htpasswd.pusher().push("team/web", ["1.0.0"])
    planted = "wrong-Pa55word-9d1e"
    auth = base64.b64encode(f"alice:{planted}".encode()).decode()
    docker = tmp_path / "config.json"
    docker.write_text(json.dumps({"auths": {registry_htpasswd.host: {"auth": auth}}}))
    work = tmp_path / "work"
    manifest = DEPLOYMENT.replace("ghcr.io/acme/web", f"{registry_htpasswd.host}/team/web").replace(
        '"ghcr.io/acme/envoy:1.30.0"', f"{registry_htpasswd.host}/team/web:1.0.0"
    )  # no registry off this machine is asked
    write(work, {"gitops.yaml": config("gitops-job", "  - name: apps\n    path: apps\n"), "apps/web.yaml": manifest})
    refused = _cli(work, "images", "list", "web", "--docker-config", str(docker), ok=False)
    assert refused.returncode == 1
    assert f"{registry_htpasswd.host}/team/web" in refused.stdout and "401" in refused.stdout
    for secret in (planted, auth, registry_htpasswd.users["alice"]):
        assert secret not in refused.stdout + refused.stderr
