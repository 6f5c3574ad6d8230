"""Our own rules for GitHub Actions files (row P1 of the reliability tests), as pure functions over parsed YAML.

Workflows: every job declares its own ``permissions:``, every ``uses:`` is pinned by a full 40-hex commit SHA (local
``./`` actions and ``docker://…@sha256:`` images are fine), and nothing triggers on ``pull_request_target``.

The composite ``action.yml``, which actionlint does not check: the same pinning, inputs and outputs described, every
``run:`` step names its shell, and no ``${{ }}`` expression inside a ``run:`` script (inputs reach scripts through
``env:``; an interpolated value is template injection).

``python -m tools.workflow_policy FILE…`` prints the problems and exits 1 when there are any.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

_SHA = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
_DOCKER_DIGEST = re.compile(r"^docker://[^@\s]+@sha256:[0-9a-f]{64}$")


def uses_problem(uses: str) -> str | None:
    """Why a ``uses:`` reference is not acceptable, or None when it is pinned (or local)."""
    if uses.startswith("./"):
        return None
    if uses.startswith("docker://"):
        return None if _DOCKER_DIGEST.match(uses) else f"`{uses}` is not pinned by a sha256 digest"
    if _SHA.match(uses):
        return None
    return f"`{uses}` is not pinned by a full 40-hex commit SHA"


def _triggers(doc: dict[Any, Any]) -> set[str]:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    on = doc.get("on", doc.get(True))
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {str(t) for t in on}
    if isinstance(on, dict):
        return {str(t) for t in on}
    return set()


def workflow_problems(doc: Any) -> list[str]:
    """Every P1 violation in one parsed workflow, each naming where it is."""
    if not isinstance(doc, dict):
        return ["not a workflow: the document is not a mapping"]
    problems = []
    if "pull_request_target" in _triggers(doc):
        problems.append("on: pull_request_target runs untrusted pull-request code with the base repository's secrets")
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        return [*problems, "not a workflow: no jobs"]
    for name, job in jobs.items():
        if not isinstance(job, dict):
            problems.append(f"job {name}: not a mapping")
            continue
        if "permissions" not in job:
            problems.append(f"job {name}: no `permissions:` of its own (least privilege is declared per job)")
        if isinstance(job.get("uses"), str) and (why := uses_problem(job["uses"])):  # a reusable workflow
            problems.append(f"job {name}: {why}")
        for i, step in enumerate(job.get("steps") or []):
            if isinstance(step, dict) and isinstance(step.get("uses"), str) and (why := uses_problem(step["uses"])):
                problems.append(f"job {name}, step {step.get('name') or step.get('id') or i + 1}: {why}")
    return problems


def action_problems(doc: Any) -> list[str]:
    """Violations in a parsed composite ``action.yml`` (the minimal structure actionlint cannot check)."""
    if not isinstance(doc, dict):
        return ["not an action: the document is not a mapping"]
    problems = [f"no `{key}:`" for key in ("name", "description", "runs") if not doc.get(key)]
    for name, spec in (doc.get("inputs") or {}).items():
        if not isinstance(spec, dict) or not spec.get("description"):
            problems.append(f"input {name}: no description")
    for name, spec in (doc.get("outputs") or {}).items():
        if not isinstance(spec, dict) or not spec.get("description") or not spec.get("value"):
            problems.append(f"output {name}: a composite action's output needs a description and a value")
    runs = doc.get("runs") or {}
    if runs.get("using") != "composite":
        return [*problems, "runs.using is not `composite`"]
    steps = runs.get("steps")
    if not isinstance(steps, list) or not steps:
        return [*problems, "runs.steps is empty"]
    for i, step in enumerate(steps):
        where = f"step {step.get('id') or step.get('name') or i + 1}" if isinstance(step, dict) else f"step {i + 1}"
        if not isinstance(step, dict) or ("run" in step) == ("uses" in step):
            problems.append(f"{where}: needs exactly one of `run:` and `uses:`")
            continue
        if "uses" in step and (why := uses_problem(str(step["uses"]))):
            problems.append(f"{where}: {why}")
        if "run" in step:
            if not step.get("shell"):
                problems.append(f"{where}: a composite `run:` step must name its `shell:`")
            if "${{" in str(step["run"]):
                problems.append(f"{where}: `${{{{ }}}}` inside `run:` (pass the value through `env:` instead)")
    return problems


def file_problems(path: Path) -> list[str]:
    """Problems of one file: an action when it is named action.yml/action.yaml, a workflow otherwise."""
    doc = yaml.safe_load(path.read_text())
    check = action_problems if path.name in ("action.yml", "action.yaml") else workflow_problems
    return [f"{path}: {p}" for p in check(doc)]


def main(argv: list[str] | None = None) -> int:
    problems = [p for f in (argv if argv is not None else sys.argv[1:]) for p in file_problems(Path(f))]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
