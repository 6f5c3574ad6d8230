"""The source stage's one question: which git revision is being reconciled."""

from __future__ import annotations

import subprocess
from pathlib import Path


def revision(repo: Path) -> str:
    """The commit checked out in ``repo`` (``<sha>-dirty`` with uncommitted changes; ``unversioned`` outside git)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unversioned"
    sha = head.stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=normal", "--", ".")
    return f"{sha}-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else sha
