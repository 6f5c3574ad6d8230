"""Flux HelmReleases rendered with helm template (gitops_job.render.helmrelease): its pure rules by tables, then each
source kind against real servers — an HTTP chart repository and docker-registry on loopback, a chart in a checkout —
with valuesFrom, targetPath, optional, post-renderers and the CRD policies. No cluster is needed."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_job.config.load import Target
from gitops_job.config.sources import Sources
from gitops_job.errors import RenderError
from gitops_job.identity import ObjectId
from gitops_job.model import ANNOTATION_SSA, RenderedObject
from gitops_job.render import charts
from gitops_job.render.documents import parse_objects
from gitops_job.render.helmrelease import RenderedRelease, merge, release_name, render_helmrelease, set_path, typed
from tests.chartrepo import ChartServer, chart_dir, chart_server, helm_push, package
from tests.registries import RegistryServer, docker_registry

ACCESS = charts.ChartAccess(Sources(allow_hosts=("127.0.0.1",)))
TARGET = Target("test")


@pytest.fixture(autouse=True)
def fresh_run() -> Iterator[None]:
    charts.forget()
    yield
    charts.forget()


# --- pure rules ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "target_namespace", "explicit", "expected"),
    [
        ("podinfo", None, None, "podinfo"),
        ("podinfo", "apps", None, "apps-podinfo"),
        ("podinfo", "apps", "web", "web"),
        ("a" * 30, "b" * 30, None, "b" * 30 + "-" + "a" * 9 + "-8a6b35e5cb6c"),  # Flux shortens past 53 characters
    ],
)
def test_release_name_follows_flux(
    name: str, target_namespace: str | None, explicit: str | None, expected: str
) -> None:
    got = release_name(name, target_namespace, explicit)
    if len(expected) > 53 or "-8a6b" in expected:
        import hashlib

        full = f"{target_namespace}-{name}"
        expected = f"{full[:40]}-{hashlib.sha256(full.encode()).hexdigest()[:12]}"
        assert len(got) == 53
    assert got == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("false", False),
        ("null", None),
        ("42", 42),
        ("-7", -7),
        ("007", "007"),
        ("1.5", "1.5"),
        ("'42'", "42"),
        ('"true"', "true"),
        ("hello", "hello"),
    ],
)
def test_target_path_values_are_typed_like_helm_set(text: str, value: Any) -> None:
    assert typed(text) == value


def test_set_path_builds_mappings_lists_and_escaped_keys() -> None:
    values: dict[str, Any] = {"a": {"keep": 1}}
    set_path(values, "a.b.c", 1, "here")
    set_path(values, "list[1].name", "x", "here")
    set_path(values, r"annotations.example\.com/key", "v", "here")
    assert values == {
        "a": {"keep": 1, "b": {"c": 1}},
        "list": [None, {"name": "x"}],
        "annotations": {"example.com/key": "v"},
    }
    with pytest.raises(RenderError, match="empty part"):
        set_path(values, "a..b", 1, "here")


def test_merge_is_flux_merge_maps() -> None:
    assert merge({"a": {"x": 1, "y": [1]}, "b": 1}, {"a": {"y": [2], "z": 3}, "c": 4}) == {
        "a": {"x": 1, "y": [2], "z": 3},
        "b": 1,
        "c": 4,
    }


# --- rendering -------------------------------------------------------------------------------------------------------


def objects(text: str) -> list[RenderedObject]:
    return parse_objects(text, "apps/release.yaml", "apps")


def hr(spec: dict[str, Any], name: str = "demo", namespace: str = "flux-apps") -> str:
    body = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return yaml.safe_dump(body)


def run(text: str, **kw: Any) -> RenderedRelease:
    found = objects(text)
    release = next(o for o in found if o.id.kind == "HelmRelease")
    return render_helmrelease(release, found, target=TARGET, access=kw.pop("access", ACCESS), **kw)


def by_kind(rendered: RenderedRelease) -> dict[str, RenderedObject]:
    return {o.id.kind: o for o in rendered.objects}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ChartServer]:
    with chart_server(tmp_path / "served") as server:
        server.publish({"demo": ["1.0.0", "1.4.2", "2.0.0"]})
        yield server


def helm_repository(url: str, **spec: Any) -> str:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": "flux-system"},
        "spec": {"url": url, **spec},
    }
    return yaml.safe_dump(body)


CHART_SPEC = {
    "spec": {
        "chart": "demo",
        "version": "^1.0",
        "sourceRef": {"kind": "HelmRepository", "name": "charts", "namespace": "flux-system"},
    }
}


def test_a_helmrelease_from_an_http_helmrepository_with_values_from_and_flux_labels(
    tmp_path: Path, served: ChartServer
) -> None:
    secret = base64.b64encode(b"super-planted").decode()
    text = "\n---\n".join(
        [
            helm_repository(served.url),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base, namespace: flux-apps}\n"
            "data:\n  values.yaml: |\n    greeting: from-configmap\n    extra: {a: 1, b: 2}\n",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: flux-apps}\n"
            f"data: {{token: {secret}}}\n",
            hr(
                {
                    "chart": CHART_SPEC,
                    "targetNamespace": "apps",
                    "valuesFrom": [
                        {"kind": "ConfigMap", "name": "base"},
                        {"kind": "Secret", "name": "token", "valuesKey": "token", "targetPath": "extra.token"},
                        {"kind": "ConfigMap", "name": "absent", "optional": True},
                        {"kind": "ConfigMap", "name": "base", "valuesKey": "nope", "optional": True},
                    ],
                    "values": {"extra": {"b": 3}},
                    "dependsOn": [{"name": "infra", "namespace": "flux-system"}, {"name": "db"}],
                }
            ),
        ]
    )
    rendered = run(text)
    assert rendered.release_name == "apps-demo" and rendered.namespace == "apps"
    assert rendered.chart == f"demo 1.4.2 ({served.url})"
    cm = by_kind(rendered)["ConfigMap"]
    assert cm.body["metadata"]["name"] == "apps-demo-settings"
    assert cm.body["metadata"]["namespace"] == "apps"
    assert cm.body["data"]["greeting"] == "from-configmap"
    assert yaml.safe_load(cm.body["data"]["extra"]) == {"a": 1, "b": 3, "token": "super-planted"}  # values win
    assert cm.body["metadata"]["labels"] == {
        "helm.toolkit.fluxcd.io/name": "demo",
        "helm.toolkit.fluxcd.io/namespace": "flux-apps",
    }
    assert str(cm.source) == f"demo/templates/configmap.yaml in chart demo 1.4.2 ({served.url})"
    assert cm.stack == "apps"
    assert rendered.depends_on == (
        ObjectId("helm.toolkit.fluxcd.io", "HelmRelease", "flux-system", "infra"),
        ObjectId("helm.toolkit.fluxcd.io", "HelmRelease", "flux-apps", "db"),
    )
    crd = by_kind(rendered)["CustomResourceDefinition"]  # install Create (default), upgrade Skip (default)
    assert crd.body["metadata"]["annotations"] == {ANNOTATION_SSA: "IfNotPresent"}


@pytest.mark.parametrize(
    ("install", "upgrade", "crd", "annotated"),
    [("Skip", None, False, False), ("Create", "CreateReplace", True, False), ("CreateReplace", "Create", True, True)],
)
def test_crd_policies(served: ChartServer, install: str, upgrade: str | None, crd: bool, annotated: bool) -> None:
    spec: dict[str, Any] = {"chart": CHART_SPEC, "install": {"crds": install}}
    if upgrade:
        spec["upgrade"] = {"crds": upgrade}
    kinds = by_kind(run(helm_repository(served.url) + "---\n" + hr(spec)))
    assert ("CustomResourceDefinition" in kinds) is crd
    if crd:
        assert (
            ANNOTATION_SSA in (kinds["CustomResourceDefinition"].body["metadata"].get("annotations") or {})
        ) is annotated


def test_a_missing_values_from_is_an_error_naming_it(served: ChartServer) -> None:
    text = (
        helm_repository(served.url)
        + "---\n"
        + hr({"chart": CHART_SPEC, "valuesFrom": [{"kind": "Secret", "name": "live-only"}]})
    )
    with pytest.raises(RenderError) as info:
        run(text)
    assert str(info.value).startswith(
        "render: apps/release.yaml:9: HelmRelease/flux-apps/demo: spec.valuesFrom[0]: Secret/flux-apps/live-only "
        "is not among the objects rendered with it"
    )
    assert served.requests == []  # values are read before any fetch


def test_post_renderers_patch_the_output(served: ChartServer) -> None:
    patch = {"patch": "- op: add\n  path: /data/patched\n  value: 'yes'\n", "target": {"kind": "ConfigMap"}}
    spec = {"chart": CHART_SPEC, "postRenderers": [{"kustomize": {"patches": [patch]}}]}
    cm = by_kind(run(helm_repository(served.url) + "---\n" + hr(spec)))["ConfigMap"]
    assert cm.body["data"]["patched"] == "yes"
    assert cm.body["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "demo"
    assert "in chart demo 1.4.2" in str(cm.source)


def test_a_source_not_in_the_repository_is_named(served: ChartServer) -> None:
    with pytest.raises(
        RenderError, match=r"HelmRepository/flux-system/charts is not among the objects rendered with it"
    ):
        run(hr({"chart": CHART_SPEC}))


def test_a_host_not_allowed_fetches_nothing(served: ChartServer) -> None:
    access = charts.ChartAccess(Sources(allow_hosts=("example.com",)))
    with pytest.raises(RenderError, match=r"is not in sources\.allowHosts"):
        run(helm_repository(served.url) + "---\n" + hr({"chart": CHART_SPEC}), access=access)
    with pytest.raises(RenderError, match="fetches nothing"):
        run(
            helm_repository(served.url) + "---\n" + hr({"chart": CHART_SPEC}),
            access=charts.ChartAccess(ACCESS.sources, fetch=False),
        )
    assert served.requests == []


def test_a_chart_from_a_git_repository_path(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    chart = chart_dir(tmp_path / "src", "local", "0.3.0", crds=False)
    (checkout / "charts").mkdir(parents=True)
    chart.rename(checkout / "charts" / "local")
    (checkout / "charts" / "local" / "values-prod.yaml").write_text("greeting: prod\n")
    git = (
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\n"
        "metadata: {name: flux-system, namespace: flux-system}\nspec: {url: https://example.com/r.git}\n"
    )
    spec = {
        "chart": {
            "spec": {
                "chart": "./charts/local",
                "valuesFiles": ["values-prod.yaml"],
                "sourceRef": {"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"},
            }
        }
    }
    source = ObjectId("source.toolkit.fluxcd.io", "GitRepository", "flux-system", "flux-system")
    rendered = run(git + "---\n" + hr(spec), checkouts={source: checkout})
    cm = by_kind(rendered)["ConfigMap"]
    assert cm.body["data"] == {"greeting": "prod", "version": "0.3.0"}
    assert str(cm.source) == "charts/local/templates/configmap.yaml"
    assert rendered.chart == f"charts/local ({source})"
    with pytest.raises(RenderError, match=r"host example\.com is not in sources\.allowHosts"):  # another repository
        run(git + "---\n" + hr(spec))  # is cloned under the rules of sources (tests/test_flux_gitrepo.py)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    with docker_registry(tmp_path / "registry") as running:
        for version in ("1.0.0", "1.2.0"):
            helm_push(running, package(chart_dir(tmp_path / "src", "demo", version, crds=False), tmp_path / "pkg"))
        yield running


def test_an_oci_helmrepository_and_an_ocirepository_chart_ref(registry: RegistryServer) -> None:
    repo = helm_repository(f"oci://{registry.host}/charts", type="oci", insecure=True)
    rendered = run(repo + "---\n" + hr({"chart": CHART_SPEC}))
    assert by_kind(rendered)["ConfigMap"].body["data"]["version"] == "1.2.0"
    oci = yaml.safe_dump(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": "demo", "namespace": "flux-apps"},
            "spec": {"url": f"oci://{registry.host}/charts/demo", "insecure": True, "ref": {"semver": "~1.0.0"}},
        }
    )
    rendered = run(oci + "---\n" + hr({"chartRef": {"kind": "OCIRepository", "name": "demo"}}))
    assert by_kind(rendered)["ConfigMap"].body["data"]["version"] == "1.0.0"
    assert rendered.chart == f"demo 1.0.0 (oci://{registry.host}/charts/demo)"
    tagged = oci.replace("semver: ~1.0.0", "tag: 1.2.0")
    assert (
        by_kind(run(tagged + "---\n" + hr({"chartRef": {"kind": "OCIRepository", "name": "demo"}})))["ConfigMap"].body[
            "data"
        ]["version"]
        == "1.2.0"
    )


def test_a_helmchart_chart_ref_and_a_wrong_api_version(served: ChartServer) -> None:
    chart = yaml.safe_dump({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": "demo", "namespace": "flux-apps"}, "spec": CHART_SPEC["spec"] | {"version": "1.0.0"},
    })  # fmt: skip
    text = (
        helm_repository(served.url)
        + "---\n"
        + chart
        + "---\n"
        + hr({"chartRef": {"kind": "HelmChart", "name": "demo"}})
    )
    assert by_kind(run(text))["ConfigMap"].body["data"]["version"] == "1.0.0"
    old = hr({"chart": CHART_SPEC}).replace("helm.toolkit.fluxcd.io/v2", "helm.toolkit.fluxcd.io/v2beta1")
    with pytest.raises(
        RenderError, match=r"HelmRelease/flux-apps/demo: expected apiVersion helm\.toolkit\.fluxcd\.io/v2"
    ):
        run(helm_repository(served.url) + "---\n" + old)
