"""The one exception root and its shallow tree. Every deliberate error carries its phase and exit code; its message
leads with where (``Kind/namespace/name`` or ``file:line``), then the reason, then what to do."""

from __future__ import annotations

from collections.abc import Callable

from gitops_job.exitcodes import ExitCode


class GitopsJobError(Exception):
    """Base of every deliberate gitops-job error: ``<phase>: <where>: <reason>``."""

    exit_code: ExitCode = ExitCode.ERROR
    phase: str = "run"

    def __init__(self, reason: str, *, where: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where

    def __str__(self) -> str:
        return f"{self.phase}: {self.where}: {self.reason}" if self.where else f"{self.phase}: {self.reason}"

    def scrubbed(self, scrub: Callable[[str], str]) -> GitopsJobError:
        """This error, its reason and where passed through ``scrub`` (in place: same class, phase and exit code).
        The pipeline scrubs every error with its run's masker before it leaves, so no message carries a secret."""
        self.reason = scrub(self.reason)
        self.where = scrub(self.where) if self.where else self.where
        self.args = (self.reason,)
        return self


class ConfigError(GitopsJobError):
    """The repo config (gitops.yaml) is invalid; ``where`` is the file and key path."""

    phase = "config"


class RenderError(GitopsJobError):
    """A stack failed to render; ``where`` is ``file:line`` or the stack."""

    phase = "render"


class ValidationError(GitopsJobError):
    """Rendered objects failed a check that runs before any request that could write."""

    phase = "validate"


class PlanError(GitopsJobError):
    """Computing the diff against the cluster failed for one or more objects."""

    phase = "plan"


class ClusterUnreachableError(GitopsJobError):
    """The Kubernetes API server could not be reached or refused our credentials."""

    phase = "cluster"


class ErrorGroup(GitopsJobError):
    """Several errors of one phase, reported together (the run reports everything it could, then fails)."""

    def __init__(self, errors: list[GitopsJobError]) -> None:
        self.errors = errors
        self.phase = errors[0].phase if errors else "run"
        super().__init__("\n".join(str(e) for e in errors))

    def __str__(self) -> str:
        return f"{len(self.errors)} error(s):\n" + "\n".join(f"  {e}" for e in self.errors)

    def scrubbed(self, scrub: Callable[[str], str]) -> GitopsJobError:
        self.errors = [e.scrubbed(scrub) for e in self.errors]
        return super().scrubbed(scrub)


class LeaseError(GitopsJobError):
    """Another applier holds the stack's lock (a Lease), or this run lost it."""

    phase = "lock"


class InventoryError(GitopsJobError):
    """A stack's stored inventory (its ConfigMap) cannot be read: changed by hand or by an incompatible version."""

    phase = "inventory"


class ApplyError(GitopsJobError):
    """Writing objects to the cluster failed; prune is skipped."""

    phase = "apply"


class PruneError(GitopsJobError):
    """Deleting objects that left git failed or was refused by a guard."""

    phase = "prune"


class WaitError(GitopsJobError):
    """Applied objects did not become healthy within the stack's timeout."""

    phase = "wait"


class Interrupted(GitopsJobError):
    """Ctrl-C (SIGINT) stopped the run; the message says how far it got and that a re-run converges."""

    phase = "interrupted"


class ReviewError(GitopsJobError):
    """The plan to apply is not the one reviewed on the merged pull request (``--require-reviewed-plan``)."""

    phase = "review"


class BranchError(GitopsJobError):
    """``apply --github`` on a push to a branch other than the default one, without ``--allow-branch``."""

    phase = "branch"


class SourceError(GitopsJobError):
    """git could not reach, authenticate to or read the repository (``where`` is its URL, credentials stripped)."""

    phase = "source"


class PushRejectedError(SourceError):
    """The remote refused a push because its branch moved on (not a fast-forward): fetch, rebuild, push again."""


class HistoryError(GitopsJobError):
    """The commit to apply is not a descendant of the one a stack last applied (force-push, rewritten history, an
    older commit): refused before any write unless ``--allow-non-descendant``."""

    phase = "history"


class ImageError(GitopsJobError):
    """An image policy, tag filter or setter marker is invalid (``where`` is ``file:line`` or the policy's name)."""

    phase = "images"
