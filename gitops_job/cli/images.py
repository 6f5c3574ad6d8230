"""`images`: the image automation commands, one module each, imported when run (`images list` in ``images_list``).
A subcommand joins the group with one line in ``SUBCOMMANDS``."""

from __future__ import annotations

import click

from gitops_job.cli.main import LazyGroup

SUBCOMMANDS = {
    "list": "gitops_job.cli.images_list:list_cmd",
}


@click.group(name="images", cls=LazyGroup, lazy=SUBCOMMANDS)
def images_group() -> None:
    """Image automation: which tags the workloads' images may take, and what is deployed."""
