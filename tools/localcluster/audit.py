"""Reading the local API server's audit log while the server appends to it."""

from __future__ import annotations

import time
from pathlib import Path


def complete_lines(path: Path, since: int, settle: float = 2.0) -> list[bytes]:
    """The lines of ``path`` that start at or after byte ``since`` and are complete (end in a newline).

    The API server appends to its audit log while tests read it: a line that began before ``since`` (the mark fell
    inside it) belongs to an earlier request and is skipped; a last line still being written is waited for up to
    ``settle`` seconds, then left out, so a reader never parses half an event.
    """
    deadline = time.monotonic() + settle
    while True:
        with path.open("rb") as f:
            start = max(0, since - 1)
            f.seek(start)
            data = f.read()
        if since > 0:  # the byte before the mark tells whether the mark sits at a line start
            head, data = data[:1], data[1:]
            if head != b"\n":
                data = data.partition(b"\n")[2]
        if not data or data.endswith(b"\n") or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    complete = data[: data.rfind(b"\n") + 1]
    return complete.splitlines()
