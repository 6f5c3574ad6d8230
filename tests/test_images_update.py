"""Image automation from declared images to a commit: gitops.yaml ``images:`` (checks naming file:line), the
change-set core (tables: each marker part, kustomization ``images:``, Helm values, unknown policies, stale and locked
markers, the message template, the bot branch), and the update run on real git servers — a push retried after a
rejection, and PR mode against the GitHub stand-in. The registry is the small table below until the registry client
lands (its own tests run against a real registry)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gitops_job import git as g
from gitops_job.config.images import Automation, Images, Mode
from gitops_job.config.load import load_config
from gitops_job.errors import ConfigError, ErrorGroup, GitopsJobError, ImageError, SourceError
from gitops_job.github.client import GitHub, RetryPolicy
from gitops_job.images import changes, update
from gitops_job.images.changes import Chosen, Scanned, Why
from gitops_job.images.markers import find
from tests.githubstub import GitHubStub
from tests.gitservers import bare_repo, http_git_server, push
from tests.helpers import git, git_repo, write

POLICIES = """\
images:
  policies:
    - name: app
      namespace: apps
      repository: ghcr.io/acme/app
      policy: {semver: {range: ">=1.0.0"}}
    - name: web
      repository: ghcr.io/acme/web
      policy: {semver: {range: "1.x"}}
      credentials: {dockerConfig: /etc/docker/config.json}
"""
STACKS = "stacks:\n  - name: s\n    path: s\n"


@dataclass(frozen=True)
class Listed:
    tags: tuple[str, ...]


class Tags:
    """A registry as the update sees it (``update.Registry``): a table of tags per repository; a repository listed
    in ``down`` answers as an unreachable registry does."""

    def __init__(self, tags: dict[str, list[str]], down: Sequence[str] = ()) -> None:
        self.table, self.down, self.asked = tags, set(down), list[str]()

    def tags(self, repository: str) -> Listed:
        self.asked.append(repository)
        if repository in self.down:
            raise SourceError("the registry is unreachable (connection refused)", where=repository.split("/", 1)[0])
        return Listed(tuple(self.table[repository]))

    def digest(self, repository: str, tag: str) -> str:
        return "sha256:" + f"{repository}:{tag}".encode().hex()[:64].ljust(64, "0")


def _config(tmp_path: Path, text: str) -> Images:
    write(tmp_path, {"gitops.yaml": STACKS + text, "s/cm.yaml": "a: 1\n"})
    return load_config(tmp_path).images


# -- gitops.yaml images: ------------------------------------------------------------------------------------------
def test_config_policies_and_defaults(tmp_path: Path) -> None:
    images = _config(tmp_path, POLICIES)
    app, web = images.policies
    assert (app.ref, app.repository, app.where) == ("apps:app", "ghcr.io/acme/app", "gitops.yaml:6: images.policies[0]")
    assert (
        web.ref == "*:web"
        and web.credentials is not None
        and web.credentials.docker_config == "/etc/docker/config.json"
    )
    assert app.spec() == {"policy": {"semver": {"range": ">=1.0.0"}}}
    assert images.resolve("apps", "app") is app and images.resolve("other", "app") is None
    assert images.resolve("flux-system", "web") is web  # no namespace: NAME in every namespace
    assert images.automation == Automation()  # off, push mode, the default template and author
    assert images.scan_interval == 300.0 and _config(tmp_path, POLICIES + "  scanInterval: 1m30s\n").scan_interval == 90
    assert load_config(tmp_path).receivers == ()


def test_config_automation(tmp_path: Path) -> None:
    automation = """\
  automation:
    enabled: true
    mode: pullRequest
    branch: release
    branchPrefix: bots/img-
    messageTemplate: "bump {{ policy }}"
    author: {name: Image Bot, email: bot@acme.io}
    github: {repository: acme/deploy, token: {env: GH_TOKEN}}
"""
    images = _config(tmp_path, POLICIES + automation)
    a = images.automation
    assert (a.enabled, a.mode, a.branch, a.branch_prefix) == (True, Mode.PULL_REQUEST, "release", "bots/img-")
    assert a.author == g.Author("Image Bot", "bot@acme.io") and a.message_template == "bump {{ policy }}"
    assert a.github is not None and (a.github.repository, str(a.github.token)) == ("acme/deploy", "env GH_TOKEN")
    assert a.message_where == "gitops.yaml:19: images.automation.messageTemplate"


@pytest.mark.parametrize(
    ("extra", "where", "reason"),
    [
        ("    - name: app\n      namespace: apps\n      repository: x\n      policy: {numerical: {}}\n",
         "gitops.yaml:14: images.policies[2].name", "duplicate image policy apps:app (also images.policies[0])"),
        ("    - name: app\n      repository: x\n      policy: {alphabetical: {}}\n",
         "gitops.yaml:14: images.policies[2].name", "declared without a namespace (for every namespace) and with one"),
        ("    - name: c\n      repository: x\n      policy: {alphabetical: {}}\n      credentials: {}\n",
         "gitops.yaml:17: images.policies[2].credentials", "exactly one of dockerConfig (a path) or secret (a name)"),
        ("    - name: c\n      repository: x\n      policy: {semver: {range: '1.x'}, numerical: {}}\n",
         "gitops.yaml:16: images.policies[2].policy", "expected exactly one of semver"),
        ("    - name: c\n      repository: x\n      policy: {semver: {}}\n",
         "gitops.yaml:16: images.policies[2].policy.semver", "missing required key 'range'"),
        ("  automation: {mode: pullRequest}\n",
         "gitops.yaml:14: images.automation", "mode pullRequest needs github"),
        ("  automation: {github: {repository: a/b, token: ghp_inline_secret_1}}\n",
         "gitops.yaml:14: images.automation.github.token", "an inline secret is refused"),
        ("  automation: {messageTemplate: 'bump {{ policy '}\n",
         "gitops.yaml:14: images.automation.messageTemplate", "the commit message template does not parse"),
        ("  automation: {mode: force}\n",
         "gitops.yaml:14: images.automation.mode", "expected one of push, pullRequest, got 'force'"),
    ],
)  # fmt: skip
def test_config_errors_name_file_line(tmp_path: Path, extra: str, where: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        _config(tmp_path, POLICIES + extra)
    assert e.value.where == where and reason in e.value.reason, str(e.value)
    assert "ghp_inline_secret_1" not in str(e.value)


# -- the change-set core ------------------------------------------------------------------------------------------
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: apps}
spec:
  template:
    spec:
      containers:
        - name: app
          image: ghcr.io/acme/app:1.0.0 # {"$imagepolicy": "apps:app"}
        - name: web
          image: "ghcr.io/acme/web:1.2.0@sha256:aaaa" # {"$imagepolicy": "flux-system:web"}
"""
KUSTOMIZATION = """\
images:
  - name: app
    newName: ghcr.io/acme/app # {"$imagepolicy": "apps:app:name"}
    newTag: 1.0.0 # {"$imagepolicy": "apps:app:tag"}
"""
VALUES = 'image:\r\n  repository: ghcr.io/acme/web\r\n  tag: "1.2.0" # {"$imagepolicy": "x:web:tag"}\r\n  digest: sha256:aaaa # {"$imagepolicy": "x:web:digest"}\r\n'  # noqa: E501


def _scanned(files: dict[str, str]) -> list[Scanned]:
    return [Scanned(f, t.encode(), find(t, f)) for f, t in files.items()]


def _images() -> Images:
    from gitops_job.config.images import ImagePolicy

    return Images((
        ImagePolicy("app", "ghcr.io/acme/app", {"semver": {"range": ">=1.0.0"}}, "gitops.yaml:3", "apps"),
        ImagePolicy("web", "ghcr.io/acme/web", {"semver": {"range": "1.x"}}, "gitops.yaml:7"),
    ))  # fmt: skip


CHOSEN = {"apps:app": Chosen("1.1.0"), "*:web": Chosen("1.3.0", "sha256:bbbb")}


@pytest.mark.parametrize(
    ("file", "text", "chosen", "expected", "updates"),
    [
        ("deploy.yaml", MANIFEST, CHOSEN,
         MANIFEST.replace("app:1.0.0", "app:1.1.0").replace("web:1.2.0@sha256:aaaa", "web:1.3.0@sha256:bbbb"),
         [("apps:app", "1.0.0", "1.1.0"), ("flux-system:web", "1.2.0", "1.3.0")]),
        ("kustomization.yaml", KUSTOMIZATION, CHOSEN, KUSTOMIZATION.replace("newTag: 1.0.0", "newTag: 1.1.0"),
         [("apps:app", "1.0.0", "1.1.0")]),
        ("values.yaml", VALUES, CHOSEN, VALUES.replace('"1.2.0"', '"1.3.0"').replace("sha256:aaaa", "sha256:bbbb"),
         [("x:web", "1.2.0", "1.3.0"), ("x:web", "sha256:aaaa", "sha256:bbbb")]),
        ("deploy.yaml", MANIFEST, {"apps:app": Chosen("1.0.0"), "*:web": Chosen("1.2.0", "sha256:aaaa")},
         MANIFEST, []),
        ("deploy.yaml", MANIFEST, {"apps:app": Chosen("1.1.0"), "*:web": Chosen("1.3.0")},  # no digest read
         MANIFEST.replace("app:1.0.0", "app:1.1.0").replace("web:1.2.0@sha256:aaaa", "web:1.3.0"),
         [("apps:app", "1.0.0", "1.1.0"), ("flux-system:web", "1.2.0", "1.3.0")]),
    ],
)  # fmt: skip
def test_change_set_by_part(
    file: str, text: str, chosen: dict[str, Chosen], expected: str, updates: list[tuple[str, str, str]]
) -> None:
    change = changes.compute(_scanned({file: text}), _images(), chosen)
    assert change.files == ({file: expected.encode()} if expected != text else {})
    assert [(u.policy, u.old, u.new) for u in change.updates] == updates
    assert all(u.files == (file,) for u in change.updates) and bool(change) is bool(updates)


def test_skipped_markers_keep_their_values() -> None:
    chosen = {"apps:app": Chosen(None, reason="no tag is a version in range '>=1.0.0'"),
              "*:web": Chosen(None, reason="ghcr.io: unreachable", stale=True)}  # fmt: skip
    change = changes.compute(_scanned({"d.yaml": MANIFEST, "v.yaml": VALUES}), _images(), chosen)
    assert not change and change.files == {}
    assert [(s.where, s.why) for s in change.skipped] == [
        ("d.yaml:9", Why.NO_TAG), ("d.yaml:11", Why.STALE), ("v.yaml:3", Why.STALE), ("v.yaml:4", Why.STALE)
    ]  # fmt: skip
    nodigest = changes.compute(_scanned({"v.yaml": VALUES}), _images(), {"*:web": Chosen("1.3.0")})
    assert [(s.where, s.why) for s in nodigest.skipped] == [("v.yaml:4", Why.NO_DIGEST)]
    assert nodigest.files == {"v.yaml": VALUES.replace('"1.2.0"', '"1.3.0"').encode()}


def test_a_locked_workload_is_not_changed() -> None:
    def locked(s: Scanned, m: object) -> tuple[Why, str] | None:
        return (Why.LOCKED, "locked by alice: incident 42") if s.file == "d.yaml" else None

    change = changes.compute(_scanned({"d.yaml": MANIFEST, "k.yaml": KUSTOMIZATION}), _images(), CHOSEN, locked)
    assert list(change.files) == ["k.yaml"]
    assert {(s.where, s.why, s.detail) for s in change.skipped} == {
        ("d.yaml:9", Why.LOCKED, "locked by alice: incident 42"),
        ("d.yaml:11", Why.LOCKED, "locked by alice: incident 42"),
    }  # fmt: skip


def test_an_unknown_policy_names_every_marker_file_line() -> None:
    scanned = _scanned({"a.yaml": 'image: x:1 # {"$imagepolicy": "apps:nope"}\n',
                        "b.yaml": 'x: 1\nimage: y:1 # {"$imagepolicy": "ns:gone:tag"}\n'})  # fmt: skip
    with pytest.raises(ErrorGroup) as e:
        changes.policies_of(scanned, _images())
    assert [x.where for x in e.value.errors] == ["a.yaml:1", "b.yaml:2"]
    assert "image policy apps:nope, which gitops.yaml does not declare (images.policies: apps:app, *:web)" in str(
        e.value
    )
    with pytest.raises(ImageError, match="ns:gone"):
        changes.policies_of(scanned[1:], _images())


def test_a_marker_on_a_line_that_is_not_a_scalar_is_an_error_naming_file_line(tmp_path: Path) -> None:
    write(tmp_path, {"gitops.yaml": STACKS, "s/d.yaml": 'spec: # {"$imagepolicy": "apps:app"}\n  image: x:1\n'})
    with pytest.raises(ImageError) as e:
        update.scan(tmp_path)
    assert e.value.where == "s/d.yaml:1" and "is not after a scalar value" in e.value.reason


def test_message_template_and_bot_branch() -> None:
    change = changes.compute(_scanned({"d.yaml": MANIFEST, "k.yaml": KUSTOMIZATION}), _images(), CHOSEN)
    assert changes.message(change, Automation()) == (
        "images: apps:app 1.0.0 → 1.1.0, flux-system:web 1.2.0 → 1.3.0\n\n"
        "- apps:app (ghcr.io/acme/app): 1.0.0 → 1.1.0 in d.yaml, k.yaml\n"
        "- flux-system:web (ghcr.io/acme/web): 1.2.0 → 1.3.0 in d.yaml\n"
    )
    custom = Automation(
        message_template="Bump {{ policy }}\n\n{% for c in changes %}{{ c.old }}->{{ c.new }} {% endfor %}"
    )
    assert changes.message(change, custom) == "Bump apps:app, flux-system:web\n\n1.0.0->1.1.0 1.2.0->1.3.0\n"
    for bad in ("{{ nope }}", "{{ changes[0].__class__.__mro__ }}", "{% if false %}x{% endif %}"):
        with pytest.raises(ImageError, match="template") as e:
            changes.message(change, Automation(message_template=bad, message_where="gitops.yaml:9: t"))
        assert e.value.where == "gitops.yaml:9: t"
    branch = change.branch("gitops-job/images/")
    assert branch.startswith("gitops-job/images/") and len(branch) == len("gitops-job/images/") + 12
    other_base = changes.compute(_scanned({"d.yaml": MANIFEST.replace("1.0.0", "0.9.0")}), _images(), CHOSEN)
    assert other_base.branch("p/") == change.branch("p/")  # the same tags proposed: the same branch
    newer = changes.compute(_scanned({"d.yaml": MANIFEST}), _images(), {**CHOSEN, "apps:app": Chosen("1.2.0")})
    assert newer.branch("p/") != change.branch("p/")


def test_diff_is_a_unified_diff_of_the_changed_lines() -> None:
    change = changes.compute(_scanned({"v.yaml": VALUES}), _images(), CHOSEN)
    diff = change.diff()
    assert diff.startswith("--- a/v.yaml\n+++ b/v.yaml\n@@ ")
    assert '\n-  tag: "1.2.0" # {"$imagepolicy": "x:web:tag"}\r\n-  digest: sha256:aaaa' in diff
    assert '\n+  tag: "1.3.0" # {"$imagepolicy": "x:web:tag"}\r\n+  digest: sha256:bbbb' in diff


# -- the update run on real git servers -----------------------------------------------------------------------------
CONFIG = STACKS + POLICIES


def _repo(tmp_path: Path) -> tuple[Path, Path]:
    """A served bare repository holding gitops.yaml and a Deployment with two markers; and a working clone."""
    (tmp_path / "srv").mkdir()
    bare = bare_repo(tmp_path / "srv")
    work = tmp_path / "work"
    write(work, {"gitops.yaml": CONFIG, "s/deploy.yaml": MANIFEST, "s/values.yaml": VALUES})
    git_repo(work)
    push(work, bare)
    return bare, work


REGISTRY = Tags(
    {"ghcr.io/acme/app": ["1.0.0", "1.1.0", "2.0.0-rc.1", "latest"], "ghcr.io/acme/web": ["1.2.0", "1.3.0", "2.0.0"]}
)


def test_local_update_commits_exactly_the_bump(tmp_path: Path) -> None:
    _bare, work = _repo(tmp_path)
    images = load_config(work).images
    planned = update.plan(work, images, lambda p: REGISTRY)
    assert (
        sorted(planned.files) == ["s/deploy.yaml", "s/values.yaml"]
        and len([x for x in planned.diff().splitlines() if x[:1] == "+" and x[:3] != "+++"]) == 4
    )
    write(work, {"s/values.yaml": VALUES + "# an edit of mine\n"})
    with pytest.raises(ImageError, match=r"s/values\.yaml has uncommitted changes"):
        update.commit_local(work, images, lambda p: REGISTRY)
    git(work, "checkout", "--", "s/values.yaml")
    done = update.commit_local(work, images, lambda p: REGISTRY)
    assert done.commit == git(work, "rev-parse", "HEAD").strip()
    assert git(work, "log", "-1", "--format=%an|%s").strip() == (
        "gitops-job|images: apps:app 1.0.0 → 1.1.0, flux-system:web 1.2.0 → 1.3.0, x:web 1.2.0 → 1.3.0, "
        "x:web sha256:aaaa → " + REGISTRY.digest("ghcr.io/acme/web", "1.3.0")
    )
    assert not update.plan(work, images, lambda p: REGISTRY)  # applied: nothing left to change
    assert update.commit_local(work, images, lambda p: REGISTRY).commit is None


def test_push_is_retried_on_the_moved_branch_and_a_stale_registry_is_reported(tmp_path: Path) -> None:
    bare, work = _repo(tmp_path)
    token = "push-token-5e1f"
    auth = g.Auth(token=token)
    with http_git_server(bare.parent, token=token) as server:
        url = server.url()
        branch, head = g.remote_head(url, None, auth)
        clone, _ = g.checkout(url, branch, head, state_dir=tmp_path / "state", workdir=tmp_path, auth=auth)
        images = load_config(clone).images
        write(work, {"s/deploy.yaml": "# their edit\n" + MANIFEST})  # the branch moves after our fetch
        theirs = git_repo(work)
        push(work, bare)
        done = update.automate(clone, images, lambda p: REGISTRY, url=url, branch=branch, auth=auth)
        assert done.pushed and done.attempts == 2 and done.branch == "main"
        assert git(bare, "rev-parse", "main").strip() == done.commit
        assert git(bare, "rev-parse", "main^").strip() == theirs  # rebuilt on their commit, theirs kept
        assert git(bare, "show", "--name-only", "--format=", "main").split() == ["s/deploy.yaml", "s/values.yaml"]
        rebuilt = git(bare, "show", "main:s/deploy.yaml")
        assert rebuilt.startswith("# their edit\n") and "app:1.1.0" in rebuilt  # their bytes, our bump
        assert any("pushed" in line and "apps:app 1.0.0 → 1.1.0" in line for line in done.lines())
        again = update.automate(clone, images, lambda p: REGISTRY, url=url, branch=branch, auth=auth)
        assert not again.change and again.commit is None  # up to date: no commit, no push

        down = Tags({**REGISTRY.table, "ghcr.io/acme/app": ["1.0.0", "1.1.0", "1.2.0"]}, down=["ghcr.io/acme/web"])
        stale = update.automate(clone, images, lambda p: down, url=url, branch=branch, auth=auth)
        assert [u.policy for u in stale.change.updates] == ["apps:app"]  # web's registry is down: kept, stale
        assert {s.why for s in stale.change.skipped} == {Why.STALE}
        assert any("not updated (stale: ghcr.io: the registry is unreachable" in line for line in stale.lines())
    assert token not in " ".join(done.lines() + stale.lines())


def test_a_push_rejected_every_time_gives_up_after_the_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare, work = _repo(tmp_path)
    hook = bare / "hooks" / "pre-receive"  # the branch always moves "meanwhile": each push sees a newer head
    hook.write_text("#!/bin/sh\necho 'rejected: not a fast-forward' >&2\nexit 1\n")
    hook.chmod(0o755)
    clone, _ = g.checkout(
        str(bare), "main", g.remote_head(str(bare), None)[1], state_dir=tmp_path / "st", workdir=tmp_path
    )
    with pytest.raises(SourceError) as e:  # a hook's refusal is not a non-fast-forward: no retry
        update.automate(clone, load_config(clone).images, lambda p: REGISTRY, url=str(bare), branch="main")
    assert "pre-receive hook declined" in str(e.value) and "moved on" not in str(e.value)
    hook.unlink()
    pushes: list[int] = []
    real_push = g.push

    def moving(repo: Path, url: str, branch: str, auth: g.Auth | None = None, **kw: object) -> None:
        write(work, {f"s/n{len(pushes)}.yaml": "n: 1\n"})  # someone pushes just before each of ours
        git_repo(work)
        subprocess.run(["git", "-C", str(work), "push", "-q", "--force", str(bare), "HEAD:main"], check=True)
        pushes.append(1)
        real_push(repo, url, branch, auth, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(g, "push", moving)
    with pytest.raises(GitopsJobError) as rejected:
        update.automate(clone, load_config(clone).images, lambda p: REGISTRY, url=str(bare), branch="main")
    assert "moved on" in str(rejected.value) and len(pushes) == update.PUSH_RETRIES + 1


def test_pull_request_mode_opens_one_pr_and_skips_an_identical_one(tmp_path: Path) -> None:
    bare, work = _repo(tmp_path)
    clone, _ = g.checkout(
        str(bare), "main", g.remote_head(str(bare), None)[1], state_dir=tmp_path / "st", workdir=tmp_path
    )
    base = load_config(clone).images
    images = replace(base, automation=Automation(enabled=True, mode=Mode.PULL_REQUEST, branch_prefix="bot/"))
    with GitHubStub() as stub:
        stub.add_repo("acme/deploy")
        client = GitHub(
            stub.url, stub.token, "acme/deploy", retry=RetryPolicy(attempts=0, request_interval=0, write_interval=0)
        )
        first = update.automate(clone, images, lambda p: REGISTRY, url=str(bare), branch="main", pulls=client)
        assert first.pull is not None and first.pull.action == "created" and first.pushed
        bot = first.branch
        assert bot is not None and bot.startswith("bot/") and git(bare, "rev-parse", bot).strip() == first.commit
        assert git(bare, "rev-parse", "main").strip() == git(clone, "rev-parse", "HEAD").strip()  # main untouched
        pr = stub.repo("acme/deploy").pulls[first.pull.number]
        assert (pr["head"]["ref"], pr["base"]["ref"]) == (bot, "main")
        assert pr["title"] == "images: apps:app 1.0.0 → 1.1.0, flux-system:web 1.2.0 → 1.3.0, x:web 1.2.0 → 1.3.0, " \
            "x:web sha256:aaaa → " + REGISTRY.digest("ghcr.io/acme/web", "1.3.0")  # fmt: skip
        writes = len(stub.sent("POST")) + len(stub.sent("PATCH"))
        second = update.automate(clone, images, lambda p: REGISTRY, url=str(bare), branch="main", pulls=client)
        assert second.pull is not None and second.pull.action == "unchanged" and not second.pushed
        assert second.branch == bot and len(stub.sent("POST")) + len(stub.sent("PATCH")) == writes  # nothing written

        write(work, {"s/other.yaml": "moved: on\n"})  # the base moves: the same tags, rebuilt on the new head
        git(work, "pull", "-q", "--rebase", str(bare), "main")
        git_repo(work)
        push(work, bare)
        g.detach(clone, g.fetch(clone, str(bare), "main"))
        third = update.automate(clone, images, lambda p: REGISTRY, url=str(bare), branch="main", pulls=client)
        assert (
            third.pushed and third.branch == bot and third.pull is not None and third.pull.number == first.pull.number
        )
        assert git(bare, "rev-parse", f"{bot}^").strip() == git(bare, "rev-parse", "main").strip()
        assert len(stub.repo("acme/deploy").pulls) == 1
        assert stub.violations == []


def test_a_workload_locked_with_flux_v1_annotations_is_not_changed(tmp_path: Path) -> None:
    locked = MANIFEST.replace(
        "metadata: {name: app, namespace: apps}",
        'metadata:\n  name: app\n  namespace: apps\n  annotations: {fluxcd.io/locked: "true", fluxcd.io/locked_msg:'
        " incident 42, fluxcd.io/locked_user: alice}",
    )
    ignored = MANIFEST.replace(
        "metadata: {name: app, namespace: apps}",
        'metadata: {name: other, namespace: apps, annotations: {fluxcd.io/ignore: "true"}}',
    )
    write(tmp_path, {"gitops.yaml": CONFIG, "s/deploy.yaml": locked, "s/kustomization.yaml": KUSTOMIZATION,
                     "s/zignored.yaml": ignored})  # fmt: skip
    change = update.plan(tmp_path, load_config(tmp_path).images, lambda p: REGISTRY)
    assert list(change.files) == ["s/kustomization.yaml"]  # not the locked Deployment, nor the ignored one
    assert [(s.where, s.why) for s in change.skipped if s.why is Why.IGNORED] == [
        ("s/zignored.yaml:9", Why.IGNORED), ("s/zignored.yaml:11", Why.IGNORED)
    ]  # fmt: skip
    change = replace(change, skipped=tuple(s for s in change.skipped if s.why is not Why.IGNORED))
    assert {(s.where, s.why, s.detail) for s in change.skipped} == {
        (f"s/deploy.yaml:{n}", Why.LOCKED, "Deployment/apps/app is locked by alice: incident 42") for n in (12, 14)
    }


# -- the plan comment's "images" block ------------------------------------------------------------------------------
def test_review_names_the_policies_and_markers_a_pull_request_changes(tmp_path: Path) -> None:
    from gitops_job.report.markdown import images_section

    work = tmp_path / "w"
    write(work, {"gitops.yaml": CONFIG, "s/deploy.yaml": MANIFEST, "s/values.yaml": VALUES})
    base = git_repo(work)
    assert update.review(work, base) == () and images_section(()) == ""  # nothing changed: no block
    changed = CONFIG.replace('range: "1.x"', 'range: "2.x"').replace(
        "    - name: app\n      namespace: apps\n", "    - name: app\n      namespace: prod\n"
    )
    write(
        work,
        {
            "gitops.yaml": changed,
            "s/deploy.yaml": MANIFEST.replace(
                'app:1.0.0 # {"$imagepolicy": "apps:app"}', 'app:1.0.1 # {"$imagepolicy": "prod:app"}'
            ),
            "s/new.yaml": 'image: z:1 # {"$imagepolicy": "prod:app"}\n',
        },
    )
    (work / "s/values.yaml").unlink()
    lines = update.review(work, base)
    assert lines == (
        "policy apps:app removed",
        "policy *:web changed: ghcr.io/acme/web, semver range 1.x → ghcr.io/acme/web, semver range 2.x",
        "policy prod:app added: ghcr.io/acme/app, semver range >=1.0.0",
        "s/deploy.yaml:9: marker prod:app added (ghcr.io/acme/app:1.0.1)",
        "s/new.yaml:1: marker prod:app added (z:1)",
        "s/values.yaml:3: marker x:web removed (was 1.2.0)",
        "s/values.yaml:4: marker x:web removed (was sha256:aaaa)",
    )
    section = images_section(lines)
    assert section.startswith("**images** (image automation this pull request changes)\n\n")
    assert "- <code>policy apps:app removed</code>\n" in section
    git_repo(work)
    write(work, {"s/new.yaml": 'image: z:2 # {"$imagepolicy": "prod:app"}\n'})
    assert update.review(work, git(work, "rev-parse", "HEAD").strip()) == ("s/new.yaml:1: prod:app z:1 → z:2",)
    unknown = update.review(work, "c" * 40)  # a base that cannot be had: compared as having none
    assert unknown and all(" added" in line for line in unknown)


# -- Flux v1 automated workloads: fluxcd.io/automated + tag filters, no markers ------------------------------------
V1 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
  annotations:
    fluxcd.io/automated: "true"
    fluxcd.io/tag.web: semver:1.x
    fluxcd.io/tag.sidecar: "glob:1.*"
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.2.0   # keep this comment
        - name: sidecar
          image: "ghcr.io/acme/app:1.0.0"
        - name: marked
          image: ghcr.io/acme/app:1.0.0 # {"$imagepolicy": "apps:app"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: held
  namespace: apps
  annotations: {fluxcd.io/automated: "true", fluxcd.io/locked: "true", fluxcd.io/locked_msg: "bad 1.3", fluxcd.io/locked_user: bob}
spec:
  selector: {matchLabels: {app: held}}
  template:
    metadata: {labels: {app: held}}
    spec:
      containers:
        - {name: web, image: ghcr.io/acme/web:1.2.0}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: manual, namespace: apps}
spec:
  selector: {matchLabels: {app: manual}}
  template:
    metadata: {labels: {app: manual}}
    spec:
      containers:
        - {name: web, image: ghcr.io/acme/web:1.2.0}
"""  # noqa: E501
V1_TEMPLATE = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ "tmpl" }}
  namespace: apps
  annotations: {fluxcd.io/automated: "true"}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: "ghcr.io/acme/web:1.2.0"}]
"""


def test_flux_v1_automated_workloads_get_the_newest_tag_their_filters_allow(tmp_path: Path) -> None:
    from gitops_job.reconcile.context import Settings
    from gitops_job.reconcile.workloads import releases

    gitops = STACKS + "  - name: t\n    path: t\n" + POLICIES
    write(tmp_path, {"gitops.yaml": gitops, "s/deploy.yaml": V1, "t/job.yaml.j2": V1_TEMPLATE})
    found = releases(Settings(repo=tmp_path))
    assert [(r.name, r.problem is None) for r in found] == [
        ("Deployment/apps/web (web)", True),
        ("Deployment/apps/web (sidecar)", True),
        ("Deployment/apps/web (marked)", True),
        ("Deployment/apps/held (web)", True),
        ("CronJob/apps/tmpl (c)", False),
    ]  # fmt: skip  (not Deployment/apps/manual: it is not automated)
    asked = Tags(REGISTRY.table)
    change = update.plan(tmp_path, load_config(tmp_path).images, lambda p: asked, found)
    want = (
        V1.replace("ghcr.io/acme/web:1.2.0   # keep", "ghcr.io/acme/web:1.3.0   # keep")
        .replace('"ghcr.io/acme/app:1.0.0"', '"ghcr.io/acme/app:1.1.0"')
        .replace('app:1.0.0 # {"$imagepolicy"', 'app:1.1.0 # {"$imagepolicy"')  # the marker's own choice
    )
    assert change.files == {"s/deploy.yaml": want.encode()}  # the locked and the manual Deployment as they were
    assert [(u.policy, u.old, u.new) for u in change.updates] == [
        ("apps:app", "1.0.0", "1.1.0"), ("Deployment/apps/web (web)", "1.2.0", "1.3.0"),
        ("Deployment/apps/web (sidecar)", "1.0.0", "1.1.0"),
    ]  # fmt: skip
    assert {(s.policy, s.why, s.detail.split(":")[0]) for s in change.skipped} == {
        ("Deployment/apps/held (web)", Why.LOCKED, "Deployment/apps/held is locked by bob"),
        ("CronJob/apps/tmpl (c)", Why.NOT_EDITABLE, "it is rendered from the Jinja2 template t/job.yaml.j2"),
    }
    # one look-up per repository and filter: app for its policy, glob:1.* and the marked container's glob:* (then
    # left to its marker); web for semver:1.x (the locked workload's is not asked)
    assert sorted(asked.asked) == ["ghcr.io/acme/app"] * 3 + ["ghcr.io/acme/web"]


def test_flux_v1_releases_in_a_repository_without_the_annotation_render_nothing(tmp_path: Path) -> None:
    from gitops_job.reconcile.context import Settings
    from gitops_job.reconcile.workloads import releases

    write(tmp_path, {"gitops.yaml": STACKS, "s/deploy.yaml": V1.replace("automated", "other"), "s/bad.yaml.j2": "{{"})
    assert releases(Settings(repo=tmp_path)) == ()  # the broken template would fail a render


@pytest.mark.parametrize(
    ("annotations", "image", "chosen", "why"),
    [
        ('{fluxcd.io/automated: "true", fluxcd.io/ignore: "true"}', "ghcr.io/acme/web:1.2.0", Chosen("1.3.0"),
         Why.IGNORED),
        ('{fluxcd.io/automated: "true"}', "ghcr.io/acme/web:1.2.0@sha256:" + "a" * 64, Chosen("1.3.0"), Why.PINNED),
        ('{fluxcd.io/automated: "true"}', "ghcr.io/acme/web:1.2.0", Chosen(None, reason="down", stale=True),
         Why.STALE),
        ('{fluxcd.io/automated: "true"}', "ghcr.io/acme/web:1.2.0", Chosen(None, reason="no tag"), Why.NO_TAG),
        ('{fluxcd.io/automated: "true"}', "ghcr.io/acme/web:1.2.0", Chosen("1.3.0"), None),
    ],
)  # fmt: skip
def test_a_flux_v1_release_is_held_or_made(annotations: str, image: str, chosen: Chosen, why: Why | None) -> None:
    import yaml

    from gitops_job.identity import ObjectId
    from gitops_job.images import annotations as v1
    from gitops_job.model import RenderedObject, Source

    text = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: w\n  namespace: apps\n"
        f"  annotations: {annotations}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n        - {{name: w, image: '{image}'}}\n"
    )
    body = yaml.safe_load(text)
    w = v1.parse(RenderedObject(ObjectId.of(body), body, Source("d.yaml", 1), "s"))
    assert w is not None
    r = changes.Release(w, w.containers[0])
    change = changes.release(changes.ChangeSet({}, {}), [r], {r.key: chosen}, lambda _f: text.encode())
    assert [s.why for s in change.skipped] == ([why] if why else [])
    assert change.files == ({} if why else {"d.yaml": text.replace(":1.2.0'", ":1.3.0'").encode()})
