"""YAML in, safely: libyaml's parser with the safe constructor, refusing duplicate keys, unsafe tags, alias bombs and
values JSON cannot carry, and remembering the line each document starts on. Every YAML file gitops-job reads goes
through here (and every renderer's output: kustomize's and helm's output is YAML too)."""

from __future__ import annotations

import math
from typing import Any

import yaml

from gitops_job import memo
from gitops_job.errors import GitopsJobError, RenderError

# A document whose aliases expand to more nodes than this is refused before it is built (billion laughs).
MAX_EXPANDED_NODES = 1_000_000


class _Loader(yaml.CSafeLoader):  # libyaml parser, Python safe constructor
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return dict(super().construct_mapping(node, deep=deep))

    # YAML types JSON cannot carry: Kubernetes objects are JSON, so each is refused where it is written, with the fix.
    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        raise _NotJson(f"{node.value} is a YAML date/time, which JSON cannot carry; quote it: '{node.value}'", node)

    def construct_yaml_binary(self, node: yaml.ScalarNode) -> Any:
        raise _NotJson(
            "!!binary is a YAML type JSON cannot carry; drop the tag and keep the base64 text as a string "
            "(a Secret's data is base64 text already)",
            node,
        )

    def construct_yaml_set(self, node: yaml.MappingNode) -> Any:
        raise _NotJson("!!set is a YAML type JSON cannot carry; write a list instead", node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _NotJson(f"{node.value} is a YAML number JSON cannot carry; quote it: '{node.value}'", node)
        return value


class _NotJson(yaml.constructor.ConstructorError):
    """A value YAML has and JSON has not (a date, bytes, a set, infinity): refused, with what to write instead."""

    def __init__(self, reason: str, node: yaml.Node) -> None:
        super().__init__(None, None, reason, node.start_mark)
        self.reason = reason


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)
_Loader.add_constructor("tag:yaml.org,2002:binary", _Loader.construct_yaml_binary)
_Loader.add_constructor("tag:yaml.org,2002:set", _Loader.construct_yaml_set)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Unusual(Exception):
    """A node :class:`_Plain` does not build itself (a merge key, a non-scalar key, a tag beyond the plain ones)."""


class _Plain:
    """Builds a document as ``_Loader``'s constructor does — the same values, the same refusals, an alias the same
    object as its anchor — without the constructor's per-node bookkeeping (several times faster on manifests), and
    counts its nodes once every alias is expanded on the way (:data:`MAX_EXPANDED_NODES`). Raises :class:`_Unusual`
    for anything it leaves to the constructor."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.built: dict[int, tuple[Any, int]] = {}  # id(node) -> (value, expanded size): what an alias reuses
        self.building: set[int] = set()

    def __call__(self, node: yaml.Node) -> tuple[Any, int]:
        key = id(node)
        if key in self.built:
            return self.built[key]
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return node.value, 1
            construct = self.loader.yaml_constructors.get(node.tag)
            if construct is None:
                raise _Unusual
            return construct(self.loader, node), 1
        if key in self.building:
            raise yaml.constructor.ConstructorError(None, None, "recursive alias", node.start_mark)
        self.building.add(key)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            items = [self(item) for item in node.value]
            done: tuple[Any, int] = ([v for v, _ in items], min(1 + sum(n for _, n in items), MAX_EXPANDED_NODES + 1))
        elif isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            done = self._map(node)
        else:
            raise _Unusual
        self.building.discard(key)
        self.built[key] = done
        return done

    def _map(self, node: yaml.MappingNode) -> tuple[dict[Any, Any], int]:
        out: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        size = 1
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                raise _Unusual
            key, _ = self(key_node)
            if isinstance(key, str | int | float | bool):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
                    )
                seen[key] = key_node.start_mark.line + 1
            out[key], n = self(value_node)
            size += 1 + n
        return out, min(size, MAX_EXPANDED_NODES + 1)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document once every alias is expanded; raises on recursive aliases. Linear in distinct nodes."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
        if children_done:
            in_progress.discard(key)
            total = 1 + sum(sizes[id(c)] for c in children)
            sizes[key] = min(total, MAX_EXPANDED_NODES + 1)
            continue
        if key in in_progress:
            raise yaml.constructor.ConstructorError(None, None, "recursive alias", node.start_mark)
        in_progress.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) not in sizes:
                if id(child) in in_progress:
                    raise yaml.constructor.ConstructorError(None, None, "recursive alias", child.start_mark)
                stack.append((child, False))
    return sizes[id(root)]


def load_documents(
    text: str, file: str, error: type[GitopsJobError] = RenderError, *, output_of: str | None = None
) -> list[tuple[Any, int]]:
    """Every non-empty document of ``text`` with the 1-based line it starts on.

    Errors (syntax, duplicate key, a tag the safe loader does not know such as ``!!python/object``, an alias bomb, a
    value JSON cannot carry such as an unquoted date) raise ``error`` with ``where="<file>:<line>"``; when ``text`` is
    the output of a tool (``output_of="helm"``), its lines are not the file's: ``where`` is ``file`` and the reason
    says the line of the output.

    A text parsed by an earlier run with the same state dir is not parsed again (:mod:`gitops_job.memo`).
    """
    kept = memo.current()
    documents = kept.get("yaml", text)
    if documents is None:
        documents = _load_documents(text, file, error, output_of)
        kept.put("yaml", text, documents)
    return documents


def _load_documents(text: str, file: str, error: type[GitopsJobError], output_of: str | None) -> list[tuple[Any, int]]:

    def fail(reason: str, mark: yaml.Mark | None) -> GitopsJobError:
        if mark is None:
            return error(reason, where=file)
        if output_of:
            return error(f"{reason} (line {mark.line + 1} of {output_of}'s output)", where=file)
        return error(reason, where=f"{file}:{mark.line + 1}")

    loader = _Loader(text)
    aliases = "*" in text  # an alias is written `*name`: without a `*` there is nothing to expand
    documents: list[tuple[Any, int]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            try:
                data, size = _Plain(loader)(node)
            except _Unusual:  # the constructor builds it: its size is counted first
                data, size = None, _expanded_size(node) if aliases else 0
                if size <= MAX_EXPANDED_NODES:
                    data = loader.construct_document(node)
            if size > MAX_EXPANDED_NODES:
                reason = f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes; refusing (billion laughs?)"
                raise fail(reason, node.start_mark)
            if data is not None:
                documents.append((data, node.start_mark.line + 1))
    except _NotJson as e:
        raise fail(e.reason, e.problem_mark) from None
    except yaml.MarkedYAMLError as e:
        reason = " ".join(str(p) for p in (e.context, e.problem) if p)
        raise fail(f"invalid YAML: {reason}", e.problem_mark or e.context_mark) from None
    except yaml.YAMLError as e:
        raise error(f"invalid YAML: {e}", where=file) from None
    finally:
        loader.dispose()
    return documents
