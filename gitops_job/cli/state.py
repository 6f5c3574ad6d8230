"""`status`, `history` and `break-lease` (`unlock` without a workload, its deprecated name, is in ``workloads``):
what is stored about each stack."""

from __future__ import annotations

from typing import Any

import click

from gitops_job.cli.options import kube_options, say, settings_of, source_options
from gitops_job.reconcile import state
from gitops_job.report.status import history_text, status_json_text, status_text


@click.command(name="status")
@source_options
@kube_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status_cmd(output: str, **kw: Any) -> None:
    """Show each stack as a table, from the cluster (its inventories): the revision applied in full, when the last
    run finished, its result and where it came from (ci, cronjob, terminal), the health of the objects it lists now
    (`12/12 current`, or how many are in the worst state) and its drift (`-`: not known). Then every object that is
    not current, and every last run that did not succeed. `-o json`: the documented status document
    (gitops_job/report/schemas/status.schema.json)."""
    result = state.run_status(settings_of(**kw))
    click.echo(status_json_text(result) if output == "json" else status_text(result), nl=False)


@click.command(name="history")
@source_options
@kube_options
@click.argument("stack_name", metavar="STACK")
def history_cmd(stack_name: str, **kw: Any) -> None:
    """List the last runs of STACK (newest first): when, result, where it came from, revision and counts."""
    kw["stacks"] = (stack_name,)
    inv = state.run_history(settings_of(**kw))
    click.echo(history_text(inv.target, stack_name, inv.runs), nl=False)


@click.command(name="break-lease")
@source_options
@kube_options
def break_lease_cmd(**kw: Any) -> None:
    """Break the apply lease of each selected stack (all stacks of the target by default).

    One applier at a time holds a stack's Lease. Break it only when the run that holds it is gone (a killed job):
    a live applier that loses its lease stops before it prunes.
    """
    for stack, holder in state.run_break_lease(settings_of(**kw)):
        say(f"stack {stack}: " + (f"lease held by {holder} broken" if holder else "no lease was held"))
