"""Flux-style ``${VAR}`` substitution (a Flux Kustomization's ``postBuild.substitute``), opt-in per stack.

:func:`expand` is the pure core: the grammar of fluxcd/pkg/envsubst, strict (Flux's ``strict-postbuild-substitutions``
mode): an undefined variable is an error unless the expression gives a default. :func:`substitute` applies it to
one rendered object's YAML text, as Flux does after ``kustomize build``.

Supported, as in Flux: ``${var}``; defaults ``${var:=default}``, ``${var:-default}``, ``${var=default}`` (each used
when the variable is unset *or empty*; a default may hold further ``${...}``); ``${#var}`` (length); ``${var^}``,
``${var^^}``, ``${var,}``, ``${var,,}`` (case); ``${var:offset}``, ``${var:offset:length}``; ``${var#glob}``,
``${var##glob}``, ``${var%glob}``, ``${var%%glob}`` (strip a prefix or suffix); ``${var/text/repl}``,
``${var//text/repl}``, ``${var/#text/repl}``, ``${var/%text/repl}`` (replace literal text). ``$$`` is a literal
``$`` (so ``$${var}`` is a literal ``${var}``); ``$var`` without braces is left alone. Anything else after ``${`` is an
error, as Flux's parser makes it one (``${var-default}``, ``${var:+x}`` and ``${var:?x}`` included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from gitops_job.errors import RenderError
from gitops_job.identity import ObjectId
from gitops_job.model import RenderedObject
from gitops_job.yamlio import load_documents

# Objects labelled or annotated with either key set to "disabled" are left as they are.
DISABLE_KEYS = ("kustomize.toolkit.fluxcd.io/substitute", "gitops-job.io/substitute")
DISABLED = "disabled"
VARIABLE_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")  # Flux's rule for the names of substitute variables

_DEFAULTS = (":=", ":-", "=")
_SPECIAL = re.compile(r"\$")
_SPECIAL_IN_ARGUMENT = re.compile(r"[$}]")
_PATTERN_END = re.compile(r"(?:\\.|[^/}\\])*[/}]?")  # a replace pattern: up to its unescaped '/' ('}' = malformed)
_UNSUPPORTED = (":?", ":+")  # fluxcd/pkg/envsubst parses these but documents them as unsupported


class SubstitutionError(ValueError):
    """A ``${...}`` expression that cannot be expanded: malformed, unsupported, or naming an undefined variable."""

    def __init__(self, reason: str, *, undefined: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.undefined = undefined


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """``text`` with every ``${...}`` expanded through ``lookup`` (None: undefined) and every ``$$`` made ``$``."""
    out, _ = _Parser(text, lookup).text(0, closing=False)
    return out


@dataclass
class _Parser:
    source: str
    lookup: Callable[[str], str | None]

    def text(self, i: int, *, closing: bool) -> tuple[str, int]:
        """Literal text with expressions expanded, from ``i`` up to the end (or, with ``closing``, to the ``}``
        that closes the expression it is an argument of: returned index is that ``}``)."""
        s, parts = self.source, []
        special = _SPECIAL_IN_ARGUMENT if closing else _SPECIAL
        while True:
            found = special.search(s, i)
            if found is None:
                parts.append(s[i:])
                i = len(s)
                break
            parts.append(s[i : found.start()])
            i = found.start()
            if s[i] == "}":
                return "".join(parts), i
            if s.startswith("${", i):
                value, i = self.expression(i + 2)
                parts.append(value)
            elif s.startswith("$$", i):
                parts.append("$")
                i += 2
            else:
                parts.append("$")
                i += 1
        if closing:
            raise SubstitutionError(f"missing closing brace in {self.snippet(i)}")
        return "".join(parts), i

    def snippet(self, i: int) -> str:
        start = self.source.rfind("${", 0, i)
        return self.source[start if start >= 0 else i :][:60]

    def expression(self, i: int) -> tuple[str, int]:
        """The value of the expression whose name starts at ``i`` (just after ``${``), and the index after its
        ``}``."""
        s = self.source
        if s.startswith("#", i):  # ${#var}: length
            name, i = self.name(i + 1)
            return str(len(self.value(name))), self.close(i)
        name, i = self.name(i)
        rest = s[i : i + 2]
        if not rest:
            raise SubstitutionError(f"missing closing brace in {self.snippet(i)}")
        if rest[:1] == "}":
            return self.value(name), i + 1
        operator = next((op for op in (*_DEFAULTS, *_UNSUPPORTED) if s.startswith(op, i)), None)
        if operator in _UNSUPPORTED:
            raise SubstitutionError(f"{operator!r} is not supported in {self.snippet(i)} (as in Flux)")
        if operator:
            default, i = self.text(i + len(operator), closing=True)
            found = self.lookup(name)
            return (found if found else default), i + 1
        if rest[:1] == ":":  # ${var:offset} or ${var:offset:length}
            body, i = self.text(i + 1, closing=True)
            return _substring(self.value(name), body.split(":", 1)), i + 1
        if rest[:1] in (",", "^"):
            operator = rest if rest in (",,", "^^") else rest[:1]
            value = self.value(name)
            return _CASES[operator](value), self.close(i + len(operator))
        if rest[:1] in ("#", "%"):
            operator = rest if rest in ("##", "%%") else rest[:1]
            pattern, i = self.text(i + len(operator), closing=True)
            return _trim(self.value(name), operator, pattern), i + 1
        if rest[:1] == "/":
            operator = rest if rest in ("//", "/#", "/%") else "/"
            return self.replace(name, operator, i + len(operator))
        raise SubstitutionError(f"bad substitution {self.snippet(i)}")

    def replace(self, name: str, operator: str, i: int) -> tuple[str, int]:
        found = _PATTERN_END.match(self.source, i)
        if found is None or not found[0].endswith("/"):
            raise SubstitutionError(f"bad substitution {self.snippet(i)}: expected ${{{name}{operator}text/repl}}")
        slash = found.end() - 1
        pattern = _unescape(self.source[i:slash])
        replacement, end = self.text(slash + 1, closing=True)
        value = self.value(name)
        if operator == "//":
            result = value.replace(pattern, replacement)
        elif operator == "/":
            result = value.replace(pattern, replacement, 1)
        elif operator == "/#":
            result = replacement + value[len(pattern) :] if value.startswith(pattern) else value
        else:
            result = value[: len(value) - len(pattern)] + replacement if value.endswith(pattern) else value
        return result, end + 1

    def name(self, i: int) -> tuple[str, int]:
        s = self.source
        end = i
        while end < len(s) and (s[end].isalnum() or s[end] == "_"):
            end += 1
        if end == i:
            raise SubstitutionError(f"bad substitution {self.snippet(i)}: expected a variable name after '${{'")
        return s[i:end], end

    def close(self, i: int) -> int:
        if not self.source.startswith("}", i):
            raise SubstitutionError(f"missing closing brace in {self.snippet(i)}")
        return i + 1

    def value(self, name: str) -> str:
        found = self.lookup(name)
        if found is None:
            raise SubstitutionError(f"undefined variable {name}", undefined=name)
        return found


_CASES: dict[str, Callable[[str], str]] = {
    "^": lambda v: v[:1].upper() + v[1:],
    "^^": str.upper,
    ",": lambda v: v[:1].lower() + v[1:],
    ",,": str.lower,
}


def _unescape(text: str) -> str:
    return text.replace("\\/", "/").replace("\\\\", "\\")


def _substring(value: str, args: list[str]) -> str:
    """bash's ``${var:offset}`` and ``${var:offset:length}``, as fluxcd/pkg/envsubst computes them."""
    try:
        offset = int(args[0])
    except ValueError:
        return value
    if offset < 0:
        offset = max(0, len(value) + offset)
    if len(args) == 1:
        return value[offset:]
    try:
        length = int(args[1])
    except ValueError:
        return value
    if length < 0:
        end = len(value) + length
        return value[offset:end] if end >= offset else ""
    return value[offset : offset + length]


def _glob(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` pattern as a regular expression: ``*`` and ``?`` never match ``/``."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 2 if pattern[i + 1 : i + 2] in ("^", "]") else i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + re.escape(body[1:]) if body.startswith("^") else re.escape(body)) + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _trim(value: str, operator: str, pattern: str) -> str:
    """``#``/``##`` strip the shortest/longest prefix matching ``pattern``; ``%``/``%%`` the suffix (matched, as in
    Flux, by reversing both the value and the pattern)."""
    suffix = operator.startswith("%")
    text, glob = (value[::-1], _glob(pattern[::-1])) if suffix else (value, _glob(pattern))
    lengths = range(len(text), 0, -1) if len(operator) == 2 else range(1, len(text) + 1)
    cut = next((n for n in lengths if glob.match(text[:n])), 0)
    result = text[cut:]
    return result[::-1] if suffix else result


# --- on objects ------------------------------------------------------------------------------------------------------


def variable_text(value: Any) -> str:
    """A variable as substitution sees it: strings as they are, anything else as JSON (valid YAML flow); newlines
    are removed, as Flux removes them."""
    return (value if isinstance(value, str) else json.dumps(value)).replace("\n", "")


def disabled(body: Mapping[str, Any]) -> bool:
    """Does the object opt out (a label or annotation ``…/substitute: disabled``)?"""
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return False
    return any(
        isinstance(metadata.get(field), dict) and metadata[field].get(key) == DISABLED
        for field in ("labels", "annotations")
        for key in DISABLE_KEYS
    )


def _has_dollar(value: Any) -> bool:
    if isinstance(value, str):
        return "$" in value
    if isinstance(value, dict):
        return any(_has_dollar(k) or _has_dollar(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_dollar(v) for v in value)
    return False


def substitute(obj: RenderedObject, values: Mapping[str, str]) -> RenderedObject:
    """The object with its YAML text expanded (:func:`expand`) and parsed again, so ``replicas: ${N}`` becomes a
    number; an error at the object's source when an expression fails or the result is another object."""
    if disabled(obj.body) or not _has_dollar(obj.body):
        return obj
    where = str(obj.source)
    text = yaml.dump(obj.body, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=1 << 30)
    try:
        text = expand(text, values.get)
    except SubstitutionError as e:
        fix = (
            f"set {e.undefined} in the stack's substitute (or the target's or stack's vars), pass --var, or give a "
            f"default (${{{e.undefined}:=value}})"
            if e.undefined
            else "fix the expression"
        )
        raise RenderError(
            f"${{VAR}} substitution: {e.reason}: {fix}; write $${{...}} for a literal ${{...}}, or opt the object out "
            f"with the annotation {DISABLE_KEYS[1]}: {DISABLED}",
            where=where,
        ) from None
    documents = load_documents(text, where, output_of="${VAR} substitution")
    body = documents[0][0] if len(documents) == 1 else None
    name = _name(obj.body)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("metadata", {}), dict)
        or body.get("kind") != obj.body.get("kind")
        or (_name(body) != name and "$" not in str(name))
    ):
        raise RenderError(
            "${VAR} substitution changed the object's structure, kind or name; check the variables' values",
            where=where,
        )
    return RenderedObject(ObjectId.of(body), body, obj.source, obj.stack)


def _name(body: Mapping[str, Any]) -> Any:
    metadata = body.get("metadata")
    return metadata.get("name") if isinstance(metadata, dict) else None
