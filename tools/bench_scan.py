"""The images bench's timed process (``python -m tools.bench --only images``): what a scheduled run does with the
library, with no cache — list every repository's tags on one registry in parallel and choose by semver with
``images.policy.select``. Prints one JSON line: repositories, tags seen, winners, failures.

Usage: python tools/bench_scan.py HOST REPOSITORY... (repositories named without the host)
"""

from __future__ import annotations

import json
import sys

from gitops_job.images.policy import parse_policy, select
from gitops_job.registry import Registry, RegistryError


def main(host: str, repositories: list[str]) -> int:
    policy = parse_policy({"policy": {"semver": {"range": ">=1.0.0"}}}, "bench")
    failures, tags, winners = [], 0, 0
    with Registry(state_dir=None) as registry:
        for _, found in registry.scan_each(f"{host}/{name}" for name in repositories):  # chosen while the rest arrive
            if isinstance(found, RegistryError):
                failures.append(str(found))
                continue
            tags += len(found.tags)
            winners += select(policy, found.tags).winner is not None
    doc = {"repositories": len(repositories), "tags": tags, "requests": dict(registry.requests), "winners": winners,
           "failures": failures[:3]}  # fmt: skip
    print(json.dumps(doc))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
