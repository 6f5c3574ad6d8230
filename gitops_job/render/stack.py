"""The render stage: each stack (plain YAML, Jinja2, Kustomize or Helm) into objects that remember their file and line.

Render is offline: it never talks to the cluster or a network, and it runs no code from the repository outside a
sandbox. Jinja2 runs in jinja's immutable sandbox with caps on value size, output size and time; kustomize and helm run
through :mod:`gitops_job.sandbox` (an empty environment, caps on memory, time and output, on a copy of only what they
may read, without ``.git``), after every path they would read has been checked to lie inside the repository and every
helm values schema to refer only to itself. After any renderer, Flux-style ``${VAR}`` substitution runs on the
objects of stacks that ask for it (``substitute:``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from gitops_job.config.load import RepoConfig, Stack, Target
from gitops_job.errors import ErrorGroup, GitopsJobError, RenderError
from gitops_job.identity import ObjectId
from gitops_job.model import RenderedObject, Source
from gitops_job.render import sandbox
from gitops_job.render.helm_schema import helm_schema_problems
from gitops_job.render.substitute import substitute, variable_text
from gitops_job.yamlio import load_documents

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git::|git@|github\.com/)")
_HELM_SOURCE = re.compile(r"^# Source: (.+?)\s*$", re.MULTILINE)
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Job:
    """One stack being rendered: the real repository root and stack directory, and the merged variables."""

    root: Path
    directory: Path
    stack: Stack
    target: Target
    variables: Mapping[str, Any]  # target.vars < stack.vars < extra_vars
    files: Sequence[Path]  # every file below the directory, sorted by path

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def render_stack(
    config: RepoConfig, stack: Stack, target: Target, extra_vars: Mapping[str, str] | None = None
) -> list[RenderedObject]:
    """Render one stack for one target, offline, in a deterministic order (sorted files, document order).

    Each object's identity keeps the namespace exactly as its body has it (defaulting comes later). Every problem
    the stack has is reported at once: one :class:`RenderError` (``where`` is ``file:line`` or the stack's path), or
    an :class:`ErrorGroup` of them.
    """
    root = _real(config.root)
    directory = _stack_directory(root, stack)
    renderer = detect_renderer(directory) if stack.render == "auto" else stack.render
    if renderer not in _RENDERERS:
        raise RenderError(f"unknown renderer {renderer!r}; expected one of {', '.join(_RENDERERS)}", where=stack.path)
    files, escapes = _walk(root, directory)
    _raise_all(escapes)
    variables = {**target.vars, **stack.vars, **(extra_vars or {})}
    objects = _RENDERERS[renderer](_Job(root, directory, stack, target, variables, files))
    if stack.substitute is None:
        return objects
    values = {**target.vars, **stack.vars, **stack.substitute, **(extra_vars or {})}
    texts = {name: variable_text(value) for name, value in values.items()}
    return _each(objects, lambda obj: [substitute(obj, texts)])


def detect_renderer(directory: Path) -> str:
    """What ``render: auto`` means for ``directory``: a kustomization → ``kustomize``; ``Chart.yaml`` → ``helm``;
    any ``*.j2`` file below it → ``jinja``; otherwise ``plain``."""
    if any((directory / name).is_file() for name in KUSTOMIZATION_FILES):
        return "kustomize"
    if (directory / "Chart.yaml").is_file():
        return "helm"
    if any(directory.rglob("*.j2")):
        return "jinja"
    return "plain"


# --- paths -----------------------------------------------------------------------------------------------------------


def _real(path: Path) -> Path:
    """``path`` with every symlink resolved; ``os.path.realpath`` (unlike ``Path.resolve``) never raises on loops."""
    return Path(os.path.realpath(path))


def _path_problem(root: Path, real: Path, shown: str) -> str | None:
    """Why the resolved path ``real`` may not be read, or None. ``.git`` is refused: CI checkouts keep tokens there."""
    if not real.is_relative_to(root):
        return f"path escapes the repository: {shown}"
    if ".git" in real.relative_to(root).parts:
        return f"path is inside .git (refused: it may hold credentials): {shown}"
    return None


def _stack_directory(root: Path, stack: Stack) -> Path:
    if _URL.match(stack.path) or PurePosixPath(stack.path).is_absolute():
        raise RenderError("the stack path must be relative to the repository root", where=stack.path)
    directory = _real(root / stack.path)
    problem = _path_problem(root, directory, stack.path)
    if problem:
        raise RenderError(problem, where=stack.path)
    if not directory.is_dir():
        raise RenderError("the stack path is not a directory", where=stack.path)
    return directory


def _walk(root: Path, directory: Path) -> tuple[list[Path], list[RenderError]]:
    """Every file below ``directory`` sorted by path (symlinked directories inside the repository are followed, each
    real directory once; ``.git`` is skipped), and an error for each symlink that resolves outside the repository
    or into ``.git``: those are never read."""
    files: list[Path] = []
    errors: list[RenderError] = []
    pending, seen = [directory], set[Path]()
    while pending:
        current = pending.pop()
        if _real(current) in seen:
            continue
        seen.add(_real(current))
        for entry in sorted(current.iterdir()):
            if entry.name == ".git":
                continue
            problem = (
                _path_problem(root, _real(entry), entry.relative_to(root).as_posix()) if entry.is_symlink() else None
            )
            if problem:
                errors.append(RenderError(problem, where=directory.relative_to(root).as_posix()))
            elif entry.is_dir():
                pending.append(entry)
            else:
                files.append(entry)
    return sorted(files, key=lambda f: f.relative_to(root).as_posix()), errors


# --- errors ----------------------------------------------------------------------------------------------------------


def _raise_all(errors: Sequence[GitopsJobError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(list(errors))


def _each(items: Iterable[_T], render: Callable[[_T], list[RenderedObject]]) -> list[RenderedObject]:
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
    _raise_all(errors)
    return objects


# --- YAML to objects -------------------------------------------------------------------------------------------------


def _objects(text: str, file: str, stack: str, *, output_of: str | None = None) -> list[RenderedObject]:
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


def _read(job: _Job, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise RenderError(f"not UTF-8 text: {e.reason}", where=job.rel(path)) from None
    except OSError as e:
        raise RenderError(f"cannot read: {e.strerror}", where=job.rel(path)) from None


def _is_yaml(path: Path) -> bool:
    return path.suffix in {".yaml", ".yml"}


# --- plain -----------------------------------------------------------------------------------------------------------


def _render_plain(job: _Job) -> list[RenderedObject]:
    """Every ``*.yaml``/``*.yml`` file below the stack directory, each document an object."""
    return _each(filter(_is_yaml, job.files), lambda f: _objects(_read(job, f), job.rel(f), job.stack.name))


# --- jinja -----------------------------------------------------------------------------------------------------------
def _render_jinja(job: _Job) -> list[RenderedObject]:
    from gitops_job.render.jinja import render_jinja  # jinja2 is imported only when a stack has templates

    return render_jinja(job)


# --- kustomize -------------------------------------------------------------------------------------------------------


def _render_kustomize(job: _Job) -> list[RenderedObject]:
    """``kustomize build`` of the stack directory, with kustomize's defaults (no exec or container functions, no
    plugins, no helm, files only from within each kustomization's root), after every path the kustomizations reach
    has been checked: local and inside the repository. kustomize runs on a copy of just the directories the
    kustomizations reach, without ``.git`` (a generator's config could name any file below its root). Objects'
    Source is the stack's kustomization file."""
    file = _kustomization_file(job.directory)
    if file is None:
        raise RenderError(f"no kustomization file ({', '.join(KUSTOMIZATION_FILES)})", where=job.stack.path)
    errors, directories = _kustomization_walk(job)
    _raise_all(errors)
    with sandbox.tree(job.root, directories) as tree:
        args = ["build", str(tree.path(job.directory))]
        output = sandbox.run("kustomize", args, stack=job.stack.name, where=job.stack.path, tree=tree)
    return _objects(output, job.rel(file), job.stack.name, output_of="kustomize")


def _kustomization_walk(job: _Job) -> tuple[list[RenderError], set[Path]]:
    """An error for each remote, missing or out-of-repository path in the kustomizations reachable from the stack,
    and every directory they reach (the stack's included)."""
    errors: list[RenderError] = []
    pending, seen = [job.directory], set[Path]()
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        file = _kustomization_file(directory)
        if file is None:
            continue
        documents = load_documents(_read(job, file), job.rel(file))
        kustomization = documents[0][0] if documents and isinstance(documents[0][0], dict) else {}
        for ref in _kustomization_paths(kustomization):
            problem = _reference_problem(job.root, directory, ref)
            if problem:
                errors.append(RenderError(problem, where=job.rel(file)))
            elif _real(directory / ref).is_dir():
                pending.append(_real(directory / ref))
    return errors, seen


def _kustomization_file(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def _reference_problem(root: Path, directory: Path, ref: str) -> str | None:
    """Why kustomize may not follow ``ref`` from ``directory``, or None: it must be local, inside the repository."""
    if _REMOTE.match(ref):
        return f"remote resource {ref!r} refused: render is offline; vendor it into the repository"
    if PurePosixPath(ref).is_absolute():
        return f"path escapes the repository: {ref} (give a relative path)"
    real = _real(directory / ref)
    problem = _path_problem(root, real, ref)
    if problem is None and not real.exists():
        return f"{ref!r} does not exist (kustomize would try to fetch it as a remote resource; render is offline)"
    return problem


def _kustomization_paths(kustomization: Mapping[str, Any]) -> list[str]:
    """Every local path or remote reference a kustomization names (inline patches and configs excluded)."""

    def items(key: str) -> list[Any]:
        value = kustomization.get(key)
        return value if isinstance(value, list) else []

    def paths(key: str) -> list[Any]:
        return [i.get("path") for i in items(key) if isinstance(i, dict)]

    generated = [g for g in (*items("configMapGenerator"), *items("secretGenerator")) if isinstance(g, dict)]
    generator_files = [
        *(str(f).rpartition("=")[2] for g in generated for f in g.get("files") or ()),
        *(e for g in generated for e in g.get("envs") or ()),
        *(g.get("env") for g in generated),
    ]
    openapi = kustomization.get("openapi")
    refs = [
        *items("resources"),
        *items("bases"),
        *items("components"),
        *items("crds"),
        *items("patchesStrategicMerge"),
        *items("configurations"),
        *items("generators"),
        *items("transformers"),
        *items("validators"),
        *paths("patches"),
        *paths("patchesJson6902"),
        *paths("replacements"),
        *generator_files,
        openapi.get("path") if isinstance(openapi, dict) else None,
    ]
    return [r for r in refs if isinstance(r, str) and r and "\n" not in r]


# --- helm ------------------------------------------------------------------------------------------------------------


def _render_helm(job: _Job) -> list[RenderedObject]:
    """``helm template`` of the chart in the stack directory, offline.

    Hooks are left out (``--no-hooks``, ``--skip-tests``): a GitOps apply has no install or upgrade lifecycle to hang
    them on, so a hook would run on every reconcile or never. CRDs from ``crds/`` are included. Dependencies must be
    vendored in ``charts/`` (``helm dependency build`` never runs). Helm's home directories are a fresh empty
    directory and there is no kubeconfig, so ``lookup`` returns nothing and nothing reaches a network; the values
    schemas may refer only to themselves (helm would fetch a URL or read a ``file://`` path). helm runs on a copy of
    the chart and the values files, without ``.git`` (``.Files`` reads any file of the chart directory). Each
    object's Source is the chart template helm names in its ``# Source:`` comment (no line).
    """
    problems = (_values_problem(job.root, values) for values in job.stack.values)
    _raise_all([RenderError(problem, where=job.stack.path) for problem in problems if problem])
    values = [_real(job.root / v) for v in job.stack.values]
    with sandbox.tree(job.root, [job.directory], values) as tree:
        _raise_all(helm_schema_problems(tree.path(job.directory), job.rel(job.directory)))
        args = [
            "template",
            job.stack.release_name or job.stack.name,
            str(tree.path(job.directory)),
            "--namespace",
            job.stack.namespace or "default",
            "--kube-version",
            job.target.kube_version,
            "--no-hooks",
            "--skip-tests",
            "--include-crds",
        ]
        for file in values:
            args += ["--values", str(tree.path(file))]
        helm_homes = ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
        output = sandbox.run("helm", args, stack=job.stack.name, where=job.stack.path, homes=helm_homes, tree=tree)
    chart = f"{job.rel(job.directory)}/Chart.yaml"

    def objects(chunk: str) -> list[RenderedObject]:
        match = _HELM_SOURCE.search(chunk)
        file = PurePosixPath(job.rel(job.directory), *PurePosixPath(match[1]).parts[1:]).as_posix() if match else chart
        return _objects(chunk, file, job.stack.name, output_of="helm")

    return _each(_DOCUMENT_SEPARATOR.split(output), objects)


def _values_problem(root: Path, values: str) -> str | None:
    """Why the values file ``values`` may not be used, or None: it must be a repo-relative file inside the repo."""
    if _URL.match(values):
        return f"values file {values!r} is a URL; give a file inside the repository"
    if PurePosixPath(values).is_absolute():
        return f"values file {values!r} is absolute; give a path relative to the repository root"
    real = _real(root / values)
    problem = _path_problem(root, real, values)
    if problem is None and not real.is_file():
        return f"values file {values!r} is not a file"
    return problem


_RENDERERS: dict[str, Callable[[_Job], list[RenderedObject]]] = {
    "plain": _render_plain,
    "jinja": _render_jinja,
    "kustomize": _render_kustomize,
    "helm": _render_helm,
}
