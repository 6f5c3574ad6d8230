"""`render` and `validate`: what the stacks become, checked, without planning."""

from __future__ import annotations

import json
from typing import Any

import click

from gitops_job.cli.options import kube_options, say, settings_of, source_options
from gitops_job.reconcile import context
from gitops_job.report.text import to_yaml


@click.command()
@source_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def render(output: str, **kw: Any) -> None:
    """Print the rendered, validated objects of every selected stack.

    Offline: needs no cluster. Each YAML document is preceded by a comment naming its stack and source file:line.
    Secret values are masked (<secret #N>), as in every output of gitops-job.
    """
    settings = settings_of(**kw)
    rendered = context.render(context.select(settings), settings.vars, on_note=settings.on_note)
    masker = rendered.masker  # has learned every Secret of the target
    if output == "json":
        items = [masker.mask(o.body) for o in rendered.objects]
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
        return
    for obj in rendered.objects:
        say(f"---\n# stack: {obj.stack}, source: {obj.source}")
        click.echo(to_yaml(masker.mask(obj.body)), nl=False)


@click.command(name="validate")
@source_options
@kube_options
@click.option("--offline", is_flag=True, help="Skip the checks that need the cluster (what a fork PR gets).")
def validate_cmd(offline: bool, **kw: Any) -> None:
    """Render every selected stack and run every check that needs no write.

    Offline (--offline): YAML, required fields, names, duplicates, the stacks' allow policies. With a cluster also:
    unknown kinds (discovery; CRDs rendered in the same stack count as known).
    """
    settings = settings_of(**kw)
    selection = context.select(settings)
    if offline:
        rendered = context.render(selection, settings.vars, on_note=settings.on_note)
    else:
        kube = context.connect(settings, selection.target)
        try:
            rendered = context.render(selection, settings.vars, kube, on_note=settings.on_note)
        finally:
            kube.close()
    stacks = len(rendered.selection.stacks)
    mode = "offline" if offline else "with discovery"
    say(f"{len(rendered.objects)} objects in {stacks} stack(s) of target {selection.target.name}: valid ({mode})")
