"""Prove, from a live object alone, that server-side applying a manifest would change nothing.

A server-side apply of config C by field manager M leaves an object untouched exactly when (1) every field C sets
already holds C's value and (2) the set of fields M owns (its ``managedFields`` entry with operation ``Apply``) is
exactly C's field set — otherwise fields would be removed or ownership would move, which changes the object.

:func:`proven_unchanged` checks both by walking C, M's ``fieldsV1`` and the live object together. It needs no schema:
associative list items are matched by the key values recorded in ``k:{...}`` entries, sets by ``v:`` entries, and
anything it cannot match exactly — a value that differs only in representation (``1000m`` vs ``1``, ``"80"`` vs
``80``, ``1.0`` vs ``1``), a defaulted key field, a reordered list, an ``Update`` entry of M, another apiVersion —
answers "not proven", which sends the object to a real server-side dry-run. The fast path may be slower, never wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Identity, not fields: never listed in managedFields.
_IDENTITY_META = frozenset({"name", "namespace"})


def proven_unchanged(desired: Mapping[str, Any], live: Mapping[str, Any], manager: str) -> bool:
    """True only if applying ``desired`` as ``manager`` is certain to leave ``live`` exactly as it is."""
    entries = [m for m in (live.get("metadata") or {}).get("managedFields") or [] if m.get("manager") == manager]
    main = [m for m in entries if not m.get("subresource")]
    if len(main) != 1 or main[0].get("operation") != "Apply":
        return False  # never applied by us, or also written by us with Update: let the server decide
    entry = main[0]
    if entry.get("apiVersion") != desired.get("apiVersion") or entry.get("fieldsType") != "FieldsV1":
        return False
    fields = entry.get("fieldsV1") or {}
    config = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    meta = {k: v for k, v in (config.get("metadata") or {}).items() if k not in _IDENTITY_META}
    if meta:
        config["metadata"] = meta
    else:
        config.pop("metadata", None)
    return _map(config, fields, live)


def _same(a: Any, b: Any) -> bool:
    """Equal in value *and* JSON type (``1 != 1.0``, ``True != 1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _node(c: Any, f: Any, live: Any) -> bool:
    if not isinstance(f, dict):
        return False
    if not f:  # a leaf in M's set: scalar, atomic list or atomic map — compare the whole value
        return _same(c, live)
    if isinstance(c, dict):
        return _map(c, f, live)
    if isinstance(c, list):
        return _list(c, f, live)
    return False  # a scalar where M owns sub-fields


def _map(c: Mapping[str, Any], f: Mapping[str, Any], live: Any) -> bool:
    if not isinstance(live, dict):
        return False
    owned = {k[2:] for k in f if k.startswith("f:")}
    if any(k != "." and not k.startswith("f:") for k in f) or owned != set(c):
        return False
    return all(v is not None and k in live and _node(v, f[f"f:{k}"], live[k]) for k, v in c.items())


def _list(c: list[Any], f: Mapping[str, Any], live: Any) -> bool:
    if not isinstance(live, list):
        return False
    keys = [k for k in f if k != "."]
    if keys and all(k.startswith("v:") for k in keys):  # a set of scalars
        values = [json.loads(k[2:]) for k in keys]
        return len(values) == len(c) and all(any(_same(v, x) for x in c) for v in values) and _same(c, live)
    if not keys or not all(k.startswith("k:") for k in keys) or len(keys) != len(c):
        return False
    # An associative list: every item of C is matched to exactly one k:{...} entry by its key fields, and to the
    # live item with the same key; the live items must appear in C's order.
    last_index = -1
    unmatched = set(keys)
    for item in c:
        if not isinstance(item, dict):
            return False
        entry = next((k for k in unmatched if _key_matches(json.loads(k[2:]), item)), None)
        if entry is None:
            return False
        unmatched.discard(entry)
        key = json.loads(entry[2:])
        index = next((i for i, x in enumerate(live) if isinstance(x, dict) and _key_matches(key, x)), None)
        if index is None or index <= last_index or not _map(item, f[entry], live[index]):
            return False
        last_index = index
    return True


def _key_matches(key: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    return all(k in item and _same(v, item[k]) for k, v in key.items())
