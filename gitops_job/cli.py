"""The command line: parses flags (and ``GITOPS_JOB_*`` environment variables) into settings and calls the pipeline.

This is the only module that ends the process; everything below it returns results or raises
:class:`~gitops_job.errors.GitopsJobError`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from . import __version__
from .errors import GitopsJobError
from .exitcodes import ExitCode

_EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code.value}  {code.meaning}" for code in ExitCode)


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "auto_envvar_prefix": "GITOPS_JOB",
        "max_content_width": 100,
    },
    epilog=_EXIT_CODES_HELP,
)
@click.version_option(__version__, "-V", "--version", prog_name="gitops-job")
def cli() -> None:
    """GitOps for Kubernetes without a resident operator.

    gitops-job reads the desired state of your clusters from git — stacks of plain YAML, Jinja2 templates, Kustomize
    overlays or Helm charts, declared in gitops.yaml — and reconciles the cluster to it in one shot, the way Flux's
    controllers do, but as a job: a pull-request check that posts the server-side diff, an apply on merge, or a
    Kubernetes CronJob that corrects drift. Git is the audit log; every change is a commit.

    Every option can also be set through an environment variable named GITOPS_JOB_<COMMAND>_<OPTION>.
    """


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and exit with a documented :class:`ExitCode`."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="gitops-job", standalone_mode=False)
    except click.exceptions.Exit as e:  # --help, --version
        sys.exit(e.exit_code)
    except click.ClickException as e:  # usage errors and the like
        e.show()
        sys.exit(ExitCode.USAGE if isinstance(e, click.UsageError) else ExitCode.ERROR)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.ERROR)
    except GitopsJobError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    sys.exit(ExitCode.OK)
