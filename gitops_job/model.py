"""What flows from render onwards: a rendered object that remembers where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .identity import ObjectId


@dataclass(frozen=True)
class Source:
    """Where an object came from: a repo-relative file and, where the renderer allows, the line it starts on."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class RenderedObject:
    """One manifest of one stack, as a plain dict (never mutated after rendering)."""

    id: ObjectId
    body: dict[str, Any]
    source: Source
    stack: str
