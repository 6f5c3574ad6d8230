"""Which paths gitops-job may read: one rule for the config and every renderer.

A path someone wrote (a stack's ``path``, a helm values file, a kustomization's resource, a Jinja2 include) may be
read only when it is relative (no URL, not absolute) and, with every symlink resolved, names a place inside the
repository root and outside any ``.git`` (CI checkouts keep their token in ``.git/config``). ``..`` is allowed as
long as the resolved path stays inside. Whether the place exists, and is a file or a directory, is for the caller
to say.
"""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path, PurePosixPath

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Refusal(enum.Enum):
    """Why a path may not be read."""

    URL = "is a URL; gitops-job reads only files inside the repository"
    ABSOLUTE = "is absolute"
    ESCAPES = "escapes the repository; give a path inside it"
    ESCAPES_THROUGH_SYMLINK = "escapes the repository through a symlink; point the symlink inside the repository"
    IN_GIT = "is inside .git (refused: it may hold credentials)"


class PathRefused(ValueError):
    """A path the rule refuses; ``str()`` is the message: the path as written, why, and what to do."""

    def __init__(self, path: str, refusal: Refusal, *, from_root: bool = True) -> None:
        self.path = path
        self.refusal = refusal
        fix = "give a path relative to the repository root" if from_root else "give a relative path"
        self.reason = f"{path!r} {refusal.value}" + (f"; {fix}" if refusal is Refusal.ABSOLUTE else "")
        super().__init__(self.reason)


def real(path: Path) -> Path:
    """``path`` with every symlink resolved; ``os.path.realpath`` (unlike ``Path.resolve``) never raises on loops."""
    return Path(os.path.realpath(path))


def resolve(root: Path, path: str, *, base: Path | None = None) -> Path:
    """The real path that ``path`` (relative to ``base``, a directory inside the repository ``root``; the root by
    default) names; :class:`PathRefused` when the rule refuses it. It need not exist."""
    if URL.match(path):
        raise PathRefused(path, Refusal.URL)
    if PurePosixPath(path).is_absolute():
        raise PathRefused(path, Refusal.ABSOLUTE, from_root=base is None)
    root = real(root)
    start = root if base is None else base
    found = real(start / path)
    refusal = refusal_of(root, found)
    if refusal is Refusal.ESCAPES and Path(os.path.normpath(start / path)).is_relative_to(root):
        refusal = Refusal.ESCAPES_THROUGH_SYMLINK  # as written it stays inside: a symlink on the way leads out
    if refusal is not None:
        raise PathRefused(path, refusal)
    return found


def refusal_of(root: Path, resolved: Path) -> Refusal | None:
    """Why the real path ``resolved`` (symlinks resolved) may not be read, or None; ``root`` is real too."""
    if not resolved.is_relative_to(root):
        return Refusal.ESCAPES
    if ".git" in resolved.relative_to(root).parts:
        return Refusal.IN_GIT
    return None
