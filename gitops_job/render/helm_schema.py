"""Helm's ``values.schema.json`` files, checked before helm runs: helm resolves a schema's ``$ref`` (and an unknown
``$schema``) by fetching URLs, ``http://localhost…`` included (proxies never apply to loopback), and by reading
``file://`` paths anywhere on the machine. Render is offline and reads nothing outside the repository, so every
reference must be local to its schema (``#…``), in the chart and in each vendored subchart, ``.tgz`` archives
included."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops_job.errors import RenderError

SCHEMA_FILE = "values.schema.json"
REFERENCE_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")
# The meta-schemas helm's validator knows without fetching anything (written with or without the trailing '#').
KNOWN_META_SCHEMAS = frozenset(
    f"{scheme}://json-schema.org/{draft}"
    for scheme in ("http", "https")
    for draft in (
        "draft-04/schema",
        "draft-06/schema",
        "draft-07/schema",
        "draft/2019-09/schema",
        "draft/2020-12/schema",
    )
)
_ARCHIVES = (".tgz", ".tar.gz")
MAX_ARCHIVE_DEPTH = 5  # subcharts inside subcharts inside archives: deeper than any real chart


def helm_schema_problems(chart: Path, shown: str) -> list[RenderError]:
    """An error for each non-local reference in the values schemas of the chart directory ``chart`` (shown as
    ``shown`` in messages) and of every subchart below it, directories and archives alike."""
    errors: list[RenderError] = []
    for name, content in _schemas(chart, shown):
        errors.extend([RenderError(content, where=name)] if isinstance(content, str) else _problems(name, content))
    return errors


def _schemas(chart: Path, shown: str) -> Iterator[tuple[str, bytes | str]]:
    """Each values schema as ``(name, content)``; ``content`` is a reason instead where an archive cannot be read."""
    for path in _files(chart):
        name = f"{shown}/{path.relative_to(chart).as_posix()}".removeprefix("./")
        if path.name == SCHEMA_FILE and path.is_file():
            yield name, path.read_bytes()
        elif path.name.endswith(_ARCHIVES) and path.parent.name == "charts" and path.is_file():
            yield from _archive_schemas(path.read_bytes(), name, 1)


def _files(chart: Path) -> list[Path]:
    """Every file below ``chart`` as helm walks it: symlinked directories followed (each real directory once)."""
    files: list[Path] = []
    seen: set[str] = set()
    for directory, subdirectories, names in os.walk(chart, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirectories[:] = []
            continue
        seen.add(real)
        files.extend(Path(directory, name) for name in names)
    return sorted(files)


def _archive_schemas(content: bytes, shown: str, depth: int) -> Iterator[tuple[str, bytes | str]]:
    """The values schemas inside a chart archive (and the archives of its own ``charts/``, recursively)."""
    if depth > MAX_ARCHIVE_DEPTH:
        yield shown, f"chart archives nested more than {MAX_ARCHIVE_DEPTH} deep; refused (their schemas go unchecked)"
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as archive:
            for member in archive.getmembers():
                if not member.isfile():
                    continue
                parts = member.name.split("/")
                name = f"{shown}:{member.name}"
                if parts[-1] == SCHEMA_FILE:
                    yield name, _member(archive, member)
                elif parts[-1].endswith(_ARCHIVES) and len(parts) > 1 and parts[-2] == "charts":
                    yield from _archive_schemas(_member(archive, member), name, depth + 1)
    except (tarfile.TarError, OSError, EOFError) as e:
        yield shown, f"cannot read the chart archive ({e}), so its values schemas cannot be checked; refused"


def _member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    return handle.read() if handle is not None else b""


def _problems(name: str, content: bytes) -> list[RenderError]:
    try:
        # Every key of every object is seen, duplicates included: Go's decoder keeps the last one, ours must not
        # hide the first.
        document = json.loads(content.decode("utf-8", errors="replace"), object_pairs_hook=_Pairs)
    except ValueError as e:
        return [RenderError(f"not valid JSON ({e}); helm would not read it either", where=name)]
    return [
        RenderError(
            f"{key} {value!r} refused: render is offline and reads no file outside the chart; inline what it refers "
            "to under $defs and refer to it as #/$defs/…",
            where=name,
        )
        for key, value in _references(document)
        if not _local(key, value)
    ]


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as the list of its pairs, in order, duplicates kept."""


def _references(node: Any) -> Iterator[tuple[str, Any]]:
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, _Pairs):
            for key, value in current:
                if key in (*REFERENCE_KEYS, "$schema"):
                    yield key, value
                pending.append(value)
        elif isinstance(current, list):
            pending.extend(current)


def _local(key: str, value: Any) -> bool:
    if not isinstance(value, str):  # a property named "$ref", not a reference
        return True
    if key == "$schema":
        return value.rstrip("#") in KNOWN_META_SCHEMAS
    return value.startswith("#")
