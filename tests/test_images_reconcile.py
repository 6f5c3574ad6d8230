"""Image automation end to end (issue 15, acceptance): a real registry (Debian's docker-registry, images pushed
through its HTTP API), a real git server (smart HTTP with a token), the real local cluster, the GitHub stand-in.

Push a new tag to the registry → the next scheduled ``reconcile`` commits the bump with a message naming old and
new (or opens the pull request), and the following run applies it; a registry that is down leaves the images
stale while git is still applied; ``images update --dry-run`` prints the diff and exits 3; ``images why`` shows
why the winner won."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubernetes import client

from gitops_job.exitcodes import ExitCode
from tests.githubstub import GitHubStub
from tests.gitservers import bare_repo, http_git_server, push
from tests.helpers import SCRIPT, config, git, git_repo, gitops_job, write
from tests.registries import Pusher, RegistryServer
from tests.test_pr_flow import PR, REPO, Flow, flow, pull_request_event  # noqa: F401 (flow: a fixture)

TOKEN = "img-git-token-3c9d1e"


def _deployment(ns: str, image: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: {ns}
spec:
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      containers:
        - name: app
          image: {image} # {{"$imagepolicy": "apps:app"}}
"""


def _gitops(
    ns: str, repository: str, automation: str = "{enabled: true, author: {name: Img Bot, email: bot@x}}"
) -> str:
    return config(ns, "  - name: s\n    path: s\n") + (
        f"images:\n  policies:\n    - name: app\n      namespace: apps\n      repository: {repository}\n"
        f'      policy: {{semver: {{range: ">=1.0.0"}}}}\n  automation: {automation}\n  scanInterval: 0s\n'
    )


@pytest.fixture
def image(api_client: client.ApiClient, namespace: str) -> Callable[[], str]:
    """The applied Deployment's image, read from the cluster."""

    def read() -> str:
        d = client.AppsV1Api(api_client).read_namespaced_deployment("app", namespace)
        return str(d.spec.template.spec.containers[0].image)

    return read


def _served(tmp_path: Path, text: str, ns: str, image: str) -> tuple[Path, Path]:
    (tmp_path / "srv").mkdir()
    bare = bare_repo(tmp_path / "srv")
    work = tmp_path / "work"
    write(work, {"gitops.yaml": text, "s/deploy.yaml": _deployment(ns, image)})
    git_repo(work)
    push(work, bare)
    return bare, work


def test_a_new_tag_is_committed_by_the_next_run_and_applied_by_the_following_one(
    kubeconfig: Path, namespace: str, tmp_path: Path, registry: RegistryServer, image: Callable[[], str]
) -> None:
    repo = f"{registry.host}/apps/app"
    pusher = registry.pusher()
    pusher.push("apps/app", ["1.0.0", "0.9.0", "latest"])
    bare, _work = _served(tmp_path, _gitops(namespace, repo), namespace, f"{repo}:1.0.0")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    state = tmp_path / "state"
    with http_git_server(bare.parent, token=TOKEN) as server:
        args = ["reconcile", "--repo", server.url(), "--token-file", str(token_file), "--state-dir", str(state),
                "--no-wait"]  # fmt: skip
        first = gitops_job(kubeconfig, *args)
        assert image() == f"{repo}:1.0.0" and "images: up to date" in first.stderr
        before = git(bare, "rev-parse", "main").strip()

        pusher.push("apps/app", ["1.1.0", "2.0.0-rc.1"])  # a new tag (and a pre-release the range does not admit)
        second = gitops_job(kubeconfig, *args)
        assert image() == f"{repo}:1.0.0", "the run that commits the bump applied it too"
        bump = git(bare, "rev-parse", "main").strip()
        assert bump != before and git(bare, "rev-parse", "main^").strip() == before, second.stderr
        assert git(bare, "log", "-1", "--format=%an <%ae>%n%B", "main").strip() == (
            "Img Bot <bot@x>\nimages: apps:app 1.0.0 → 1.1.0\n\n- apps:app ("
            + repo
            + "): 1.0.0 → 1.1.0 in s/deploy.yaml"
        )
        assert git(bare, "show", "--format=", "--stat", "main").count("|") == 1  # one file, one line
        assert f"images: pushed {bump[:12]} to main: apps:app 1.0.0 → 1.1.0" in second.stderr

        third = gitops_job(kubeconfig, *args)
        assert f"at {bump} (cached, nothing fetched)" in third.stderr  # the bump was already in the cache
        assert image() == f"{repo}:1.1.0" and "images: up to date" in third.stderr
        assert git(bare, "rev-parse", "main").strip() == bump  # nothing more to commit
    outputs = first.stdout + first.stderr + second.stdout + second.stderr + third.stdout + third.stderr
    assert TOKEN not in outputs


def test_a_registry_that_is_down_leaves_images_stale_and_git_is_applied(
    kubeconfig: Path, namespace: str, tmp_path: Path, image: Callable[[], str]
) -> None:
    dead = "127.0.0.1:9/apps/app"  # nothing listens on port 9
    bare, work = _served(tmp_path, _gitops(namespace, dead), namespace, f"{dead}:1.0.0")
    done = gitops_job(kubeconfig, "reconcile", "--repo", str(bare), "--no-wait")
    assert image() == f"{dead}:1.0.0"
    assert "images: s/deploy.yaml:13: apps:app not updated (stale: " in done.stderr, done.stderr
    assert git(bare, "rev-parse", "main").strip() == git(work, "rev-parse", "HEAD").strip()  # nothing committed
    doc = json.loads(gitops_job(kubeconfig, "reconcile", "--repo", str(bare), "--no-wait", "-o", "json").stdout)
    assert doc["images"]["commit"] is None and doc["images"]["error"] is None, doc["images"]
    assert [(s["where"], s["why"]) for s in doc["images"]["skipped"]] == [("s/deploy.yaml:13", "stale")], doc["images"]
    report = gitops_job(kubeconfig, "reconcile", "--repo", str(bare), "--drift", "report")
    assert "images:" not in report.stderr  # report writes nothing, git included


def test_pull_request_mode_opens_the_pr_and_the_branch_is_not_changed(
    kubeconfig: Path, namespace: str, tmp_path: Path, registry: RegistryServer, image: Callable[[], str]
) -> None:
    repo = f"{registry.host}/apps/app"
    registry.pusher().push("apps/app", ["1.0.0", "1.2.0"])
    with GitHubStub() as stub:
        stub.add_repo("acme/deploy")
        automation = (f"{{enabled: true, mode: pullRequest, github: {{repository: acme/deploy, apiUrl: '{stub.url}',"
                      " token: {env: IMG_GH_TOKEN}}}")  # fmt: skip
        bare, work = _served(tmp_path, _gitops(namespace, repo, automation), namespace, f"{repo}:1.0.0")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "IMG_GH_TOKEN": stub.token}
        args = [SCRIPT, "reconcile", "--repo", str(bare), "--no-wait", "--state-dir", str(tmp_path / "state")]
        runs = [subprocess.run(args, env=env, capture_output=True, text=True, timeout=120) for _ in range(2)]
        assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
        pulls = stub.repo("acme/deploy").pulls
        assert len(pulls) == 1, "the second run opened another pull request"
        pr = next(iter(pulls.values()))
        assert pr["title"] == "images: apps:app 1.0.0 → 1.2.0" and pr["base"]["ref"] == "main"
        assert git(bare, "rev-parse", "main").strip() == git(work, "rev-parse", "HEAD").strip()  # main unchanged
        bot = pr["head"]["ref"]
        assert "1.2.0 # {" in git(bare, "show", f"{bot}:s/deploy.yaml")
        assert "pull request #" in runs[0].stderr and "created" in runs[0].stderr
        assert "unchanged" in runs[1].stderr and "already pushed" in runs[1].stderr
        assert image() == f"{repo}:1.0.0"  # not applied until merged
        assert stub.token not in runs[0].stdout + runs[0].stderr + runs[1].stdout + runs[1].stderr
        assert stub.violations == []


def test_images_update_dry_run_and_why(tmp_path: Path, registry: RegistryServer) -> None:
    repo = f"{registry.host}/apps/app"
    registry.pusher().push("apps/app", ["1.0.0", "1.1.0", "1.2.0-rc.1", "nightly"])
    work = tmp_path / "work"
    write(work, {"gitops.yaml": _gitops("ns", repo), "s/deploy.yaml": _deployment("ns", f"{repo}:1.0.0")})
    rev = git_repo(work)
    run = subprocess.run([SCRIPT, "images", "update", "--dry-run", "--repo", str(work)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == ExitCode.CHANGES, run.stderr
    assert run.stdout.startswith("--- a/s/deploy.yaml\n+++ b/s/deploy.yaml\n@@ ")
    assert f"-          image: {repo}:1.0.0 # " in run.stdout and f"+          image: {repo}:1.1.0 # " in run.stdout
    assert git(work, "rev-parse", "HEAD").strip() == rev and not git(work, "status", "--porcelain").strip()
    why = subprocess.run([SCRIPT, "images", "why", "apps:app", "--repo", str(work)], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert why.returncode == 0, why.stderr
    assert "chosen: 1.1.0" in why.stdout and "pre-release not allowed" in why.stdout and "not a version" in why.stdout
    done = subprocess.run([SCRIPT, "images", "update", "--repo", str(work)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert git(work, "log", "-1", "--format=%s").strip() == "images: apps:app 1.0.0 → 1.1.0"
    again = subprocess.run([SCRIPT, "images", "update", "--dry-run", "--repo", str(work)], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert again.returncode == 0 and again.stdout == "" and "up to date" in again.stderr
    unknown = subprocess.run([SCRIPT, "images", "why", "nope", "--repo", str(work)], capture_output=True, text=True)
    assert unknown.returncode == 1 and "no image policy 'nope'" in unknown.stderr and "apps:app" in unknown.stderr


def test_a_wrong_registry_password_is_a_stale_row_naming_the_registry_never_the_secret(
    tmp_path: Path, registry_htpasswd: RegistryServer
) -> None:
    server = registry_htpasswd
    ((user, password),) = server.users.items()
    server.pusher().push("apps/app", ["1.0.0", "1.1.0"])
    repo = f"{server.host}/apps/app"
    work = tmp_path / "work"
    docker = tmp_path / "docker" / "config.json"
    text = _gitops("ns", repo).replace(
        f"repository: {repo}\n", f"repository: {repo}\n      credentials: {{dockerConfig: {docker}}}\n"
    )
    write(work, {"gitops.yaml": text, "s/deploy.yaml": _deployment("ns", f"{repo}:1.0.0")})
    git_repo(work)
    seen = []
    for secret, code in (("wrong-" + password, ExitCode.OK), (password, ExitCode.CHANGES)):
        auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
        write(docker.parent, {"config.json": json.dumps({"auths": {server.host: {"auth": auth}}})})
        run = subprocess.run([SCRIPT, "images", "update", "--dry-run", "--repo", str(work)], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        assert run.returncode == code, run.stderr
        assert secret not in run.stdout + run.stderr and auth not in run.stdout + run.stderr
        seen.append(run.stderr)
    assert "s/deploy.yaml:13: apps:app not updated (stale: " in seen[0] and server.host in seen[0], seen[0]
    assert "401" in seen[0] or "unauthorized" in seen[0].lower(), seen[0]
    assert "not updated" not in seen[1] and "nothing to commit (no image changes; 1 image(s) not updated" in seen[0]
    assert seen[0].count(f"{repo}:") == 1, "the registry's repository is named more than once"


def test_credentials_from_a_dockerconfigjson_secret_in_the_targets_cluster(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient, tmp_path: Path, registry_htpasswd: RegistryServer
) -> None:
    server = registry_htpasswd
    ((user, password),) = server.users.items()
    server.pusher().push("apps/app", ["1.0.0", "1.3.0"])
    repo = f"{server.host}/apps/app"
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    dockerconfig = json.dumps({"auths": {server.host: {"auth": auth}}}).encode()
    client.CoreV1Api(api_client).create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="pull"), type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": base64.b64encode(dockerconfig).decode()}))  # fmt: skip
    work = tmp_path / "work"
    text = _gitops(namespace, repo).replace(
        f"repository: {repo}\n", f"repository: {repo}\n      credentials: {{secret: pull}}\n"
    )
    write(work, {"gitops.yaml": text, "s/deploy.yaml": _deployment(namespace, f"{repo}:1.0.0")})
    git_repo(work)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    run = subprocess.run([SCRIPT, "images", "update", "--dry-run", "--repo", str(work)], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == ExitCode.CHANGES, run.stderr
    assert f"+          image: {repo}:1.3.0 # " in run.stdout
    assert password not in run.stdout + run.stderr and auth not in run.stdout + run.stderr
    write(work, {"gitops.yaml": text.replace("secret: pull", "secret: nope")})
    gone = subprocess.run([SCRIPT, "images", "update", "--dry-run", "--repo", str(work)], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert gone.returncode == 0, gone.stderr
    assert f"not updated (stale: Secret/{namespace}/nope: " in gone.stderr and "not found" in gone.stderr


def _plan(flow: Flow, head: str, base: str, name: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    if PR not in flow.stub.repo(REPO).pulls:
        flow.stub.add_pull(REPO, PR, head_sha=head)
    flow.stub.repo(REPO).pulls[PR]["head"]["sha"] = head
    flow.stub.repo(REPO).commits.add(head)
    payload = pull_request_event(head)
    payload["pull_request"]["base"]["sha"] = base
    env = flow.env("pull_request", payload, head, f"refs/pull/{PR}/merge", name)
    return flow.run(env, "plan", "--github", "--artifact-dir", str(flow.tmp / name))


def test_the_plan_comment_has_an_images_block_when_a_pull_request_changes_a_policy_or_a_marker(
    flow: Flow,  # noqa: F811
    namespace: str,
) -> None:
    base = git_repo(flow.root)
    plain = _plan(flow, base, base, "plain")
    assert "**images**" not in plain.stdout + flow.comments()[-1]["body"]  # nothing of images changed: no block
    marked = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: img, namespace: {namespace}}}\n" \
        'data:\n  image: ghcr.io/acme/app:1.0.0 # {"$imagepolicy": "apps:app"}\n'  # fmt: skip
    config = (flow.root / "gitops.yaml").read_text() + (
        "images:\n  policies:\n    - {name: app, namespace: apps, repository: ghcr.io/acme/app,"
        ' policy: {semver: {range: ">=1.0.0"}}}\n'
    )
    write(flow.root, {"gitops.yaml": config, "app/img.yaml": marked})
    head = git_repo(flow.root)
    _plan(flow, head, base, "images")
    body = flow.comments()[-1]["body"]
    assert "**images** (image automation this pull request changes)" in body
    assert "<code>policy apps:app added: ghcr.io/acme/app, semver range &gt;=1.0.0</code>" in body, body
    assert "<code>app/img.yaml:5: marker apps:app added (ghcr.io/acme/app:1.0.0)</code>" in body


def test_a_flux_v1_automated_workload_is_bumped_until_locked_and_workloads_says_who_and_why(
    kubeconfig: Path, namespace: str, tmp_path: Path, registry: RegistryServer, image: Callable[[], str]
) -> None:
    """Flux v1's way, no marker: ``fluxcd.io/automated`` and a tag filter → the next run commits the newest tag the
    filter allows and the following run applies it; ``lock --reason`` → a newer tag is not taken, the run and
    ``workloads`` say who locked it and why; ``unlock`` → the next run takes it."""
    repo = f"{registry.host}/apps/app"
    pusher = registry.pusher()
    pusher.push("apps/app", ["1.0.0"])
    manifest = (
        _deployment(namespace, f"{repo}:1.0.0")
        .replace(' # {"$imagepolicy": "apps:app"}', "")
        .replace(
            "  namespace: " + namespace + "\n",
            "  namespace: " + namespace + '\n  annotations:\n    fluxcd.io/automated: "true"\n'
            "    fluxcd.io/tag.app: semver:~1.0\n",
            1,
        )
    )
    text = config(namespace, "  - name: s\n    path: s\n") + (
        "images:\n  automation: {enabled: true, author: {name: Img Bot, email: bot@x}}\n  scanInterval: 0s\n"
    )
    (tmp_path / "srv").mkdir()
    bare = bare_repo(tmp_path / "srv")
    work = tmp_path / "work"
    write(work, {"gitops.yaml": text, "s/deploy.yaml": manifest})
    git_repo(work)
    push(work, bare)
    args = ["reconcile", "--repo", str(bare), "--no-wait", "--state-dir", str(tmp_path / "state")]
    workload = f"Deployment/{namespace}/app"

    gitops_job(kubeconfig, *args)
    pusher.push("apps/app", ["1.0.1", "1.1.0"])  # 1.1.0 is outside ~1.0
    bumped = gitops_job(kubeconfig, *args)
    assert f"{workload} (app) 1.0.0 → 1.0.1" in bumped.stderr, bumped.stderr
    assert git(bare, "log", "-1", "--format=%s", "main").strip() == f"images: {workload} (app) 1.0.0 → 1.0.1"
    assert git(bare, "show", "--format=", "--stat", "main").count("|") == 1
    gitops_job(kubeconfig, *args)
    assert image() == f"{repo}:1.0.1"

    git(work, "pull", "-q", "--ff-only", str(bare), "main")  # the clone at the bump
    locked = gitops_job(kubeconfig, "lock", workload, "--reason", "1.0.2 breaks logins", "--user", "alice",
                        "--repo", str(work), "--no-push")  # fmt: skip
    assert "locked" in locked.stdout + locked.stderr
    git(work, "push", "-q", str(bare), "HEAD:main")
    pusher.push("apps/app", ["1.0.2"])
    held = gitops_job(kubeconfig, *args)
    assert f"{workload} (app) not updated (locked: {workload} is locked by alice: 1.0.2 breaks logins)" in held.stderr
    assert git(bare, "log", "-1", "--format=%s", "main").strip().startswith(f"lock {workload}")  # no bump after it
    listed = gitops_job(kubeconfig, "workloads", "--repo", str(work))
    row = next(line for line in listed.stdout.splitlines() if line.startswith(workload))
    assert "alice" in row and "1.0.2 breaks logins" in row and "1.0.1" in row, listed.stdout
    gitops_job(kubeconfig, *args)
    assert image() == f"{repo}:1.0.1"  # locked: still the version it was locked at

    gitops_job(kubeconfig, "unlock", workload, "--repo", str(work), "--no-push")
    git(work, "push", "-q", str(bare), "HEAD:main")
    freed = gitops_job(kubeconfig, *args)
    assert f"{workload} (app) 1.0.1 → 1.0.2" in freed.stderr, freed.stderr
    gitops_job(kubeconfig, *args)
    assert image() == f"{repo}:1.0.2"


@contextmanager
def _scheduled(
    tmp_path: Path, registry: RegistryServer, namespace: str
) -> Iterator[tuple[str, Pusher, Path, Path, list[str]]]:
    """A registry repository holding 1.0.0, the repository that marks it, served over smart HTTP with a token (a
    clone with ``origin`` there, for the workload verbs), and the scheduled run's arguments."""
    repo = f"{registry.host}/apps/app"
    pusher = registry.pusher()
    pusher.push("apps/app", ["1.0.0"])
    bare, work = _served(tmp_path, _gitops(namespace, repo), namespace, f"{repo}:1.0.0")
    git(work, "remote", "add", "origin", str(bare))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with http_git_server(bare.parent, token=TOKEN) as server:
        yield repo, pusher, bare, work, ["reconcile", "--repo", server.url(), "--token-file", str(token_file),
                                         "--state-dir", str(tmp_path / "state"), "--no-wait"]  # fmt: skip


def test_a_locked_workload_keeps_its_image_and_workloads_shows_who_locked_it_and_why(
    kubeconfig: Path, namespace: str, tmp_path: Path, registry: RegistryServer, image: Callable[[], str]
) -> None:
    with _scheduled(tmp_path, registry, namespace) as (repo, pusher, bare, work, args):
        gitops_job(kubeconfig, *args)
        assert image() == f"{repo}:1.0.0"
        workload = f"Deployment/{namespace}/app"
        locked = gitops_job(kubeconfig, "lock", workload, "--reason", "1.1 leaks memory", "--user", "ana",
                            "--repo", str(work))  # fmt: skip
        assert f"{workload}: locked" in locked.stdout and f"pushed to {bare} main" in locked.stdout
        lock = git(bare, "rev-parse", "main").strip()

        pusher.push("apps/app", ["1.1.0"])  # a newer tag the policy would take
        for _ in range(2):  # the run that applies the lock, then the next: neither takes the tag
            run = gitops_job(kubeconfig, *args)
            why = f"apps:app not updated (locked: {workload} is locked by ana: 1.1 leaks memory)"
            assert why in run.stderr, run.stderr
            assert git(bare, "rev-parse", "main").strip() == lock, "a bump was committed over the lock"
            assert image() == f"{repo}:1.0.0"
    listed = gitops_job(kubeconfig, "workloads", "--repo", str(work)).stdout
    row = next(line for line in listed.splitlines() if line.startswith(workload))
    assert f"{repo}:1.0.0" in row and row.endswith("yes (by ana: 1.1 leaks memory)"), listed
    shown = json.loads(gitops_job(kubeconfig, "workloads", "--repo", str(work), "-o", "json").stdout)
    app = next(w for w in shown["workloads"] if w["id"] == workload)
    assert app["locked"] == {"reason": "1.1 leaks memory", "user": "ana"}


def test_a_rollback_of_a_bump_puts_the_cluster_back_and_git_says_why(
    kubeconfig: Path, namespace: str, tmp_path: Path, registry: RegistryServer, image: Callable[[], str]
) -> None:
    with _scheduled(tmp_path, registry, namespace) as (repo, pusher, bare, work, args):
        gitops_job(kubeconfig, *args)
        before = git(bare, "rev-parse", "main").strip()
        pusher.push("apps/app", ["1.1.0"])
        gitops_job(kubeconfig, *args)  # commits the bump
        gitops_job(kubeconfig, *args)  # applies it
        assert image() == f"{repo}:1.1.0"
        bump = git(bare, "rev-parse", "main").strip()
        assert bump != before

        git(work, "pull", "-q", "--ff-only", "origin", "main")
        workload = f"Deployment/{namespace}/app"
        done = gitops_job(kubeconfig, "rollback", "s", "--to", before[:12], "--reason", "1.1.0 crashes on start",
                          "--user", "ana", "--repo", str(work))  # fmt: skip
        assert f"stack s: rollback to {before[:12]} committed as " in done.stdout, done.stdout + done.stderr
        assert f"{workload}: locked in the same commit, so that image automation does not bump" in done.stdout
        rollback = git(bare, "rev-parse", "main").strip()
        assert git(bare, "rev-parse", "main^").strip() == bump  # history moves forward
        message = git(bare, "log", "-1", "--format=%B", "main")
        assert message.startswith(f"rollback stack s to {before[:12]}: 1.1.0 crashes on start\n\nRolled back by ana")
        assert f"{workload} is locked (fluxcd.io/locked) so that image automation does not bump its image" in message
        restored = git(bare, "show", "main:s/deploy.yaml")
        assert restored == _deployment(namespace, f"{repo}:1.0.0").replace(
            "  namespace: " + namespace + "\n",
            f'  namespace: {namespace}\n  annotations:\n    fluxcd.io/locked: "true"\n'
            f'    fluxcd.io/locked_msg: "rollback to {before[:12]}: 1.1.0 crashes on start"\n'
            '    fluxcd.io/locked_user: "ana"\n',
        ), restored

        for _ in range(2):  # the next scheduled run applies the rollback; neither it nor the following one bumps
            scheduled = gitops_job(kubeconfig, *args)
            assert image() == f"{repo}:1.0.0", scheduled.stdout + scheduled.stderr
            assert f"apps:app not updated (locked: {workload} is locked by ana: rollback to" in scheduled.stderr
            assert git(bare, "rev-parse", "main").strip() == rollback, git(bare, "log", "--oneline", "-3", "main")
        history = gitops_job(kubeconfig, "history", "s", "--repo", str(work)).stdout
        assert rollback[:12] in history, history
