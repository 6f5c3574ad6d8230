"""The source stage's questions to git: which revision is being reconciled, and which repository it belongs to."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

# ``user@host:path`` (scp-like, as ssh remotes are written), not ``scheme://``
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?!//)(?P<path>.+)$")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def revision(repo: Path) -> str:
    """The commit checked out in ``repo`` (``<sha>-dirty`` with uncommitted changes; ``unversioned`` outside git)."""
    head = _git(repo, "rev-parse", "HEAD")
    if head.returncode != 0:
        return "unversioned"
    sha = head.stdout.strip()
    dirty = _git(repo, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return f"{sha}-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else sha


def repository(repo: Path) -> str | None:
    """The repository ``repo`` is a checkout of: its ``origin`` remote (else its first remote) as
    :func:`canonical_remote` writes it; None without a remote (or outside git)."""
    url = _git(repo, "config", "--get", "remote.origin.url").stdout.strip()
    if not url:
        remotes = _git(repo, "remote").stdout.split()
        url = _git(repo, "remote", "get-url", remotes[0]).stdout.strip() if remotes else ""
    return canonical_remote(url) if url else None


def canonical_remote(url: str) -> str:
    """A remote URL as one name per repository, without credentials: ``host[:port]/path`` with no ``.git``.

    ``https://x-access-token:TOKEN@github.com/o/r.git``, ``git@github.com:o/r`` and ``ssh://git@github.com/o/r``
    are all ``github.com/o/r``; a local path stays a path. User, password, query and fragment are dropped.
    """
    url = url.strip()
    scp = _SCP_LIKE.match(url)
    if "://" in url:
        parts = urlsplit(url)
        host = (parts.netloc.rpartition("@")[2]).lower()  # drop user:password@
        name = f"{host}{parts.path}" if host else parts.path
    elif scp and not url.startswith(("/", ".")):
        name = f"{scp['host'].lower()}/{scp['path'].lstrip('/')}"
    else:
        name = url
    name = name.rstrip("/")
    return name.removesuffix(".git") or name
