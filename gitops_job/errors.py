"""The one exception root. Every error the pipeline raises on purpose derives from :class:`GitopsJobError` and carries
the exit code the CLI turns it into; messages lead with the object or file:line, then the reason, then what to do."""

from __future__ import annotations

from .exitcodes import ExitCode


class GitopsJobError(Exception):
    """Base of every deliberate gitops-job error."""

    exit_code: ExitCode = ExitCode.ERROR
