"""What every renderer shares: the stack being rendered (:class:`Job`), reading its files, turning YAML text into
objects that remember their file and line, and reporting every item's error at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gitops_job.config.load import Stack, Target
from gitops_job.errors import ErrorGroup, GitopsJobError, RenderError
from gitops_job.identity import ObjectId
from gitops_job.model import RenderedObject, Source
from gitops_job.render.charts import ChartAccess
from gitops_job.yamlio import load_documents

_T = TypeVar("_T")


@dataclass(frozen=True)
class Job:
    """One stack being rendered: the real repository root and stack directory, and the merged variables."""

    root: Path
    directory: Path
    stack: Stack
    target: Target
    variables: Mapping[str, Any]  # target.vars < stack.vars < extra_vars
    files: Sequence[Path]  # every file below the directory, sorted by path
    charts: ChartAccess = field(default_factory=ChartAccess)  # where remote charts may come from (default: nowhere)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


# --- errors ----------------------------------------------------------------------------------------------------------


def raise_all(errors: Sequence[GitopsJobError]) -> None:
    """Raise the one error, or an :class:`ErrorGroup` of them; nothing when there are none."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(list(errors))


def each(items: Iterable[_T], render: Callable[[_T], list[RenderedObject]]) -> list[RenderedObject]:
    """``render`` every item; the objects in order, or every item's error at once."""
    objects: list[RenderedObject] = []
    errors: list[GitopsJobError] = []
    for item in items:
        try:
            objects.extend(render(item))
        except ErrorGroup as group:
            errors.extend(group.errors)
        except RenderError as e:
            errors.append(e)
    raise_all(errors)
    return objects


# --- files and YAML to objects ---------------------------------------------------------------------------------------


def is_yaml(path: Path) -> bool:
    return path.suffix in {".yaml", ".yml"}


def read_text(job: Job, path: Path) -> str:
    """The UTF-8 text of one of the job's files; a RenderError at the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise RenderError(f"not UTF-8 text: {e.reason}", where=job.rel(path)) from None
    except OSError as e:
        raise RenderError(f"cannot read: {e.strerror}", where=job.rel(path)) from None


def parse_objects(text: str, file: str, stack: str, *, output_of: str | None = None) -> list[RenderedObject]:
    """The objects of a multi-document YAML text; ``kind: *List`` documents are flattened into their items, which
    keep the List's file and line. ``output_of`` names the tool whose output ``text`` is: its lines are not lines of
    ``file``, so objects get no line."""
    objects: list[RenderedObject] = []
    for document, line in load_documents(text, file, output_of=output_of):
        source = Source(file, None if output_of else line)
        objects.extend(
            RenderedObject(ObjectId.of(body), body, source, stack) for body in _flatten(document, file, line)
        )
    return objects


def _flatten(document: Any, file: str, line: int) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise RenderError(
            f"expected a mapping (a Kubernetes object), got {type(document).__name__}", where=f"{file}:{line}"
        )
    items = document.get("items")
    if str(document.get("kind", "")).endswith("List") and isinstance(items, list):
        return [body for item in items for body in _flatten(item, file, line)]
    if "metadata" in document and not isinstance(document["metadata"], dict):
        raise RenderError("metadata must be a mapping", where=f"{file}:{line}")
    return [document]
