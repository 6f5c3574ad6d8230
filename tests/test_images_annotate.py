"""images/annotate.py: a workload's annotations set or removed in its source file as a splice of the original
bytes — only the annotation lines change, verified by re-parsing; the golden corpus under tests/golden/annotations/
(input and expected output per file)."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from gitops_job.errors import ImageError
from gitops_job.identity import ObjectId
from gitops_job.images.annotate import edit_problem, set_annotations
from gitops_job.model import Source

GOLDEN = Path(__file__).parent / "golden" / "annotations"
INPUTS = sorted(p for p in GOLDEN.glob("*.yaml") if not p.name.endswith(".expected.yaml"))
WEB = ObjectId("apps", "Deployment", "apps", "web")

# What each corpus file gets: the workload and its changes (None: removed), and how many lines change.
CASES: dict[str, tuple[ObjectId, dict[str, str | None], int]] = {
    # lines added after the last annotation, before a column-0 comment; a value with ': ' and '<>' double-quoted
    "lock.yaml": (
        WEB,
        {"fluxcd.io/locked": "true", "fluxcd.io/locked_msg": "incident 42: hold 1.2.3",
         "fluxcd.io/locked_user": "Ana <ana@example.com>"},
        3,
    ),
    # no annotations: the block is added after labels, four-space indentation and CRLF kept
    "automate-crlf.yaml": (ObjectId("batch", "CronJob", "ops", "backup"), {"fluxcd.io/automated": "true"}, 2),
    # the old prefix removed from the second document only; the last annotation takes `annotations:` with it
    "unautomate-multi.yaml": (WEB, {"flux.weave.works/automated": None}, 2),
    # three keys removed (one a folded block scalar), the fourth stays
    "unlock.yaml": (
        ObjectId("apps", "StatefulSet", "", "db"),
        {"fluxcd.io/locked": None, "fluxcd.io/locked_msg": None, "fluxcd.io/locked_user": None},
        4,
    ),
    # `annotations:` with no value: filled in place
    "null-annotations.yaml": (ObjectId("apps", "DaemonSet", "", "agent"), {"fluxcd.io/tag.agent": "semver:~0.1"}, 1),
}  # fmt: skip


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_golden_corpus(path: Path) -> None:
    """Each file comes back byte-identical to its expected output: the annotation lines changed, nothing else."""
    workload, changes, changed_lines = CASES[path.name]
    data = path.read_bytes()
    out = set_annotations(data, path.name, workload, changes)
    assert out == path.with_name(path.stem + ".expected.yaml").read_bytes()
    diff = [d for d in difflib.ndiff(data.decode().splitlines(True), out.decode().splitlines(True)) if d[:1] in "+-"]
    assert len(diff) == changed_lines
    assert set_annotations(out, path.name, workload, changes) is out  # applied again: nothing to write


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_adding_then_removing_a_key_is_byte_identical(path: Path) -> None:
    """Property: for every corpus file and its workload, a new annotation added and removed again gives the very
    same bytes (with or without an annotations block to begin with), and setting what is there already returns the
    same object."""
    workload, _, _ = CASES[path.name]
    data = path.read_bytes()
    added = set_annotations(data, path.name, workload, {"example.com/note": "x: y"})
    assert added != data
    removed = set_annotations(added, path.name, workload, {"example.com/note": None})
    if path.name == "null-annotations.yaml":  # an empty `annotations:` is not kept once its last key goes
        assert removed == data.replace(b"  annotations:\n", b"")
    else:
        assert removed == data
    assert set_annotations(data, path.name, workload, {"example.com/absent": None}) is data


def test_an_existing_value_keeps_its_style() -> None:
    text = (
        b"kind: Deployment\nmetadata:\n  name: web\n  annotations:\n    a: 'false'   # kept\n    b: \"x\"\n    c: v\n"
    )
    out = set_annotations(
        text, "f.yaml", ObjectId("apps", "Deployment", "", "web"), {"a": "true", "b": "y", "c": "yes"}
    )
    assert out == text.replace(b"'false'", b"'true'").replace(b'"x"', b'"y"').replace(b"c: v", b"c: 'yes'")


def test_the_line_picks_one_of_two_documents() -> None:
    doc = "---\nkind: Deployment\nmetadata:\n  name: web\n"
    text = (doc + doc).encode()
    with pytest.raises(ImageError, match="is written 2 times in this file"):
        set_annotations(text, "f.yaml", ObjectId("apps", "Deployment", "", "web"), {"a": "1"})
    out = set_annotations(text, "f.yaml", ObjectId("apps", "Deployment", "", "web"), {"a": "1"}, line=6)
    assert out == (doc + doc + '  annotations:\n    a: "1"\n').encode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("kind: Deployment\nmetadata: {name: web}\n", r"f.yaml:2: metadata is written in flow style",
                     id="flow-metadata"),
        pytest.param("kind: Deployment\nmetadata:\n  name: web\n  annotations: {a: b}\n",
                     r"f.yaml:4: metadata.annotations is written in flow style", id="flow-annotations"),
        pytest.param("kind: Deployment\nmetadata:\n  name: web\n  annotations:\n    k: |\n      x\n",
                     r"f.yaml:5: annotation k is not a one-line value", id="block-scalar"),
        pytest.param("kind: Deployment\nmetadata:\n  name: api\n",
                     r"f.yaml: Deployment/web is not written in this file", id="not-here"),
        pytest.param("kind: Deployment\nmetadata:\n  name: web\n  annotations: [a]\n",
                     r"f.yaml:4: metadata.annotations is not a mapping", id="not-a-mapping"),
        pytest.param("kind: Deployment\nmetadata:\n  name: web\n  x: [\n", r"images: f.yaml:5: not valid YAML",
                     id="invalid-yaml"),
    ],
)  # fmt: skip
def test_errors_name_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        set_annotations(text.encode(), "f.yaml", ObjectId("apps", "Deployment", "", "web"), {"k": "v"})


@pytest.mark.parametrize(
    ("source", "renderer", "problem"),
    [
        (Source("apps/web.yaml", 3), "plain", None),
        (Source("apps/web.yml", 1), "jinja", None),  # a plain file in a Jinja2 stack
        (Source("apps/web.yaml.j2", 1), "jinja", "rendered from the Jinja2 template apps/web.yaml.j2"),
        (Source("apps/kustomization.yaml"), "kustomize", "it is kustomize output (from apps/kustomization.yaml)"),
        (Source("charts/web/templates/d.yaml"), "helm", "it is helm output (from charts/web/templates/d.yaml)"),
    ],
)
def test_edit_problem_names_the_source(source: Source, renderer: str, problem: str | None) -> None:
    got = edit_problem(source, renderer)
    assert got is None if problem is None else (got is not None and problem in got)
