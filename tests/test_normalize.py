"""What the plan shows of an object, table-driven: :func:`normalise` drops server noise and nothing else, JSON pointers
for ``ignoreDifferences``, and :func:`respecting_ignored` (what apply writes for an ignored field). Pure."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitops_job.model import ANNOTATION_REVISION, LABEL_STACK, LABEL_TARGET
from gitops_job.reconcile.normalize import NOISE, normalise, pointer_path, respecting_ignored

META = {"name": "web", "namespace": "apps"}


def obj(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**META, **meta}, "data": {"a": "1"}}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(obj(), obj(), id="nothing-to-drop"),
        pytest.param(
            obj(
                managedFields=[{"manager": "kubectl"}],
                resourceVersion="7",
                uid="u",
                generation=3,
                creationTimestamp="2026-01-01T00:00:00Z",
                selfLink="/api/v1/x",
            ),
            obj(),
            id="every-server-set-metadata-field",
        ),
        pytest.param({**obj(), "status": {"phase": "Active"}}, obj(), id="status"),
        pytest.param(obj(annotations={}, labels={}), obj(), id="empty-labels-and-annotations"),
        pytest.param(obj(annotations={"a": "b"}), obj(annotations={"a": "b"}), id="annotations-kept"),
        pytest.param(obj(labels={"uid": "x"}), obj(labels={"uid": "x"}), id="a-label-named-like-noise"),
        pytest.param(
            {**obj(), "spec": {"status": "kept", "generation": 2}},
            {**obj(), "spec": {"status": "kept", "generation": 2}},
            id="noise-names-below-the-root-kept",
        ),
        pytest.param({"kind": "X", "metadata": "not-a-map"}, {"kind": "X", "metadata": "not-a-map"}, id="odd-metadata"),
        pytest.param({"kind": "X"}, {"kind": "X"}, id="no-metadata"),
        pytest.param(
            obj(finalizers=["kubernetes"], ownerReferences=[{"uid": "o"}]),
            obj(finalizers=["kubernetes"], ownerReferences=[{"uid": "o"}]),
            id="finalizers-and-owners-kept",
        ),
    ],
)
def test_normalise(given: dict[str, Any], expected: dict[str, Any]) -> None:
    untouched = copy.deepcopy(given)
    assert normalise(given) == expected
    assert given == untouched  # a copy: the input is never changed


@pytest.mark.parametrize(
    ("noise", "expected"),
    [
        pytest.param((), {**obj(uid="u"), "status": {}}, id="no-rules"),
        pytest.param((("status",),), obj(uid="u"), id="one-rule"),
        pytest.param((("metadata", "uid"), ("metadata", "nope"), ("spec", "x")), {**obj(), "status": {}}, id="missing"),
        pytest.param((("data", "a"),), {**obj(uid="u"), "data": {}, "status": {}}, id="any-path"),
    ],
)
def test_normalise_with_other_noise(noise: tuple[tuple[str, ...], ...], expected: dict[str, Any]) -> None:
    assert normalise({**obj(uid="u"), "status": {}}, noise) == expected


def test_noise_is_the_documented_list() -> None:
    assert [".".join(p) for p in NOISE] == [
        "metadata.managedFields", "metadata.resourceVersion", "metadata.uid", "metadata.generation",
        "metadata.creationTimestamp", "metadata.selfLink", "status",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("pointer", "path"),
    [
        pytest.param("/spec/replicas", ["spec", "replicas"], id="plain"),
        pytest.param(
            "/metadata/labels/app.kubernetes.io~1name",
            ["metadata", "labels", "app.kubernetes.io/name"],
            id="escaped-slash",
        ),
        pytest.param("/a~0b", ["a~b"], id="escaped-tilde"),
        pytest.param("/a~01", ["a~1"], id="tilde-then-one-is-not-a-slash"),
        pytest.param("/spec/containers/0/image", ["spec", "containers", "0", "image"], id="index"),
        pytest.param("/", [""], id="empty-key"),
    ],
)
def test_pointer_path(pointer: str, path: list[str]) -> None:
    assert pointer_path(pointer) == path


@pytest.mark.parametrize("pointer", ["spec/replicas", "", "~1spec"])
def test_pointer_path_must_start_with_a_slash(pointer: str) -> None:
    with pytest.raises(ValueError, match=r"JSON pointer must start with '/'"):
        pointer_path(pointer)


def deploy(replicas: int | None, **labels: str) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "web", "labels": labels}, "spec": {"template": {}}}
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


OWN = {LABEL_TARGET: "t", LABEL_STACK: "app"}


@pytest.mark.parametrize(
    ("desired", "live", "ignore", "expected"),
    [
        pytest.param(deploy(1), None, [["spec", "replicas"]], deploy(1), id="new-object-as-rendered"),
        pytest.param(deploy(1), deploy(5), [], deploy(1), id="nothing-ignored"),
        pytest.param(deploy(1), deploy(5), [["spec", "replicas"]], deploy(5), id="live-value-kept"),
        pytest.param(deploy(1), deploy(None), [["spec", "replicas"]], deploy(None), id="left-out-where-live-has-none"),
        pytest.param(deploy(None), deploy(5), [["spec", "replicas"]], deploy(None), id="not-set-stays-unset"),
        pytest.param(
            deploy(1, **OWN), deploy(1, **{LABEL_TARGET: "x", LABEL_STACK: "y"}), [["metadata", "labels"]],
            deploy(1, **OWN), id="ownership-labels-never-taken-from-live",
        ),
        pytest.param(
            deploy(1, **OWN, tier="web"), deploy(1, tier="db"), [["metadata", "labels"]],
            deploy(1, **OWN, tier="db"), id="other-labels-taken-from-live",
        ),
    ],
)  # fmt: skip
def test_respecting_ignored(
    desired: dict[str, Any], live: dict[str, Any] | None, ignore: list[list[str]], expected: dict[str, Any]
) -> None:
    untouched = copy.deepcopy(desired)
    assert respecting_ignored(desired, live, ignore) == expected
    assert desired == untouched


def test_respecting_ignored_keeps_the_revision_stamp_of_the_manifest() -> None:
    desired = {"metadata": {"name": "w", "annotations": {ANNOTATION_REVISION: "new", "a": "mine"}}}
    live = {"metadata": {"name": "w", "annotations": {ANNOTATION_REVISION: "old", "a": "theirs"}}}
    out = respecting_ignored(desired, live, [["metadata", "annotations"]])
    assert out == {"metadata": {"name": "w", "annotations": {ANNOTATION_REVISION: "new", "a": "theirs"}}}
