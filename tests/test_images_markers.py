"""images/markers.py: Flux v2 setter markers found in the original text, tied to their scalar's exact characters."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_job.errors import ImageError
from gitops_job.images import markers
from gitops_job.images.markers import Part, PolicyRef, Style

GOLDEN = Path(__file__).parent / "golden" / "images"


def found(text: str) -> list[tuple[int, int, str, str, Style, str, Part]]:
    return [(m.line, m.column, m.source, m.value, m.style, str(m.policy), m.part) for m in markers.find(text, "f.yaml")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'image: ghcr.io/acme/app:1.2.3 # {"$imagepolicy": "apps:app"}\n',
            [(1, 8, "ghcr.io/acme/app:1.2.3", "ghcr.io/acme/app:1.2.3", Style.PLAIN, "apps:app", Part.IMAGE)],
            id="plain",
        ),
        pytest.param(
            'image: \'ghcr.io/acme/app:1.2.3\' #{"$imagepolicy":"apps:app"}\n',
            [(1, 8, "'ghcr.io/acme/app:1.2.3'", "ghcr.io/acme/app:1.2.3", Style.SINGLE, "apps:app", Part.IMAGE)],
            id="single-quoted-no-spaces",
        ),
        pytest.param(
            'images:\n- name: app\n  newName: ghcr.io/acme/app # {"$imagepolicy": "apps:app:name"}\n'
            '  newTag: "1.2.3" # {"$imagepolicy": "apps:app:tag"}\n',
            [
                (3, 12, "ghcr.io/acme/app", "ghcr.io/acme/app", Style.PLAIN, "apps:app", Part.NAME),
                (4, 11, '"1.2.3"', "1.2.3", Style.DOUBLE, "apps:app", Part.TAG),
            ],
            id="kustomization-images",
        ),
        pytest.param(
            'image:\n  digest: sha256:abc # {"$imagepolicy": "apps:app:digest"}\n',
            [(2, 11, "sha256:abc", "sha256:abc", Style.PLAIN, "apps:app", Part.DIGEST)],
            id="helm-values-digest",
        ),
        pytest.param(
            '- ghcr.io/acme/a:1 # {"$imagepolicy": "apps:a"}\n- &x ghcr.io/acme/b:2 # {"$imagepolicy": "apps:b"}\n',
            [
                (1, 3, "ghcr.io/acme/a:1", "ghcr.io/acme/a:1", Style.PLAIN, "apps:a", Part.IMAGE),
                (2, 6, "ghcr.io/acme/b:2", "ghcr.io/acme/b:2", Style.PLAIN, "apps:b", Part.IMAGE),
            ],
            id="sequence-items-and-an-anchor",
        ),
        pytest.param(
            'a: {image: x:1} # {"$imagepolicy": "apps:a"}\n',
            [(1, 12, "x:1", "x:1", Style.PLAIN, "apps:a", Part.IMAGE)],
            id="flow-mapping",
        ),
        pytest.param(
            'note: "# {\\"$imagepolicy\\": \\"apps:a\\"}"\nblock: |\n  image: x:1 # {"$imagepolicy": "apps:a"}\n',
            [],
            id="inside-strings-is-not-a-marker",
        ),
        pytest.param("image: x:1 # an ordinary comment\n", [], id="no-marker"),
        pytest.param(
            'a: 1\r\n---\r\nimage: x:1 # {"$imagepolicy": "ns:p"}\r\n',
            [(3, 8, "x:1", "x:1", Style.PLAIN, "ns:p", Part.IMAGE)],
            id="crlf-second-document",
        ),
        pytest.param(
            '# café\nname: "Zoë €"\nimage: x:1 # {"$imagepolicy": "ns:p"}\n',
            [(3, 8, "x:1", "x:1", Style.PLAIN, "ns:p", Part.IMAGE)],
            id="non-ascii-before-it-counts-characters",
        ),
        pytest.param(
            '---\n---\n# nothing\n---\nimage: x:1 # {"$imagepolicy": "ns:p"}\n',
            [(5, 8, "x:1", "x:1", Style.PLAIN, "ns:p", Part.IMAGE)],
            id="empty-documents-before-it",
        ),
    ],
)
def test_find(text: str, expected: list[tuple[int, int, str, str, Style, str, Part]]) -> None:
    assert found(text) == expected
    for m in markers.find(text, "f.yaml"):
        assert text[m.start : m.end] == m.source


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        pytest.param(
            'image: # {"$imagepolicy": "apps:a"}\n  name: x\n', 1, "not after a scalar value", id="nested-value"
        ),
        pytest.param('spec: # {"$imagepolicy": "apps:a"}\n  image: x:1\n', 1, "not after a scalar value", id="mapping"),
        pytest.param('a: &x v\nb: *x # {"$imagepolicy": "apps:a"}\n', 2, "not after a scalar value", id="alias"),
        pytest.param('a: | # {"$imagepolicy": "apps:a"}\n  text\n', 1, "not after a scalar value", id="block-scalar"),
        pytest.param('# {"$imagepolicy": "apps:a"}\na: 1\n', 1, "not after a scalar value", id="own-line"),
        pytest.param('a: x:1 # {"$imagepolicy": "justname"}\n', 1, "NAMESPACE:NAME", id="no-namespace"),
        pytest.param('a: x:1 # {"$imagepolicy": "ns:p:sha"}\n', 1, "tag, name or digest", id="bad-part"),
        pytest.param('a: x:1 # {"$imagepolicy": 3}\n', 1, "must be a string", id="not-a-string"),
        pytest.param('a: x:1 # {"$imagepolicy": "ns:p",}\n', 1, "not JSON", id="not-json"),
        pytest.param('a: [x:1\nb: 2 # {"$imagepolicy": "ns:p"}\n', 2, "not valid YAML", id="invalid-yaml"),
    ],
)
def test_bad_markers_are_errors_naming_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ImageError) as e:
        markers.find(text, "apps/web.yaml")
    assert e.value.where == f"apps/web.yaml:{line}"
    assert reason in e.value.reason
    assert str(e.value).startswith(f"images: apps/web.yaml:{line}: ")


def test_golden_corpus_markers() -> None:
    """Every marker of the corpus, where it is: documents, paths and aliases of an anchored value included."""
    multi = markers.find((GOLDEN / "multi.yaml").read_text(), "multi.yaml")
    assert [(m.line, m.document, m.policy) for m in multi] == [
        (23, 1, PolicyRef("apps", "job")),
        (28, 1, PolicyRef("apps", "init")),
    ]
    containers = ("spec", "jobTemplate", "spec", "template", "spec")
    assert multi[0].paths == ((*containers, "containers", 0, "image"), (*containers, "initContainers", 0, "image"))
    crlf = (GOLDEN / "values-crlf.yaml").read_bytes().decode()
    assert [(m.line, m.part, m.source) for m in markers.find(crlf, "v.yaml")] == [
        (3, Part.NAME, "ghcr.io/acme/api"),
        (4, Part.TAG, "2.0.0"),
        (5, Part.DIGEST, "sha256:aaaa"),
    ]
