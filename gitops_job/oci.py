"""The OCI Distribution API's protocol rules, pure, for both of its clients (``registry`` for image tags,
``chartrepo`` for OCI charts): ``WWW-Authenticate`` challenges, ``Link`` pagination, the same-origin test, the
token service's request and answer, the basic-auth value, the manifest media types. No I/O; nothing of ours.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

IMAGE_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme (lower-case) and parameters (keys lower-case)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


_AUTH_PARAM = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)')


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` value (RFC 7235: ``Bearer realm="…",service="…", Basic realm=…``)."""
    out: list[Challenge] = []
    pos, text = 0, header or ""
    while pos < len(text):
        m = re.compile(r"[\s,]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)").match(text, pos)
        if not m:
            break
        scheme, pos = m[1].lower(), m.end()
        params: dict[str, str] = {}
        while True:
            p = _AUTH_PARAM.match(text, pos)
            if not p:
                break
            value = p[2]
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[p[1].lower()] = value
            pos = p.end()
        out.append(Challenge(scheme, params))
    return out


_LINK = re.compile(r"\s*<([^>]*)>\s*((?:;\s*[^;,]+)*)\s*(?:,|$)")


def parse_links(header: str) -> list[tuple[str, dict[str, str]]]:
    """A ``Link`` value (RFC 8288, formerly 5988) as ``(target, {param: value})``, parameter names lower-case."""
    out = []
    for m in _LINK.finditer(header or ""):
        params = {}
        for part in m[2].split(";"):
            key, eq, value = part.partition("=")
            if eq:
                params[key.strip().lower()] = value.strip().strip('"')
        out.append((m[1].strip(), params))
    return out


def next_link(header: str | None, base: str) -> str | None:
    """The absolute URL of the ``rel="next"`` link in ``header``, resolved against ``base``; ``None`` without one."""
    for target, params in parse_links(header or ""):
        if "next" in params.get("rel", "").split():
            return urljoin(base, target)
    return None


def same_origin(a: str, b: str) -> bool:
    """Whether two absolute URLs share scheme, host and port."""
    pa, pb = urlsplit(a), urlsplit(b)
    ports = {"http": 80, "https": 443}
    return (pa.scheme, pa.hostname, pa.port or ports.get(pa.scheme)) == (
        pb.scheme,
        pb.hostname,
        pb.port or ports.get(pb.scheme),
    )


def pull_scope(repository: str) -> str:
    """The token scope that lets a client read ``repository`` (tags, manifests, blobs)."""
    return f"repository:{repository}:pull"


def token_query(service: str | None, scope: str) -> dict[str, str]:
    """What a token request asks for: the challenge's ``service`` (when it names one) and ``scope``."""
    return {k: v for k, v in (("service", service), ("scope", scope)) if v}


def token_url(realm: str, query: Mapping[str, str]) -> str:
    """The token service's ``GET`` URL: ``query`` added to the realm's own."""
    return realm + ("&" if "?" in realm else "?") + urlencode(query)


def token_of(body: bytes) -> tuple[str, float]:
    """The token (``token``, else ``access_token``) of a token service's JSON answer and its lifetime in seconds
    (``expires_in``, 60 when not given); ``ValueError`` when the answer holds none."""
    try:
        doc = json.loads(body)
        value = doc.get("token") or doc.get("access_token")
        expires_in = float(doc.get("expires_in") or 60)
    except (ValueError, TypeError, AttributeError):
        raise ValueError("not a token answer") from None
    if not isinstance(value, str) or not value:
        raise ValueError("no token")
    return value, expires_in


def basic(username: str, password: str) -> str:
    """The base64 of ``username:password``: a docker config's ``auth``, and ``Authorization: Basic``'s value."""
    return base64.b64encode(f"{username}:{password}".encode()).decode()
