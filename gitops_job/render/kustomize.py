"""The Kustomize renderer: every path the kustomizations reachable from the stack name is checked (local, inside the
repository), then ``kustomize build`` runs in the sandbox on a copy of just the directories they reach."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitops_job.config import paths
from gitops_job.errors import RenderError
from gitops_job.model import RenderedObject
from gitops_job.render import sandbox
from gitops_job.render.documents import Job, parse_objects, raise_all, read_text
from gitops_job.yamlio import load_documents

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git::|git@|github\.com/)")


def render_kustomize(job: Job) -> list[RenderedObject]:
    """``kustomize build`` of the stack directory, with kustomize's defaults (no exec or container functions, no
    plugins, no helm, files only from within each kustomization's root), after every path the kustomizations reach
    has been checked: local and inside the repository. kustomize runs on a copy of just the directories the
    kustomizations reach, without ``.git`` (a generator's config could name any file below its root). Objects'
    Source is the stack's kustomization file."""
    file = kustomization_file(job.directory)
    if file is None:
        raise RenderError(f"no kustomization file ({', '.join(KUSTOMIZATION_FILES)})", where=job.stack.path)
    errors, directories = _kustomization_walk(job)
    raise_all(errors)
    with sandbox.tree(job.root, directories) as tree:
        args = ["build", str(tree.path(job.directory))]
        output = sandbox.run("kustomize", args, stack=job.stack.name, where=job.stack.path, tree=tree)
    return parse_objects(output, job.rel(file), job.stack.name, output_of="kustomize")


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of ``directory``, or None when it has none."""
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def _kustomization_walk(job: Job) -> tuple[list[RenderError], set[Path]]:
    """An error for each remote, missing or refused path in the kustomizations reachable from the stack, and every
    directory they reach (the stack's included)."""
    errors: list[RenderError] = []
    pending, seen = [job.directory], set[Path]()
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        file = kustomization_file(directory)
        if file is None:
            continue
        documents = load_documents(read_text(job, file), job.rel(file))
        kustomization = documents[0][0] if documents and isinstance(documents[0][0], dict) else {}
        for ref in _kustomization_paths(kustomization):
            try:
                found = _reference(job.root, directory, ref, where=job.rel(file))
            except RenderError as e:
                errors.append(e)
                continue
            if found.is_dir():
                pending.append(found)
    return errors, seen


def _reference(root: Path, directory: Path, ref: str, *, where: str) -> Path:
    """The real path kustomize would follow for ``ref`` from ``directory``; a RenderError at ``where`` (the
    kustomization file) unless it is local, allowed by the path rule (:mod:`gitops_job.config.paths`) and exists."""
    if _REMOTE.match(ref):
        reason = f"remote resource {ref!r} refused: render is offline; vendor it into the repository"
        raise RenderError(reason, where=where)
    try:
        found = paths.resolve(root, ref, base=directory)
    except paths.PathRefused as e:
        raise RenderError(e.reason, where=where) from None
    if not found.exists():
        reason = f"{ref!r} does not exist (kustomize would try to fetch it as a remote resource; render is offline)"
        raise RenderError(reason, where=where)
    return found


def _kustomization_paths(kustomization: Mapping[str, Any]) -> list[str]:
    """Every local path or remote reference a kustomization names (inline patches and configs excluded)."""

    def items(key: str) -> list[Any]:
        value = kustomization.get(key)
        return value if isinstance(value, list) else []

    def item_paths(key: str) -> list[Any]:
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
        *item_paths("patches"),
        *item_paths("patchesJson6902"),
        *item_paths("replacements"),
        *generator_files,
        openapi.get("path") if isinstance(openapi, dict) else None,
    ]
    return [r for r in refs if isinstance(r, str) and r and "\n" not in r]
