"""Which tag a policy chooses, and why every other tag lost. Pure: tags in, a ``Selection`` out.

Flux v2's ImagePolicy (``image-reflector-controller``), rule for rule:

- ``semver: {range}`` — a tag is a version when it has at least two dots and parses as Masterminds/semver v3 parses
  it (optional ``v``, leading zeros allowed: ``v2025.02.03`` is 2025.2.3); the range is a Masterminds constraint
  (``1.2.x``, ``~1.2``, ``^1.2``, ``>=1.0 <2.0``, ``>=1.0, <2.0``, ``1.2 - 1.4``, ``||``); a pre-release is a
  candidate only when *every* constraint of an AND group carries a pre-release itself (``>=1.0.0-0``); the highest
  by semver precedence wins.
- ``alphabetical: {order}`` — ``asc`` (the default): the lexically highest tag wins; ``desc``: the lowest.
- ``numerical: {order}`` — every tag must parse as a number (Go's ``strconv.ParseFloat``); one that does not fails
  the policy, as in Flux (use ``filterTags`` to keep only numeric tags). ``asc``: the highest wins; ``desc``: the
  lowest; on equal numbers the later tag in the list wins.
- ``filterTags: {pattern, extract}`` — a Go (RE2) regular expression searched in each tag; a tag it does not match
  is not a candidate; with ``extract`` (``$1``, ``$name``, ``${name}``) the policy orders the extracted values and
  the winner is the original tag. Two tags that extract the same value: the later one stands, as in Flux.

Flux v1's ``fluxcd.io/tag.<container>`` filters:

- ``semver:RANGE`` — the same constraints; a tag is a version when Masterminds parses it loosely (``1``, ``1.2``,
  ``v1.2.3``); the highest wins.
- ``glob:PATTERN`` (the default without a prefix) — ``*`` matches any run of characters, nothing else is special,
  the whole tag must match. ``regex:``/``regexp:PATTERN`` — a Go regular expression searched in the tag.
  Flux v1 chose the newest image by its creation time for these; a tag list has no times, so we choose the highest
  by semver precedence when every matching tag is a version (Flux v2's rule), else the lexically highest tag.
  Flux v1 let an invalid range or regex match every tag; here it is an error.

Ties between tags of equal precedence (``1.0.0`` and ``v1.0.0``) go to the first in the list, where Flux's choice
depends on map order. Every regex is compiled once per policy: ``select`` does no compilation per tag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple

from gitops_job.errors import ImageError
from gitops_job.escape import printable

_UINT64 = 2**64


class Kind(StrEnum):
    SEMVER = "semver"
    ALPHABETICAL = "alphabetical"
    NUMERICAL = "numerical"
    GLOB = "glob"  # Flux v1
    REGEX = "regex"  # Flux v1


class Order(StrEnum):
    ASC = "asc"
    DESC = "desc"


class Removed(StrEnum):
    """Why a tag is not the winner (the text is what ``images why`` prints)."""

    FILTER = "filter did not match"
    SAME_VALUE = "a later tag extracts the same value"
    NOT_A_VERSION = "not a version"
    PRERELEASE = "pre-release not allowed"
    OUT_OF_RANGE = "outside range"
    NOT_A_NUMBER = "not a number"
    RANKED_LOWER = "ranked below the winner"


# --- versions ------------------------------------------------------------------------------------------------------

_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_LOOSE_VERSION = re.compile(rf"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-({_IDENT}))?(?:\+({_IDENT}))?")


class Version(NamedTuple):
    """A parsed version; ``key`` orders by semver precedence (build metadata ignored). A NamedTuple, not a frozen
    dataclass, as ``Candidate`` is: a selection makes one per tag, 10,000 of them within its 50 ms."""

    major: int
    minor: int
    patch: int
    prerelease: str
    build: str
    original: str
    key: tuple[Any, ...]

    def __str__(self) -> str:
        pre = f"-{self.prerelease}" if self.prerelease else ""
        build = f"+{self.build}" if self.build else ""
        return f"{self.major}.{self.minor}.{self.patch}{pre}{build}"


def _pre_key(pre: str) -> tuple[Any, ...]:
    # Masterminds' comparePrePart: a part that parses as a uint64 is numeric and ranks below any alphanumeric part;
    # numerics compare as numbers, alphanumerics as byte strings; fewer parts rank lower on an equal prefix.
    parts = []
    for part in pre.split("."):
        if part.isascii() and part.isdigit() and int(part) < _UINT64:
            parts.append((0, int(part), ""))
        else:
            parts.append((1, 0, part))
    return tuple(parts)


def parse_version(text: str) -> Version | None:
    """``text`` as Masterminds/semver v3's ``NewVersion`` reads it (loose: ``1``, ``1.2``, ``v1.2.3``, leading zeros
    coerced), or None."""
    if text.isascii() and text.replace(".", "", 2).isdigit():  # the common 1.2.3 (or 1.2, 1): no regex
        parts = text.split(".")
        if len(parts) == 3 and len(text) <= 21:  # 17 digits at most a part: each is below 2**64, nothing to check
            g_major, g_minor, g_patch = parts
            if g_major and g_minor and g_patch:
                major, minor, patch = int(g_major), int(g_minor), int(g_patch)
                return Version(major, minor, patch, "", "", text, (major, minor, patch, 1, ()))
    m = _LOOSE_VERSION.fullmatch(text)
    if m is None:
        return None
    g_major, g_minor, g_patch, pre, build = m.groups("")
    major, minor, patch = int(g_major), int(g_minor or 0), int(g_patch or 0)
    if major >= _UINT64 or minor >= _UINT64 or patch >= _UINT64:
        return None
    if pre and any(len(p) > 1 and p[0] == "0" and p.isdigit() for p in pre.split(".")):
        return None  # a numeric pre-release identifier with a leading zero
    key = (major, minor, patch, 0, _pre_key(pre)) if pre else (major, minor, patch, 1, ())
    return Version(major, minor, patch, pre, build, text, key)


def parse_tag(tag: str) -> Version | None:
    """``tag`` as Flux's ``version.ParseVersion`` reads it: at least two dots, then Masterminds' parse."""
    return parse_version(tag) if tag.count(".") >= 2 else None


# --- ranges (Masterminds/semver v3 constraints) -------------------------------------------------------------------

_S = r"[\t\n\f\r ]"  # Go's \s
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"  # the empty alternative is a bare version; order matters (leftmost-first)
_CV = (
    r"v?([0-9|xX*]+)(\.[0-9|xX*]+)?(\.[0-9|xX*]+)?"
    r"(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?"
)  # Masterminds' cvRegex: [0-9|xX*] includes '|', as theirs does
_CONSTRAINT = re.compile(rf"{_S}*({_OPS}){_S}*({_CV}){_S}*")
_HYPHEN = re.compile(rf"{_S}*({_CV}){_S}+-{_S}+({_CV}){_S}*")
_FIND = re.compile(rf"({_OPS}){_S}*({_CV})")
_VALID = re.compile(rf"({_S}*({_OPS}){_S}*({_CV}){_S}*)((?:{_S}+|,{_S}*)({_OPS}){_S}*({_CV}){_S}*)*")
_PRE = object()  # the reason a constraint refused a pre-release version


def _is_x(s: str) -> bool:
    return s in {"x", "X", "*"}


def _cmp(a: Version, b: Version) -> int:
    return (a.key > b.key) - (a.key < b.key)


def _pre_refused(v: Version, c: _Constraint) -> bool:
    return bool(v.prerelease) and not c.con.prerelease


@dataclass(frozen=True)
class _Constraint:
    op: str
    con: Version
    text: str
    dirty: bool
    minor_dirty: bool
    patch_dirty: bool
    check: Callable[[Version, _Constraint], object | None]  # None when satisfied, else ``_PRE`` or the reason


def _not_equal(v: Version, c: _Constraint) -> object | None:
    con = c.con
    if c.dirty:
        if _pre_refused(v, c):
            return _PRE
        if con.major != v.major:
            return None
        if con.minor != v.minor and not c.minor_dirty:
            return None
        if c.minor_dirty:
            return f"is equal to {c.text}"
        if con.patch != v.patch and not c.patch_dirty:
            return None
        if c.patch_dirty:
            same = v.prerelease == con.prerelease
            return f"is equal to {c.text}" if same or not (v.prerelease or con.prerelease) else None
    return f"is equal to {c.text}" if _cmp(v, con) == 0 else None


def _greater(v: Version, c: _Constraint) -> object | None:
    if _pre_refused(v, c):
        return _PRE
    con, no = c.con, f"is less than or equal to {c.text}"
    if not c.dirty:
        return None if _cmp(v, con) > 0 else no
    if v.major != con.major:
        return None if v.major > con.major else no
    if c.minor_dirty:
        return no
    if c.patch_dirty:
        return None if v.minor > con.minor else no
    return None if _cmp(v, con) > 0 else no


def _less(v: Version, c: _Constraint) -> object | None:
    if v.prerelease and not c.con.prerelease:
        return _PRE
    return None if v.key < c.con.key else f"is greater than or equal to {c.text}"


def _greater_equal(v: Version, c: _Constraint) -> object | None:
    if v.prerelease and not c.con.prerelease:
        return _PRE
    return None if v.key >= c.con.key else f"is less than {c.text}"


def _less_equal(v: Version, c: _Constraint) -> object | None:
    if _pre_refused(v, c):
        return _PRE
    con, no = c.con, f"is greater than {c.text}"
    if not c.dirty:
        return None if _cmp(v, con) <= 0 else no
    if v.major > con.major or (v.major == con.major and v.minor > con.minor and not c.minor_dirty):
        return no
    return None


def _tilde(v: Version, c: _Constraint) -> object | None:
    if _pre_refused(v, c):
        return _PRE
    con = c.con
    if _cmp(v, con) < 0:
        return f"is less than {c.text}"
    if (con.major, con.minor, con.patch) == (0, 0, 0) and not c.minor_dirty and not c.patch_dirty:
        return None  # ~0.0.0 (and ~*) accept everything
    if v.major != con.major:
        return f"does not have the same major version as {c.text}"
    if v.minor != con.minor and not c.minor_dirty:
        return f"does not have the same major and minor version as {c.text}"
    return None


def _tilde_or_equal(v: Version, c: _Constraint) -> object | None:
    if _pre_refused(v, c):
        return _PRE
    if c.dirty:
        return _tilde(v, c)
    return None if _cmp(v, c.con) == 0 else f"is not equal to {c.text}"


def _caret(v: Version, c: _Constraint) -> object | None:
    if _pre_refused(v, c):
        return _PRE
    con = c.con
    if _cmp(v, con) < 0:
        return f"is less than {c.text}"
    if con.major > 0 or c.minor_dirty:
        return None if v.major == con.major else f"does not have the same major version as {c.text}"
    if v.major > 0:
        return f"does not have the same major version as {c.text}"
    if con.minor > 0 or c.patch_dirty:
        return None if v.minor == con.minor else f"does not have the same minor version as {c.text}"
    if v.minor > 0:
        return f"does not have the same minor version as {c.text}"
    return None if v.patch == con.patch else f"is not equal to {c.text}"


_OP_CHECKS: dict[str, Callable[[Version, _Constraint], object | None]] = {
    "": _tilde_or_equal,
    "=": _tilde_or_equal,
    "!=": _not_equal,
    ">": _greater,
    "<": _less,
    ">=": _greater_equal,
    "=>": _greater_equal,
    "<=": _less_equal,
    "=<": _less_equal,
    "~": _tilde,
    "~>": _tilde,
    "^": _caret,
}


def _parse_constraint(text: str, where: str) -> _Constraint:
    m = _CONSTRAINT.fullmatch(text)
    if m is None:
        raise ImageError(f"improper constraint {text!r}", where=where)
    op, orig, major, minor, patch, pre = m[1], m[2], m[3], m[4] or "", m[5] or "", m[6] or ""
    dirty = minor_dirty = patch_dirty = False
    ver = orig
    if _is_x(major):
        ver, dirty = f"0.0.0{pre}", True
    elif not minor or _is_x(minor[1:]):
        ver, dirty, minor_dirty = f"{major}.0.0{pre}", True, True
    elif not patch or _is_x(patch[1:]):
        ver, dirty, patch_dirty = f"{major}{minor}.0{pre}", True, True
    con = parse_version(ver)
    if con is None:
        raise ImageError(f"improper constraint {text.strip()!r}: {orig!r} is not a version", where=where)
    return _Constraint(op, con, orig, dirty, minor_dirty, patch_dirty, _OP_CHECKS[op])


@dataclass(frozen=True)
class Range:
    """A Masterminds/semver v3 constraint: OR groups of AND-ed constraints."""

    text: str
    groups: tuple[tuple[_Constraint, ...], ...]

    def check(self, v: Version) -> tuple[Removed, str] | None:
        """None when ``v`` is in the range, else why not."""
        reason: tuple[Removed, str] | None = None
        for group in self.groups:
            failed = None
            for c in group:
                failed = c.check(v, c)
                if failed is not None:
                    break
            else:
                return None
            if failed is _PRE:
                reason = reason or (
                    Removed.PRERELEASE,
                    f"every constraint of {self.text!r} must carry a pre-release to admit one (e.g. >=1.0.0-0)",
                )
            elif reason is None or reason[0] is Removed.PRERELEASE:
                reason = (Removed.OUT_OF_RANGE, f"{v.original} {failed}")
        assert reason is not None  # a range has at least one group
        return reason


def parse_range(text: str, where: str = "semver range") -> Range:
    """A Masterminds/semver v3 range (``NewConstraint``), or ImageError naming ``where``."""
    rewritten = text
    for m in _HYPHEN.finditer(text):
        rewritten = rewritten.replace(m[0], f">= {m[1]}, <= {m[11]}", 1)
    groups = []
    for part in rewritten.split("||"):
        if not _VALID.fullmatch(part):
            raise ImageError(
                f"improper semver range {text!r} (near {part.strip()!r}): write e.g. '>=1.0.0', '~1.2', '^1.2', "
                "'1.x', '>=1.0 <2.0' or '1.0 - 2.0', and '>=1.0.0-0' to admit pre-releases",
                where=where,
            )
        groups.append(tuple(_parse_constraint(m[0], where) for m in _FIND.finditer(part)))
    return Range(text, tuple(groups))


# --- Go regular expressions ----------------------------------------------------------------------------------------

_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_UNSUPPORTED = re.compile(r"\(\?[=!]|\(\?<[=!]|\(\?>|\(\?P=|\\[1-9]|\\[pP]|\\Z")


def go_regex(pattern: str, where: str) -> re.Pattern[str]:
    """``pattern`` as Go's ``regexp.Compile`` reads it (RE2 syntax), compiled once; what RE2 refuses (lookaround,
    back-references) is refused here too, with ``where`` in the error."""
    bad = _UNSUPPORTED.search(pattern)
    if bad:
        raise ImageError(
            f"regular expression {pattern!r}: {bad[0]!r} is not Go (RE2) syntax (no lookaround, back-references, "
            "\\p classes or \\Z); rewrite it without",
            where=where,
        )
    translated = re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", pattern)  # (?<name>...) is RE2 for (?P<name>...)
    translated = translated.replace("\\z", "\\Z")
    translated = re.sub(r"\[:(\^?)([a-z]+):\]", lambda m: _posix(m, pattern, where), translated)
    try:
        return re.compile(translated)
    except re.error as e:
        raise ImageError(f"invalid regular expression {pattern!r}: {e}", where=where) from None


def _posix(m: re.Match[str], pattern: str, where: str) -> str:
    if m[2] not in _POSIX:
        raise ImageError(f"regular expression {pattern!r}: unknown class [:{m[2]}:]", where=where)
    if m[1]:
        raise ImageError(f"regular expression {pattern!r}: write [^[:{m[2]}:]] as a negated class", where=where)
    return _POSIX[m[2]]


_TEMPLATE_NAME = re.compile(r"\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)")


def go_expand(template: str, m: re.Match[str]) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}`` and ``$$``; ``$name`` takes the longest
    run of letters, digits and ``_``; a group that does not exist or did not take part is empty; a malformed ``$``
    stays as it is."""
    out, i, n = [], 0, len(template)
    groups = m.re.groupindex
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        if template.startswith("$$", j):
            out.append("$")
            i = j + 2
            continue
        ref = _TEMPLATE_NAME.match(template, j + 1)
        if ref is None:
            out.append("$")
            i = j + 1
            continue
        name = ref[1] or ref[2]
        index = int(name) if name.isdigit() else groups.get(name, -1)
        if 0 <= index <= (m.re.groups or 0):
            out.append(m.group(index) or "")
        i = ref.end()
    return "".join(out)


# --- numbers (Go's strconv.ParseFloat) ---------------------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"[+-]?0[xX](?:_?[0-9a-fA-F])*(?:\.(?:[0-9a-fA-F]_?)*)?[pP][+-]?[0-9]+")
_SPECIAL = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def parse_number(text: str) -> float | None:
    """``text`` as Go's ``strconv.ParseFloat(text, 64)`` accepts it, else None (out of range is refused too)."""
    if _SPECIAL.fullmatch(text):
        return float(text)
    if _DECIMAL.fullmatch(text):
        value = float(text)
    elif _HEX.fullmatch(text) and re.search(r"[0-9a-fA-F]", text.lstrip("+-")[2:].split("p")[0].split("P")[0]):
        try:
            value = float.fromhex(text.replace("_", ""))
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return value if math.isfinite(value) else None


# --- policies ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagFilter:
    """``filterTags``: the Go regex searched in each tag and the ``extract`` template (empty: the tag itself)."""

    pattern: str
    extract: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class Policy:
    """One image policy, compiled: ``select`` only runs it."""

    kind: Kind
    text: str  # how ``images why`` names it, e.g. "semver >=1.0.0" or "v1 glob:1.*"
    order: Order = Order.ASC
    range: Range | None = None
    filter: TagFilter | None = None
    v1: bool = False  # a Flux v1 tag filter: loose versions for semver, ``pattern`` for glob and regex
    pattern: re.Pattern[str] | None = None


def _order(spec: Any, where: str) -> Order:
    value = (spec or {}).get("order", "asc") if isinstance(spec, Mapping) else "asc"
    try:
        return Order(str(value).lower() or "asc")
    except ValueError:
        raise ImageError(f"order {value!r} is not asc or desc", where=where) from None


def parse_policy(spec: Mapping[str, Any], where: str) -> Policy:
    """A Flux v2 ImagePolicy ``spec`` (``policy`` with one of ``semver``/``alphabetical``/``numerical``, and
    optional ``filterTags``), or ImageError naming ``where``."""
    choice = spec.get("policy")
    if not isinstance(choice, Mapping) or len(choice) != 1 or next(iter(choice)) not in {k.value for k in Kind}:
        raise ImageError(
            "policy must have exactly one of semver: {range: ...}, alphabetical: {order: asc|desc} or "
            "numerical: {order: asc|desc}",
            where=where,
        )
    name, body = next(iter(choice.items()))
    tag_filter = None
    if (ft := spec.get("filterTags")) is not None:
        if not isinstance(ft, Mapping):
            raise ImageError("filterTags must be a mapping with pattern and extract", where=where)
        pattern, extract = str(ft.get("pattern") or ""), str(ft.get("extract") or "")
        tag_filter = TagFilter(pattern, extract, go_regex(pattern, f"{where}: filterTags.pattern"))
    if name == Kind.SEMVER:
        text = str((body or {}).get("range", "")) if isinstance(body, Mapping) else ""
        rng = parse_range(text, f"{where}: policy.semver.range")
        return Policy(Kind.SEMVER, f"semver {text}", range=rng, filter=tag_filter)
    if name in (Kind.ALPHABETICAL, Kind.NUMERICAL):
        order = _order(body, f"{where}: policy.{name}.order")
        return Policy(Kind(name), f"{name} {order}", order=order, filter=tag_filter)
    raise ImageError(f"policy {name} is a Flux v1 tag filter, not an ImagePolicy policy", where=where)


def parse_v1_filter(text: str, where: str) -> Policy:
    """A Flux v1 ``fluxcd.io/tag.<container>`` value: ``semver:RANGE``, ``regex:``/``regexp:RE`` or ``glob:GLOB``
    (the default without a prefix)."""
    if text.startswith("semver:"):
        return Policy(Kind.SEMVER, f"v1 {text}", range=parse_range(text[7:], where), v1=True)
    for prefix in ("regexp:", "regex:"):
        if text.startswith(prefix):
            return Policy(Kind.REGEX, f"v1 {text}", v1=True, pattern=go_regex(text[len(prefix) :], where))
    glob = text.removeprefix("glob:")
    regex = re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.DOTALL)
    return Policy(Kind.GLOB, f"v1 glob:{glob}", v1=True, pattern=regex)


# --- selection -----------------------------------------------------------------------------------------------------


class Candidate(NamedTuple):
    """One tag: the value the policy ordered (the extracted one under ``filterTags``) and, unless it won, why not.
    Immutable like the frozen dataclasses elsewhere, and cheap to make: there is one per tag."""

    tag: str
    value: str
    removed: Removed | None = None
    detail: str = ""


@dataclass(frozen=True)
class Selection:
    """What ``select`` decided: the winning tag (None when nothing qualified) and, when there is none, the reason
    (``error``) the way Flux's ImagePolicy status would say it; ``candidates``: every tag with its fate, in the
    registry's order. The fates of the tags that merely ranked lower are written out when first asked for (``images
    why``, ``images list``): a scheduled run choosing among 50,000 tags needs only the winners."""

    policy: Policy
    winner: str | None
    error: str = ""
    tags: Sequence[str] = field(default=(), repr=False, compare=False)
    removed: Mapping[int, Candidate] = field(default_factory=dict, repr=False, compare=False)  # index -> a rule's no
    values: Sequence[tuple[int, str]] = field(default=(), repr=False, compare=False)  # (index, the value ordered)
    index: int | None = field(default=None, repr=False, compare=False)  # the winner's place in ``tags``

    @cached_property
    def candidates(self) -> tuple[Candidate, ...]:
        out = dict(self.removed)
        below = f"below {self.winner}" if self.winner is not None else "the policy chose no tag"
        for i, value in self.values:
            if i == self.index:
                out[i] = Candidate(self.tags[i], value)
            elif i not in out:
                out[i] = Candidate(self.tags[i], value, Removed.RANKED_LOWER, below)
        return tuple(out[i] for i in sorted(out))


def select(policy: Policy, tags: Sequence[str]) -> Selection:
    """The tag ``policy`` chooses among ``tags`` (in the registry's order) and why each other tag lost."""
    out: dict[int, Candidate] = {}
    values: list[tuple[int, str]] = []  # (index into tags, the value the policy orders)
    if policy.filter is not None:
        regex, extract = policy.filter.regex, policy.filter.extract
        latest: dict[str, int] = {}
        for i, tag in enumerate(tags):
            m = regex.search(tag)
            if m is None:
                out[i] = Candidate(tag, tag, Removed.FILTER, f"{policy.filter.pattern!r} does not match")
                continue
            value = go_expand(extract, m) if extract else tag
            if value in latest:
                j = latest[value]
                out[j] = Candidate(tags[j], value, Removed.SAME_VALUE, f"{tag} extracts {value!r} too")
            latest[value] = i
        values = sorted((i, v) for v, i in latest.items())
    elif policy.pattern is not None:
        pattern, full = policy.pattern, policy.kind is Kind.GLOB
        for i, tag in enumerate(tags):
            if (pattern.fullmatch(tag) if full else pattern.search(tag)) is None:
                out[i] = Candidate(tag, tag, Removed.FILTER, f"{policy.text[3:]} does not match")
            else:
                values.append((i, tag))
    else:
        values = list(enumerate(tags))
    winner, error = _RANKERS[policy.kind](policy, tags, values, out)
    if winner is None and not error:
        error = "no tag qualified" if tags else "the tag list is empty"
    chosen = None if winner is None else tags[winner]
    return Selection(policy, chosen, error, tuple(tags), out, values, winner)


_Values = list[tuple[int, str]]  # (index into the tag list, the value the policy orders)
_Out = dict[int, Candidate]  # index into the tag list -> its fate, once decided
_Ranker = Callable[[Policy, Sequence[str], _Values, _Out], tuple[int | None, str]]


def _rank_semver(policy: Policy, tags: Sequence[str], values: _Values, out: _Out) -> tuple[int | None, str]:
    rng, loose = policy.range, policy.v1
    assert rng is not None
    best: tuple[Any, ...] | None = None
    winner = None
    for i, value in values:
        v = parse_version(value) if loose or value.count(".") >= 2 else None
        if v is None:
            out[i] = Candidate(tags[i], value, Removed.NOT_A_VERSION, "three dot-separated numbers, optional v")
            continue
        why = rng.check(v)
        if why is not None:
            out[i] = Candidate(tags[i], value, why[0], why[1])
        elif best is None or v.key > best:
            best, winner = v.key, i
    return winner, "" if winner is not None else f"no tag is a version in range {rng.text!r}"


def _rank_alphabetical(policy: Policy, tags: Sequence[str], values: _Values, out: _Out) -> tuple[int | None, str]:
    if not values:
        return None, ""
    pick = max if policy.order is Order.ASC else min
    return pick(values, key=lambda iv: iv[1])[0], ""


def _rank_numerical(policy: Policy, tags: Sequence[str], values: _Values, out: _Out) -> tuple[int | None, str]:
    winner, best, bad = None, 0.0, []
    for i, value in values:
        number = parse_number(value)
        if number is None:
            out[i] = Candidate(tags[i], value, Removed.NOT_A_NUMBER, "every tag must be a number: add filterTags")
            bad.append(value)
            continue
        # Flux's loop: the first value, then any later one not beaten (so the later of equal numbers wins).
        if winner is None or not (number < best if policy.order is Order.ASC else number > best):
            winner, best = i, number
    if bad:
        # Flux fails the whole policy on one non-number; the tags that would have won are ranked but not chosen.
        return None, f"{bad[0]!r} is not a number, and a numerical policy takes numbers only: filter with filterTags"
    return winner, ""


def _rank_v1_pattern(policy: Policy, tags: Sequence[str], values: _Values, out: _Out) -> tuple[int | None, str]:
    versions = [(i, parse_tag(value)) for i, value in values]
    if values and all(v is not None for _, v in versions):
        return max(versions, key=lambda iv: iv[1].key if iv[1] else ())[0], ""
    return _rank_alphabetical(policy, tags, values, out)


_RANKERS: dict[Kind, _Ranker] = {
    Kind.SEMVER: _rank_semver,
    Kind.ALPHABETICAL: _rank_alphabetical,
    Kind.NUMERICAL: _rank_numerical,
    Kind.GLOB: _rank_v1_pattern,
    Kind.REGEX: _rank_v1_pattern,
}


# --- images why ----------------------------------------------------------------------------------------------------


def why_table(selection: Selection) -> str:
    """The ``images why POLICY`` text: the policy, the winner (or why there is none), then one row per tag — the
    winner first, then the tags it beat, then those a rule removed, each group in the registry's order."""
    policy = selection.policy
    lines = [f"policy: {printable(policy.text, one_line=True)}"]
    if policy.filter is not None:
        extract = f", extract {printable(policy.filter.extract, one_line=True)!r}" if policy.filter.extract else ""
        lines.append(f"filterTags: pattern {printable(policy.filter.pattern, one_line=True)!r}{extract}")
    if selection.winner is not None:
        lines.append(f"chosen: {printable(selection.winner, one_line=True)}")
    else:
        lines.append(f"chosen: none ({printable(selection.error, one_line=True)})")
    rank = {None: 0, Removed.RANKED_LOWER: 1}
    rows = sorted(selection.candidates, key=lambda c: rank.get(c.removed, 2))
    extracted = policy.filter is not None and bool(policy.filter.extract)
    table: list[tuple[str, ...]] = [("TAG", "VALUE", "VERDICT", "WHY")] if extracted else [("TAG", "VERDICT", "WHY")]
    for c in rows:
        verdict = "chosen" if c.removed is None else c.removed.value
        cells = (c.tag, c.value, verdict, c.detail) if extracted else (c.tag, verdict, c.detail)
        table.append(tuple(printable(x, one_line=True) for x in cells))
    widths = [max(len(row[k]) for row in table) for k in range(len(table[0]) - 1)]
    for row in table:
        lines.append("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip())
    return "\n".join(lines) + "\n"
