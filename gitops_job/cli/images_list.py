"""`images list WORKLOAD`: each container's deployed image against the tags its repository has (fluxctl's
`list-images`), judged by the container's Flux v1 tag filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gitops_job.cli.options import settings_of, source_options


@click.command(name="list", epilog="WORKLOAD is Kind/namespace/name, fluxctl's namespace:kind/name, or a bare name.")
@source_options
@click.argument("workload", metavar="WORKLOAD")
@click.option("--docker-config", type=click.Path(dir_okay=False, path_type=Path),
              help="A docker config.json with registry credentials.  [default: $DOCKER_CONFIG/config.json, "
              "~/.docker/config.json; none: anonymous]")  # fmt: skip
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Cache tag lists here between runs (as reconcile's --state-dir).")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Tags shown per container (0: all).")  # fmt: skip
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_cmd(
    workload: str, docker_config: Path | None, state_dir: Path | None, limit: int, output: str, **kw: Any
) -> None:
    """Show WORKLOAD's images as deployed (in git) against the tags their repositories have: for each container,
    the newest tag its filter (fluxcd.io/tag.<container>) allows, the running tag, the other allowed tags, and the
    tags the filter removes with the reason — like `fluxctl list-images`. Offline for the cluster: it renders the
    checkout and asks only the registries. A registry that cannot list a repository is an error on that container
    (exit 1); the other containers are still shown.

    \b
    Example:
      gitops-job images list Deployment/apps/web
    """
    from gitops_job.errors import ImageError
    from gitops_job.reconcile.workloads import list_images
    from gitops_job.registry import Credentials, Registry
    from gitops_job.report.workloads import images_json, images_text

    with Registry(Credentials.docker_config(docker_config), state_dir=state_dir) as registry:
        w, found = list_images(settings_of(**kw), workload, registry)
    click.echo(images_json(w, found) if output == "json" else images_text(w, found, limit), nl=False)
    failed = [a.container.name for a in found if a.error]
    if failed:
        raise ImageError(
            f"the tags of container(s) {', '.join(failed)} could not be listed (see above)", where=str(w.id)
        )
