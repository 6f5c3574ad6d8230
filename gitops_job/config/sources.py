"""The ``sources:`` section of ``gitops.yaml`` — which hosts a run may fetch from (remote Helm charts: a stack's
``chart:`` and a Flux HelmRelease's HelmRepository or OCIRepository; a Flux GitRepository that is another
repository) and the credentials for them — and a stack's
``chart:`` (a remote chart). One place for the allow-list, so a pull request can never point a fetch at an internal
address the config does not name.

Credentials follow the rule of :mod:`gitops_job.config.notifications`: a password is a reference (``{env: NAME}`` or
``{file: PATH}``), never inline; it is read only when a chart or a repository is fetched. An ssh remote's credential
is a deploy key and the ``known_hosts`` that pins its server, by path.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gitops_job.config.notifications import SecretRef
from gitops_job.git import scp_like

Problem = tuple[tuple[str | int, ...], str]
SCHEMES = ("https", "http", "oci")
CREDENTIAL_SCHEMES = (*SCHEMES, "ssh")


@dataclass(frozen=True)
class Credential:
    """For every URL that starts with ``url`` (the longest such prefix wins): basic auth (``username``,
    ``password``), or for ``ssh://`` an ssh deploy key (``identity_file``) and the ``known_hosts_file`` pinning the
    server's host key."""

    url: str
    username: str = ""
    password: SecretRef | None = None
    identity_file: str | None = None
    known_hosts_file: str | None = None


@dataclass(frozen=True)
class Sources:
    """What a run may fetch: nothing unless its host is allowed."""

    allow_hosts: tuple[str, ...] = ()  # "charts.example.com", "*.example.com", "127.0.0.1:5000" (port exact)
    credentials: tuple[Credential, ...] = ()

    def allows(self, url: str) -> bool:
        """Whether ``url``'s host (with its port, when the entry names one) is on the allow-list."""
        host, port = host_of(url)
        if not host:
            return False
        with_port = f"{host}:{port}" if port else host
        return any(fnmatch.fnmatchcase(with_port if ":" in e else host, e.lower()) for e in self.allow_hosts)

    def credential(self, url: str) -> Credential | None:
        """The credential whose ``url`` is the longest prefix of ``url`` (compared without a trailing ``/``)."""
        found = [c for c in self.credentials if _under(url, c.url)]
        return max(found, key=lambda c: len(c.url), default=None)


@dataclass(frozen=True)
class RemoteChart:
    """A stack's ``chart:``: a chart from an HTTP chart repository (``https://…``, its ``index.yaml``) or an OCI
    repository (``oci://host/path``, the chart being ``<path>/<name>``)."""

    repository: str
    name: str
    version: str = "*"  # a Masterminds semver range, or an exact version
    insecure: bool = False  # oci:// only: plain HTTP instead of HTTPS


def host_of(url: str) -> tuple[str, int | None]:
    """The host (lowercase) and port of ``url``: ``scheme://…`` or an scp-like ``user@host:path``; ``("", None)``
    for a local path (never allowed)."""
    if "://" in url:
        parts = urlsplit(url)
        try:
            return (parts.hostname or "").lower(), parts.port
        except ValueError:  # a port that is no number
            return "", None
    scp = scp_like(url)
    return (scp[0], None) if scp is not None else ("", None)


def _under(url: str, prefix: str) -> bool:
    url, prefix = url.rstrip("/"), prefix.rstrip("/")
    return url == prefix or url.startswith(prefix + "/")


def problems(data: Mapping[str, Any]) -> list[Problem]:
    """What is wrong in the (schema-valid) ``sources`` section and the stacks' ``chart``: a URL without a known
    scheme, an inline password (never shown), a remote chart on a stack that does not render with helm."""
    found: list[Problem] = []
    section = data.get("sources") or {}
    for i, cred in enumerate(section.get("credentials", ())):
        at: tuple[str | int, ...] = ("sources", "credentials", i)
        scheme = urlsplit(cred["url"]).scheme
        if scheme not in CREDENTIAL_SCHEMES:
            found.append(((*at, "url"), f"expected an http(s)://, oci:// or ssh:// URL, got {cred['url']!r}"))
        ssh = scheme == "ssh"
        keys = ("identityFile", "knownHostsFile") if ssh else ("username", "password")
        missing = [k for k in keys if k not in cred]
        if missing:
            how = "a deploy key and its server's known_hosts" if ssh else "basic auth"
            found.append((at, f"a credential for {scheme or 'this'} URL is {how}: give {' and '.join(missing)}"))
        password = cred.get("password")
        if password is None:
            continue
        if isinstance(password, str):
            found.append(
                (
                    (*at, "password"),
                    "an inline secret is refused (not shown here): give password as {env: VARIABLE} or {file: PATH}, "
                    "and remove it from the file (and from git history, if it was committed)",
                )
            )
        elif len(password) != 1:
            given = " and ".join(password) or "neither"
            found.append(((*at, "password"), f"give exactly one of env or file, not {given}"))
    for i, stack in enumerate(data.get("stacks", ())):
        chart = stack.get("chart")
        if chart is None:
            continue
        if urlsplit(chart["repository"]).scheme not in SCHEMES:
            reason = f"expected an http(s):// or oci:// URL, got {chart['repository']!r}"
            found.append((("stacks", i, "chart", "repository"), reason))
        if stack.get("render", "auto") not in ("auto", "helm"):
            reason = f"a stack with a remote chart renders with helm, not {stack['render']}"
            found.append((("stacks", i, "render"), reason))
    return found


def sources(data: Mapping[str, Any]) -> Sources:
    """The checked ``sources`` section (nothing allowed without one)."""
    section = data.get("sources") or {}
    return Sources(
        tuple(section.get("allowHosts", ())),
        tuple(
            Credential(
                c["url"],
                c.get("username", ""),
                SecretRef(c["password"].get("env"), c["password"].get("file")) if "password" in c else None,
                c.get("identityFile"),
                c.get("knownHostsFile"),
            )
            for c in section.get("credentials", ())
        ),
    )


def remote_chart(raw: Mapping[str, Any]) -> RemoteChart:
    return RemoteChart(raw["repository"], raw["name"], str(raw.get("version", "*")), bool(raw.get("insecure", False)))
