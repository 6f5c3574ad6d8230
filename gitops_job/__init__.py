"""gitops-job: GitOps for Kubernetes without a resident operator.

A single-shot reconciler: render the stacks declared in git, diff them against the live cluster by server-side apply,
and apply, prune and wait — as a pull-request check, on merge, or from a CronJob.
"""

__version__ = "0.1.0"
