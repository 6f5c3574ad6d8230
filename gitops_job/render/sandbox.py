"""Running kustomize and helm, confined: on a copy of only the repository directories they may read (never ``.git``,
where ``actions/checkout`` keeps its token), with an empty environment, no network, and caps on memory, time and
output. The only module that starts a renderer's process."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_job.config import paths
from gitops_job.errors import RenderError

TOOL_TIMEOUT = 60.0  # seconds for one kustomize or helm run
# Address space for one run. Go reserves about 1.2 GiB of virtual memory before its heap grows (and fails to start
# under some caps near that), so this leaves a renderer about 1.5 GiB of heap: far more than real charts and
# kustomizations need (tens to a few hundred MiB), far less than a runaway template (a `tpl` self-recursion ran 19 s
# at 4.4 GiB).
TOOL_MEMORY = 3 * 2**30
TOOL_GOMEMLIMIT = "1GiB"  # Go's soft limit: it collects harder before the hard cap is near
MAX_TOOL_OUTPUT = 64 * 2**20  # bytes of manifests one run may write (the objects of a large stack are a few MiB)
MAX_TOOL_STDERR = 64 * 1024  # bytes of a tool's stderr kept for its error message (the end of it)
NO_NETWORK_PROXY = "http://127.0.0.1:9"  # the discard port: a tool's HTTP(S) request fails at once, without DNS

_WORKFLOW_COMMAND = re.compile(r"^(\s*)(::|##\[)", re.MULTILINE)


def neutralise_workflow_commands(text: str) -> str:
    """``text`` with each line that GitHub Actions would read as a workflow command (``::error::``,
    ``::add-mask::``, ``##[set-output …]``) quoted with ``> ``, so a tool's stderr we print cannot issue one."""
    return _WORKFLOW_COMMAND.sub(r"\1> \2", text)


# --- the copy of the tree --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """A temporary copy of part of the repository: ``root`` mirrors the repository's root."""

    root: Path
    repo: Path  # the real repository root it mirrors

    def path(self, real: Path) -> Path:
        """Where the repository path ``real`` (symlinks resolved) is in the copy."""
        return self.root / real.relative_to(self.repo)

    def repo_relative(self, text: str) -> str:
        """``text`` (a tool's message) with paths in the copy written repo-relative."""
        return text.replace(f"{self.root}/", "").replace(str(self.root), ".")


@contextlib.contextmanager
def tree(repo: Path, directories: Iterable[Path], files: Iterable[Path] = ()) -> Iterator[Tree]:
    """A copy of the repository ``repo`` holding only ``directories`` (each with everything below it) and ``files``
    (real paths inside ``repo``), at their repo-relative places, without any ``.git``; removed afterwards.

    Files are hard links where the file system allows (else copies), so the copy is cheap. A symlink inside the
    repository stays a symlink, pointing at the same place in the copy, and what it points to is copied too; a
    symlink that leaves the repository or points into ``.git`` is left out (the renderer finds nothing there)."""
    with tempfile.TemporaryDirectory(prefix="gitops-job-tree-") as temporary:
        copy = Tree(Path(temporary) / "repo", repo)
        copy.root.mkdir()
        _Mirror(copy).run([*directories], [*files])
        yield copy


@dataclass
class _Mirror:
    copy: Tree

    def run(self, directories: list[Path], files: list[Path]) -> None:
        done: set[Path] = set()
        pending: list[Path] = [*directories, *files]
        while pending:
            real = pending.pop()
            if real in done or not self.allowed(real):
                continue
            done.add(real)
            if real.is_dir():
                pending.extend(self.directory(real, done))
            elif real.is_file():
                self.copy.path(real).parent.mkdir(parents=True, exist_ok=True)
                self.file(real, self.copy.path(real))

    def allowed(self, real: Path) -> bool:
        return paths.refusal_of(self.copy.repo, real) is None

    def directory(self, top: Path, done: set[Path]) -> list[Path]:
        """Mirror ``top`` and everything below it; the real targets of its symlinks, still to be mirrored."""
        targets: list[Path] = []
        walk = [top]
        while walk:
            current = walk.pop()
            here = self.copy.path(current)
            here.mkdir(parents=True, exist_ok=True)
            for entry in os.scandir(current):
                if entry.name == ".git":
                    continue
                source, destination = Path(entry.path), here / entry.name
                if entry.is_symlink():
                    real = paths.real(source)
                    if self.allowed(real):
                        with contextlib.suppress(FileExistsError):
                            destination.symlink_to(os.path.relpath(self.copy.path(real), here))
                        targets.append(real)
                elif entry.is_dir(follow_symlinks=False):
                    if source not in done:
                        done.add(source)
                        walk.append(source)
                elif entry.is_file(follow_symlinks=False):
                    self.file(source, destination)
        return targets

    @staticmethod
    def file(source: Path, destination: Path) -> None:
        try:
            os.link(source, destination)
        except FileExistsError:  # copied already (a symlink's target inside a directory copied as well)
            pass
        except OSError:  # another file system, or a file we may not link: copy it
            shutil.copyfile(source, destination)


# --- running a tool --------------------------------------------------------------------------------------------------


def binary(tool: str) -> str | None:
    """The path of ``tool``: ``$GITOPS_JOB_<TOOL>``, else PATH."""
    return os.environ.get(f"GITOPS_JOB_{tool.upper()}") or shutil.which(tool)


def run(
    tool: str,
    args: Sequence[str],
    *,
    stack: str,
    where: str,
    homes: Sequence[str] = (),
    tree: Tree | None = None,
) -> str:
    """Run ``tool`` and return its stdout, or raise a RenderError at ``where`` naming the stack, the tool and why.

    The environment holds only ``PATH`` and ``HOME`` (and each variable in ``homes``) set to a fresh empty directory,
    so the tool finds no kubeconfig, git or cache, and an HTTP(S) proxy that does not exist. The process gets
    :data:`TOOL_MEMORY` of address space, :data:`TOOL_TIMEOUT` seconds and :data:`MAX_TOOL_OUTPUT` bytes of output;
    its stderr, quoted in errors, has workflow commands neutralised and paths in ``tree`` written repo-relative.
    """
    variable = f"GITOPS_JOB_{tool.upper()}"
    path = binary(tool)
    if not path:
        raise RenderError(f"{tool} not found: install it on PATH or set {variable} to its path", where=where)
    with tempfile.TemporaryDirectory(prefix=f"gitops-job-{tool}-") as home:
        env = {
            "PATH": home,
            "HOME": home,
            **dict.fromkeys(homes, home),
            **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY"), NO_NETWORK_PROXY),
            "GOMEMLIMIT": TOOL_GOMEMLIMIT,
        }
        try:
            process = subprocess.Popen(
                [path, *args],
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=_limits,  # noqa: PLW1509 - only setrlimit runs between fork and exec
            )
        except OSError as e:
            raise RenderError(f"cannot run {tool} ({path}): {e.strerror}; set {variable}", where=where) from None
        outcome = _collect(process)
    stderr = outcome.stderr.decode("utf-8", errors="replace")
    if tree is not None:
        stderr = tree.repo_relative(stderr)
    stderr = neutralise_workflow_commands(stderr)
    problem = _problem(tool, stack, outcome, stderr)
    if problem:
        raise RenderError(problem, where=where)
    return outcome.stdout.decode("utf-8", errors="replace")


def _limits() -> None:
    """In the child, before exec: cap the address space; no core dumps."""
    resource.setrlimit(resource.RLIMIT_AS, (TOOL_MEMORY, TOOL_MEMORY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@dataclass(frozen=True)
class _Outcome:
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    too_much_output: bool = False


def _collect(process: subprocess.Popen[bytes]) -> _Outcome:
    """Read the process's stdout (at most :data:`MAX_TOOL_OUTPUT` bytes) and the end of its stderr until it exits,
    killing it at the deadline or when it writes too much."""
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + TOOL_TIMEOUT
    out, err = bytearray(), bytearray()
    timed_out = too_much = False
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(timeout=left):
                chunk = os.read(key.fd, 1 << 20)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                buffer += chunk
                if buffer is err and len(err) > MAX_TOOL_STDERR:
                    del err[: len(err) - MAX_TOOL_STDERR]
                if buffer is out and len(out) > MAX_TOOL_OUTPUT:
                    too_much = True
            if too_much:
                break
    if not (timed_out or too_much):
        try:  # its pipes are closed; it may still run (a child holding them did not)
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out or too_much:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
    process.stdout.close()
    process.stderr.close()
    return _Outcome(process.wait(), bytes(out), bytes(err), timed_out, too_much)


def _problem(tool: str, stack: str, outcome: _Outcome, stderr: str) -> str | None:
    """Why the run failed, in words naming the stack, the tool and the limit it broke; None when it succeeded."""
    if outcome.timed_out:
        return f"stack {stack}: {tool} did not finish within {TOOL_TIMEOUT:g} s (the limit per run); refused"
    if outcome.too_much_output:
        limit = f"{MAX_TOOL_OUTPUT // 2**20} MiB"
        return f"stack {stack}: {tool} wrote more than {limit} of manifests (the limit per run); refused"
    if outcome.returncode == 0:
        return None
    if "out of memory" in stderr or "cannot allocate memory" in stderr or outcome.returncode == -signal.SIGKILL:
        return (
            f"stack {stack}: {tool} needed more than {TOOL_MEMORY / 2**30:g} GiB of memory (address space; the limit "
            "per run); refused"
        )
    tail = "\n".join(stderr.strip().splitlines()[-20:])
    return f"{tool} failed (exit {outcome.returncode}):\n{tail}"


def tool_version(tool: str) -> str | None:
    """The version ``kustomize`` or ``helm`` reports (``v5.8.1``), or None when it is not installed or says nothing."""
    args = ["version"] if tool == "kustomize" else ["version", "--short"]
    try:
        out = run(tool, args, stack="-", where=tool)
    except RenderError:
        return None
    found = re.search(r"v\d+\.\d+\.\d+[-+.\w]*", out)
    return found.group(0).split("+")[0] if found else None
