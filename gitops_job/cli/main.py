"""The command line: parses flags (and ``GITOPS_JOB_*`` environment variables) into settings and calls the pipeline.

This is the only module that ends the process; everything below it returns results or raises
:class:`~gitops_job.errors.GitopsJobError`.

One module per command group beside it: ``render`` (render, validate), ``plan``, ``apply``, ``reconcile``,
``state`` (status, history, break-lease), ``controls`` (suspend, resume, rollback), ``workloads`` (workloads, lock,
unlock, automate, deautomate, release), ``images`` (a group: ``images_list``, ``images_update``) and ``install``;
``options`` holds what they share.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from gitops_job import __version__
from gitops_job.errors import GitopsJobError
from gitops_job.exitcodes import ExitCode

_EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code.value}  {code.meaning}" for code in ExitCode)

#: Each command, by name: the module and the attribute that define it, imported only when that command is run or
#: listed (`--help` imports the command modules, which import no heavy library; `--version` imports none of them).
COMMANDS = {
    "render": "gitops_job.cli.render:render",
    "validate": "gitops_job.cli.render:validate_cmd",
    "plan": "gitops_job.cli.plan:plan_cmd",
    "apply": "gitops_job.cli.apply:apply_cmd",
    "reconcile": "gitops_job.cli.reconcile:reconcile_cmd",
    "status": "gitops_job.cli.state:status_cmd",
    "history": "gitops_job.cli.state:history_cmd",
    "break-lease": "gitops_job.cli.state:break_lease_cmd",
    "unlock": "gitops_job.cli.workloads:unlock_cmd",
    "install": "gitops_job.cli.install:install_cmd",
    "suspend": "gitops_job.cli.controls:suspend_cmd",
    "resume": "gitops_job.cli.controls:resume_cmd",
    "rollback": "gitops_job.cli.controls:rollback_cmd",
    "workloads": "gitops_job.cli.workloads:workloads_cmd",
    "lock": "gitops_job.cli.workloads:lock_cmd",
    "automate": "gitops_job.cli.workloads:automate_cmd",
    "deautomate": "gitops_job.cli.workloads:deautomate_cmd",
    "release": "gitops_job.cli.workloads:release_cmd",
    "images": "gitops_job.cli.images:images_group",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when needed (click's documented LazyGroup pattern)."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, _, attr = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command) and command.name == cmd_name, self.lazy[cmd_name]
        return command


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
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
    except click.Abort:  # Ctrl-C outside an apply's writes (an apply says how far it got: errors.Interrupted)
        click.echo("interrupted (Ctrl-C)", err=True)
        sys.exit(ExitCode.ERROR)
    except GitopsJobError as e:
        from gitops_job.cli.options import say  # a command was run: its module imported this already

        say(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    sys.exit(ExitCode.OK)
