"""What a scheduled run remembers between runs about file contents: facts that depend on a text alone, such as its
parsed YAML documents, or that a config passed the shipped schema. A run over the same commit then neither parses
its thousand manifests again nor imports the schema checker to check an unchanged ``gitops.yaml``.

Kept in one file in the state dir (``--state-dir``), keyed by the SHA-256 of the text, what was derived from it and
the gitops-job version (a new version derives again). Only successes are kept; an error is found again each run, so
its message stays exact. The file keeps what this run used and drops the rest, so it never grows past one commit's
worth; it is written only when that changed, by a rename, so a run that dies never leaves half a file. A file that
cannot be read is ignored (the run derives everything again), never an error.

``marshal`` rather than ``pickle``: it holds only the plain values a YAML document builds (dicts, lists, strings,
numbers, booleans, ``None``) and never runs code on load. The file is as trusted as the cached clone beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops_job import __version__

FILE = "memo.marshal"
_FORMAT = 1  # bumped when what a kind derives changes shape


class Memo:
    """One run's view of the memo file: what it found there, and what this run used or added."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._found: dict[str, bytes] = {}  # each value marshalled on its own: every get builds a fresh copy, so a
        self._used: dict[str, bytes] = {}  # caller that changes what it got changes neither the memo nor a later get
        if path is not None:
            with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
                found = marshal.loads(path.read_bytes())
                if isinstance(found, dict) and found.get("") == (_FORMAT, __version__):
                    self._found = found

    @staticmethod
    def key(kind: str, text: str) -> str:
        return kind + ":" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, kind: str, text: str) -> Any | None:
        """What was derived as ``kind`` from ``text`` by an earlier run (or this one), else ``None``."""
        if self.path is None:
            return None
        k = self.key(kind, text)
        raw = self._used.get(k, self._found.get(k))
        if raw is None:
            return None
        try:
            value = marshal.loads(raw)
        except (ValueError, EOFError, TypeError):
            return None
        self._used[k] = raw
        return value

    def put(self, kind: str, text: str, value: Any) -> None:
        if self.path is not None:
            with contextlib.suppress(ValueError):  # a value marshal cannot carry is derived again next time
                self._used[self.key(kind, text)] = marshal.dumps(value)

    def save(self) -> None:
        """Write what this run used, when that differs from what the file holds."""
        if self.path is None or not self._used or self._used.keys() == self._found.keys() - {""}:
            return
        data = marshal.dumps({"": (_FORMAT, __version__), **self._used})
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".memo-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                Path(tmp).replace(self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    Path(tmp).unlink()


_NONE = Memo(None)
_current = _NONE


def current() -> Memo:
    """The memo of the run in progress (one that keeps nothing when the run has no state dir)."""
    return _current


@contextlib.contextmanager
def kept(state_dir: Path | None) -> Iterator[Memo]:
    """For the duration of a run: remember in ``state_dir`` (nothing, without one); saved when the run ends."""
    global _current  # noqa: PLW0603 - one run per process; the recipes below need not carry it
    memo = Memo(state_dir / FILE if state_dir is not None else None)
    before, _current = _current, memo
    try:
        yield memo
    finally:
        _current = before
        memo.save()
