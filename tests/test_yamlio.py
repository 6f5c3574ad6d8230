"""yamlio's fast builder against PyYAML's constructor: every document gives the same value (an alias the same object
as its anchor) or the same refusal, whichever of the two builds it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gitops_job import yamlio
from gitops_job.errors import RenderError

SAME = [
    pytest.param("a: 1\nb: [x, 2, 3.5, true, null, '7', ~]\nc: {d: e}\n", id="scalars"),
    pytest.param("a: '1'\nb: \"x\"\nc: |\n  line\n  two\nd: >\n  folded\n", id="quoted-and-blocks"),
    pytest.param("0: a\n1.5: b\ntrue: c\n~: d\n", id="scalar-keys"),
    pytest.param("x: 0x1f\ny: 0o17\nz: 1_000\nw: -.5\nv: +12\n", id="number-forms"),
    pytest.param("x: yes\ny: off\nz: 'no'\n", id="yaml-1.1-booleans"),
    pytest.param("x: !!str 12\ny: !!int '3'\nz: !!float 1\n", id="explicit-tags"),
    pytest.param("l: &l {k: v}\nm: *l\nn: [*l, *l]\n", id="aliases"),
    pytest.param("base: &b {a: 1, b: 2}\nmine:\n  <<: *b\n  b: 3\n", id="merge-key"),
    pytest.param("o: !!omap [{a: 1}, {b: 2}]\n", id="omap"),
    pytest.param("p: !!pairs [{a: 1}, {a: 2}]\n", id="pairs"),
    pytest.param("? [a, b]\n: c\n", id="sequence-key"),  # refused by both: unhashable key
    pytest.param("a: 1\na: 2\n", id="duplicate"),
    pytest.param("a: 1\nb: {c: 1, c: 2}\n", id="nested-duplicate"),
    pytest.param("1: a\n1.0: b\n", id="duplicate-by-value"),
    pytest.param("t: 2024-01-01\n", id="timestamp"),
    pytest.param("b: !!binary aGk=\n", id="binary"),
    pytest.param("s: !!set {a, b}\n", id="set"),
    pytest.param("f: .inf\n", id="infinity"),
    pytest.param("x: !!python/object/apply:os.system ['true']\n", id="python-tag"),
    pytest.param("x: !custom 1\n", id="unknown-tag"),
    pytest.param("a: 1\n---\n---\n~\n---\n[x]\n", id="documents"),
]


def constructor(text: str) -> list[tuple[Any, int]] | str:
    """What PyYAML's constructor (through ``_Loader``) builds, document by document, or the reason it refuses."""
    loader = yamlio._Loader(text)
    out = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = loader.construct_document(node)
            if data is not None:
                out.append((data, node.start_mark.line + 1))
    except yaml.YAMLError as e:
        return str(getattr(e, "problem", e)).split(" (first at")[0]
    finally:
        loader.dispose()
    return out


def fast(text: str) -> list[tuple[Any, int]] | str:
    try:
        return yamlio.load_documents(text, "f.yaml")
    except RenderError as e:
        return e.reason


@pytest.mark.parametrize("text", SAME)
def test_fast_builder_agrees_with_the_constructor(text: str) -> None:
    expected, got = constructor(text), fast(text)
    if isinstance(expected, str):
        assert isinstance(got, str), got
        assert expected.split(":")[0] in got
    else:
        assert got == expected


def test_alias_is_the_anchors_object_as_the_constructor_builds_it() -> None:
    [(doc, _)] = fast("l: &l {k: v}\nm: *l\n")
    assert doc["l"] is doc["m"]


@pytest.mark.parametrize("text", ["&a [*a]\n", "&a {k: *a}\n", "- x\n- &a {k: [1, *a]}\n"])
def test_recursive_alias_is_refused_naming_the_line(text: str) -> None:
    with pytest.raises(RenderError) as info:
        yamlio.load_documents(text, "f.yaml")
    assert "recursive alias" in info.value.reason
    assert info.value.where == f"f.yaml:{text.count(chr(10))}"
