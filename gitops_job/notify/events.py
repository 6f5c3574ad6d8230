"""What a run tells its receivers: results in, events out, in the shape of Flux's notification-controller events.

Pure: no I/O, no clock unless given one. One event per stack that did something (a stack already in sync at the
revision wrote nothing and announces nothing, like its inventory, which gets no Event then), and one per stack whose
plan found drift. The reasons are stable and documented (docs/config.md#notifications); ``ApplySucceeded`` and
``ApplyFailed`` are also the reasons of the Kubernetes Event on the stack's inventory ConfigMap, which is the
``involvedObject`` here. Every text comes from the results, masked where it was made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gitops_job.outcomes import RunResult, counts_text
from gitops_job.reconcile.results import ApplyResult, DriftFinding, Plan, StackRun, findings_text

APPLY_SUCCEEDED = "ApplySucceeded"
APPLY_FAILED = "ApplyFailed"
DRIFT_DETECTED = "DriftDetected"
REPORTING_CONTROLLER = "gitops-job"


@dataclass(frozen=True)
class Event:
    target: str
    stack: str
    namespace: str  # the inventory's
    reason: str  # APPLY_SUCCEEDED, APPLY_FAILED or DRIFT_DETECTED
    severity: str  # info | error
    message: str
    revision: str
    timestamp: str  # RFC 3339, UTC, whole seconds
    metadata: Mapping[str, str] = field(default_factory=dict)  # besides revision, target and stack

    @property
    def inventory(self) -> str:
        """The stack's inventory ConfigMap (``reconcile.inventory`` names it so)."""
        return f"gitops-job.{self.target}.{self.stack}"

    def flux(self) -> dict[str, Any]:
        """The event as Flux's notification-controller posts it to a generic webhook."""
        return {
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "namespace": self.namespace,
                "name": self.inventory,
            },
            "severity": self.severity,
            "timestamp": self.timestamp,
            "message": self.message,
            "reason": self.reason,
            "metadata": {"revision": self.revision, "target": self.target, "stack": self.stack, **self.metadata},
            "reportingController": REPORTING_CONTROLLER,
        }


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def events_of(result: ApplyResult, namespace: str, clock: Callable[[], str] = now) -> list[Event]:
    """The events of a run: per stack in apply order, its drift (when its plan looked) and then how its apply went.

    Drift of a stack the run did not apply (a plan-only run that reports drift passes a result with no stacks and
    its plan) is announced as not corrected."""
    at = clock()
    found: list[Event] = []
    applied = {run.stack for run in result.stacks}
    if result.plan is not None and result.plan.drift_checked:
        found.extend(e for e in drift_events(result.plan, namespace, result.revision, at) if e.stack not in applied)
    for run in result.stacks:
        plan = run.plan if run.plan is not None and run.plan.drift_checked else result.plan
        if plan is not None and plan.drift_checked:
            corrected = run.result is RunResult.SUCCEEDED
            found.extend(drift_events(plan, namespace, result.revision, at, only=run.stack, corrected=corrected))
        event = _apply_event(result, run, namespace, at)
        if event is not None:
            found.append(event)
    return found


def _apply_event(result: ApplyResult, run: StackRun, namespace: str, at: str) -> Event | None:
    if run.in_sync or run.held:  # a suspended or off-git stack was left alone: nothing happened to announce
        return None
    summary = counts_text(run.counts) or "nothing to do"
    if run.result is RunResult.SUCCEEDED:
        reason, severity, message = APPLY_SUCCEEDED, "info", f"revision {result.revision}: {summary}"
    elif run.result is RunResult.SKIPPED:
        reason, severity = APPLY_FAILED, "error"
        message = f"revision {result.revision}: not applied: " + (run.error or "a stack it depends on did not succeed")
    else:
        reason, severity = APPLY_FAILED, "error"
        message = f"revision {result.revision}: {summary}" + (f"\n{run.error}" if run.error else "")
    meta = {"result": run.result.value}
    return Event(result.target, run.stack, namespace, reason, severity, message, result.revision, at, meta)


def drift_events(
    plan: Plan, namespace: str, revision: str, at: str, *, only: str | None = None, corrected: bool = False
) -> list[Event]:
    """One ``DriftDetected`` event per stack of ``plan`` (or just stack ``only``) with a drifted object: ``info`` when
    the apply that follows corrected it, else ``error``."""
    stack_of = {e.id: e.stack for e in plan.entries}
    per_stack: dict[str, list[DriftFinding]] = {}
    for finding in plan.drift:
        stack = stack_of.get(finding.id, "")
        if only is None or stack == only:
            per_stack.setdefault(stack, []).append(finding)
    events = []
    for stack, findings in per_stack.items():
        objects = len(dict.fromkeys(f.id for f in findings))
        lines = [f"  {line}" for line in findings_text(findings)]
        then = "corrected by this apply" if corrected else "not corrected"
        message = f"revision {revision}: {objects} object(s) drifted from git ({then}):\n" + "\n".join(lines)
        severity = "info" if corrected else "error"
        meta = {"driftObjects": str(objects), "corrected": str(corrected).lower()}
        events.append(Event(plan.target, stack, namespace, DRIFT_DETECTED, severity, message, revision, at, meta))
    return events


def summary(target: str, revision: str, events: Sequence[Event]) -> str:
    """One line for a chat message or a commit status: ``gitops-job production @ 1a2b3c4d5e6f: 2 applied, 1 failed``."""
    counts = {
        "applied": sum(1 for e in events if e.reason == APPLY_SUCCEEDED),
        "failed": sum(1 for e in events if e.reason == APPLY_FAILED),
        "drifted": sum(1 for e in events if e.reason == DRIFT_DETECTED),
    }
    said = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "nothing to report"
    return f"gitops-job {target} @ {revision[:12]}: {said}"


def slack_payload(target: str, revision: str, events: Sequence[Event]) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook message: ``text`` (the fallback and notification line) and ``blocks``
    (one section per event, within Slack's 50 blocks and 3,000 characters a section)."""
    head = summary(target, revision, events)
    blocks: list[dict[str, Any]] = [_section(f"*{_escape(head)}*")]
    shown = events[:48]
    for e in shown:
        icon = ":white_check_mark:" if e.severity == "info" else ":x:"
        if e.reason == DRIFT_DETECTED:
            icon = ":warning:" if e.severity == "error" else ":wrench:"
        message = _escape(e.message)
        message = message if len(message) <= 2800 else message[:2799] + "…"
        blocks.append(_section(f"{icon} *{_escape(e.stack)}* {e.reason}\n```{message}```"))
    if len(events) > len(shown):
        blocks.append(_section(f"… and {len(events) - len(shown)} more event(s)"))
    return {"text": head, "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    if len(text) > 3000:
        text = text[:2999] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _escape(text: str) -> str:
    """Slack's three control characters in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def commit_state(events: Sequence[Event]) -> str:
    """The commit status of the events: ``failure`` when any says an error, else ``success``."""
    return "failure" if any(e.severity == "error" for e in events) else "success"
