"""`install`: the manifests that run `reconcile` in the cluster on a schedule (deploy/ holds them with defaults)."""

from __future__ import annotations

from typing import Any

import click

from gitops_job.cli.options import kube_options
from gitops_job.exitcodes import ExitCode
from gitops_job.reconcile import install


@click.command(name="install")
@click.option("--repo", required=True, metavar="URL", help="The repository the CronJob reconciles (reconcile --repo).")
@click.option("--branch", help="The branch.  [default: the remote's HEAD]")
@click.option("-t", "--target", help="The target of gitops.yaml.  [default: the first]")
@click.option("--path-in-repo", default=".", show_default=True, help="The directory holding gitops.yaml.")
@click.option("--schedule", default=install.DEFAULT_SCHEDULE, show_default=True, help="The CronJob's schedule.")
@click.option("--image", default=install.DEFAULT_IMAGE, show_default=True, help="The gitops-job image (make image).")
@click.option(
    "--install-namespace",
    default=install.DEFAULT_NAMESPACE,
    show_default=True,
    help="Its own namespace: the CronJob, its ServiceAccount, and the target's inventories and Leases "
    "(the target's inventoryNamespace must be this).",
)
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="A namespace it may manage (repeatable): a Role there lets it apply, plan and prune any "
    "namespaced kind. Nothing outside these namespaces, and no cluster-scoped kind.",
)
@click.option(
    "--cluster-wide",
    is_flag=True,
    help="Opt in: manage every namespace and cluster-scoped kinds (Namespaces, CRDs, ClusterRoles…) "
    "through one ClusterRole instead of per-namespace Roles.",
)
@click.option(
    "--drift",
    type=click.Choice(["correct", "report"]),
    default="correct",
    show_default=True,
    help="What each scheduled run does (reconcile --drift).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Do not print the manifests: plan them against the cluster (what applying them would change).",
)
@kube_options
def install_cmd(
    dry_run: bool,
    namespaces: tuple[str, ...],
    install_namespace: str,
    kubeconfig: str | None,
    concurrency: int,
    **kw: Any,
) -> None:
    """Print the manifests that run `gitops-job reconcile` in the cluster: Namespace, ServiceAccount,
    least-privilege RBAC, a state volume and a CronJob (concurrencyPolicy Forbid, non-root, read-only root).

    \b
    RBAC scope: --namespace NS (repeatable) for the namespaces it may manage, or --cluster-wide.
    Git credentials come from Secret gitops-job-git: for https, key token; for an ssh --repo,
    keys identity (the deploy key) and known_hosts (the pinned host keys), mounted as files.
    Receiver secrets come from Secret gitops-job-receivers (each key an environment
    variable); see docs/deploy.md.

    \b
    Examples:
      gitops-job install --repo https://github.com/acme/deploy.git -n apps | kubectl apply -f -
      kubectl -n gitops-job-system create secret generic gitops-job-git \\
        --from-file=identity=deploy_key --from-file=known_hosts=./known_hosts
      gitops-job install --repo git@github.com:acme/deploy.git -n apps | kubectl apply -f -
    """
    opts = install.Install(namespaces=namespaces, namespace=install_namespace, **kw)
    problem = opts.problem()
    if problem:
        raise click.UsageError(problem)
    docs = install.manifests(opts)
    if not dry_run:
        click.echo(install.to_yaml(docs), nl=False)
        return
    from gitops_job.report.text import text as plan_text

    plan = install.plan_of(docs, install_namespace, kubeconfig)
    click.echo(plan_text(plan), nl=False)
    if plan.failures:
        raise SystemExit(ExitCode.ERROR)
