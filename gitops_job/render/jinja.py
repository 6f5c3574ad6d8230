"""The Jinja2 renderer: templates run in jinja's immutable sandbox, strict about undefined names, with caps on the
values ``*`` and ``**`` may build, on each template's output and on the time all templates of a stack may take.
Imported only when a stack has templates (jinja2 is slow to import)."""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from gitops_job.config import paths
from gitops_job.errors import RenderError
from gitops_job.model import RenderedObject
from gitops_job.render.documents import Job, each, is_yaml, parse_objects, read_text

MAX_TEMPLATE_VALUE = 10 * 1024 * 1024  # bytes (or items) one `*` or `**` in a template may build
MAX_TEMPLATE_OUTPUT = 10 * 1024 * 1024  # characters one template may render
JINJA_TIMEOUT = 10.0  # seconds for all templates of one stack
MAX_TEMPLATE_MEMORY = 512 * 2**20  # bytes of address space the templates of one stack may add


class _RepoLoader(BaseLoader):
    """Templates by name, relative to the stack directory first, then to the repository root; a name the path rule
    refuses (:mod:`gitops_job.config.paths`: absolute, or resolving outside the repository or into ``.git``) is an
    error."""

    def __init__(self, root: Path, directory: Path) -> None:
        self.root = root
        self.directory = directory
        self.files: set[str] = set()  # repo-relative names of the templates loaded, as tracebacks name them

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        for base in (self.directory, self.root):
            try:
                real = paths.resolve(self.root, template, base=base)
            except paths.PathRefused as e:
                raise RenderError(e.reason) from None
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


def render_jinja(job: Job) -> list[RenderedObject]:
    """Every ``*.j2`` file below the stack directory rendered, and every plain ``*.yaml``/``*.yml`` file as is.

    Variables: the target's vars, then the stack's, then ``extra_vars`` (later wins), and ``target`` and ``stack``
    (their names). ``*.j2`` files whose name starts with ``_`` are partials: only rendered where included. An object's
    Source line is the line in the rendered output (not in the template) where its document starts.

    The templates run in a child process with its address space capped (:data:`MAX_TEMPLATE_MEMORY` more than it
    starts with) and killed at the stack's deadline, so what the sandbox's own checks cannot bound (a format width,
    ``center(10**9)``) fails there, never in this process.
    """
    files = [f for f in job.files if is_yaml(f) or (f.suffix == ".j2" and not f.name.startswith("_"))]
    templates = [f for f in files if f.suffix == ".j2"]
    texts = _in_child(job, templates) if templates else {}

    def render(path: Path) -> list[RenderedObject]:
        if path.suffix != ".j2":
            return parse_objects(read_text(job, path), job.rel(path), job.stack.name)
        text = texts[path]
        if isinstance(text, RenderError):
            raise text
        return parse_objects(text, job.rel(path), job.stack.name)

    return each(files, render)


def _render_all(job: Job, templates: Sequence[Path]) -> dict[Path, str | tuple[str, str | None]]:
    """Each template's output, or its error as ``(reason, where)``: run in the child."""
    loader = _RepoLoader(job.root, job.directory)
    env = _Sandbox(loader, deadline=time.monotonic() + JINJA_TIMEOUT)
    variables = {**job.variables, "target": job.target.name, "stack": job.stack.name}
    out: dict[Path, str | tuple[str, str | None]] = {}
    for path in templates:
        try:
            out[path] = _render_template(env, loader, path.relative_to(job.directory).as_posix(), variables,
                                         job.rel(path))  # fmt: skip
        except RenderError as e:
            out[path] = (e.reason, e.where)
    return out


def _in_child(job: Job, templates: Sequence[Path]) -> dict[Path, str | RenderError]:
    """:func:`_render_all` in a forked child under a memory cap and a hard deadline; its answer comes back pickled."""
    first = job.rel(templates[0])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: cap, render, answer, exit without running the parent's cleanup
        os.close(read_end)
        status = 0
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[0]) if Path("/proc/self/statm").exists() else 0
            limit = pages * os.sysconf("SC_PAGE_SIZE") + MAX_TEMPLATE_MEMORY
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                answer: Any = _render_all(job, templates)
            except MemoryError:
                answer = "memory"
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(answer, pipe)
        except BaseException:  # the child must never return into the parent's code
            status = 1
        os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + JINJA_TIMEOUT + 5  # the child checks the deadline itself; this is the backstop
    data = bytearray()
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([pipe], [], [], max(0.0, left))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise RenderError(f"templates ran longer than {JINJA_TIMEOUT:g} s (the limit per stack)", where=first)
            chunk = os.read(pipe.fileno(), 1 << 20)
            if not chunk:
                break
            data += chunk
    _, status = os.waitpid(pid, 0)
    if not data or os.waitstatus_to_exitcode(status) != 0:
        raise RenderError(_memory_reason(), where=first)
    answer = pickle.loads(data)  # from our own child, over a private pipe
    if answer == "memory":
        raise RenderError(_memory_reason(), where=first)
    return {path: text if isinstance(text, str) else RenderError(text[0], where=text[1])
            for path, text in answer.items()}  # fmt: skip


def _memory_reason() -> str:
    return f"the templates need more than {MAX_TEMPLATE_MEMORY // 2**20:,} MiB of memory; refused"


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
    if isinstance(error, MemoryError):
        return _memory_reason()
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
