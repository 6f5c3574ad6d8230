"""What is stored on the cluster about each stack, read back: its inventory with the health of every object it
lists (`status`), its run records (`history`), and its apply lease, broken by hand (`break-lease`)."""

from __future__ import annotations

from dataclasses import replace as dc_replace

from gitops_job.identity import ObjectId
from gitops_job.outcomes import HealthState
from gitops_job.reconcile import inventory
from gitops_job.reconcile.context import (
    Settings,
    connected,
    learn_live_secrets,
    scrub_health,
    scrubbing,
    stored_inventories,
)
from gitops_job.reconcile.health import status
from gitops_job.reconcile.lease import break_lease, lease_name
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.results import Health, StackStatus, Status


# -- status, history, break-lease ---------------------------------------------------------------------------------
def run_status(settings: Settings) -> Status:
    """Each selected stack's inventory and the current health of every object it lists."""
    masker = Masker()
    with connected(settings) as (selection, kube), scrubbing(masker):
        stored = stored_inventories(kube, selection)
        learn_live_secrets(kube, selection.target, stored.values(), masker)
        rows = []
        for stack, inv in ((s.name, stored[s.name]) for s in selection.stacks):
            health: dict[ObjectId, Health] = {}
            for oid in sorted(inv.objects):
                rt = kube.type_of(oid.group, oid.kind)
                live = kube.get(rt, oid.name, oid.namespace or None) if rt else None
                health[oid] = (
                    status(live) if live is not None else Health(HealthState.NOT_FOUND, "missing from the cluster")
                )
            last = inv.runs[0] if inv.runs else None
            if last is not None:
                last = dc_replace(last, message=masker.scrub(last.message))
            rows.append(StackStatus(stack, inv.revision, last, scrub_health(health, masker), suspended=inv.suspended,
                                    off_git=inv.off_git))  # fmt: skip
        return Status(selection.target.name, tuple(rows))


def run_history(settings: Settings) -> inventory.Inventory:
    """The inventory (with its run records) of the first selected stack."""
    with connected(settings) as (selection, kube):
        t = selection.target
        return inventory.read(kube, t.inventory_namespace, t.name, selection.stacks[0].name)


def run_break_lease(settings: Settings) -> list[tuple[str, str | None]]:
    """Break each selected stack's lock; returns each stack with its former holder (None: it was not locked)."""
    with connected(settings) as (selection, kube):
        t = selection.target
        ns = t.inventory_namespace
        return [(s.name, break_lease(kube, ns, lease_name(t.name, s.name))) for s in selection.stacks]
