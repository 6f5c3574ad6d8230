"""images/annotations.py: Flux v1 workload annotations read from rendered workloads (both prefixes Flux v1 read, its
filter.fluxcd.io form, tag_all), and the errors that name file:line and the workload. Pure: tables."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_job.errors import ErrorGroup, ImageError
from gitops_job.identity import ObjectId
from gitops_job.images import annotations as a
from gitops_job.images.policy import Kind, select
from gitops_job.model import RenderedObject, Source

TAGS = ["1.0.0", "1.2.0", "1.2.5", "2.0.0", "3.10.1", "main-abc", "latest"]


def workload(
    annotations: dict[str, Any] | None = None,
    *,
    kind: str = "Deployment",
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
) -> RenderedObject:
    pod: dict[str, Any] = {"containers": containers or [{"name": "web", "image": "ghcr.io/acme/web:1.2.0"}]}
    if init is not None:
        pod["initContainers"] = init
    template = {"spec": pod}
    spec: dict[str, Any] = (
        {"jobTemplate": {"spec": {"template": template}}} if kind == "CronJob" else {"template": template}
    )
    group = "batch" if kind in ("Job", "CronJob") else "apps"
    body: dict[str, Any] = {
        "apiVersion": f"{group}/v1",
        "kind": kind,
        "metadata": {"name": "web", "namespace": "apps", **({"annotations": annotations} if annotations else {})},
        "spec": spec,
    }
    return RenderedObject(ObjectId.of(body), body, Source("apps/web.yaml", 3), "apps")


def parse(annotations: dict[str, Any] | None = None, **kw: Any) -> a.WorkloadControls:
    controls = a.parse(workload(annotations, **kw))
    assert controls is not None
    return controls


@pytest.mark.parametrize(
    ("annotations", "automated", "lock", "ignore"),
    [
        pytest.param({}, False, None, a.Ignore.NO, id="none"),
        pytest.param({"fluxcd.io/automated": "true"}, True, None, a.Ignore.NO, id="automated"),
        pytest.param({"fluxcd.io/automated": "false"}, False, None, a.Ignore.NO, id="automated-false"),
        pytest.param({"flux.weave.works/automated": "true"}, True, None, a.Ignore.NO, id="old-prefix"),
        pytest.param(
            {"fluxcd.io/automated": "true", "flux.weave.works/automated": "true"}, True, None, a.Ignore.NO,
            id="both-prefixes-agree",
        ),
        pytest.param(
            {"fluxcd.io/locked": "true", "fluxcd.io/locked_msg": "incident 42", "fluxcd.io/locked_user": "ana"},
            False, a.Lock("incident 42", "ana"), a.Ignore.NO, id="locked",
        ),
        pytest.param({"fluxcd.io/locked": "true"}, False, a.Lock("", ""), a.Ignore.NO, id="locked-no-reason"),
        pytest.param(
            {"fluxcd.io/locked": "false", "fluxcd.io/locked_msg": "old"}, False, None, a.Ignore.NO,
            id="unlocked-with-stale-message",
        ),
        pytest.param(
            {"flux.weave.works/locked": "true", "flux.weave.works/locked_user": "bo"}, False, a.Lock("", "bo"),
            a.Ignore.NO, id="locked-old-prefix",
        ),
        pytest.param({"fluxcd.io/ignore": "true"}, False, None, a.Ignore.YES, id="ignore"),
        pytest.param({"fluxcd.io/ignore": "sync_only"}, False, None, a.Ignore.SYNC_ONLY, id="ignore-sync-only"),
        pytest.param({"example.com/automated": "true"}, False, None, a.Ignore.NO, id="other-prefix-not-ours"),
    ],
)  # fmt: skip
def test_controls(annotations: dict[str, str], automated: bool, lock: a.Lock | None, ignore: a.Ignore) -> None:
    c = parse(annotations)
    assert (c.automated, c.lock, c.ignore, c.locked) == (automated, lock, ignore, lock is not None)


@pytest.mark.parametrize(
    ("annotations", "kind", "chosen"),
    [
        pytest.param({}, Kind.GLOB, "main-abc", id="no-filter-every-tag"),  # glob:* over mixed tags: the lexical max
        pytest.param({"fluxcd.io/tag.web": "semver:~1.2"}, Kind.SEMVER, "1.2.5", id="semver"),
        pytest.param({"fluxcd.io/tag.web": "glob:1.*"}, Kind.GLOB, "1.2.5", id="glob"),
        pytest.param({"fluxcd.io/tag.web": "1.*"}, Kind.GLOB, "1.2.5", id="plain-is-glob"),
        pytest.param({"fluxcd.io/tag.web": "regex:^3\\."}, Kind.REGEX, "3.10.1", id="regex"),
        pytest.param({"fluxcd.io/tag.web": "regexp:^2"}, Kind.REGEX, "2.0.0", id="regexp"),
        pytest.param({"flux.weave.works/tag.web": "semver:^1"}, Kind.SEMVER, "1.2.5", id="old-prefix"),
        pytest.param({"filter.fluxcd.io/web": "semver:<2"}, Kind.SEMVER, "1.2.5", id="filter-prefix"),
        pytest.param({"fluxcd.io/tag_all": "semver:2.x"}, Kind.SEMVER, "2.0.0", id="tag-all"),
        pytest.param(
            {"fluxcd.io/tag_all": "semver:2.x", "fluxcd.io/tag.web": "glob:3.*"}, Kind.GLOB, "3.10.1",
            id="container-beats-tag-all",
        ),
    ],
)  # fmt: skip
def test_tag_filters(annotations: dict[str, str], kind: Kind, chosen: str) -> None:
    (web,) = parse(annotations).containers
    assert web.filter.kind is kind
    assert select(web.filter, TAGS).winner == chosen


def test_containers_and_init_containers_with_their_own_filters() -> None:
    c = parse(
        {"fluxcd.io/tag.init": "regex:^3.10", "fluxcd.io/tag.app": "semver:~1.2"},
        containers=[{"name": "app", "image": "ghcr.io/acme/app:1.2.0"}, {"name": "side", "image": "envoy:v1.30"}],
        init=[{"name": "init", "image": "alpine:3.5"}],
    )
    got = [(x.name, x.init, x.repository, x.tag, x.filter.text, x.filter_key, x.path) for x in c.containers]
    assert got == [
        ("init", True, "alpine", "3.5", "v1 regex:^3.10", "fluxcd.io/tag.init",
         ("spec", "template", "spec", "initContainers", 0, "image")),
        ("app", False, "ghcr.io/acme/app", "1.2.0", "v1 semver:~1.2", "fluxcd.io/tag.app",
         ("spec", "template", "spec", "containers", 0, "image")),
        ("side", False, "envoy", "v1.30", "v1 glob:*", "", ("spec", "template", "spec", "containers", 1, "image")),
    ]  # fmt: skip
    assert c.container("side").image == "envoy:v1.30"
    with pytest.raises(ImageError, match="has no container 'nope'; its containers are init, app, side"):
        c.container("nope")


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Deployment", ("spec", "template", "spec")),
        ("StatefulSet", ("spec", "template", "spec")),
        ("DaemonSet", ("spec", "template", "spec")),
        ("Job", ("spec", "template", "spec")),
        ("CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
    ],
)
def test_every_workload_kind(kind: str, path: tuple[str, ...]) -> None:
    c = parse({"fluxcd.io/automated": "true"}, kind=kind)
    assert c.automated and c.containers[0].path == (*path, "containers", 0, "image")


def test_not_a_workload_is_none() -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "annotations": {"fluxcd.io/x": "1"}}}
    assert a.parse(RenderedObject(ObjectId.of(body), body, Source("a.yaml", 1), "s")) is None
    # a custom resource that happens to be called Deployment is not one
    body = {"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    assert a.parse(RenderedObject(ObjectId.of(body), body, Source("a.yaml", 1), "s")) is None


@pytest.mark.parametrize(
    ("annotations", "containers", "message"),
    [
        pytest.param(
            {"fluxcd.io/automated": "yes"}, None, r'annotation fluxcd.io/automated: \'yes\' must be "true" or "false"',
            id="not-a-boolean",
        ),
        pytest.param(
            {"fluxcd.io/locked": True}, None, r"annotation fluxcd.io/locked: 'True' must be", id="unquoted-boolean",
        ),
        pytest.param(
            {"fluxcd.io/ignore": "maybe"}, None, r'must be "true", "false" or "sync_only"', id="bad-ignore",
        ),
        pytest.param(
            {"fluxcd.io/tag.wbe": "semver:~1"}, None,
            r"annotation fluxcd.io/tag.wbe names no container of this workload; its containers are web",
            id="typo-in-container",
        ),
        pytest.param(
            {"fluxcd.io/tag.web": "semver:~1.x.x.x"}, None, r"annotation fluxcd.io/tag.web.*improper semver range",
            id="bad-range",
        ),
        pytest.param(
            {"fluxcd.io/tag.web": "regex:(?=x)"}, None, r"annotation fluxcd.io/tag.web.*not Go \(RE2\) syntax",
            id="bad-regex",
        ),
        pytest.param(
            {"fluxcd.io/automated": "true", "flux.weave.works/automated": "false"}, None,
            r"fluxcd.io/automated: 'true' and flux.weave.works/automated: 'false' set the same control to two values",
            id="two-prefixes-disagree",
        ),
        pytest.param(None, [{"name": "web"}], r"container 'web' has no image", id="no-image"),
        pytest.param(None, [{"image": "x:1"}], r"spec.template.spec.containers\[0\] has no name", id="no-name"),
    ],
)  # fmt: skip
def test_errors_name_the_file_line_and_the_workload(
    annotations: dict[str, Any] | None, containers: list[dict[str, Any]] | None, message: str
) -> None:
    with pytest.raises(ImageError, match=message) as e:
        parse(annotations, containers=containers)
    assert str(e.value).startswith("images: apps/web.yaml:3: Deployment/apps/web")


def test_parse_all_reports_every_bad_workload() -> None:
    good = workload({"fluxcd.io/automated": "true"})
    bad = workload({"fluxcd.io/automated": "yes"})
    assert [w.id.name for w in a.parse_all([good])] == ["web"]
    with pytest.raises(ErrorGroup) as e:
        a.parse_all([bad, good, bad])
    assert len(e.value.errors) == 2


def test_key_keeps_the_prefix_in_use() -> None:
    c = parse({"flux.weave.works/locked": "true", "filter.fluxcd.io/web": "glob:*"})
    assert c.key(a.Control.LOCKED) == "flux.weave.works/locked"
    assert c.key("tag.web") == "filter.fluxcd.io/web"
    assert c.key(a.Control.AUTOMATED) == "fluxcd.io/automated"


@pytest.mark.parametrize(
    ("image", "repository", "tag"),
    [
        ("ghcr.io/acme/web:1.2.0", "ghcr.io/acme/web", "1.2.0"),
        ("localhost:5000/web:1", "localhost:5000/web", "1"),
        ("localhost:5000/web", "localhost:5000/web", ""),
        ("web@sha256:abc", "web", ""),
        ("web:1.0@sha256:abc", "web", "1.0"),
    ],
)
def test_split_image(image: str, repository: str, tag: str) -> None:
    assert a.split_image(image) == (repository, tag)


def _ids(names: list[tuple[str, str, str]]) -> list[a.WorkloadControls]:
    out = []
    for kind, ns, name in names:
        obj = workload(kind=kind)
        body = {**obj.body, "metadata": {"name": name, "namespace": ns}}
        controls = a.parse(RenderedObject(ObjectId.of(body), body, obj.source, "apps"))
        assert controls is not None
        out.append(controls)
    return out


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Deployment/apps/web", "Deployment/apps/web"),
        ("apps:deployment/web", "Deployment/apps/web"),  # fluxctl's form
        ("statefulset/db", "StatefulSet/apps/db"),
        ("db", "StatefulSet/apps/db"),
    ],
)
def test_find_a_workload(ref: str, expected: str) -> None:
    ws = _ids([("Deployment", "apps", "web"), ("Deployment", "other", "web"), ("StatefulSet", "apps", "db")])
    assert str(a.find(ws, ref).id) == expected


def test_find_says_what_there_is() -> None:
    ws = _ids([("Deployment", "apps", "web"), ("Deployment", "other", "web")])
    with pytest.raises(ImageError, match=r"'web' names 2 workloads .*write Kind/namespace/name"):
        a.find(ws, "web")
    with pytest.raises(ImageError, match=r"no workload 'api'; the workloads are: Deployment/apps/web"):
        a.find(ws, "api")


# -- what each control changes, and release's refusal of a locked workload (the row "a locked workload with a newer
# image": not touched, the refusal says it is locked, why and by whom) ----------------------------------------------
def test_control_changes_keep_the_prefix_in_use_and_remove_every_key() -> None:
    c = parse({"flux.weave.works/locked": "true", "fluxcd.io/locked": "true", "fluxcd.io/locked_msg": "m",
               "flux.weave.works/automated": "true"})  # fmt: skip
    assert a.lock(c, "why", "ana") == {
        "flux.weave.works/locked": "true", "fluxcd.io/locked_msg": "why", "fluxcd.io/locked_user": "ana",
    }  # fmt: skip
    assert a.unlock(c) == {"flux.weave.works/locked": None, "fluxcd.io/locked": None, "fluxcd.io/locked_msg": None}
    assert a.automate(c) == {"flux.weave.works/automated": "true"}
    assert a.deautomate(c) == {"flux.weave.works/automated": None}
    assert a.automate(parse()) == {"fluxcd.io/automated": "true"} and a.deautomate(parse()) == {}


@pytest.mark.parametrize(
    ("annotations", "image", "force", "outcome"),
    [
        pytest.param({}, "ghcr.io/acme/web:1.3.0", False, "web", id="release"),
        pytest.param(
            {"fluxcd.io/locked": "true", "fluxcd.io/locked_msg": "1.3 leaks", "fluxcd.io/locked_user": "ana"},
            "ghcr.io/acme/web:1.3.0", False,
            "Deployment/apps/web: is locked by ana: 1.3 leaks; nothing was changed. Unlock it first", id="locked",
        ),
        pytest.param({"fluxcd.io/locked": "true"}, "ghcr.io/acme/web:1.3.0", False, "is locked; nothing was changed",
                     id="locked-without-reason"),
        pytest.param({"fluxcd.io/locked": "true"}, "ghcr.io/acme/web:1.3.0", True, "web", id="forced"),
        pytest.param({}, "ghcr.io/acme/api:1.0", False, "no container runs an image of ghcr.io/acme/api", id="other"),
        pytest.param({}, "ghcr.io/acme/web", False, "has no tag: write REPOSITORY:TAG", id="no-tag"),
    ],
)  # fmt: skip
def test_release_target(annotations: dict[str, str], image: str, force: bool, outcome: str) -> None:
    c = parse(annotations)
    if outcome == "web":
        assert a.release_target(c, image, force=force).name == "web"
        return
    with pytest.raises(ImageError, match=outcome.replace("(", r"\(")):
        a.release_target(c, image, force=force)
