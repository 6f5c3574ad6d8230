"""Set or remove annotations of one workload in its source file without reformatting it: the ``setters`` approach
(ruamel.yaml to locate, a text splice to write, a re-parse to verify) for whole ``key: value`` lines.

- A key that is there has its value's characters replaced, in the value's own style (``setters.render``).
- A key that is not there is added as one line after the last entry of ``metadata.annotations``, at that mapping's
  indentation; without ``annotations``, the mapping is added after the last entry of ``metadata``, indented by the
  step the file already uses under ``metadata``. New values are double-quoted (``"true"``, as Flux's docs write
  them: a plain ``true`` would be a boolean).
- A key removed takes its line(s) with it; the last annotation removed takes the ``annotations:`` line too.

Every other byte stays: comments, blank lines, ``---`` separators, CRLF, other documents. The result is parsed again
and must equal the original documents with exactly those annotations changed; else nothing is returned to write.
Only a workload written in a plain YAML file can be edited: one rendered by a template, kustomize or Helm is an
error naming its source (the annotation then belongs in that source, by hand).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_job.errors import ImageError
from gitops_job.identity import ObjectId
from gitops_job.images.markers import Marker, Part, PolicyRef, Style
from gitops_job.images.setters import render, set_values
from gitops_job.model import Source

_STYLES = {None: Style.PLAIN, "'": Style.SINGLE, '"': Style.DOUBLE}
_NEWLINE = re.compile(r"\r\n|\n|\r")


def edit_problem(source: Source, renderer: str) -> str | None:
    """Why a workload rendered from ``source`` by ``renderer`` cannot be edited in place (None: it can)."""
    file = source.file
    if renderer in ("kustomize", "helm") or source.line is None:
        tool = renderer if renderer in ("kustomize", "helm") else "a renderer"
        return (
            f"it is {tool} output (from {file}), not a plain manifest: it cannot be edited in place. Set the "
            "annotation in its source by hand (a kustomize patch, the chart's template or values)"
        )
    if file.endswith(".j2"):
        return (
            f"it is rendered from the Jinja2 template {file}: it cannot be edited in place. Set the annotation in the "
            "template by hand"
        )
    if not file.endswith((".yaml", ".yml")):
        return f"its source {file} is not a YAML file"
    return None


@dataclass(frozen=True)
class _Doc:
    index: int
    root: MappingNode
    metadata: MappingNode | None  # None: no metadata key
    metadata_key: ScalarNode | None
    annotations: Node | None  # a block mapping, or an empty value (null, ``{}``)
    annotations_key: ScalarNode | None


def _get(node: MappingNode, key: str) -> tuple[ScalarNode, Node] | None:
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _scalar(node: MappingNode, key: str) -> str | None:
    hit = _get(node, key)
    return str(hit[1].value) if hit and isinstance(hit[1], ScalarNode) else None


def _find(text: str, file: str, workload: ObjectId, line: int | None) -> _Doc:
    try:
        documents = list(YAML(typ="rt").compose_all(text))
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        suffix = f":{mark.line + 1}" if mark is not None else ""
        raise ImageError(f"not valid YAML ({e.problem or e.context})", where=f"{file}{suffix}") from None
    hits = []
    for i, root in enumerate(documents):
        if not isinstance(root, MappingNode) or _scalar(root, "kind") != workload.kind:
            continue
        meta = _get(root, "metadata")
        meta_node = meta[1] if meta and isinstance(meta[1], MappingNode) else None
        if meta_node is None or _scalar(meta_node, "name") != workload.name:
            continue
        ns = _scalar(meta_node, "namespace")
        if ns is not None and ns != workload.namespace:
            continue
        found = _get(meta_node, "annotations")
        hits.append(
            _Doc(
                i, root, meta_node, meta[0] if meta else None, found[1] if found else None, found[0] if found else None
            )
        )
    if len(hits) > 1 and line is not None:
        before = [h for h in hits if h.root.start_mark.line + 1 <= line]
        hits = before[-1:] or hits
    if not hits:
        raise ImageError(
            f"{workload} is not written in this file (as a top-level document with its kind and name): it cannot be "
            "edited in place; set the annotation where it is written, by hand",
            where=file,
        )
    if len(hits) > 1:
        raise ImageError(f"{workload} is written {len(hits)} times in this file; keep one", where=file)
    return hits[0]


def _editable_annotations(doc: _Doc, file: str) -> None:
    """An error unless ``doc``'s annotations can be edited line by line (a block mapping, or none yet)."""
    ann = doc.annotations
    if ann is not None and not isinstance(ann, MappingNode) and not _is_null(ann):
        raise ImageError("metadata.annotations is not a mapping", where=_at(file, doc.annotations_key))
    for node, what in ((doc.metadata, "metadata"), (ann, "metadata.annotations")):
        if isinstance(node, MappingNode) and node.flow_style and node.value:
            raise ImageError(
                f"{what} is written in flow style ({{...}}); write it as a block mapping to let gitops-job edit it",
                where=_at(file, node),
            )


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and str(node.tag).endswith(":null")


def _at(file: str, node: Node | None) -> str:
    return f"{file}:{node.start_mark.line + 1}" if node is not None else file


def _line_start(text: str, index: int) -> int:
    return max(text.rfind("\n", 0, index), text.rfind("\r", 0, index)) + 1


def _line_end(text: str, index: int) -> int:
    """The index just after the newline ending the line that holds ``index`` (the text's end on its last line); an
    ``index`` at a line's start (where a block scalar ends) is that line's start."""
    if index > 0 and text[index - 1] in "\n\r":
        return index
    m = _NEWLINE.search(text, index)
    return m.end() if m else len(text)


def _last_end(node: Node) -> int:
    """Where the last character of ``node``'s content is (the end of its last scalar)."""
    if isinstance(node, ScalarNode):
        return int(node.end_mark.index)
    ends = [int(node.start_mark.index)]
    for item in node.value:
        for part in item if isinstance(item, tuple) else (item,):
            ends.append(_last_end(part))
    return max(ends)


def _newline(text: str) -> str:
    m = _NEWLINE.search(text)
    return m.group() if m else "\n"


def _key_source(key: str) -> str:
    return render(key, Style.PLAIN)


def _set_one(text: str, file: str, workload: ObjectId, line: int | None, key: str, value: str | None) -> str:
    doc = _find(text, file, workload, line)
    _editable_annotations(doc, file)
    nl = _newline(text)
    ann = doc.annotations
    hit = _get(ann, key) if isinstance(ann, MappingNode) else None
    if hit is not None:
        k, v = hit
        if value is None:
            assert isinstance(ann, MappingNode) and doc.annotations_key is not None
            last = len(ann.value) == 1  # the last one: the annotations: line goes too
            start = _line_start(text, (doc.annotations_key if last else k).start_mark.index)
            return text[:start] + text[_line_end(text, _last_end(v)) :]
        if not isinstance(v, ScalarNode) or v.style in ("|", ">"):
            raise ImageError(
                f"annotation {key} is not a one-line value; write it on one line to let gitops-job edit it",
                where=_at(file, k),
            )
        if v.value == value:
            return text
        return text[: v.start_mark.index] + render(value, _STYLES.get(v.style, Style.PLAIN)) + text[v.end_mark.index :]
    if value is None:
        return text
    entry = f"{_key_source(key)}: {json.dumps(value, ensure_ascii=False)}"
    if isinstance(ann, MappingNode) and ann.value:
        indent = ann.value[0][0].start_mark.column
        at = _line_end(text, _last_end(ann))
        return _insert(text, at, " " * indent + entry + nl, nl)
    meta = doc.metadata
    if meta is None or not meta.value:
        raise ImageError(
            f"{workload} has no metadata entries to add annotations beside", where=_at(file, doc.metadata_key)
        )
    if ann is not None:  # `annotations:` with nothing (null) or `{}`: that line replaced
        assert doc.annotations_key is not None
        start = _line_start(text, doc.annotations_key.start_mark.index)
        end = _line_end(text, doc.annotations_key.end_mark.index if _is_null(ann) else _last_end(ann))
        column = doc.annotations_key.start_mark.column
        step = _step(doc)
        block = f"{' ' * column}annotations:{nl}{' ' * (column + step)}{entry}{nl}"
        return text[:start] + block + text[end:]
    column = meta.value[0][0].start_mark.column
    step = _step(doc)
    at = _line_end(text, _last_end(meta))
    return _insert(text, at, f"{' ' * column}annotations:{nl}{' ' * (column + step)}{entry}{nl}", nl)


def _step(doc: _Doc) -> int:
    """The indentation step the file uses under ``metadata`` (2 when it cannot be told)."""
    assert doc.metadata is not None
    column = doc.metadata.value[0][0].start_mark.column
    parent = doc.metadata_key.start_mark.column if doc.metadata_key is not None else 0
    return column - parent if column > parent else 2


def _insert(text: str, at: int, block: str, nl: str) -> str:
    if at == len(text) and text and not text.endswith(("\n", "\r")):
        block = nl + block.removesuffix(nl)  # the last line had no newline: keep it that way
    return text[:at] + block + text[at:]


def _expected(doc: Any, changes: Mapping[str, str | None]) -> Any:
    doc = copy.deepcopy(doc)
    meta = doc.setdefault("metadata", {})
    ann = meta.get("annotations") or {}
    for key, value in changes.items():
        if value is None:
            ann.pop(key, None)
        else:
            ann[key] = value
    if ann:
        meta["annotations"] = ann
    else:
        meta.pop("annotations", None)
    return doc


def set_annotations(
    data: bytes, file: str, workload: ObjectId, changes: Mapping[str, str | None], line: int | None = None
) -> bytes:
    """``data`` (the bytes of ``file``) with each annotation of ``changes`` set (a value) or removed (None) on
    ``workload``'s document, every other byte as it was; ``data`` itself (the same object) when nothing changes.
    ``line`` (the workload's ``Source.line``) picks the document when the file holds the workload twice."""
    text = data.decode("utf-8")
    new = text
    for key, value in changes.items():
        new = _set_one(new, file, workload, line, key, value)
    if new == text:
        return data
    _verify(text, new, file, workload, line, changes)
    return new.encode("utf-8")


def _verify(
    old: str, new: str, file: str, workload: ObjectId, line: int | None, changes: Mapping[str, str | None]
) -> None:
    index = _find(old, file, workload, line).index
    try:
        old_docs = list(yaml.load_all(old, Loader=yaml.CSafeLoader))
        new_docs = list(yaml.load_all(new, Loader=yaml.CSafeLoader))
    except yaml.YAMLError as e:
        raise ImageError(
            f"editing the annotations made the file unreadable ({e}); nothing written", where=file
        ) from None
    expected = list(old_docs)
    expected[index] = _expected(old_docs[index], changes)
    if new_docs != expected:
        raise ImageError(
            f"editing the annotations of {workload} changed more than them (the documents differ elsewhere); nothing "
            "written",
            where=file,
        )


def set_value(
    data: bytes, file: str, workload: ObjectId, path: tuple[str | int, ...], value: str, line: int | None = None
) -> bytes:
    """``data`` with the scalar at ``path`` (keys and indexes from ``workload``'s document root, e.g. a container's
    ``image``) set to ``value`` through ``setters.set_values``: the same splice, style and verification as a marked
    value; ``data`` itself when it holds ``value`` already."""
    return set_values(data, [locate(data, file, workload, path, line)], [value])


def locate(data: bytes, file: str, workload: ObjectId, path: tuple[str | int, ...], line: int | None = None) -> Marker:
    """The scalar at ``path`` of ``workload``'s document in ``data``, as a marker would hold it (its exact
    characters, line and style), for ``setters.set_values``; an error naming the file when it is not a one-line
    value."""
    text = data.decode("utf-8")
    doc = _find(text, file, workload, line)
    node: Node = doc.root
    for step in path:
        if isinstance(node, MappingNode) and isinstance(step, str) and (hit := _get(node, step)) is not None:
            node = hit[1]
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
        else:
            raise ImageError(f"{workload} has no {'.'.join(map(str, path))} here", where=file)
    if not isinstance(node, ScalarNode) or node.style in ("|", ">"):
        raise ImageError(f"{'.'.join(map(str, path))} is not a one-line value", where=_at(file, node))
    start, end = int(node.start_mark.index), int(node.end_mark.index)
    return Marker(
        file=file,
        line=node.start_mark.line + 1,
        column=node.start_mark.column + 1,
        start=start,
        end=end,
        source=text[start:end],
        value=str(node.value),
        style=_STYLES.get(node.style, Style.PLAIN),
        policy=PolicyRef(workload.namespace, workload.name),
        part=Part.IMAGE,
        document=doc.index,
        paths=(path,),
    )
