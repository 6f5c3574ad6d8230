"""The Jinja2 renderer: templates run in jinja's immutable sandbox, strict about undefined names, with caps on the
values ``*`` and ``**`` may build, on each template's output and on the time all templates of a stack may take.
Imported only when a stack has templates (jinja2 is slow to import)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from .errors import RenderError
from .model import RenderedObject
from .render import _URL, _each, _is_yaml, _Job, _objects, _path_problem, _read, _real

MAX_TEMPLATE_VALUE = 10 * 1024 * 1024  # bytes (or items) one `*` or `**` in a template may build
MAX_TEMPLATE_OUTPUT = 10 * 1024 * 1024  # characters one template may render
JINJA_TIMEOUT = 10.0  # seconds for all templates of one stack


class _RepoLoader(BaseLoader):
    """Templates by name, relative to the stack directory first, then to the repository root; a name that resolves
    (symlinks followed) outside the repository, or an absolute name, is refused."""

    def __init__(self, root: Path, directory: Path) -> None:
        self.root = root
        self.directory = directory
        self.files: set[str] = set()  # repo-relative names of the templates loaded, as tracebacks name them

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if PurePosixPath(template).is_absolute() or _URL.match(template):
            raise RenderError(f"path escapes the repository: {template} (give a path relative to the repository)")
        for base in (self.directory, self.root):
            real = _real(base / template)
            problem = _path_problem(self.root, real, template)
            if problem:
                raise RenderError(problem)
            if real.is_file():
                name = real.relative_to(self.root).as_posix()
                try:
                    source = real.read_text(encoding="utf-8")
                except (OSError, UnicodeError) as e:
                    raise RenderError(f"cannot read template {name}: {e}") from None
                self.files.add(name)
                return source, name, lambda: True
        raise TemplateNotFound(template)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, strict about undefined names, with caps on what ``*`` and ``**`` may build and on
    time (checked on every operator, every ``range`` step and every output chunk)."""

    intercepted_binops = frozenset(["*", "**"])

    def __init__(self, loader: _RepoLoader, deadline: float) -> None:
        super().__init__(loader=loader, undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.deadline = deadline
        self.globals["range"] = lambda *args: _TimedRange(safe_range(*args), self.check_deadline)
        del self.globals["lipsum"]  # lipsum(n) builds n paragraphs: a memory bomb with no use in a manifest

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderError(f"templates ran longer than {JINJA_TIMEOUT:g} s (the limit per stack)")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        self.check_deadline()
        if _binop_size(operator, left, right) > MAX_TEMPLATE_VALUE:
            raise RenderError(f"'{operator}' would build a value larger than {MAX_TEMPLATE_VALUE:,} bytes; refused")
        return super().call_binop(context, operator, left, right)


class _TimedRange:
    """A template's ``range()`` (``safe_range`` caps its length), checking the stack's deadline at every step: a
    loop with an empty body renders no output that the streaming check could see."""

    def __init__(self, items: range, check: Callable[[], None]) -> None:
        self.items = items
        self.check = check

    def __iter__(self) -> Iterator[int]:
        for i in self.items:
            self.check()
            yield i

    def __reversed__(self) -> Iterator[int]:
        return reversed(list(self))

    def __len__(self) -> int:
        return len(self.items)


def _binop_size(operator: str, left: Any, right: Any) -> int:
    """A lower bound of the size (bytes or items) of ``left <operator> right``, computed without building it."""
    if operator == "*" and isinstance(left, str | bytes | list | tuple) and isinstance(right, int):
        return len(left) * right
    if operator == "*" and isinstance(right, str | bytes | list | tuple) and isinstance(left, int):
        return len(right) * left
    if operator == "*" and isinstance(left, int) and isinstance(right, int):
        return (left.bit_length() + right.bit_length()) // 8
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        return (abs(left).bit_length() - 1) * right // 8
    return 0


def render_jinja(job: _Job) -> list[RenderedObject]:
    """Every ``*.j2`` file below the stack directory rendered, and every plain ``*.yaml``/``*.yml`` file as is.

    Variables: the target's vars, then the stack's, then ``extra_vars`` (later wins), and ``target`` and ``stack``
    (their names). ``*.j2`` files whose name starts with ``_`` are partials: only rendered where included. An object's
    Source line is the line in the rendered output (not in the template) where its document starts.
    """
    loader = _RepoLoader(job.root, job.directory)
    env = _Sandbox(loader, deadline=time.monotonic() + JINJA_TIMEOUT)
    variables = {**job.variables, "target": job.target.name, "stack": job.stack.name}

    def render(path: Path) -> list[RenderedObject]:
        if path.suffix != ".j2":
            return _objects(_read(job, path), job.rel(path), job.stack.name)
        text = _render_template(env, loader, path.relative_to(job.directory).as_posix(), variables, job.rel(path))
        return _objects(text, job.rel(path), job.stack.name)

    return _each((f for f in job.files if _is_yaml(f) or (f.suffix == ".j2" and not f.name.startswith("_"))), render)


def _render_template(env: _Sandbox, loader: _RepoLoader, name: str, variables: Mapping[str, Any], file: str) -> str:
    """The template's output, streamed so that the size and time caps hold; any failure as a RenderError at the
    template file and line jinja reports (the included template's, when the failure is inside an include)."""
    chunks: list[str] = []
    size = 0
    try:
        for chunk in env.get_template(name).generate(variables):
            size += len(chunk)
            if size > MAX_TEMPLATE_OUTPUT:
                raise RenderError(f"the template renders more than {MAX_TEMPLATE_OUTPUT:,} characters; refused")
            env.check_deadline()
            chunks.append(chunk)
    except TemplateSyntaxError as e:
        raise RenderError(f"template syntax error: {e.message}", where=f"{e.filename or file}:{e.lineno}") from None
    except Exception as e:  # anything a template does wrong is the template's error, reported at its line
        where = _template_where(e, loader.files, file)
        included = "" if where.partition(":")[0] == file else f" (rendering {file})"
        raise RenderError(_template_reason(e) + included, where=where) from None
    return "".join(chunks)


def _template_reason(error: Exception) -> str:
    if isinstance(error, RenderError):
        return error.reason
    if isinstance(error, SecurityError):
        return f"refused by the template sandbox: {error}"
    if isinstance(error, UndefinedError):
        return f"undefined: {error} (set it in the target's or the stack's vars, or with --var)"
    if isinstance(error, TemplateNotFound):
        return f"template not found: {error.name}"
    return f"template failed: {type(error).__name__}: {error}"


def _template_where(error: Exception, templates: set[str], file: str) -> str:
    """``file:line`` of the innermost template frame of the error's traceback (jinja rewrites frames to template
    lines); the template ``file`` itself when there is none."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename in templates and frame.lineno:
            return f"{frame.filename}:{frame.lineno}"
    return file
