"""Remote Helm charts (gitops_job.render.charts, gitops_job.chartrepo): version resolution tables, then a native
stack's ``chart:`` rendered from a real HTTP chart repository (helm package + helm repo index on loopback) and from
OCI charts pushed by helm to Debian's docker-registry: the cache, digest checks, the allow-list, credentials, a fork's
pull request; and one plan + apply + re-plan against the cluster."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_job import memo
from gitops_job.config.load import RepoConfig, Stack, Target, load_config
from gitops_job.config.notifications import SecretRef
from gitops_job.config.sources import Credential, RemoteChart, Sources
from gitops_job.errors import ErrorGroup, RenderError
from gitops_job.model import RenderedObject
from gitops_job.render import charts
from gitops_job.render.stack import render_stack
from tests.chartrepo import ChartServer, chart_dir, chart_server, helm, helm_push, package
from tests.registries import Front, docker_registry, front

LOOPBACK = Sources(allow_hosts=("127.0.0.1",))


@pytest.fixture(autouse=True)
def fresh_run() -> Iterator[None]:
    """Each test is a new process as far as resolutions go."""
    charts.forget()
    yield
    charts.forget()


# --- resolution: pure ------------------------------------------------------------------------------------------------

VERSIONS = ["0.9.0", "1.0.0", "1.2.0", "1.2.5", "1.10.0", "2.0.0-rc.1", "2.0.0", "2.1.0-beta.2", "v3.0.0", "3.1"]


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [
        ("*", "2.0.0"),  # the highest stable version; a tag-like "v3.0.0" is a version, "3.1" (one dot) is not
        ("", "2.0.0"),
        ("^1.0", "1.10.0"),
        ("~1.2", "1.2.5"),
        ("1.2.x", "1.2.5"),
        (">=1.0 <1.2", "1.0.0"),
        ("1.2.0", "1.2.0"),  # exact
        ("=1.0.0", "1.0.0"),
        (">=2.0.0-0", "2.1.0-beta.2"),  # a pre-release only when the range carries one
        ("2.0.0-rc.1", "2.0.0-rc.1"),  # an exact pre-release
        ("^2.0.0-0 <2.1.0-0", "2.0.0"),
        ("<1.0.0 || 1.2.x", "1.2.5"),
        ("1.0 - 1.2", "1.2.5"),
        ("3.1", "3.1"),  # an exact string match wins first, as in Helm
        (">3", None),
    ],
)
def test_pick_resolves_a_range_like_helm_and_flux(wanted: str, chosen: str | None) -> None:
    versions = [v if v != "v3.0.0" else "0.0.1" for v in VERSIONS]  # v3.0.0 would win every open range
    assert charts.pick(versions, wanted, "here") == chosen


def test_pick_counts_a_v_prefixed_version() -> None:
    assert charts.pick(["1.0.0", "v3.0.0"], "*", "here") == "v3.0.0"


def test_pick_names_a_bad_range() -> None:
    with pytest.raises(RenderError, match=r"here: chart version: improper semver range '>>1'"):
        charts.pick(["1.0.0"], ">>1", "here")


@pytest.mark.parametrize(
    ("tags", "wanted", "chosen"),
    [
        (["1.0.0", "1.1.0", "1.1.1_build.5", "latest"], "^1.0", "1.1.1+build.5"),  # "_" in a tag is semver's "+"
        (["1.0.0", "1.1.0"], "1.0.0", "1.0.0"),
        ([], "4.5.6", "4.5.6"),  # an exact version needs no tag list
        (["1.0.0"], "~2", None),
    ],
)
def test_oci_tags_resolve(tags: list[str], wanted: str, chosen: str | None) -> None:
    assert charts.oci_tag_version(tags, wanted, "here") == chosen


def test_index_entry_names_what_is_missing() -> None:
    index = {"entries": {"demo": [{"version": "1.0.0"}], "other": [{"version": "2.0.0"}]}}
    with pytest.raises(RenderError, match=r"chart 'nope' is not in the repository's index \(charts: demo, other\)"):
        charts.index_entry(index, "nope", "*", "here")
    with pytest.raises(RenderError, match=r"no version of chart 'demo' matches '\^2' \(listed: 1.0.0\)"):
        charts.index_entry(index, "demo", "^2", "here")


@pytest.mark.parametrize(
    ("entry", "url", "allowed"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080/x", True),
        ("127.0.0.1:8080", "http://127.0.0.1:8080/x", True),
        ("127.0.0.1:8081", "http://127.0.0.1:8080/x", False),
        ("*.example.com", "https://charts.example.com/x", True),
        ("*.example.com", "https://example.com.evil.test/x", False),
        ("charts.example.com", "oci://charts.example.com/a/b", True),
        ("charts.example.com", "https://user:pw@other.test/charts.example.com", False),
    ],
)
def test_allow_hosts(entry: str, url: str, allowed: bool) -> None:
    assert Sources(allow_hosts=(entry,)).allows(url) is allowed


def test_the_longest_credential_prefix_wins() -> None:
    a = Credential("https://h/charts", "a", SecretRef(env="A"))
    b = Credential("https://h/charts/private/", "b", SecretRef(env="B"))
    sources = Sources(credentials=(a, b))
    assert sources.credential("https://h/charts/private/index.yaml") == b
    assert sources.credential("https://h/charts/index.yaml") == a
    assert sources.credential("https://h/chartsx/index.yaml") is None


# --- the config ------------------------------------------------------------------------------------------------------


def test_config_reads_sources_and_a_remote_chart(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "gitops.yaml").write_text(
        "sources:\n"
        "  allowHosts: [charts.example.com]\n"
        "  credentials:\n"
        "    - {url: https://charts.example.com/private, username: bot, password: {env: CHARTS_PASSWORD}}\n"
        "stacks:\n"
        "  - name: app\n"
        "    path: app\n"
        "    chart: {repository: https://charts.example.com/private, name: demo, version: ^1.2}\n"
    )
    config = load_config(tmp_path)
    assert config.sources.allow_hosts == ("charts.example.com",)
    assert config.sources.credentials[0].password == SecretRef(env="CHARTS_PASSWORD")
    assert config.stacks[0].chart == RemoteChart("https://charts.example.com/private", "demo", "^1.2")


def test_config_refuses_an_inline_password_without_showing_it(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "gitops.yaml").write_text(
        "sources:\n"
        "  credentials:\n"
        "    - {url: https://h/c, username: bot, password: hunter2-planted}\n"
        "stacks:\n"
        "  - {name: app, path: app, render: kustomize, chart: {repository: ftp://h/c, name: demo}}\n"
    )
    with pytest.raises(ErrorGroup) as info:
        load_config(tmp_path)
    text = str(info.value)
    assert "hunter2-planted" not in text
    assert "gitops.yaml:3: sources.credentials[0].password: an inline secret is refused" in text
    assert "stacks[0].render: a stack with a remote chart renders with helm, not kustomize" in text
    assert "stacks[0].chart.repository: expected an http(s):// or oci:// URL, got 'ftp://h/c'" in text


# --- a native stack with a remote chart, from a real HTTP chart repository -------------------------------------------


def repo(tmp_path: Path, values: str = "greeting: hi\n") -> Path:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True, exist_ok=True)
    (root / "app" / "values.yaml").write_text(values)
    return root


def render(root: Path, chart: RemoteChart, sources: Sources = LOOPBACK, *, fetch: bool = True) -> list[RenderedObject]:
    stack = Stack(name="app", path="app", namespace="apps", chart=chart, values=("app/values.yaml",))
    target = Target("test")
    config = RepoConfig(root, root / "gitops.yaml", (target,), (stack,), sources=sources)
    return render_stack(config, stack, target, fetch=fetch)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ChartServer]:
    with chart_server(tmp_path / "served") as server:
        server.publish({"demo": ["1.0.0", "1.1.0", "1.2.0-rc.1"], "other": ["0.1.0"]})
        yield server


def test_a_remote_chart_renders_at_the_resolved_version_shown_in_each_source(
    tmp_path: Path, served: ChartServer
) -> None:
    objects = render(repo(tmp_path), RemoteChart(served.url, "demo", "^1.0"))
    by_kind = {o.id.kind: o for o in objects}
    cm = by_kind["ConfigMap"]
    assert cm.body["metadata"] == {"name": "app-settings", "namespace": "apps"}
    assert cm.body["data"] == {"greeting": "hi", "version": "1.1.0"}  # the stack's values file; 1.1.0, not the rc
    assert "CustomResourceDefinition" in by_kind  # crds/ included, as for a local chart
    assert str(cm.source) == f"demo/templates/configmap.yaml in chart demo 1.1.0 ({served.url})"
    assert served.paths() == ["/index.yaml", "/demo-1.1.0.tgz"]


def test_the_chart_cache_fetches_nothing_the_second_time_and_only_the_index_in_a_new_run(
    tmp_path: Path, served: ChartServer
) -> None:
    root, chart = repo(tmp_path), RemoteChart(served.url, "demo", "1.0.0")
    with memo.kept(tmp_path / "state"):
        first = render(root, chart)
        assert served.paths() == ["/index.yaml", "/demo-1.0.0.tgz"]
        assert render(root, chart) == first  # the same run: nothing fetched
        assert served.paths() == ["/index.yaml", "/demo-1.0.0.tgz"]
        cached = list((tmp_path / "state" / "charts").iterdir())
        digest = hashlib.sha256((served.root / "demo-1.0.0.tgz").read_bytes()).hexdigest()
        assert [p.name for p in cached] == [f"sha256-{digest}.tgz"]
    charts.forget()  # a new run with the same state dir: the index says which digest; the archive is cached
    with memo.kept(tmp_path / "state"):
        assert render(root, chart) == first
    assert served.paths() == ["/index.yaml", "/demo-1.0.0.tgz", "/index.yaml"]


def test_a_digest_mismatch_names_the_chart_and_url_and_renders_nothing(tmp_path: Path, served: ChartServer) -> None:
    archive = served.root / "demo-1.1.0.tgz"
    package(chart_dir(tmp_path / "evil", "demo", "1.1.0", crds=False), tmp_path / "evil-out")
    archive.write_bytes((tmp_path / "evil-out" / "demo-1.1.0.tgz").read_bytes())  # same version, other bytes
    with pytest.raises(RenderError) as info:
        render(repo(tmp_path), RemoteChart(served.url, "demo", "1.1.0"))
    message = str(info.value)
    assert f"render: {served.url}/demo-1.1.0.tgz: chart demo 1.1.0: the archive's digest sha256:" in message
    assert "is not the sha256:" in message and "refused (nothing rendered from it)" in message
    assert not list(charts.cache_dir().glob("*.tgz")) or all(
        hashlib.sha256(p.read_bytes()).hexdigest() in p.name for p in charts.cache_dir().glob("*.tgz")
    )


def test_a_host_not_on_the_allow_list_is_refused_before_any_request(tmp_path: Path, served: ChartServer) -> None:
    with pytest.raises(RenderError) as info:
        render(repo(tmp_path), RemoteChart(served.url, "demo"), Sources(allow_hosts=("charts.example.com",)))
    assert str(info.value) == (
        f"render: {served.url}/index.yaml: chart repository index for demo refused: host '127.0.0.1' is not in "
        "sources.allowHosts of gitops.yaml; add it there if this host is trusted (nothing was fetched from it)"
    )
    assert served.requests == []


def test_a_redirect_to_a_host_not_allowed_is_not_followed(tmp_path: Path, served: ChartServer) -> None:
    served.redirects["/index.yaml"] = "http://localhost:9/index.yaml"
    with pytest.raises(RenderError, match=r"host 'localhost' is not in sources\.allowHosts"):
        render(repo(tmp_path), RemoteChart(served.url, "demo"))
    assert served.paths() == ["/index.yaml"]


def test_a_fork_pull_request_fetches_nothing(tmp_path: Path, served: ChartServer) -> None:
    with pytest.raises(RenderError) as info:
        render(repo(tmp_path), RemoteChart(served.url, "demo"), fetch=False)
    assert "not fetched: this run fetches nothing (a fork's pull request)" in str(info.value)
    assert served.requests == []


def test_basic_auth_from_a_file_reaches_only_the_repository_and_never_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "planted-chart-password-1234"
    (tmp_path / "password").write_text(password + "\n")
    with chart_server(tmp_path / "private", auth=("bot", password)) as server:
        server.publish({"demo": ["1.0.0"]})
        sources = Sources(("127.0.0.1",), (Credential(server.url, "bot", SecretRef(file=str(tmp_path / "password"))),))
        objects = render(repo(tmp_path), RemoteChart(server.url, "demo"), sources)
        assert [o.id.kind for o in objects] == ["CustomResourceDefinition", "ConfigMap"]
        assert all(header and header.startswith("Basic ") for _, header in server.requests)
        charts.forget()
        wrong = Sources(("127.0.0.1",), (Credential(server.url, "bot", SecretRef(env="NOPE_PASSWORD")),))
        monkeypatch.setenv("NOPE_PASSWORD", "wrong-one")
        with pytest.raises(RenderError) as info:
            render(repo(tmp_path), RemoteChart(server.url, "demo"), wrong)
        assert "HTTP 401 (check sources.credentials)" in str(info.value)
        assert password not in str(info.value) and "wrong-one" not in str(info.value)
        charts.forget()
        with pytest.raises(RenderError, match="HTTP 401"):
            render(repo(tmp_path), RemoteChart(server.url, "demo"))


# --- OCI: helm push to docker-registry -------------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Front]:
    """docker-registry holding demo 1.0.0, 1.3.0 and 2.0.0-beta.1, behind a front that counts our requests."""
    with docker_registry(tmp_path / "registry") as running:
        for version in ("1.0.0", "1.3.0", "2.0.0-beta.1"):
            helm_push(running, package(chart_dir(tmp_path / "src", "demo", version), tmp_path / "pkg"))
        with front(running.host) as counted:
            yield counted


def paths(counted: Front) -> list[str]:
    return [s.path for s in counted.seen]


def test_an_oci_chart_renders_at_the_highest_tag_in_range_and_is_cached(tmp_path: Path, registry: Front) -> None:
    chart = RemoteChart(f"oci://{registry.host}/charts", "demo", "~1", insecure=True)
    objects = render(repo(tmp_path), chart)
    cm = next(o for o in objects if o.id.kind == "ConfigMap")
    assert cm.body["data"]["version"] == "1.3.0"
    assert str(cm.source) == f"demo/templates/configmap.yaml in chart demo 1.3.0 (oci://{registry.host}/charts/demo)"
    seen = paths(registry)
    assert seen[:2] == ["/v2/charts/demo/tags/list", "/v2/charts/demo/manifests/1.3.0"]
    assert len(seen) == 3 and seen[2].startswith("/v2/charts/demo/blobs/sha256:")
    render(repo(tmp_path), chart)
    assert len(registry.seen) == 3  # the same run: nothing fetched again


def test_an_oci_chart_at_an_exact_version_needs_no_tag_list(tmp_path: Path, registry: Front) -> None:
    chart = RemoteChart(f"oci://{registry.host}/charts", "demo", "2.0.0-beta.1", insecure=True)
    objects = render(repo(tmp_path), chart)
    assert next(o for o in objects if o.id.kind == "ConfigMap").body["data"]["version"] == "2.0.0-beta.1"
    assert registry.count(contains="tags/list") == 0


def test_an_oci_host_not_allowed_is_refused(tmp_path: Path, registry: Front) -> None:
    chart = RemoteChart(f"oci://{registry.host}/charts", "demo", "1.0.0", insecure=True)
    with pytest.raises(RenderError, match=r"is not in sources\.allowHosts"):
        render(repo(tmp_path), chart, Sources(allow_hosts=("ghcr.io",)))
    assert registry.seen == []


def test_an_oci_registry_with_token_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with docker_registry(tmp_path / "registry", auth="token") as running:
        user, password = next(iter(running.users.items()))
        archive = package(chart_dir(tmp_path / "src", "demo", "1.0.0"), tmp_path / "pkg")
        helm("registry", "login", running.host, "--username", user, "--password", password, "--plain-http",
             home=tmp_path / "helm-home")  # fmt: skip
        helm("push", str(archive), f"oci://{running.host}/charts", "--plain-http", home=tmp_path / "helm-home")
        monkeypatch.setenv("REGISTRY_PASSWORD", password)
        sources = Sources(
            ("127.0.0.1",), (Credential(f"oci://{running.host}", user, SecretRef(env="REGISTRY_PASSWORD")),)
        )
        chart = RemoteChart(f"oci://{running.host}/charts", "demo", "1.0.0", insecure=True)
        objects = render(repo(tmp_path), chart, sources)
        assert next(o for o in objects if o.id.kind == "ConfigMap").body["data"]["version"] == "1.0.0"
        charts.forget()
        with pytest.raises(RenderError) as info:
            render(repo(tmp_path), chart)  # no credentials: the token service refuses
        assert "the registry refused its own token (check sources.credentials)" in str(info.value)
        assert password not in str(info.value)


def _index(server: ChartServer) -> dict[str, Any]:
    return dict(yaml.safe_load((server.root / "index.yaml").read_text()))


# --- the plan shows the exact version ----------------------------------------------------------------------------


def test_the_plan_shows_each_remote_charts_exact_version_in_text_json_and_the_comment_footer(
    tmp_path: Path, served: ChartServer
) -> None:
    from gitops_job.outcomes import Action
    from gitops_job.reconcile.results import Plan, PlanEntry
    from gitops_job.report.json import to_json
    from gitops_job.report.markdown import markdown
    from gitops_job.report.text import text

    cm = next(o for o in render(repo(tmp_path), RemoteChart(served.url, "demo", "^1.0")) if o.id.kind == "ConfigMap")
    plan = Plan("test", (PlanEntry(cm.id, "app", Action.CREATE, cm.source, None, cm.body),), stacks=("app",))
    shown = f"demo/templates/configmap.yaml in chart demo 1.1.0 ({served.url})"
    assert f"from {shown}" in text(plan)
    assert to_json(plan)["objects"][0]["source"] == shown
    assert f"chart <code>demo 1.1.0 ({served.url})</code>" in markdown(plan).split("<sub>")[-1]


# --- against the cluster ---------------------------------------------------------------------------------------------


def test_plan_apply_and_replan_a_stack_with_a_remote_chart(tmp_path: Path, kubeconfig: Path, namespace: str) -> None:
    from tests.helpers import config, git_repo, gitops_job, write

    with chart_server(tmp_path / "served") as server:
        server.publish({"demo": ["1.0.0", "1.1.0"]}, crds=False)
        stack = (
            f"  - name: app\n    path: app\n    namespace: {namespace}\n    values: [app/values.yaml]\n"
            f"    chart: {{repository: '{server.url}', name: demo, version: '^1.0'}}\n"
        )
        repo_root = tmp_path / "repo"
        write(repo_root, {
            "gitops.yaml": config(namespace, stack) + "sources:\n  allowHosts: ['127.0.0.1']\n",
            "app/values.yaml": "greeting: from-the-cluster-test\n",
        })  # fmt: skip
        git_repo(repo_root)
        plan = gitops_job(kubeconfig, "plan", "--repo", str(repo_root))
        assert f"in chart demo 1.1.0 ({server.url})" in plan.stdout
        assert "1 to create" in plan.stdout
        gitops_job(kubeconfig, "apply", "--repo", str(repo_root))
        again = gitops_job(kubeconfig, "plan", "--repo", str(repo_root))
        assert "0 to create, 0 to update, 0 to prune" in again.stdout, again.stdout
        doc = json.loads(gitops_job(kubeconfig, "plan", "--repo", str(repo_root), "-o", "json").stdout)
        assert [o["source"] for o in doc["objects"]] == [
            f"demo/templates/configmap.yaml in chart demo 1.1.0 ({server.url})"
        ]


def test_a_redirect_to_another_allowed_host_gets_no_token_or_password(tmp_path: Path) -> None:
    """A registry's bearer token (or a repository's password) is for its own origin: a redirect to another allowed
    host — where registries send blob downloads — is followed without it."""
    from gitops_job.chartrepo import Basic, Client

    with chart_server(tmp_path / "a") as origin, chart_server(tmp_path / "b") as other:
        (other.root / "blob").write_bytes(b"layer")
        origin.redirects["/v2/charts/demo/blobs/sha256:1"] = f"{other.url}/blob"
        password = Basic(origin.url, "u", "planted-redirect-password")
        client = Client(allowed=lambda _url: True, auth=lambda url: password if url.startswith(origin.url) else None)
        body, _ = client.get(f"{origin.url}/v2/charts/demo/blobs/sha256:1", headers={"Authorization": "Bearer t0k3n"})
    assert body == b"layer"
    assert origin.requests == [("/v2/charts/demo/blobs/sha256:1", "Bearer t0k3n")]  # the caller's token wins
    assert other.requests == [("/blob", None)]
