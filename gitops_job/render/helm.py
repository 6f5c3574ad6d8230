"""The Helm renderer: the values files checked against the path rule and the values schemas for references that would
leave the chart (:mod:`gitops_job.render.helm_schema`), then ``helm template`` in the sandbox, offline."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from gitops_job.config import paths
from gitops_job.errors import RenderError
from gitops_job.model import RenderedObject
from gitops_job.render import sandbox
from gitops_job.render.documents import Job, each, parse_objects, raise_all
from gitops_job.render.helm_schema import helm_schema_problems

_HELM_SOURCE = re.compile(r"^# Source: (.+?)\s*$", re.MULTILINE)
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_HELM_HOMES = ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")


def render_helm(job: Job) -> list[RenderedObject]:
    """``helm template`` of the chart in the stack directory, offline.

    Hooks are left out (``--no-hooks``, ``--skip-tests``): a GitOps apply has no install or upgrade lifecycle to hang
    them on, so a hook would run on every reconcile or never. CRDs from ``crds/`` are included. Dependencies must be
    vendored in ``charts/`` (``helm dependency build`` never runs). Helm's home directories are a fresh empty
    directory and there is no kubeconfig, so ``lookup`` returns nothing and nothing reaches a network; the values
    schemas may refer only to themselves (helm would fetch a URL or read a ``file://`` path). helm runs on a copy of
    the chart and the values files, without ``.git`` (``.Files`` reads any file of the chart directory). Each
    object's Source is the chart template helm names in its ``# Source:`` comment (no line).
    """
    checked = [_values_file(job.root, values) for values in job.stack.values]
    raise_all([RenderError(problem, where=job.stack.path) for problem in checked if isinstance(problem, str)])
    values = [file for file in checked if isinstance(file, Path)]
    with sandbox.tree(job.root, [job.directory], values) as tree:
        raise_all(helm_schema_problems(tree.path(job.directory), job.rel(job.directory)))
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
        output = sandbox.run("helm", args, stack=job.stack.name, where=job.stack.path, homes=_HELM_HOMES, tree=tree)
    chart = f"{job.rel(job.directory)}/Chart.yaml"

    def objects(chunk: str) -> list[RenderedObject]:
        match = _HELM_SOURCE.search(chunk)
        file = PurePosixPath(job.rel(job.directory), *PurePosixPath(match[1]).parts[1:]).as_posix() if match else chart
        return parse_objects(chunk, file, job.stack.name, output_of="helm")

    return each(_DOCUMENT_SEPARATOR.split(output), objects)


def _values_file(root: Path, values: str) -> Path | str:
    """The real path of the values file ``values`` (repo-relative), or why it may not be used: the path rule
    (:mod:`gitops_job.config.paths`) refuses it, or it is not a file."""
    try:
        found = paths.resolve(root, values)
    except paths.PathRefused as e:
        return f"values file {e.reason}"
    if not found.is_file():
        return f"values file {values!r} is not a file"
    return found
