"""The process exit codes: the one contract scripts and CI steps rely on. Only the CLI entry point exits."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit status of every ``gitops-job`` command (documented in README.md)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CHANGES = 3

    @property
    def meaning(self) -> str:
        """One line for ``--help`` and the README."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "success (with --exit-code: nothing would change)",
    ExitCode.ERROR: "the run failed: bad input, an unreachable or refusing cluster, a failed apply or health wait",
    ExitCode.USAGE: "the command line was wrong: unknown option, missing argument, bad value",
    ExitCode.CHANGES: "success, and changes are pending (only with --exit-code, and images update --dry-run)",
}
