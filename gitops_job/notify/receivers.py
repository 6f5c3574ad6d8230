"""Delivery: each configured receiver is sent the events it selects, once a run is over.

:func:`deliver` is the one call (``apply`` makes it, and so will ``reconcile``): results in, one :class:`Delivery`
per receiver out. It never raises for a receiver: a refused connection, a timeout, an HTTP error or a missing secret
is that receiver's failed delivery, which the caller reports as a warning; the run's own result does not change.
Secrets are read here (environment or file) and never shown: a delivery's detail names the receiver and the URL's
scheme and host only, and every secret value is scrubbed from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import urllib3

from gitops_job import __version__
from gitops_job.config.notifications import Receiver, SecretRef
from gitops_job.errors import GitopsJobError
from gitops_job.notify.events import Event, commit_state, events_of, slack_payload, summary
from gitops_job.reconcile.results import ApplyResult

USER_AGENT = f"gitops-job/{__version__}"
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class Delivery:
    """How one receiver's delivery went. ``detail`` is safe to print: it never holds a secret."""

    receiver: str
    type: str
    ok: bool
    sent: int = 0  # events (webhook) or messages (slack, github) delivered
    detail: str = ""
    skipped: bool = False  # nothing to send it (no event it selects, or no commit to set a status on)

    def __str__(self) -> str:
        how = "skipped" if self.skipped else "delivered" if self.ok else "FAILED"
        return f"receiver {self.receiver} ({self.type}): {how}" + (f": {self.detail}" if self.detail else "")


class StatusClient(Protocol):
    """What a ``github`` receiver needs of :class:`gitops_job.github.client.GitHub` (the one GitHub client; ``notify``
    and ``github`` are siblings, so the caller hands it in)."""

    def set_status(self, sha: str, state: Any, description: str, context: str = ...) -> None: ...

    def close(self) -> None: ...


#: Makes a :class:`StatusClient` from ``(api_url, token, repository, timeout)``; raises a :class:`GitopsJobError`.
GitHubFactory = Callable[[str, str, str, float], StatusClient]


class _Failed(Exception):
    """A delivery failed; the message is safe to show once secrets are scrubbed from it."""


def deliver(
    receivers: Sequence[Receiver],
    result: ApplyResult,
    *,
    namespace: str,
    env: Mapping[str, str] = os.environ,
    clock: Callable[[], str] | None = None,
    github: GitHubFactory | None = None,
) -> list[Delivery]:
    """Tell every receiver about ``result`` (a run of target ``result.target`` whose inventories are in
    ``namespace``): one :class:`Delivery` per receiver, in config order. Never raises for a receiver. ``github``
    makes the GitHub client for ``github`` receivers (without one, they fail: nothing to reach GitHub with)."""
    if not receivers:
        return []
    events = events_of(result, namespace) if clock is None else events_of(result, namespace, clock)
    return [_deliver_one(r, [e for e in events if e.reason in r.events], result, env, github) for r in receivers]


def _deliver_one(
    r: Receiver, events: list[Event], result: ApplyResult, env: Mapping[str, str], github: GitHubFactory | None
) -> Delivery:
    secrets: list[str] = []
    if not events:
        return Delivery(r.name, r.type, ok=True, skipped=True, detail="no event it selects")
    try:
        if r.type == "webhook":
            return _webhook(r, events, env, secrets)
        if r.type == "slack":
            return _slack(r, events, result, env, secrets)
        return _github(r, events, result, env, secrets, github)
    except _Failed as e:
        return Delivery(r.name, r.type, ok=False, detail=scrub(str(e), secrets))
    except Exception as e:  # a receiver never fails the run: whatever went wrong is its failed delivery
        return Delivery(r.name, r.type, ok=False, detail=scrub(f"unexpected {type(e).__name__}: {e}", secrets))


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret value (and a URL's path and query, which hold its token) replaced by ``***``."""
    for s in sorted(secrets, key=len, reverse=True):
        if s:
            text = text.replace(s, "***")
    return text


def resolve(ref: SecretRef, env: Mapping[str, str], secrets: list[str]) -> str:
    """The secret ``ref`` names (learned into ``secrets`` for scrubbing); :class:`_Failed` saying why when it is
    not there."""
    if ref.env is not None:
        value = env.get(ref.env)
        if value is None:
            raise _Failed(f"environment variable {ref.env} is not set")
    else:
        assert ref.file is not None
        try:
            value = Path(ref.file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise _Failed(f"cannot read secret file {ref.file}: {getattr(e, 'strerror', None) or e}") from None
    if not value.strip():
        raise _Failed(f"the secret in {ref} is empty")
    value = value.strip()
    secrets.append(value)
    parts = urlsplit(value)
    for piece in (parts.path, parts.query, parts.password or "", parts.username or ""):
        if len(piece) > 1:
            secrets.append(piece)
    return value


def where(url: str) -> str:
    """The part of a URL that is safe to show: scheme and host (with port); never the path, query or userinfo."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _url(r: Receiver, env: Mapping[str, str], secrets: list[str]) -> str:
    assert r.url is not None
    url = resolve(r.url, env, secrets)
    if urlsplit(url).scheme not in ("http", "https"):
        raise _Failed(f"the URL in {r.url} is not an http(s) URL")
    return url


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
    """POST ``body``; :class:`_Failed` (naming only scheme and host) unless the answer is 2xx."""
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=timeout))
    try:
        answer = http.request("POST", url, body=body, headers={"User-Agent": USER_AGENT, **headers}, redirect=False)
    except urllib3.exceptions.NewConnectionError as e:  # first: urllib3 makes it a ConnectTimeoutError too
        raise _Failed(f"cannot connect to {where(url)}: {_reason(e)}") from None
    except urllib3.exceptions.TimeoutError:
        raise _Failed(f"{where(url)} did not answer within {timeout:g}s") from None
    except urllib3.exceptions.HTTPError as e:
        raise _Failed(f"cannot reach {where(url)}: {type(e).__name__}") from None
    finally:
        http.clear()
    if not 200 <= answer.status < 300:
        raise _Failed(f"{where(url)} answered HTTP {answer.status}")


def _reason(e: Exception) -> str:
    text = str(e)
    if "refused" in text.lower():
        return "connection refused"
    if "name or service not known" in text.lower() or "resolution" in text.lower():
        return "unknown host"
    return type(e).__name__


def _webhook(r: Receiver, events: list[Event], env: Mapping[str, str], secrets: list[str]) -> Delivery:
    url = _url(r, env, secrets)
    key = resolve(r.hmac_key, env, secrets).encode() if r.hmac_key is not None else None
    sent = 0
    for e in events:
        body = json.dumps(e.flux(), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["X-Signature"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        try:
            _post(url, body, headers, r.timeout)
        except _Failed as failed:
            raise _Failed(f"{failed} ({sent} of {len(events)} event(s) delivered)") from None
        sent += 1
    return Delivery(r.name, r.type, ok=True, sent=sent, detail=f"{sent} event(s) to {where(url)}")


def _slack(
    r: Receiver, events: list[Event], result: ApplyResult, env: Mapping[str, str], secrets: list[str]
) -> Delivery:
    url = _url(r, env, secrets)
    body = json.dumps(slack_payload(result.target, result.revision, events), ensure_ascii=False).encode()
    _post(url, body, {"Content-Type": "application/json"}, r.timeout)
    return Delivery(r.name, r.type, ok=True, sent=1, detail=f"1 message to {where(url)}")


def _github(
    r: Receiver,
    events: list[Event],
    result: ApplyResult,
    env: Mapping[str, str],
    secrets: list[str],
    github: GitHubFactory | None,
) -> Delivery:
    if not _SHA.match(result.revision):
        return Delivery(r.name, r.type, ok=True, skipped=True, detail=f"revision {result.revision!r} is not a commit")
    assert r.token is not None and r.repository is not None
    if github is None:
        raise _Failed("no GitHub client was given to deliver with")
    token = resolve(r.token, env, secrets)
    context = r.context or f"gitops-job/{result.target}"
    state = commit_state(events)
    try:
        gh = github(r.api_url, token, r.repository, r.timeout)
        try:
            gh.set_status(result.revision, state, summary(result.target, result.revision, events), context=context)
        finally:
            gh.close()
    except GitopsJobError as e:
        raise _Failed(str(e)) from None
    return Delivery(r.name, r.type, ok=True, sent=1, detail=f"{state} on {r.repository}@{result.revision[:12]}")


def warnings(deliveries: Sequence[Delivery]) -> list[str]:
    """One warning line per failed delivery, naming the receiver (what the CLI prints on stderr)."""
    return [f"warning: notification {d}; the run's result is unchanged" for d in deliveries if not d.ok]
