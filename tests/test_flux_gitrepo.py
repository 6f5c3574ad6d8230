"""A Flux GitRepository that is another repository (docs/flux.md#sources): which commit its ref chooses (a table),
and, against real git servers (smart HTTP with basic auth, ssh with a deploy key), that it is cloned only from an
allowed host, with the credentials of gitops.yaml, never on a fork's pull request, cached in the state dir, and that
its Kustomization's objects land in the right stack with the commit named."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitops_job import git, memo
from gitops_job.config.flux import GitSource, Ref
from gitops_job.config.load import RepoConfig, load_config
from gitops_job.errors import GitopsJobError, RenderError
from gitops_job.reconcile import context
from gitops_job.render import gitrepo
from gitops_job.render.stack import render_stack
from tests.gitservers import HttpGitServer, bare_repo, http_git_server, push, ssh_git_server
from tests.helpers import git_repo, gitops_job, write
from tests.test_flux import INSTALL, cm, ks

TOKEN = "apps-token-5be1d0c7"
TOKEN_ENV = "GITOPS_JOB_TEST_APPS_TOKEN"
SHA = {name: f"{n:040x}" for n, name in enumerate(["main", "master", "dev", "v1.0.0", "v1.2.0", "v1.3.0", "v2-rc",
                                                     "pull", "pinned"], start=1)}  # fmt: skip
REFS = {
    "HEAD": SHA["main"],
    "refs/heads/main": SHA["main"],
    "refs/heads/master": SHA["master"],
    "refs/heads/dev": SHA["dev"],
    "refs/tags/v1.0.0": SHA["v1.0.0"],
    "refs/tags/v1.2.0": SHA["v1.2.0"],
    "refs/tags/v1.3.0": SHA["v1.3.0"],  # as git.refs gives an annotated tag: the commit it points at
    "refs/tags/v2.0.0-rc.1": SHA["v2-rc"],
    "refs/tags/not-a-version": SHA["main"],
    "refs/pull/1/head": SHA["pull"],
}


def source(**ref: str) -> GitSource:
    url = "https://git.example.com/apps"
    return GitSource(Ref("GitRepository", "flux-system", "apps"), url, "c/apps.yaml:1", **ref)


@pytest.mark.parametrize(
    ("ref", "commit", "fetched", "label"),
    [
        ({}, SHA["master"], "refs/heads/master", "branch master"),  # Flux's default: master, not the remote's HEAD
        ({"branch": "dev"}, SHA["dev"], "refs/heads/dev", "branch dev"),
        ({"tag": "v1.0.0", "branch": "dev"}, SHA["v1.0.0"], "refs/tags/v1.0.0", "tag v1.0.0"),
        ({"semver": ">=1.0.0 <2.0.0", "tag": "v1.0.0"}, SHA["v1.3.0"], "refs/tags/v1.3.0",
         "tag v1.3.0 (semver >=1.0.0 <2.0.0)"),
        ({"semver": "~1.2"}, SHA["v1.2.0"], "refs/tags/v1.2.0", "tag v1.2.0 (semver ~1.2)"),
        ({"semver": ">=2.0.0-0"}, SHA["v2-rc"], "refs/tags/v2.0.0-rc.1", "tag v2.0.0-rc.1 (semver >=2.0.0-0)"),
        ({"name": "refs/pull/1/head", "semver": "*", "tag": "v1.0.0", "branch": "dev"}, SHA["pull"],
         "refs/pull/1/head", "ref refs/pull/1/head"),
        ({"commit": SHA["pinned"], "branch": "dev"}, SHA["pinned"], "refs/heads/dev",
         f"commit {SHA['pinned'][:12]} of branch dev"),
        ({"commit": SHA["pinned"].upper(), "name": "refs/pull/1/head", "tag": "v1.0.0"}, SHA["pinned"], None,
         f"commit {SHA['pinned'][:12]}"),
    ],
)  # fmt: skip
def test_ref_precedence_commit_name_semver_tag_branch(
    ref: dict[str, str], commit: str, fetched: str | None, label: str
) -> None:
    chosen = gitrepo.choose(REFS, source(**ref))
    assert (chosen.commit, chosen.fetch, chosen.label) == (commit, fetched, label)


@pytest.mark.parametrize(
    ("refs", "ref", "reason"),
    [
        ({"refs/heads/main": SHA["main"]}, {}, "branch 'master' is not a branch of https://git.example.com/apps (no "
         "spec.ref: Flux's default branch is master; set spec.ref.branch)"),
        (REFS, {"branch": "gone"}, "branch 'gone' is not a branch"),
        (REFS, {"tag": "v9"}, "spec.ref.tag 'v9' is not a tag"),
        (REFS, {"semver": "^3"}, "no tag matches spec.ref.semver '^3' (tags: not-a-version, v1.0.0, v1.2.0"),
        (REFS, {"semver": "not a range"}, "spec.ref.semver"),
        (REFS, {"name": "refs/heads/gone"}, "spec.ref.name 'refs/heads/gone' is not a ref"),
        (REFS, {"commit": "abc123"}, "spec.ref.commit 'abc123' is not a full commit id"),
        (REFS, {"commit": SHA["pinned"], "branch": "gone"}, "spec.ref.branch 'gone' is not a branch"),
    ],
)  # fmt: skip
def test_a_ref_that_resolves_to_nothing_names_the_gitrepository(
    refs: dict[str, str], ref: dict[str, str], reason: str
) -> None:
    with pytest.raises(RenderError) as e:
        gitrepo.choose(refs, source(**ref))
    assert reason in str(e.value)
    assert str(e.value).startswith("render: c/apps.yaml:1: ") or "c/apps.yaml:1" in str(e.value)


@pytest.mark.parametrize(
    ("credential", "problem"),
    [
        ({"url": "ssh://git@git.example.com/", "identityFile": "/k", "knownHostsFile": "/h"}, None),
        ({"url": "https://git.example.com/", "username": "u", "password": {"env": "T"}}, None),
        ({"url": "ssh://git@git.example.com/", "identityFile": "/k"},
         "a credential for ssh URL is a deploy key and its server's known_hosts: give knownHostsFile"),
        ({"url": "https://git.example.com/", "identityFile": "/k"},
         "a credential for https URL is basic auth: give username and password"),
        ({"url": "git@git.example.com:o/r", "username": "u", "password": {"env": "T"}},
         "expected an http(s)://, oci:// or ssh:// URL, got 'git@git.example.com:o/r'"),
    ],
)  # fmt: skip
def test_sources_credentials_for_git(credential: dict[str, Any], problem: str | None) -> None:
    from gitops_job.config.sources import problems

    found = [reason for _, reason in problems({"sources": {"credentials": [credential]}})]
    assert found == ([problem] if problem else [])


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://git.example.com/o/r", True),
        ("ssh://git@git.example.com:2222/o/r", True),
        ("git@git.example.com:o/r.git", True),  # scp-like, as ssh remotes are written
        ("git@evil.example.org:o/r.git", False),
        ("ssh://git@127.0.0.1:2222/r", False),
        ("/srv/git/r.git", False),  # a local path is no host
        ("file:///srv/git/r.git", False),
    ],
)
def test_allow_hosts_reads_git_urls_as_remote_charts_do(url: str, allowed: bool) -> None:
    from gitops_job.config.sources import Sources

    assert Sources(("git.example.com",)).allows(url) is allowed


def test_the_plan_names_each_source_and_commit_in_text_json_and_comment() -> None:
    import jsonschema

    from gitops_job.identity import ObjectId
    from gitops_job.model import Source
    from gitops_job.outcomes import Action
    from gitops_job.reconcile.results import Plan, PlanEntry, StackSource
    from gitops_job.report.json import to_json
    from gitops_job.report.markdown import markdown
    from gitops_job.report.text import text

    rev = "8f684ae8e86f" + "0" * 28
    where = Source("deploy/app.yaml", 1, origin=f"GitRepository/flux-system/apps@{rev[:12]}")
    entry = PlanEntry(ObjectId("", "ConfigMap", "web", "a"), "apps", Action.CREATE, where, after={"data": {"v": "1"}})
    source = StackSource("apps", "GitRepository/flux-system/apps", "https://git.example.com/apps", "branch main", rev,
                         f"GitRepository/flux-system/apps@{rev[:12]}")  # fmt: skip
    why = "clusters/c/team.yaml:1: stack team is not planned: its source … (a fork's pull request)"
    plan = Plan("t", (entry,), stacks=("apps",), sources=(source,), unplanned={"team": why})
    shown = text(plan)
    header = "stack apps: 1 to create, 0 to update, 0 to prune, 0 unchanged"
    assert f"{header}\n  source GitRepository/flux-system/apps at {rev} (branch main of " in shown
    assert f"  from GitRepository/flux-system/apps@{rev[:12]}:deploy/app.yaml:1" in shown
    assert f"warning: {why}" in shown
    doc = to_json(plan)
    schema = json.loads((Path(__file__).parent.parent / "gitops_job/report/schemas/plan.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["sources"] == [
        {
            "stack": "apps",
            "source": "GitRepository/flux-system/apps",
            "url": "https://git.example.com/apps",
            "ref": "branch main",
            "revision": rev,
        }
    ]
    assert doc["unplanned"] == [{"stack": "team", "reason": why}]
    comment = markdown(plan)
    assert f"<b>apps</b> (GitRepository/flux-system/apps@{rev[:12]}): 1 to create" in comment
    assert f"stack <code>apps</code> from <code>GitRepository/flux-system/apps</code> at <code>{rev}</code>" in comment
    assert "**stack team is not planned:** clusters/c/team.yaml:1" in comment


@pytest.mark.parametrize(
    "url", ["ext::sh -c touch% /tmp/gitops-job-pwned", "file:///srv/git/apps.git", "/srv/git/apps.git",
            "git://git.example.com/apps", "fd::17"],
)  # fmt: skip
def test_only_remote_urls_are_fetched_even_when_every_host_is_allowed(url: str) -> None:
    from gitops_job.config.sources import Sources
    from gitops_job.render.charts import ChartAccess

    with pytest.raises(RenderError, match="is not a remote URL git may fetch here"):
        gitrepo.checkout(GitSource(Ref("GitRepository", "flux-system", "apps"), url, "c/apps.yaml:1"),
                         ChartAccess(Sources(("*",))))  # fmt: skip


# --- against real git servers ---------------------------------------------------------------------------------------


def gitrepository(url: str, ref: dict[str, str] | None = None, **spec: Any) -> str:
    body = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"interval": "1m", "url": url, "ref": ref or {"branch": "main"}, **spec}}  # fmt: skip
    return json.dumps(body) + "\n"


def remote_repo(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path, str]:
    """The other repository: a work tree, its bare repository under ``srv/`` (served as ``apps.git``), the commit."""
    work, srv = tmp_path / "apps-work", tmp_path / "srv"
    srv.mkdir(exist_ok=True)
    bare = bare_repo(srv, "apps.git") if not (srv / "apps.git").exists() else srv / "apps.git"
    write(work, files)
    rev = git_repo(work)
    push(work, bare)
    return work, bare, rev


def fleet(tmp_path: Path, url: str, sources: str, **ref: str) -> Path:
    """This repository: a Flux layout whose Kustomization ``apps`` reads ``./deploy`` of the GitRepository at
    ``url``, beside ``local`` (this repository's ``./local``)."""
    root = tmp_path / "fleet"
    apps = ks("apps", "./deploy", targetNamespace="web", sourceRef={"kind": "GitRepository", "name": "apps"})
    write(root, {
        **INSTALL,
        "gitops.yaml": f"flux: {{path: clusters/c}}\n{sources}",
        "clusters/c/apps-source.yaml": gitrepository(url, ref or None),
        "clusters/c/apps.yaml": apps,
        "clusters/c/local.yaml": ks("local", "./local", targetNamespace="web"),
        "local/l.yaml": cm("local-cm"),
        "deploy/d.yaml": cm("not-this-one"),  # the same path in this repository is not what apps renders
    })  # fmt: skip
    git_repo(root)
    return root


def allowing(server: HttpGitServer, token: str | None = TOKEN) -> str:
    credentials = (f"  credentials:\n    - url: http://127.0.0.1:{server.port}/\n      username: x-access-token\n"
                   f"      password: {{env: {TOKEN_ENV}}}\n") if token else ""  # fmt: skip
    return f'sources:\n  allowHosts: ["127.0.0.1:{server.port}"]\n{credentials}'


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    gitrepo.forget()
    yield
    gitrepo.forget()


def objects_of(config: RepoConfig, name: str) -> dict[str, Any]:
    stack = next(s for s in config.stacks if s.name == name)
    return {o.id.name: o for o in render_stack(config, stack, config.targets[0])}


def test_kustomization_from_another_repository_renders_its_checkout(tmp_path: Path) -> None:
    """The Kustomization's path is in the other repository at the branch's commit; each object names the
    GitRepository and that commit; this repository's stacks are untouched; credentials reach the server."""
    _, _, rev = remote_repo(tmp_path, {"deploy/kustomization.yaml": "resources: [app.yaml, nested.yaml]\n",
                                          "deploy/app.yaml": cm("from-apps", app="1"),
                                          "deploy/nested.yaml": ks("nested", "./more")})  # fmt: skip
    with http_git_server(tmp_path / "srv", token=TOKEN) as server:
        root = fleet(tmp_path, server.url("apps.git"), allowing(server))
        config = load_config(root)
        notes: list[str] = []
        stack = next(s for s in config.stacks if s.name == "apps")
        got = {o.id.name: o for o in render_stack(config, stack, config.targets[0], on_note=notes.append)}
        assert set(got) == {"from-apps"}  # the nested Kustomization is Flux's: not applied, and said
        assert notes == [f"warning: GitRepository/flux-system/apps@{rev[:12]}:deploy/kustomization.yaml: "
                         "Kustomization/web/nested is in another repository's checkout (stack apps): it is not "
                         "followed; point a Kustomization of this repository at its path instead"]  # fmt: skip
        assert got["from-apps"].body["metadata"]["namespace"] == "web"  # the Kustomization's targetNamespace
        assert str(got["from-apps"].source) == f"GitRepository/flux-system/apps@{rev[:12]}:deploy/kustomization.yaml"
        assert set(objects_of(config, "local")) == {"local-cm"}
        assert any(auth for _, _, auth in server.requests), "the server never saw credentials"
        rendered = context.render(context.select(context.Settings(repo=root)), {})
        assert rendered.checkouts["apps"].commit == rev
        assert rendered.checkouts["apps"].ref == "branch main"
        assert {o.stack for o in rendered.objects if o.id.name == "from-apps"} == {"apps"}


def test_state_dir_caches_the_clone_and_fetches_only_a_new_commit(tmp_path: Path) -> None:
    work, bare, rev = remote_repo(tmp_path, {"deploy/app.yaml": cm("a", v="1")})
    state = tmp_path / "state"
    with http_git_server(tmp_path / "srv", token=TOKEN) as server:
        root = fleet(tmp_path, server.url("apps.git"), allowing(server))
        config = load_config(root)

        def run() -> str:
            gitrepo.forget()  # a new run
            with memo.kept(state):
                return next(iter(objects_of(config, "apps").values())).body["data"]["v"]

        assert run() == "1" and "fetch" in server.commands
        seen = len(server.commands)
        assert run() == "1"
        assert server.commands[seen:] == ["ls-refs"], "a run at the same commit fetched"
        write(work, {"deploy/app.yaml": cm("a", v="2")})
        git_repo(work)
        push(work, bare)
        seen = len(server.commands)
        assert run() == "2"
        assert server.commands[seen:].count("fetch") == 1  # (git's fetch asks for the refs again: ls-refs)
        assert len(list((state / "sources").iterdir())) == 1  # one clone per repository
    assert rev


def test_a_host_not_allowed_is_an_error_and_nothing_is_sent(tmp_path: Path) -> None:
    remote_repo(tmp_path, {"deploy/app.yaml": cm("a")})
    with http_git_server(tmp_path / "srv", token=TOKEN) as server:
        root = fleet(tmp_path, server.url("apps.git"), "sources:\n  allowHosts: [git.example.com]\n")
        with pytest.raises(RenderError) as e:
            objects_of(load_config(root), "apps")
        assert server.requests == [], "a request reached a host that is not allowed"
    message = str(e.value)
    assert message.startswith(
        "render: clusters/c/apps-source.yaml:1: GitRepository/flux-system/apps (the source of "
        f"Kustomization/flux-system/apps): host 127.0.0.1:{server.port} is not in sources.allowHosts"
    )
    assert f"{server.url('apps.git')} is not fetched (nothing was sent to it)" in message


def test_a_fork_fetches_nothing_and_says_the_stack_is_not_planned(tmp_path: Path) -> None:
    remote_repo(tmp_path, {"deploy/app.yaml": cm("a")})
    notes: list[str] = []
    with http_git_server(tmp_path / "srv", token=TOKEN) as server:
        root = fleet(tmp_path, server.url("apps.git"), allowing(server))
        selection = context.select(context.Settings(repo=root))
        rendered = context.render(selection, {}, fetch=False, on_note=notes.append)
        assert server.requests == [], "a fork's run reached the git server"
    assert {o.stack for o in rendered.objects} == {"local"}
    why = rendered.unfetched["apps"]
    assert why.startswith("clusters/c/apps.yaml:1: stack apps is not planned: its source GitRepository/flux-system/"
                          "apps (clusters/c/apps-source.yaml:1) is another repository")  # fmt: skip
    assert "a fork's pull request" in why and notes == [f"warning: {why}"]


def test_wrong_credentials_name_the_url_never_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote_repo(tmp_path, {"deploy/app.yaml": cm("a")})
    monkeypatch.setenv(TOKEN_ENV, "not-the-" + TOKEN)
    with http_git_server(tmp_path / "srv", token=TOKEN) as server:
        root = fleet(tmp_path, server.url("apps.git"), allowing(server))
        with pytest.raises(GitopsJobError) as e:
            objects_of(load_config(root), "apps")
    message = str(e.value)
    assert message.startswith("render: clusters/c/apps-source.yaml:1: GitRepository/flux-system/apps")
    assert f"{server.url('apps.git')}: git ls-remote failed" in message
    assert "Check the token (sources.credentials in gitops.yaml, for this URL)" in message
    assert TOKEN not in message and "not-the-" not in message


def test_ssh_with_a_deploy_key_from_sources_credentials(tmp_path: Path) -> None:
    _, bare, rev = remote_repo(tmp_path, {"deploy/app.yaml": cm("over-ssh")})
    with ssh_git_server(tmp_path / "sshd") as server:
        url = server.url(bare)
        sources = (f"sources:\n  allowHosts: [\"127.0.0.1:{server.port}\"]\n  credentials:\n"
                   f"    - url: ssh://{server.user}@127.0.0.1:{server.port}/\n"
                   f"      identityFile: {server.deploy_key}\n"
                   f"      knownHostsFile: {server.known_hosts}\n")  # fmt: skip
        root = fleet(tmp_path, url, sources)
        got = objects_of(load_config(root), "apps")
    assert set(got) == {"over-ssh"} and rev[:12] in str(got["over-ssh"].source)


def test_a_tag_by_semver_over_http(tmp_path: Path) -> None:
    """The highest tag in the range, annotated tags peeled (git.refs), fetched by its ref, shallow."""
    work, bare, first = remote_repo(tmp_path, {"deploy/app.yaml": cm("a", v="1.0.0")})
    git_repo_tag(work, "v1.0.0")
    write(work, {"deploy/app.yaml": cm("a", v="1.1.0")})
    second = git_repo(work)
    git_repo_tag(work, "v1.1.0", annotated=True)
    write(work, {"deploy/app.yaml": cm("a", v="main")})
    git_repo(work)
    subprocess.run(["git", "-C", str(work), "push", "-q", "--tags", str(bare)], check=True)
    push(work, bare)
    with http_git_server(tmp_path / "srv", token=TOKEN) as server:
        root = fleet(tmp_path, server.url("apps.git"), allowing(server), semver="^1.0")
        assert git.refs(server.url("apps.git"), git.Auth(token=TOKEN))["refs/tags/v1.1.0"] == second
        got = objects_of(load_config(root), "apps")
    assert got["a"].body["data"]["v"] == "1.1.0" and first != second


def git_repo_tag(work: Path, tag: str, *, annotated: bool = False) -> None:
    args = ["-a", "-m", tag] if annotated else []
    subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com", "tag", *args, tag],
                   check=True)  # fmt: skip


def test_gitrepository_fields_not_honoured_are_warned_with_file_and_line(tmp_path: Path) -> None:
    fields = {"secretRef": {"name": "creds"}, "include": [{"repository": {"name": "x"}}], "ignore": "/*\n!/deploy",
              "recurseSubmodules": True, "verify": {"mode": "HEAD", "secretRef": {"name": "pgp"}}}  # fmt: skip
    root = tmp_path / "fleet"
    source = ("apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: apps\n"
              "  namespace: flux-system\nspec:\n  url: https://git.example.com/apps\n"
              + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in fields.items()))  # fmt: skip
    write(
        root,
        {
            **INSTALL,
            "clusters/c/src.yaml": source,
            "clusters/c/apps.yaml": ks("apps", "./deploy", sourceRef={"kind": "GitRepository", "name": "apps"}),
        },
    )
    config = load_config(root, flux="clusters/c")
    warned = [n for n in config.notes if "GitRepository/flux-system/apps" in n]
    assert [n.split(": ")[1] for n in warned] == [f"clusters/c/src.yaml:{8 + i}" for i in range(len(fields))]
    assert [n.split(": ")[3].split(" ")[0] for n in warned] == [f"spec.{k}" for k in fields]
    assert "not read (the Secret would have to be in git)" in warned[0]
    assert "apps" in {s.name for s in config.stacks}  # a stack, rendered from the clone


def test_helmrelease_chart_from_another_repository(tmp_path: Path) -> None:
    """A HelmRelease in this repository whose chart is a path of another GitRepository: cloned under the same rules,
    the chart read from that checkout, the commit in the chart's label; its unsupported fields are warned."""
    _, _, rev = remote_repo(tmp_path, {
        "charts/demo/Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
        "charts/demo/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo-from-git\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n",
    })  # fmt: skip
    chart = {"spec": {"chart": "./charts/demo", "sourceRef": {"kind": "GitRepository", "name": "apps",
                                                                "namespace": "flux-system"}}}  # fmt: skip
    release = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
               "metadata": {"name": "demo", "namespace": "web"},
               "spec": {"interval": "1m", "chart": chart, "values": {"greeting": "hi"}}}  # fmt: skip
    with http_git_server(tmp_path / "srv", token=TOKEN) as server:
        root = fleet(tmp_path, server.url("apps.git"), allowing(server))
        source = (root / "clusters/c/apps-source.yaml").read_text()
        source = source.replace('"interval"', '"recurseSubmodules": true, "interval"')
        write(
            root,
            {
                "local/release.yaml": json.dumps(release) + "\n",
                "clusters/c/apps-source.yaml": source,
            },
        )
        git_repo(root)
        notes: list[str] = []
        config = load_config(root)
        stack = next(s for s in config.stacks if s.name == "local")
        got = {o.id.name: o for o in render_stack(config, stack, config.targets[0], on_note=notes.append)}
    assert got["demo-from-git"].body["data"] == {"greeting": "hi"}
    origin = f"GitRepository/flux-system/apps@{rev[:12]}"
    assert str(got["demo-from-git"].source) == f"{origin}:charts/demo/templates/cm.yaml"
    assert any("GitRepository/flux-system/apps: spec.recurseSubmodules is not supported" in n for n in notes), notes


def test_plan_and_apply_show_and_record_the_commit(tmp_path: Path, kubeconfig: Path, namespace: str) -> None:
    """Acceptance: the plan (text, JSON) shows the other repository's commit next to its stack; apply records it
    in the stack's run; a second plan is clean."""
    _, _, rev = remote_repo(tmp_path, {"deploy/app.yaml": cm("from-apps", app="1")})
    with http_git_server(tmp_path / "srv", token=TOKEN) as server:
        root = fleet(tmp_path, server.url("apps.git"), allowing(server))
        gitops = (root / "gitops.yaml").read_text().replace("flux:", f"targets:\n  - name: t\n    inventoryNamespace:"
                                                                     f" {namespace}\nflux:")  # fmt: skip
        (root / "gitops.yaml").write_text(gitops)
        for file in ("clusters/c/apps.yaml", "clusters/c/local.yaml"):
            (root / file).write_text((root / file).read_text().replace('"web"', json.dumps(namespace)))
        git_repo(root)
        planned = gitops_job(kubeconfig, "plan", "--repo", str(root), "-o", "json")
        doc = json.loads(planned.stdout)
        assert doc["sources"] == [{"stack": "apps", "source": "GitRepository/flux-system/apps",
                                   "url": server.url("apps.git"), "ref": "branch main", "revision": rev}]  # fmt: skip
        text = gitops_job(kubeconfig, "plan", "--repo", str(root))
        assert f"  source GitRepository/flux-system/apps at {rev} (branch main of {server.url('apps.git')})" in (
            text.stdout
        )
        gitops_job(kubeconfig, "apply", "--repo", str(root), "--no-wait")
        status = json.loads(gitops_job(kubeconfig, "status", "--repo", str(root), "-o", "json").stdout)
        runs = {s["stack"]: s["lastRun"] for s in status["stacks"]}
        assert runs["apps"]["source"] == f"GitRepository/flux-system/apps@{rev[:12]}"
        assert runs["local"]["source"] is None
        again = json.loads(gitops_job(kubeconfig, "plan", "--repo", str(root), "-o", "json").stdout)
        assert again["summary"]["create"] == again["summary"]["update"] == 0
    assert TOKEN not in planned.stdout + planned.stderr + text.stdout + text.stderr
