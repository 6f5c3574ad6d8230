"""YAML in, safely: libyaml's parser with the safe constructor, refusing duplicate keys, unsafe tags and alias bombs,
and remembering the line each document starts on. Every YAML file gitops-job reads goes through here."""

from __future__ import annotations

from typing import Any

import yaml

from .errors import GitopsJobError, RenderError

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


def load_documents(text: str, file: str, error: type[GitopsJobError] = RenderError) -> list[tuple[Any, int]]:
    """Every non-empty document of ``text`` with the 1-based line it starts on.

    Errors (syntax, duplicate key, a tag the safe loader does not know such as ``!!python/object``, an alias bomb)
    raise ``error`` with ``where="<file>:<line>"``.
    """
    loader = _Loader(text)
    aliases = "*" in text  # an alias is written `*name`: without a `*` there is nothing to expand
    documents: list[tuple[Any, int]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if aliases and _expanded_size(node) > MAX_EXPANDED_NODES:
                raise error(
                    f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes; refusing (billion laughs?)",
                    where=f"{file}:{node.start_mark.line + 1}",
                )
            data = loader.construct_document(node)
            if data is not None:
                documents.append((data, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{file}:{mark.line + 1}" if mark else file
        reason = " ".join(str(p) for p in (e.context, e.problem) if p)
        raise error(f"invalid YAML: {reason}", where=where) from None
    except yaml.YAMLError as e:
        raise error(f"invalid YAML: {e}", where=file) from None
    finally:
        loader.dispose()
    return documents
