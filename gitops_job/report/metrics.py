"""What a run pushes to a Prometheus Pushgateway (docs/metrics.md): the metric families of one run of one target, as
plain data. Pure: :mod:`gitops_job.notify.metrics` turns them into a ``prometheus_client`` registry and pushes it.

A run that succeeded carries every family; one that failed (or raised before it had a result) carries only what
describes the run itself — duration, objects, drift — and leaves ``gitops_job_last_success_timestamp_seconds`` and
``gitops_job_last_applied_info`` out, so the push (a POST then, see the pusher) keeps those of the last success. A
run that only reported drift carries its duration, drift and (when it succeeded) its success time.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops_job.outcomes import Action, Verdict, Written
from gitops_job.reconcile.results import ApplyResult, Plan

#: The ``job`` grouping label of every push; the other one is ``target``.
JOB = "gitops-job"

DURATION = "gitops_job_reconcile_duration_seconds"
LAST_SUCCESS = "gitops_job_last_success_timestamp_seconds"
OBJECTS = "gitops_job_objects"
DRIFT = "gitops_job_drift_objects"
LAST_APPLIED = "gitops_job_last_applied_info"

HELP = {
    DURATION: "How long the last run of this target took, from start to result.",
    LAST_SUCCESS: "When a run of this target last succeeded (Unix time); pushed on success only.",
    OBJECTS: "Objects of the last run by what it did to them.",
    DRIFT: "Objects that had drifted from git when the last run planned (0 when drift was not checked).",
    LAST_APPLIED: "The revision last applied in full to this target (value 1).",
}

#: ``gitops_job_objects{result}``: each is always pushed (0 included), so a series never goes stale.
OBJECT_RESULTS = ("created", "updated", "unchanged", "pruned")

#: What each count of a run (:func:`~gitops_job.reconcile.results.counts_of`) adds to: a recreate and an adoption
#: are updates of an object that existed; a retained, gone or not-ours prune candidate was not pruned, a failed write
#: not done, so neither is counted.
_RESULT_OF = {
    Written.CREATED.value: "created",
    Written.UPDATED.value: "updated",
    Written.RECREATED.value: "updated",
    Written.ADOPTED.value: "updated",
    Action.UNCHANGED.value: "unchanged",
    Verdict.PRUNED.value: "pruned",
}


@dataclass(frozen=True)
class Sample:
    """One series: a gauge ``name{labels} value``."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RunMetrics:
    """What one run of ``target`` pushes."""

    target: str
    succeeded: bool
    samples: tuple[Sample, ...]
    #: PUT: the group becomes exactly these families (an apply that succeeded); else POST: only the families pushed
    #: are replaced, the others kept from the last apply.
    replace: bool = False


def objects(result: ApplyResult | None) -> dict[str, int]:
    """``{"created": 2, "updated": 0, "unchanged": 40, "pruned": 1}``: every stack's counts summed."""
    totals = dict.fromkeys(OBJECT_RESULTS, 0)
    for stack in result.stacks if result is not None else ():
        for key, n in stack.counts.items():
            if key in _RESULT_OF:
                totals[_RESULT_OF[key]] += n
    return totals


def run_metrics(target: str, result: ApplyResult | None, duration: float, finished: float) -> RunMetrics:
    """The families of one run of ``target``: ``result`` is what it returned (``None``: it raised before it had one),
    ``duration`` how long it took in seconds, ``finished`` when it ended (Unix time)."""
    ok = result is not None and result.ok
    plan = result.plan if result is not None else None
    samples = [
        Sample(DURATION, duration),
        *(Sample(OBJECTS, n, (("result", key),)) for key, n in objects(result).items()),
        Sample(DRIFT, plan.drift_count if plan is not None else 0),
    ]
    if ok:
        assert result is not None
        samples += [Sample(LAST_SUCCESS, finished), Sample(LAST_APPLIED, 1, (("revision", result.revision),))]
    return RunMetrics(target, ok, tuple(samples), replace=ok)


def report_metrics(target: str, plan: Plan | None, duration: float, finished: float) -> RunMetrics:
    """The families of a run that only reported (``reconcile --drift report``): ``plan`` is its plan (``None``: it
    raised). It applied nothing, so the objects and the last applied revision stay those of the last apply; a run
    whose plan succeeded is a success of the job (the CronJob did its work)."""
    ok = plan is not None and not plan.failures
    samples = [Sample(DURATION, duration), Sample(DRIFT, plan.drift_count if plan is not None else 0)]
    if ok:
        samples.append(Sample(LAST_SUCCESS, finished))
    return RunMetrics(target, ok, tuple(samples))
