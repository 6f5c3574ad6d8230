"""Check a manifest against the schema the API server will hold it to, where no dry-run can be made yet.

That is an object in a Namespace, or of a CRD, that the same plan creates: the API server cannot dry-run it before
the Namespace or CRD exists, yet an invalid one must stop the run before the first write. The schema is the one the
server will use: for a custom resource, the ``openAPIV3Schema`` of the CRD rendered in the run; for any other kind
(built-in, or of a CRD already served), the server's OpenAPI v3 document of its group-version (``/openapi/v3``).

What is refused mirrors what the server refuses, and no more (a false refusal would block a valid apply):

* against the server's OpenAPI: a value of the wrong JSON type and a field the schema does not declare (server-side
  apply's "failed to create typed patch object"); ``null`` is accepted (server-side apply treats it as unset), and
  ``required`` and ``enum`` are left to the server (defaulting fills some fields; ``""`` means "the default" for
  others);
* against a rendered CRD: its whole structural schema (types, ``required``, ``enum``, bounds, patterns), undeclared
  fields, and ``null`` unless ``nullable``.

Kubernetes extensions: ``x-kubernetes-int-or-string`` and ``format: int-or-string`` take an integer or a string,
``x-kubernetes-preserve-unknown-fields`` keeps undeclared fields, ``x-kubernetes-embedded-resource`` allows
``apiVersion``, ``kind`` and ``metadata``. Formats and CEL rules (``x-kubernetes-validations``) are left to the
server (and to the dry-run apply makes once the Namespace or CRD exists). Pure: documents come from a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft4Validator
    from jsonschema.exceptions import ValidationError

#: ``apiVersion -> the API server's OpenAPI v3 document for it`` (None when it publishes none).
Fetch = Callable[[str], Mapping[str, Any] | None]

_CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
_MAX_PROBLEMS = 3
_MAX_MESSAGE = 200


class Mode(Enum):
    SERVER = "the API server's OpenAPI schema"  # types and declared fields only
    CRD = "the schema of its CRD in this run"  # the whole structural schema


@dataclass(frozen=True)
class _Checker:
    validator: Draft4Validator
    mode: Mode


class Schemas:
    """The schemas of one plan: the CRDs rendered in the run, and what the server publishes (each group-version
    fetched at most once, only when an object of it is checked)."""

    def __init__(self, fetch: Fetch, crds: Iterable[Mapping[str, Any]] = ()) -> None:
        self._fetch = fetch
        self._crds = crd_schemas(crds)
        self._docs: dict[str, dict[str, Any] | None] = {}
        self._checkers: dict[tuple[str, str], _Checker | None] = {}

    def problems(self, body: Mapping[str, Any]) -> list[str]:
        """What the API server would refuse in ``body``, one line each (``spec.replicas: 'x' is not of type
        'integer'``), at most a few; empty when it conforms or no schema is known."""
        key = (str(body.get("apiVersion")), str(body.get("kind")))
        if key not in self._checkers:
            self._checkers[key] = self._checker(*key)
        checker = self._checkers[key]
        if checker is None:
            return []
        instance = body if checker.mode is Mode.CRD else _without_nulls(body)
        try:
            errors = sorted(checker.validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
        except Exception:  # a schema Python cannot evaluate (an RE2-only pattern, an unknown type)
            return []  # checks nothing here: the dry-run once the Namespace or CRD exists still does
        return [_describe(e) for e in errors[:_MAX_PROBLEMS]]

    def source(self, body: Mapping[str, Any]) -> str | None:
        """Which schema :meth:`problems` checked ``body`` against, for messages (None: none was known)."""
        checker = self._checkers.get((str(body.get("apiVersion")), str(body.get("kind"))))
        return checker.mode.value if checker else None

    def _checker(self, api_version: str, kind: str) -> _Checker | None:
        from jsonschema import Draft4Validator  # here: most plans check nothing against a schema

        crd = self._crds.get((api_version, kind))
        if crd is not None:
            return _Checker(Draft4Validator(_fixed(crd, Mode.CRD, root=True)), Mode.CRD)
        if api_version not in self._docs:
            doc = self._fetch(api_version)
            schemas = ((doc or {}).get("components") or {}).get("schemas")
            self._docs[api_version] = (
                {name: _fixed(s, Mode.SERVER) for name, s in schemas.items()} if isinstance(schemas, dict) else None
            )
        components = self._docs[api_version]
        name = _component(components or {}, api_version, kind)
        if components is None or name is None:
            return None
        root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": components}}
        return _Checker(Draft4Validator(root), Mode.SERVER)


def crd_schemas(bodies: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """``(apiVersion, kind) -> openAPIV3Schema`` of every served version of every CRD among ``bodies``."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for body in bodies:
        spec = body.get("spec")
        if (body.get("apiVersion"), body.get("kind")) != _CRD or not isinstance(spec, dict):
            continue
        names = spec.get("names")
        kind = names.get("kind") if isinstance(names, dict) else None
        for version in spec.get("versions") or []:
            if not isinstance(version, dict) or not version.get("served", True):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(schema, dict) and isinstance(kind, str):
                found[(f"{spec.get('group')}/{version.get('name')}", kind)] = schema
    return found


def _component(components: Mapping[str, Any], api_version: str, kind: str) -> str | None:
    group, _, version = api_version.rpartition("/")
    for name, schema in components.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == (group, version, kind):
                return str(name)
    return None


_OBJECT_META = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def _fixed(node: Any, mode: Mode, *, root: bool = False) -> Any:
    """A Kubernetes schema node as a JSON Schema (draft 4) node that refuses what the server refuses (see above)."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in ("properties", "patternProperties"):
        if isinstance(node.get(key), dict):
            out[key] = {name: _fixed(s, mode) for name, s in node[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            out[key] = _fixed(node[key], mode)
    if isinstance(node.get("items"), list):
        out["items"] = [_fixed(s, mode) for s in node["items"]]
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            out[key] = [_fixed(s, mode) for s in node[key]]
    if mode is Mode.SERVER:
        out.pop("required", None)
        out.pop("enum", None)
    if root or node.get("x-kubernetes-embedded-resource"):  # the server checks these as ObjectMeta
        out["properties"] = {**out.get("properties", {}), **_OBJECT_META}
    if node.get("x-kubernetes-int-or-string") or node.get("format") == "int-or-string":
        out.pop("type", None)
        if not any(k in out for k in ("anyOf", "oneOf")):
            out["type"] = ["integer", "string"]
    declared = "properties" in out and "additionalProperties" not in out
    if declared and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if node.get("nullable") and mode is Mode.CRD:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
        out = {"anyOf": [{"type": "null"}, out]} if any(k in out for k in ("anyOf", "oneOf", "allOf")) else out
    return out


def _without_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_without_nulls(v) for v in node]
    return node


def _describe(error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "(root)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        declared = error.schema.get("properties") or {} if isinstance(error.schema, Mapping) else {}
        extra = sorted(k for k in error.instance if k not in declared)
        return f"{path}: {', '.join(extra)}: field not declared in the schema"
    message = error.message
    return f"{path}: {message[:_MAX_MESSAGE] + '…' if len(message) > _MAX_MESSAGE else message}"
