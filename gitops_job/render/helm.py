"""The Helm renderer: the values files checked against the path rule and the values schemas for references that would
leave the chart (:mod:`gitops_job.render.helm_schema`), then ``helm template`` in the sandbox, offline — on the chart
in the stack's directory, or on a remote chart (``chart:``) fetched and cached first
(:mod:`gitops_job.render.charts`)."""

from __future__ import annotations

from pathlib import Path

from gitops_job.config import paths
from gitops_job.errors import RenderError
from gitops_job.model import RenderedObject
from gitops_job.render import charts, sandbox
from gitops_job.render.documents import Job, raise_all
from gitops_job.render.helm_template import Release, template


def render_helm(job: Job) -> list[RenderedObject]:
    """``helm template`` of the chart in the stack directory (or of the stack's remote ``chart``), offline.

    Hooks are left out (``--no-hooks``, ``--skip-tests``): a GitOps apply has no install or upgrade lifecycle to hang
    them on, so a hook would run on every reconcile or never. CRDs from ``crds/`` are included. Dependencies must be
    vendored in ``charts/`` (``helm dependency build`` never runs). Helm's home directories are a fresh empty
    directory and there is no kubeconfig, so ``lookup`` returns nothing and nothing reaches a network; the values
    schemas may refer only to themselves (helm would fetch a URL or read a ``file://`` path). helm runs on a copy of
    the chart and the values files, without ``.git`` (``.Files`` reads any file of the chart directory). Each
    object's Source is the chart template helm names in its ``# Source:`` comment (no line); a remote chart's
    objects also name the chart's exact version (what the plan shows).
    """
    checked = [_values_file(job.root, values) for values in job.stack.values]
    raise_all([RenderError(problem, where=job.stack.path) for problem in checked if isinstance(problem, str)])
    values = [file for file in checked if isinstance(file, Path)]
    name, namespace = job.stack.release_name or job.stack.name, job.stack.namespace or "default"
    where, stack = job.stack.path, job.stack.name
    if job.stack.chart is not None:
        remote = charts.fetch(job.stack.chart, job.charts, where)
        with sandbox.tree(job.root, [], values) as tree, charts.unpacked(remote, where) as chart:
            release = Release(
                chart,
                chart.name,
                name,
                namespace,
                job.target.kube_version,
                [tree.path(v) for v in values],
                chart_label=remote.label,
            )
            return template(release, stack=stack, where=where, tree=tree)
    with sandbox.tree(job.root, [job.directory], values) as tree:
        release = Release(
            tree.path(job.directory),
            job.rel(job.directory),
            name,
            namespace,
            job.target.kube_version,
            [tree.path(v) for v in values],
        )
        return template(release, stack=stack, where=where, tree=tree)


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
