"""The Kustomize renderer: every path the kustomizations reachable from the stack name is checked (local, inside the
repository), then ``kustomize build`` runs in the sandbox on a copy of just the directories they reach.

A Flux Kustomization's stack (``stack.flux``) is built as kustomize-controller builds it: the path's kustomization
(generated when it has none: every ``.yaml``/``.yml`` file below it, a subdirectory with a kustomization taken whole)
gets the Kustomization's ``targetNamespace``, ``namePrefix``/``nameSuffix``, ``patches``, ``images`` and
``components`` merged in, in the sandbox's copy; after the build, ``commonMetadata`` is set on every object but
Flux's own (``*.toolkit.fluxcd.io``, and what carries ``app.kubernetes.io/part-of: flux``): those stay in the output
for :func:`gitops_job.render.stack.render_stack`, which renders the HelmReleases among them and then leaves them all
out (they become stacks or notes in :mod:`gitops_job.config.flux`, never objects to apply)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitops_job.config import paths
from gitops_job.config.flux import FluxBuild
from gitops_job.errors import RenderError
from gitops_job.model import ANNOTATION_FORCE, RenderedObject
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
    flux = job.stack.flux
    file = kustomization_file(job.directory)
    if file is None and flux is None:
        raise RenderError(f"no kustomization file ({', '.join(KUSTOMIZATION_FILES)})", where=job.stack.path)
    top = _flux_kustomization(job, file, flux) if flux is not None else None
    errors, directories = _kustomization_walk(job, top)
    raise_all(errors)
    with sandbox.tree(job.root, directories) as tree:
        if top is not None:
            _write_kustomization(tree.path(job.directory), top)
        args = ["build", str(tree.path(job.directory))]
        output = sandbox.run("kustomize", args, stack=job.stack.name, where=job.stack.path, tree=tree)
    source = job.rel(file) if file is not None else job.stack.path
    objects = parse_objects(output, source, job.stack.name, output_of="kustomize")
    return objects if flux is None else [o if flux_own(o.body) else _flux_metadata(o, flux) for o in objects]


def _flux_kustomization(job: Job, file: Path | None, flux: FluxBuild) -> dict[str, Any]:
    """The path's kustomization (or the one Flux generates for a path without one) with the Flux Kustomization's
    fields merged in as kustomize-controller merges them: ``namespace``, ``namePrefix`` and ``nameSuffix`` set,
    ``patches`` and ``components`` appended, ``images`` replacing the entry of the same name."""
    if file is not None:
        documents = load_documents(read_text(job, file), job.rel(file))
        base = dict(documents[0][0]) if documents and isinstance(documents[0][0], dict) else {}
    else:
        base = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                "resources": _generated_resources(job, flux)}  # fmt: skip
    merged = {**base, **{k: v for k, v in flux.kustomization.items() if k not in ("patches", "images", "components")}}
    for key in ("patches", "components"):
        if flux.kustomization.get(key):
            merged[key] = [*(base.get(key) or ()), *flux.kustomization[key]]
    if flux.kustomization.get("images"):
        images = {i.get("name"): i for i in base.get("images") or () if isinstance(i, dict)}
        images.update({i.get("name"): i for i in flux.kustomization["images"] if isinstance(i, dict)})
        merged["images"] = list(images.values())
    return merged


def _generated_resources(job: Job, flux: FluxBuild) -> list[str]:
    """Flux's generated kustomization: every YAML file below the path; a subdirectory with a kustomization file is
    one resource (not descended into); the Flux installation's directory (``flux.skip``) is left out."""
    found: list[str] = []
    pending = [job.directory]
    while pending:
        directory = pending.pop()
        for entry in sorted(directory.iterdir(), reverse=True):
            rel = entry.relative_to(job.directory).as_posix()
            if entry.name.startswith(".") or job.rel(entry) in flux.skip:
                continue
            if entry.is_dir():
                if kustomization_file(entry) is not None:
                    found.append(rel)
                else:
                    pending.append(entry)
            elif entry.suffix in (".yaml", ".yml") and entry.is_file() and read_text(job, entry).strip():
                found.append(rel)
    return sorted(found)


def _write_kustomization(directory: Path, kustomization: Mapping[str, Any]) -> None:
    """Write the merged kustomization into the sandbox's copy: unlinked first (the copy's files are hard links to
    the repository's), as ``kustomization.yaml`` (JSON is YAML), the copy's other kustomization files removed."""
    for name in KUSTOMIZATION_FILES:
        (directory / name).unlink(missing_ok=True)
    (directory / "kustomization.yaml").write_text(json.dumps(kustomization), encoding="utf-8")


def flux_own(body: Mapping[str, Any]) -> bool:
    """Flux's own objects: its toolkit kinds, and its installation (``app.kubernetes.io/part-of: flux``)."""
    group = str(body.get("apiVersion") or "").rpartition("/")[0]
    labels = (body.get("metadata") or {}).get("labels") or {}
    return group.endswith(".toolkit.fluxcd.io") or labels.get("app.kubernetes.io/part-of") == "flux"


def _flux_metadata(obj: RenderedObject, flux: FluxBuild) -> RenderedObject:
    """``commonMetadata`` set on the object (Flux's values win over the object's), and ``force`` as our per-object
    force annotation."""
    annotations = {**flux.annotations, **({ANNOTATION_FORCE: "enabled"} if flux.force else {})}
    if not flux.labels and not annotations:
        return obj
    meta = dict(obj.body.get("metadata") or {})
    if flux.labels:
        meta["labels"] = {**(meta.get("labels") or {}), **flux.labels}
    if annotations:
        meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    return RenderedObject(obj.id, {**obj.body, "metadata": meta}, obj.source, obj.stack)


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of ``directory``, or None when it has none."""
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def _kustomization_walk(job: Job, top: Mapping[str, Any] | None = None) -> tuple[list[RenderError], set[Path]]:
    """An error for each remote, missing or refused path in the kustomizations reachable from the stack, and every
    directory they reach (the stack's included); ``top``: the stack directory's kustomization as it will be built
    (a Flux stack's, merged), instead of its file."""
    errors: list[RenderError] = []
    pending, seen = [job.directory], set[Path]()
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        file = kustomization_file(directory)
        if top is not None and directory == job.directory:
            kustomization: Any = top
            file = file or directory
        elif file is None:
            continue
        else:
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
