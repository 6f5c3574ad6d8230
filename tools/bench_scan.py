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
    with Registry(state_dir=None) as registry:
        found = registry.scan(f"{host}/{name}" for name in repositories)
    failures = [str(v) for v in found.values() if isinstance(v, RegistryError)]
    listed = [v for v in found.values() if not isinstance(v, RegistryError)]
    winners = {t.repository.name: select(policy, t.tags).winner for t in listed}
    doc = {"repositories": len(found), "tags": sum(len(t.tags) for t in listed), "requests": dict(registry.requests),
           "winners": len([w for w in winners.values() if w]), "failures": failures[:3]}  # fmt: skip
    print(json.dumps(doc))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
