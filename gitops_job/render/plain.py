"""The plain renderer: YAML files as they are."""

from __future__ import annotations

from gitops_job.model import RenderedObject
from gitops_job.render.documents import Job, each, is_yaml, parse_objects, read_text


def render_plain(job: Job) -> list[RenderedObject]:
    """Every ``*.yaml``/``*.yml`` file below the stack directory, each document an object."""
    return each(filter(is_yaml, job.files), lambda f: parse_objects(read_text(job, f), job.rel(f), job.stack.name))
