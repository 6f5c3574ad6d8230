"""`images`: the image automation commands, one module each, imported when run (`images list` in ``images_list``,
`images update` and `images why` in ``images_update``). A subcommand joins the group with one line in
``SUBCOMMANDS``."""

from __future__ import annotations

import click

from gitops_job.cli.main import LazyGroup

SUBCOMMANDS = {
    "list": "gitops_job.cli.images_list:list_cmd",
    "update": "gitops_job.cli.images_update:update_cmd",
    "why": "gitops_job.cli.images_update:why_cmd",
}


@click.group(name="images", cls=LazyGroup, lazy=SUBCOMMANDS)
def images_group() -> None:
    """Image automation: which tags the workloads' images may take, what is deployed, and the tags the policies of
    gitops.yaml choose, written into the setter markers.

    \b
    A marker is a comment after an image value on any YAML line (manifests, a kustomization's
    images:, Helm values): `image: ghcr.io/acme/app:1.2.3 # {"$imagepolicy": "apps:app"}`
    (`:tag`, `:name`, `:digest` for part of a reference). It names a policy under `images.policies`
    of gitops.yaml. The scheduled `reconcile` makes the same change when `images.automation.enabled`
    is true (docs/images.md).
    """
