"""The ``notifications:`` section of ``gitops.yaml``: named receivers, and the secrets they need by reference only.

A secret (a webhook URL, which carries its token; an HMAC key; a GitHub token) is named by the environment variable or
the file that holds it, never written in the config: an inline one is refused, and the refusal never shows it. The
references are resolved when the notifications are delivered (:mod:`gitops_job.notify`), not here: the process that
loads the config (a PR's plan, say) need not have the secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Every event reason a receiver can select (docs/config.md#notifications). ``ApplySucceeded`` and ``ApplyFailed`` are
#: also the reasons of the Kubernetes Events on each stack's inventory.
REASONS = ("ApplySucceeded", "ApplyFailed", "DriftDetected")
TYPES = ("webhook", "slack", "github")
SECRET_KEYS = ("url", "hmacKey", "token")
_REQUIRED = {"webhook": ("url",), "slack": ("url",), "github": ("token", "repository")}
_ALLOWED = {
    "webhook": {"url", "hmacKey"},
    "slack": {"url"},
    "github": {"token", "repository", "apiUrl", "context"},
}
_COMMON = {"name", "type", "events", "timeout"}

Problem = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is: exactly one of an environment variable's name or a file path."""

    env: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        return f"env {self.env}" if self.env is not None else f"file {self.file}"


@dataclass(frozen=True)
class Receiver:
    name: str
    type: str  # one of TYPES
    url: SecretRef | None = None  # webhook, slack
    hmac_key: SecretRef | None = None  # webhook
    token: SecretRef | None = None  # github
    repository: str | None = None  # github: owner/name
    api_url: str = "https://api.github.com"  # github
    context: str | None = None  # github: default gitops-job/<target>
    events: tuple[str, ...] = REASONS
    timeout: float = 10.0  # seconds per request


def problems(data: Mapping[str, Any]) -> list[Problem]:
    """What is wrong in the (schema-valid) ``notifications`` section: duplicate names, keys another type needs, a
    secret reference with neither or both of ``env`` and ``file``, and an inline secret (never shown)."""
    section = data.get("notifications")
    if section is None:
        return []
    found: list[Problem] = []
    first: dict[str, int] = {}
    for i, r in enumerate(section["receivers"]):
        at: tuple[str | int, ...] = ("notifications", "receivers", i)
        j = first.setdefault(r["name"], i)
        if j != i:
            found.append(((*at, "name"), f"duplicate receiver name {r['name']!r} (also notifications.receivers[{j}])"))
        kind = r["type"]
        for key in _REQUIRED[kind]:
            if key not in r:
                found.append((at, f"a {kind} receiver needs {key!r}"))
        for key in r:
            if key not in _ALLOWED[kind] | _COMMON:
                users = ", ".join(t for t in TYPES if key in _ALLOWED[t])
                found.append(((*at, key), f"{key!r} is for {users} receivers, not {kind}"))
        for key in SECRET_KEYS:
            if key in r:
                found.extend(((*at, key), why) for why in secret_problems(key, r[key]))
    return found


def secret_problems(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [
            f"an inline secret is refused (not shown here): give {key} as {{env: VARIABLE}} or {{file: PATH}}, and "
            "remove it from the file (and from git history, if it was committed)"
        ]
    if len(value) != 1:
        return [f"give exactly one of env or file, not {' and '.join(value) or 'neither'}"]
    return []


def receivers(data: Mapping[str, Any], seconds: Any) -> tuple[Receiver, ...]:
    """The receivers of the checked ``notifications`` section (none without one); ``seconds`` parses a duration."""
    section = data.get("notifications")
    if section is None:
        return ()
    return tuple(_receiver(r, seconds) for r in section["receivers"])


def _receiver(raw: Mapping[str, Any], seconds: Any) -> Receiver:
    def ref(key: str) -> SecretRef | None:
        value = raw.get(key)
        return None if value is None else SecretRef(value.get("env"), value.get("file"))

    optional: dict[str, Any] = {}
    if "apiUrl" in raw:
        optional["api_url"] = raw["apiUrl"]
    if "events" in raw:
        optional["events"] = tuple(raw["events"])
    if "timeout" in raw:
        optional["timeout"] = seconds(raw["timeout"])
    return Receiver(
        name=raw["name"],
        type=raw["type"],
        url=ref("url"),
        hmac_key=ref("hmacKey"),
        token=ref("token"),
        repository=raw.get("repository"),
        context=raw.get("context"),
        **optional,
    )
