"""Drift: what changed in the live object since we applied it, field by field, and which field manager changed it.

Pure. The plan gives, for an object it would update, the live object as shown (``before``: normalised, ignored
fields removed, masked) and what our apply would make of it (``after``, the dry-run's answer, shown the same way);
:func:`drift_of` compares the two with ``deepdiff`` and names each differing field by its path — lists of named items
addressed by their merge key (``spec.template.spec.containers[name=web].image``) — and the manager that owns it now,
read from the live object's ``managedFields`` (``fieldsV1``: ``f:`` fields, ``k:`` keyed list items, ``v:`` set
members, ``i:`` indices). A field another manager owns now is drift; one still ours differs because git changed; one
nobody owns was removed by hand — or is new in git, so it counts only when the object was applied at the revision
being planned (``applied_here``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_job.identity import ObjectId
from gitops_job.reconcile.results import ABSENT_TEXT, DriftFinding, Manager

#: Merge keys of the lists Kubernetes merges by key, for lists no manager's managedFields key (the first that fits).
MERGE_KEYS: tuple[tuple[str, ...], ...] = (
    ("containerPort", "protocol"),  # ahead of name: a port's name is optional and may change
    ("port", "protocol"),
    ("name",),
    ("mountPath",),
    ("devicePath",),
    ("ip",),
    ("type",),
    ("topologyKey", "whenUnsatisfiable"),
)
#: A value shown in a finding is cut at this many characters.
VALUE_BUDGET = 120


@dataclass(frozen=True)
class Key:
    """A list item addressed by its merge key: ``[name=web]``."""

    fields: tuple[tuple[str, Any], ...]

    def __str__(self) -> str:
        return "[" + ",".join(f"{k}={_scalar(v)}" for k, v in self.fields) + "]"


@dataclass(frozen=True)
class Member:
    """A member of a set-like list (``v:`` in managedFields): ``[=a]``."""

    value: Any

    def __str__(self) -> str:
        return f"[={_scalar(self.value)}]"


Segment = str | int | Key | Member
Path = tuple[Segment, ...]


def _scalar(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def path_text(path: Sequence[Segment]) -> str:
    """``spec.template.spec.containers[name=web].image``; a map key that is not a plain word is quoted:
    ``metadata.labels["app.kubernetes.io/name"]``."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif isinstance(seg, Key | Member):
            out += str(seg)
        elif _PLAIN.fullmatch(seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{json.dumps(seg)}]"
    return out


# -- managedFields -----------------------------------------------------------------------------------------------------
def decode_fields(fields_v1: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """The paths a ``fieldsV1`` set owns: each leaf, and each node marked ``.`` (the item itself)."""
    owned: set[Path] = set()
    for raw, sub in fields_v1.items():
        if raw == ".":
            owned.add(prefix)
            continue
        seg = _segment(raw)
        if seg is None:
            continue
        here = (*prefix, seg)
        if isinstance(sub, Mapping) and sub:
            owned |= decode_fields(sub, here)
        else:
            owned.add(here)
    return owned


def _segment(raw: str) -> Segment | None:
    kind, _, rest = raw.partition(":")
    try:
        if kind == "f":
            return rest
        if kind == "k":
            return Key(tuple(sorted(json.loads(rest).items())))
        if kind == "v":
            return Member(json.loads(rest))
        if kind == "i":
            return int(rest)
    except (ValueError, AttributeError):
        return None
    return None


@dataclass(frozen=True)
class Owned:
    """One managedFields entry: a manager (and how it wrote: Apply or Update, a subresource) and what it owns."""

    manager: Manager
    paths: frozenset[Path]
    time: str = ""  # RFC 3339: when the manager last wrote


def owners(live: Mapping[str, Any]) -> tuple[Owned, ...]:
    """The live object's ``managedFields``, decoded."""
    found = []
    for entry in (live.get("metadata") or {}).get("managedFields") or ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("fieldsV1"), Mapping):
            continue
        manager = Manager(str(entry.get("manager", "")), str(entry.get("operation", "")),
                          str(entry.get("subresource", "") or ""))  # fmt: skip
        found.append(Owned(manager, frozenset(decode_fields(entry["fieldsV1"])), str(entry.get("time") or "")))
    return tuple(found)


def owner_of(path: Path, owned: Iterable[Owned]) -> tuple[Manager, ...]:
    """Who owns ``path``: the managers owning exactly it; else the nearest enclosing field (an atomic map or list is
    owned whole); else any field inside it (a map added whole)."""
    owned = tuple(owned)

    def exact(p: Path) -> bool:
        return p == path

    def encloses(p: Path) -> bool:
        return 0 < len(p) < len(path) and path[: len(p)] == p

    def inside(p: Path) -> bool:
        return len(p) > len(path) and p[: len(path)] == path

    for match in (exact, encloses, inside):
        found = sorted({o.manager for o in owned if any(map(match, o.paths))})
        if found:
            return tuple(found)
    return ()


# -- merge keys -------------------------------------------------------------------------------------------------------
def keyed(node: Any, owned: Sequence[Owned] = (), here: Path = ()) -> Any:
    """``node`` with every list of named items turned into a map by merge key (:class:`Key`), and every set-like
    list a manager owns by member (:class:`Member`) into a map by member, so ``deepdiff`` compares items by identity,
    not position."""
    if isinstance(node, Mapping):
        return {k: keyed(v, owned, (*here, k)) for k, v in node.items()}
    if not isinstance(node, list):
        return node
    key = _merge_key(node, owned, here)
    if key is not None:
        out = {}
        for item in node:
            k = Key(tuple(sorted((f, item[f]) for f in key if f in item)))
            out[k] = keyed(item, owned, (*here, k))
        return out
    if node and all(isinstance(v, str | int | float | bool) for v in node) and _owned_as_members(here, owned):
        members = {Member(v): v for v in node}
        if len(members) == len(node):
            return members
    return [keyed(v, owned, (*here, i)) for i, v in enumerate(node)]


def _merge_key(items: list[Any], owned: Sequence[Owned], here: Path) -> tuple[str, ...] | None:
    if not items or not all(isinstance(i, Mapping) for i in items):
        return None
    candidates: list[tuple[str, ...]] = []
    for o in owned:  # the keys the API server itself used for this list
        for p in o.paths:
            if len(p) > len(here) and p[: len(here)] == here and isinstance(p[len(here)], Key):
                candidates.append(tuple(f for f, _ in p[len(here)].fields))  # type: ignore[union-attr]
    candidates += list(MERGE_KEYS)
    for key in candidates:
        values = [tuple(i.get(f) for f in key) for i in items]
        if all(key[0] in i for i in items) and len(set(map(json.dumps, values))) == len(items):
            return key
    return None


def _owned_as_members(here: Path, owned: Sequence[Owned]) -> bool:
    return any(len(p) > len(here) and p[: len(here)] == here and isinstance(p[len(here)], Member)
               for o in owned for p in o.paths)  # fmt: skip


def plain(node: Any) -> Any:
    """``node`` with the maps :func:`keyed` made turned back into lists (for display)."""
    if isinstance(node, Mapping):
        if node and all(isinstance(k, Key | Member) for k in node):
            return [plain(v) for v in node.values()]
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def value_text(value: Any, budget: int = VALUE_BUDGET) -> str:
    """A value as one line: JSON for maps and lists, cut at ``budget`` characters; an absent field as ``(absent)``."""
    if value is _ABSENT:
        return ABSENT_TEXT
    out = value if isinstance(value, str) else json.dumps(plain(value), sort_keys=True, separators=(",", ":"))
    return out if len(out) <= budget else out[: budget - 1] + "…"


_ABSENT = object()


# -- the comparison ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    """One field that differs between the live object and what our apply makes of it."""

    path: Path
    live: Any  # _ABSENT when the live object lacks it
    intended: Any  # _ABSENT when our apply removes it
    managers: tuple[Manager, ...]


def differences(before: Mapping[str, Any], after: Mapping[str, Any], live: Mapping[str, Any]) -> list[Difference]:
    """Each field that differs between ``before`` (the live object as shown) and ``after`` (as our apply would leave
    it), with the managers of ``live`` (the raw live object: only its ``managedFields`` are read) that own it."""
    from deepdiff import DeepDiff  # here: only a drift report pays for the import
    from deepdiff.helper import notpresent

    owned = owners(live)
    left, right = keyed(before, owned), keyed(after, owned)
    tree = DeepDiff(left, right, view="tree", verbose_level=2)
    found = []
    for levels in tree.values():
        for level in levels:
            path = tuple(level.path(output_format="list"))
            was = _ABSENT if level.t1 is notpresent else level.t1
            now = _ABSENT if level.t2 is notpresent else level.t2
            found.append(Difference(path, was, now, owner_of(path, owned)))
    return sorted(found, key=lambda d: path_text(d.path))


def drift_of(
    oid: ObjectId,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    live: Mapping[str, Any],
    ours: str,
    *,
    applied_here: bool,
) -> tuple[DriftFinding, ...]:
    """The drift of one object we applied before: each differing field another manager owns now (``ours`` is our
    field manager), or that nobody owns when ``applied_here`` (the live object carries the revision being planned, so
    git did not change it). ``before`` and ``after`` are masked already; so is every value of a finding."""
    findings = []
    written = owners(live)
    for d in differences(before, after, live):
        others = tuple(m for m in d.managers if m.name != ours)
        if d.managers and not others:
            continue  # still ours: it differs because git changed
        if not d.managers and not applied_here:
            continue  # nobody owns it: new in git, or removed by hand — cannot tell
        at = max((o.time for o in written if o.manager in others), default="")
        findings.append(DriftFinding(oid, path_text(d.path), value_text(d.intended), value_text(d.live), others, at))
    return tuple(findings)
