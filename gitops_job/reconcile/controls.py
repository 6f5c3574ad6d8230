"""The stack controls stored on the cluster, on the stack's inventory: ``suspend`` / ``resume`` (Flux's ``flux suspend
kustomization``: runs leave that stack alone, its objects stay as they are) and the off-git mark an emergency
``rollback`` leaves. Each change is a guarded write of the inventory and a Kubernetes Event on it (``kubectl
describe configmap`` shows who did what and why)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as dc_replace

from gitops_job.errors import ValidationError
from gitops_job.reconcile import inventory
from gitops_job.reconcile.context import Settings, connected
from gitops_job.reconcile.results import Hold


@dataclass(frozen=True)
class Changed:
    """What a control did to one stack: its inventory before and after."""

    stack: str
    before: inventory.Inventory
    after: inventory.Inventory


def _one_stack(settings: Settings, stack: str) -> Settings:
    return dc_replace(settings, stacks=(stack,))


def run_suspend(settings: Settings, stack: str, user: str, reason: str) -> Changed:
    """Mark ``stack`` suspended (who, why, now) on its inventory: runs (``apply``, ``reconcile``) leave it alone
    until :func:`run_resume`. Suspending a suspended stack records the new reason and user."""
    if not reason.strip():
        raise ValidationError(
            "a suspension needs a reason (--reason): it is what `status` shows", where=f"stack {stack}"
        )
    with connected(_one_stack(settings, stack)) as (selection, kube):
        t = selection.target
        inventory.ensure_namespace(kube, t.inventory_namespace)
        before = inventory.read(kube, t.inventory_namespace, t.name, stack)
        hold = Hold(user, reason, inventory.now())
        after = inventory.write(kube, dc_replace(before, suspended=hold))
        inventory.event(kube, after, reason="Suspended", message=f"suspended by {user}: {reason}")
        return Changed(stack, before, after)


def run_resume(settings: Settings, stack: str, user: str) -> Changed:
    """Clear ``stack``'s suspension and its off-git mark: the next run reconciles it from git again."""
    with connected(_one_stack(settings, stack)) as (selection, kube):
        t = selection.target
        before = inventory.read(kube, t.inventory_namespace, t.name, stack)
        if before.suspended is None and before.off_git is None:
            return Changed(stack, before, before)
        after = inventory.write(kube, dc_replace(before, suspended=None, off_git=None))
        inventory.event(kube, after, reason="Resumed", message=f"resumed by {user}")
        return Changed(stack, before, after)
