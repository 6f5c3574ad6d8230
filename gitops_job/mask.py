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
    """Consistent tokens for every secret value of one run."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}  # plaintext -> token
        self._forms: dict[str, str] = {}  # every searchable form (plain, base64, URL-encoded) -> token

    def token(self, plaintext: str) -> str:
        if plaintext not in self._tokens:
            token = f"<secret #{len(self._tokens) + 1}>"
            self._tokens[plaintext] = token
            self._add_forms(plaintext, token)
        return self._tokens[plaintext]

    def _add_forms(self, plaintext: str, token: str) -> None:
        encoded = base64.b64encode(plaintext.encode()).decode()
        for form in {plaintext, encoded, quote(plaintext, safe=""), quote_plus(plaintext)}:
            if form:
                self._forms[form] = token

    def learn(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Register the secret values of every Secret among ``objects`` (call before masking anything)."""
        for obj in objects:
            if _is_secret(obj):
                for value in (obj.get("data") or {}).values():
                    decoded = _decode(value) if isinstance(value, str) else None
                    self.token(decoded if decoded is not None else _text(value))
                    if decoded is not None:
                        self._forms.setdefault(value, self._tokens[decoded])
                for value in (obj.get("stringData") or {}).values():
                    self.token(_text(value))  # a wrong type (a number) is still a secret, and API errors echo it
            annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
            if isinstance(annotation, str) and _is_secret(obj):
                self.token(annotation)

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
            annotations[LAST_APPLIED] = self.token(annotations[LAST_APPLIED])
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
            return self.token(_text(value))
        decoded = _decode(value) if base64_encoded else value
        return self.token(decoded if decoded is not None else value)

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
        for form in sorted(self._forms, key=len, reverse=True):
            if len(form) >= MIN_SCRUB_LENGTH and form in text:
                text = text.replace(form, self._forms[form])
        return text
