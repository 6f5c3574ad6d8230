"""Where a repository declares an image: Flux v2 setter markers on YAML lines, found in the original text.

A marker is a comment ``# {"$imagepolicy": "NAMESPACE:NAME"}`` after a scalar value on the same line, optionally
with a part: ``:tag``, ``:name`` or ``:digest`` (``"apps:app:tag"``). Without a part the scalar is a whole image
reference (``ghcr.io/acme/app:1.2.3``). The same markers work in plain manifests, in a kustomization's ``images:``
(``newName: … # {"$imagepolicy": "apps:app:name"}``, ``newTag: … # {"$imagepolicy": "apps:app:tag"}``) and in Helm
values files, in any document of a multi-document file.

libyaml composes the text (no Python objects are built; the same parser ``setters`` verifies with) and says where
each scalar starts and ends, in characters of the decoded text, so a marker is tied to the exact characters of its
value, quotes included: ``setters`` changes those characters and nothing else. (ruamel.yaml's pure-Python composer
took 7 ms a file, libyaml 0.25 ms: 100 marked files must bump within the issue's second.) A marker after something
that is not a one-line scalar value (a key with a nested mapping, a block scalar, an alias) is an error naming
``file:line``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_job.errors import ImageError

MARKER = re.compile(r'#\s*(\{\s*"\$imagepolicy"\s*:[^}]*\})')
_PROPERTIES = re.compile(r"(?:[&!][^\s]*\s+)+")  # an anchor or tag before the value itself


class Part(StrEnum):
    """Which part of an image reference the marked scalar holds."""

    IMAGE = "image"  # the whole reference: name:tag (or name@digest)
    TAG = "tag"
    NAME = "name"
    DIGEST = "digest"


class Style(StrEnum):
    PLAIN = "plain"
    SINGLE = "single-quoted"
    DOUBLE = "double-quoted"


_STYLES = {None: Style.PLAIN, "'": Style.SINGLE, '"': Style.DOUBLE}


@dataclass(frozen=True)
class PolicyRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"


@dataclass(frozen=True)
class Marker:
    """One marked scalar: where it is (``line`` and ``column`` 1-based; ``start``/``end`` index the decoded text),
    its exact source (``source``, quotes included), its value, the policy it follows and which part it holds."""

    file: str
    line: int
    column: int
    start: int
    end: int
    source: str
    value: str
    style: Style
    policy: PolicyRef
    part: Part
    document: int  # 0-based, in a multi-document file
    paths: tuple[tuple[str | int, ...], ...]  # keys and indexes from the document's root: where it is written, then
    # every alias of it (an anchored value set here changes there too)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class _Scalar:
    node: ScalarNode
    is_key: bool
    document: int
    paths: tuple[tuple[str | int, ...], ...]


def _scalars(root: Node, document: int) -> list[_Scalar]:
    """Every scalar of a document with its path; a scalar used again through an alias gets those paths too."""
    out: dict[int, _Scalar] = {}
    stack: list[tuple[Node, tuple[str | int, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if isinstance(node, ScalarNode):
            if id(node) in out:
                known = out[id(node)]
                out[id(node)] = _Scalar(node, known.is_key, document, (*known.paths, path))
            else:
                out[id(node)] = _Scalar(node, False, document, (path,))
            continue
        if id(node) in seen:  # an aliased collection: its scalars are walked where it is written
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in reversed(node.value):
                if isinstance(key, ScalarNode):
                    out.setdefault(id(key), _Scalar(key, True, document, ()))
                stack.append((value, (*path, key.value if isinstance(key, ScalarNode) else str(key))))
        elif isinstance(node, SequenceNode):
            stack.extend((item, (*path, i)) for i, item in reversed(list(enumerate(node.value))))
    return list(out.values())


def parse_ref(text: str, where: str) -> tuple[PolicyRef, Part]:
    """``NAMESPACE:NAME[:tag|:name|:digest]``."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ImageError(
            f'{{"$imagepolicy": "{text}"}} is not NAMESPACE:NAME[:tag|:name|:digest]; write e.g. "apps:web:tag"',
            where=where,
        )
    part = Part.IMAGE
    if len(parts) == 3:
        try:
            part = Part(parts[2])
        except ValueError:
            raise ImageError(
                f'{{"$imagepolicy": "{text}"}}: the part must be tag, name or digest, not {parts[2]!r}', where=where
            ) from None
        if part is Part.IMAGE:
            raise ImageError(
                f'{{"$imagepolicy": "{text}"}}: drop ":image" (the whole reference is the default)', where=where
            )
    return PolicyRef(parts[0], parts[1]), part


def find(text: str, file: str) -> tuple[Marker, ...]:
    """Every setter marker in ``text`` (the decoded content of ``file``), in file order. A file without
    ``$imagepolicy`` is not parsed at all."""
    if "$imagepolicy" not in text:
        return ()
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.CSafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        suffix = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(e, "problem", None) or getattr(e, "context", None) or getattr(e, "reason", None) or e
        raise ImageError(
            f"not valid YAML ({reason}); fix it before markers can be read", where=f"{file}{suffix}"
        ) from None
    scalars = [s for i, doc in enumerate(documents) if doc is not None for s in _scalars(doc, i)]
    line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\n|\r", text)]
    ending: dict[int, list[_Scalar]] = {}
    for s in scalars:
        ending.setdefault(_line_of(line_starts, max(s.node.end_mark.index - 1, 0)), []).append(s)
    spans = [(_content_start(text, s.node), s.node.end_mark.index) for s in scalars]
    markers: list[Marker] = []
    for m in MARKER.finditer(text):
        at = m.start()
        if any(start <= at < end for start, end in spans):
            continue  # inside a scalar (a quoted string or a block scalar's text), not a comment
        line = _line_of(line_starts, at)
        where = f"{file}:{line + 1}"
        try:
            ref_text = json.loads(m[1])["$imagepolicy"]
        except (ValueError, KeyError, TypeError):
            raise ImageError(
                f'marker {m[1]!r} is not JSON of the form {{"$imagepolicy": "NS:NAME"}}', where=where
            ) from None
        if not isinstance(ref_text, str):
            raise ImageError(f"marker {m[1]!r}: the policy must be a string", where=where)
        ref, part = parse_ref(ref_text, where)
        before = [s for s in ending.get(line, []) if s.node.end_mark.index <= at]
        target = max(before, key=lambda s: s.node.end_mark.index, default=None)
        if (
            target is None
            or target.is_key
            or _line_of(line_starts, target.node.start_mark.index) != line
            or target.node.style in ("|", ">")
        ):
            raise ImageError(
                f"the marker {m[1]} is not after a scalar value on this line (a key with a nested value, a block "
                "scalar or an alias cannot be set); put it after the value it sets, e.g. "
                'image: ghcr.io/acme/app:1.2.3 # {"$imagepolicy": "apps:app"}',
                where=where,
            )
        markers.append(_marker(text, file, target, ref, part, line_starts))
    return tuple(markers)


def _content_start(text: str, node: ScalarNode) -> int:
    """Where a scalar's text begins: a block scalar's header line (``|``, ``>-``) may carry a comment, its text
    starts on the next line."""
    start, end = int(node.start_mark.index), int(node.end_mark.index)
    if node.style in ("|", ">"):
        newline = text.find("\n", start, end)
        return newline + 1 if newline >= 0 else end
    return start


def _line_of(line_starts: list[int], index: int) -> int:
    lo, hi = 0, len(line_starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if line_starts[mid] <= index:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _marker(text: str, file: str, s: _Scalar, ref: PolicyRef, part: Part, line_starts: list[int]) -> Marker:
    start, end = s.node.start_mark.index, s.node.end_mark.index
    props = _PROPERTIES.match(text, start, end)
    if props is not None:
        start = props.end()
    line = _line_of(line_starts, start)
    return Marker(
        file=file,
        line=line + 1,
        column=start - line_starts[line] + 1,
        start=start,
        end=end,
        source=text[start:end],
        value=s.node.value,
        style=_STYLES.get(s.node.style, Style.PLAIN),
        policy=ref,
        part=part,
        document=s.document,
        paths=s.paths,
    )
