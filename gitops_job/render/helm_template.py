"""``helm template`` of one chart directory, offline in the sandbox, and its output turned into objects: what the
stack renderer (:mod:`~gitops_job.render.helm`) and the HelmRelease renderer (:mod:`~gitops_job.render.helmrelease`)
share."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from gitops_job.model import RenderedObject
from gitops_job.render import sandbox
from gitops_job.render.documents import each, parse_objects, raise_all
from gitops_job.render.helm_schema import helm_schema_problems

_HELM_SOURCE = re.compile(r"^# Source: (.+?)\s*$", re.MULTILINE)
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
HELM_HOMES = ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")


@dataclass(frozen=True)
class Release:
    """What one ``helm template`` run renders: a chart directory as a named release."""

    chart: Path  # the chart directory (in a sandbox tree, or an unpacked remote chart)
    shown: str  # how messages and Sources name the chart directory (repo-relative, or the chart's name)
    name: str
    namespace: str
    kube_version: str
    values: Sequence[Path] = ()  # values files, in order
    include_crds: bool = True
    chart_label: str | None = None  # a remote chart's "name version (repository)", kept in each object's Source


def template(release: Release, *, stack: str, where: str, tree: sandbox.Tree | None = None) -> list[RenderedObject]:
    """Hooks are left out (``--no-hooks``, ``--skip-tests``): a GitOps apply has no install or upgrade lifecycle to
    hang them on. Each object's Source is the chart file helm names in its ``# Source:`` comment (no line)."""
    raise_all(helm_schema_problems(release.chart, release.shown))
    args = [
        "template",
        release.name,
        str(release.chart),
        "--namespace",
        release.namespace,
        "--kube-version",
        release.kube_version,
        "--no-hooks",
        "--skip-tests",
    ]
    if release.include_crds:
        args.append("--include-crds")
    for file in release.values:
        args += ["--values", str(file)]
    output = sandbox.run("helm", args, stack=stack, where=where, homes=HELM_HOMES, tree=tree)
    chart_file = f"{release.shown}/Chart.yaml"

    def objects(chunk: str) -> list[RenderedObject]:
        match = _HELM_SOURCE.search(chunk)
        file = PurePosixPath(release.shown, *PurePosixPath(match[1]).parts[1:]).as_posix() if match else chart_file
        found = parse_objects(chunk, file, stack, output_of="helm")
        if release.chart_label is None:
            return found
        return [replace(o, source=replace(o.source, chart=release.chart_label)) for o in found]

    return each(_DOCUMENT_SEPARATOR.split(output), objects)
