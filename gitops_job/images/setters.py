"""Rewrite a marked value without reformatting the file: a text splice of the scalar's own characters, verified.

``set_values`` takes the file's original bytes and the markers ``markers.find`` returned for them, replaces each
marked scalar's characters (quotes included) with the new value written in the same style — plain stays plain,
``'single'`` and ``"double"`` keep their quotes — and leaves every other byte alone: comments, blank lines,
``---`` separators, CRLF line endings, indentation, anchors, flow mappings. It then parses the result and checks
that each marked scalar now holds its new value and that the documents equal the original ones with exactly those
values replaced; anything else is an error and nothing is returned to write. A file whose values do not change
comes back as the very same bytes object: the caller writes nothing.

A plain value that YAML would read as something other than that string (``1.10`` a number, ``yes`` a boolean,
``#x`` a comment) is written single-quoted instead.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gitops_job.errors import ImageError
from gitops_job.images.markers import Marker, Style

_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@:+-]*")


@functools.cache
def _yaml12() -> YAML:
    """A YAML 1.2 reader, made once: making one costs more than reading a line with it (a bump of 100 files)."""
    return YAML(typ="safe", pure=True)


def _plain_is_string(value: str) -> bool:
    """``value`` written plain reads back as this very string under YAML 1.1 (Kubernetes' readers) and 1.2."""
    if not _PLAIN_SAFE.fullmatch(value) or value.endswith(":"):
        return False
    if "/" in value:
        return True  # no number, boolean, null or timestamp of either version has one: a whole image reference
    doc = f"k: {value}\n"
    try:
        return bool(yaml.load(doc, Loader=yaml.CSafeLoader) == {"k": value} and _yaml12().load(doc) == {"k": value})
    except (yaml.YAMLError, YAMLError):
        return False


def render(value: str, style: Style) -> str:
    """``value`` as YAML source in ``style`` (plain only where plain reads back as the same string)."""
    if style is Style.DOUBLE or not value.isprintable():
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
    if style is Style.PLAIN and _plain_is_string(value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _load(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=yaml.CSafeLoader))


def documents(data: bytes) -> list[Any]:
    """The documents of a file's bytes as the setter's check reads them (libyaml), for a caller that reads them too:
    ``set_values(..., documents=)`` then parses only the new text."""
    return _load(data.decode("utf-8"))


def _replace(doc: Any, path: Sequence[str | int], value: str) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, Mapping):
        return {k: (_replace(v, rest, value) if k == head or str(k) == str(head) else v) for k, v in doc.items()}
    if isinstance(doc, list) and isinstance(head, int):
        return [(_replace(v, rest, value) if i == head else v) for i, v in enumerate(doc)]
    raise KeyError(head)


def set_values(
    data: bytes, markers: Sequence[Marker], values: Sequence[str], documents: Sequence[Any] | None = None
) -> bytes:
    """``data`` with each ``markers[i]``'s scalar set to ``values[i]``, every other byte as it was; ``data`` itself
    (the same object) when no value changes. ``documents``: ``data``'s, from :func:`documents`, when the caller
    has them (they are not changed)."""
    if len(markers) != len(values):
        raise ValueError("one value per marker")
    changes = [(m, v) for m, v in zip(markers, values, strict=True) if v != m.value]
    if not changes:
        return data
    text = data.decode("utf-8")
    out, last = [], 0
    for m, v in sorted(changes, key=lambda mv: mv[0].start):
        if text[m.start : m.end] != m.source or m.start < last:
            raise ImageError("the file changed since its markers were read; read them again", where=m.where)
        out += [text[last : m.start], render(v, m.style)]
        last = m.end
    out.append(text[last:])
    new_text = "".join(out)
    _verify(text, new_text, changes, documents)
    return new_text.encode("utf-8")


def _verify(old: str, new: str, changes: list[tuple[Marker, str]], documents: Sequence[Any] | None) -> None:
    """The new text parses, and its documents are the old ones with exactly the changed values replaced (at every
    path an anchored value is used through an alias). The comparison parses with libyaml: a bump of 100 files must
    fit in the issue's second, and both sides are read by the same parser."""
    where = changes[0][0].where
    try:
        old_docs, new_docs = list(documents) if documents is not None else _load(old), _load(new)
    except yaml.YAMLError as e:
        raise ImageError(
            f"setting the image made the file unreadable ({e}); nothing was written", where=where
        ) from None
    expected = old_docs  # a copy of the list: _replace builds new mappings along each path, the old ones stay
    for m, v in changes:
        for path in m.paths:
            expected[m.document] = _replace(expected[m.document], path, v)
    if new_docs != expected:
        raise ImageError(
            "setting the image changed more than the marked value (the documents differ elsewhere); nothing written",
            where=where,
        )
