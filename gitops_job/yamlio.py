"""YAML in, safely: libyaml's parser with the safe constructor, refusing duplicate keys, unsafe tags, alias bombs and
values JSON cannot carry, and remembering the line each document starts on. Every YAML file gitops-job reads goes
through here (and every renderer's output: kustomize's and helm's output is YAML too)."""

from __future__ import annotations

import math
from typing import Any

import yaml

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
    """

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
            if aliases and _expanded_size(node) > MAX_EXPANDED_NODES:
                reason = f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes; refusing (billion laughs?)"
                raise fail(reason, node.start_mark)
            data = loader.construct_document(node)
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
