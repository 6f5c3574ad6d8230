"""images/setters.py: a marked value rewritten as a splice of the original bytes — nothing else changes, verified by
re-parsing; the golden corpus under tests/golden/images/ (input and expected output per file)."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from gitops_job.errors import ImageError
from gitops_job.images import markers, setters
from gitops_job.images.markers import Style

GOLDEN = Path(__file__).parent / "golden" / "images"
INPUTS = sorted(p for p in GOLDEN.glob("*.yaml") if not p.name.endswith(".expected.yaml"))

# The new value of each marker, by (line, policy, part): what a policy chose.
BUMPS = {
    "deployment.yaml": {12: "ghcr.io/acme/web:1.3.0", 15: "ghcr.io/acme/sidecar:0.10.0"},
    "kustomization.yaml": {7: "registry.acme.io/web", 8: "1.10"},
    "values-crlf.yaml": {4: "2.1.0", 5: "sha256:bbbb"},
    "multi.yaml": {23: "ghcr.io/acme/job:3.2.0", 28: "ghcr.io/acme/init@sha256:cccc"},
}


def _read(path: Path) -> tuple[bytes, tuple[markers.Marker, ...]]:
    data = path.read_bytes()
    return data, markers.find(data.decode(), path.name)


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_golden_corpus(path: Path) -> None:
    """Each file comes back byte-identical to its expected output: the marked values changed, nothing else."""
    data, found = _read(path)
    bumps = BUMPS[path.name]
    values = [bumps.get(m.line, m.value) for m in found]
    out = setters.set_values(data, found, values)
    expected = path.with_name(path.stem + ".expected.yaml").read_bytes()
    assert out == expected
    lines = [d for d in difflib.ndiff(data.decode().splitlines(True), out.decode().splitlines(True)) if d[:1] in "+-"]
    assert len(lines) == 2 * len(bumps)  # one line out, one line in, per value


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_setting_every_current_value_back_is_byte_identical(path: Path) -> None:
    """Property: for every corpus file, splicing each marker's own value back gives the same bytes (the same
    object: nothing to write), and rendering its current value in its own style gives its exact source."""
    data, found = _read(path)
    assert found
    assert setters.set_values(data, found, [m.value for m in found]) is data
    for m in found:
        assert setters.render(m.value, m.style) == m.source
    for i, m in enumerate(found):  # and one at a time, through the splice itself (a value changed, then back)
        values = [v.value for v in found]
        values[i] = m.value + "x"
        changed = setters.set_values(data, found, values)
        again = markers.find(changed.decode(), path.name)
        assert setters.set_values(changed, again, [v.value for v in found]) == data


@pytest.mark.parametrize(
    ("value", "style", "source"),
    [
        ("1.2.4", Style.PLAIN, "1.2.4"),
        ("ghcr.io/acme/app:1.2.4", Style.PLAIN, "ghcr.io/acme/app:1.2.4"),
        ("1.10", Style.PLAIN, "'1.10'"),  # plain would be a number
        ("yes", Style.PLAIN, "'yes'"),  # a YAML 1.1 boolean
        ("1_000", Style.PLAIN, "'1_000'"),  # a YAML 1.1 integer
        ("60:30", Style.PLAIN, "'60:30'"),  # a YAML 1.1 sexagesimal number
        ("null", Style.PLAIN, "'null'"),
        ("it's", Style.SINGLE, "'it''s'"),
        ('a"b\\c', Style.DOUBLE, '"a\\"b\\\\c"'),
    ],
)
def test_render_keeps_the_style_and_the_string(value: str, style: Style, source: str) -> None:
    assert setters.render(value, style) == source


def test_a_plain_tag_that_would_read_as_a_number_is_quoted() -> None:
    data = b'newTag: 1.2.3 # {"$imagepolicy": "apps:web:tag"}\nother: 1\n'
    found = markers.find(data.decode(), "k.yaml")
    assert (
        setters.set_values(data, found, ["1.10"]) == b'newTag: \'1.10\' # {"$imagepolicy": "apps:web:tag"}\nother: 1\n'
    )


def test_a_file_changed_since_its_markers_were_read_is_refused() -> None:
    data = b'image: x:1 # {"$imagepolicy": "apps:web"}\n'
    found = markers.find(data.decode(), "d.yaml")
    with pytest.raises(ImageError, match="changed since"):
        setters.set_values(b'image: y:1 # {"$imagepolicy": "apps:web"}\n', found, ["x:2"])


def test_a_value_that_would_change_the_structure_is_refused() -> None:
    """A value written double-quoted cannot break out of its quotes; one that could (a forged marker whose source is
    not the scalar) is caught by the re-parse: nothing to write."""
    data = b'image: "x:1" # {"$imagepolicy": "apps:web"}\nother: 1\n'
    (m,) = markers.find(data.decode(), "d.yaml")
    assert setters.set_values(data, [m], ['x:2"\nother: 2']) == (
        b'image: "x:2\\"\\nother: 2" # {"$imagepolicy": "apps:web"}\nother: 1\n'
    )
    forged = markers.Marker(
        **{**m.__dict__, "start": m.start, "end": len(data) - 1, "source": data.decode()[m.start : -1]}
    )
    with pytest.raises(ImageError, match="nothing"):
        setters.set_values(data, [forged], ["x:2"])


def test_a_splice_that_drops_a_neighbour_is_refused_by_the_document_comparison() -> None:
    """The marked value reads back right, but a sibling vanished: only comparing whole documents catches it."""
    text = 'a: {image: x:1, b: 2} # {"$imagepolicy": "ns:p"}\n'
    (m,) = markers.find(text, "d.yaml")
    start = text.index("x:1")
    forged = markers.Marker(
        **{**m.__dict__, "start": start, "end": m.end, "source": text[start : m.end], "value": "x:1"}
        | {"paths": (("a", "image"),), "column": start + 1}
    )
    with pytest.raises(ImageError, match="changed more than the marked value"):
        setters.set_values(text.encode(), [forged], ["x:2"])
