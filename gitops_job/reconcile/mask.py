"""Secrets never leak: masking happens inside the engine, before any output is built.

A :class:`Masker` learns every secret value of a run first (Secret ``data`` and ``stringData``, live and desired),
then masks copies for display: each distinct value becomes one token, ``<secret #1>``, ``<secret #2>`` …, the same
token wherever the value appears, so a reviewer sees *that* a value changed and never what it is. The
``last-applied-configuration`` annotation (a full copy of the object as last applied client-side) is masked the same
way. Any other string — a ConfigMap value, an env var, an API error message — is scrubbed of every learned value in
its plain, base64 and URL-encoded forms. The masked copies are for output only; nothing masked is ever sent to the API.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Shorter values are masked only where they are a whole string, not searched for inside longer text.
MIN_SCRUB_LENGTH = 4


def _is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and str(obj.get("apiVersion", "")) == "v1"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _decode(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class Masker:
    """Consistent tokens for every secret value of one run.

    Tokens are numbered in the order :meth:`learn` meets the values, so a run learns everything first, from one
    thread, in a fixed order (the engine's objects, then the live ones); then :meth:`mask` and :meth:`scrub` only
    look values up and may run on many threads at once. A value :meth:`mask` meets that was never learned still
    gets a token (under a lock), but its number would depend on timing: :attr:`late` counts them (the engine learns
    as it should when it stays 0), since the plan's digest covers the tokens.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}  # plaintext -> token
        self._forms: dict[str, str] = {}  # every searchable form (plain, base64, URL-encoded) -> token
        self._whole: dict[str, str] = {}  # masked only as a whole string: other objects' last-applied annotations
        self._searched: list[tuple[str, str]] = []  # the forms scrub searches for, longest first
        self._lock = threading.Lock()
        self.late = 0  # tokens minted by mask() for values never learned
        self._count = 0  # tokens minted so far

    def token(self, plaintext: str) -> str:
        """The token of ``plaintext``, minted when it is new (learning: call from one thread, before masking)."""
        with self._lock:
            return self._mint(plaintext)

    def _mint(self, plaintext: str) -> str:
        if plaintext not in self._tokens:
            token = self._next()
            self._tokens[plaintext] = token
            self._add_forms(plaintext, token)
        return self._tokens[plaintext]

    def _lookup(self, plaintext: str) -> str:
        """The token of a value met while masking: learned, or (never, when the engine learns first) minted late."""
        found = self._tokens.get(plaintext) or self._whole.get(plaintext)
        if found is not None:
            return found
        with self._lock:
            self.late += plaintext not in self._tokens and plaintext not in self._whole
            return self._mint(plaintext)

    def _add_forms(self, plaintext: str, token: str) -> None:
        encoded = base64.b64encode(plaintext.encode()).decode()
        for form in {plaintext, encoded, quote(plaintext, safe=""), quote_plus(plaintext)}:
            if form:
                self._forms[form] = token
        self._index()

    def _index(self) -> None:
        forms = sorted(self._forms.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._searched = [(form, token) for form, token in forms if len(form) >= MIN_SCRUB_LENGTH]

    def learn(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Register the secret values of every Secret among ``objects``, and every object's last-applied annotation
        (call before masking anything, from one thread: the order of learning numbers the tokens)."""
        with self._lock:
            for obj in objects:
                self._learn(obj)

    def _learn(self, obj: Mapping[str, Any]) -> None:
        secret = _is_secret(obj)
        if secret:
            for value in (obj.get("data") or {}).values():
                decoded = _decode(value) if isinstance(value, str) else None
                self._mint(decoded if decoded is not None else _text(value))
                if decoded is not None and value not in self._forms:
                    self._forms[value] = self._tokens[decoded]
                    self._index()
            for value in (obj.get("stringData") or {}).values():
                self._mint(_text(value))  # a wrong type (a number) is still a secret, and API errors echo it
        annotations = (obj.get("metadata") or {}).get("annotations")
        annotation = annotations.get(LAST_APPLIED) if isinstance(annotations, Mapping) else None
        if isinstance(annotation, str):
            if secret:
                self._mint(annotation)  # it holds the values: searched for like them
            elif annotation not in self._tokens and annotation not in self._whole:
                self._whole[annotation] = self._next()

    def _next(self) -> str:
        self._count += 1
        return f"<secret #{self._count}>"

    def mask(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A masked deep copy of ``obj`` for display."""
        out = copy.deepcopy(dict(obj))
        if _is_secret(out):
            for field in ("data", "stringData"):
                values = out.get(field)
                if isinstance(values, dict):
                    out[field] = {k: self._mask_value(v, base64_encoded=field == "data") for k, v in values.items()}
        annotations = (out.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict) and isinstance(annotations.get(LAST_APPLIED), str):
            annotations[LAST_APPLIED] = self._lookup(annotations[LAST_APPLIED])
        masked = dict(self._scrub_tree(out))
        # The identity is printed in every heading anyway; a short secret value equal to a name must not mask it.
        for key in ("apiVersion", "kind"):
            if key in obj:
                masked[key] = obj[key]
        meta, masked_meta = obj.get("metadata"), masked.get("metadata")
        if isinstance(meta, Mapping) and isinstance(masked_meta, dict):
            masked_meta.update({k: meta[k] for k in ("name", "namespace") if k in meta})
        return masked

    def _mask_value(self, value: Any, *, base64_encoded: bool) -> str:
        if not isinstance(value, str):
            return self._lookup(_text(value))
        decoded = _decode(value) if base64_encoded else value
        return self._lookup(decoded if decoded is not None else value)

    def _scrub_tree(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {self.scrub(k) if isinstance(k, str) else k: self._scrub_tree(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._scrub_tree(v) for v in node]
        if isinstance(node, str):
            return self.scrub(node)
        return node

    def scrub(self, text: str) -> str:
        """``text`` with every learned secret value (plain, base64, URL-encoded) replaced by its token."""
        if text in self._forms:
            return self._forms[text]
        if text.startswith("<secret #") and text.endswith(">"):
            return text
        for form, token in self._searched:
            if form in text:
                text = text.replace(form, token)
        return text
