"""Debian's prometheus-pushgateway on a loopback port for the metrics tests (the ``pushgateway`` fixture, registered
in conftest.py), and how to read what it holds."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving import child, free_port

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"  # Debian's prometheus-pushgateway (tools/system-tools)


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    """A Pushgateway of the test's own on a loopback port (no persistence); its URL. Stopped afterwards."""
    binary = shutil.which("prometheus-pushgateway") or PUSHGATEWAY
    if not Path(binary).exists():
        pytest.fail("prometheus-pushgateway is not installed: run tools/system-tools (apt-get install it)")
    port = free_port()
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    with child(argv, port, tmp_path / "pushgateway.log", "the pushgateway"):
        yield f"http://127.0.0.1:{port}"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The gateway's /metrics as ``{(name, sorted labels): value}``, only our families and ``push_*``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(("gitops_job_", "push_time_seconds", "push_failure_time_seconds")):
                found[s.name, tuple(sorted(s.labels.items()))] = s.value
    return found


def group(target: str, **more: str) -> tuple[tuple[str, str], ...]:
    """The labels a series of ``target``'s group carries: the grouping key, ``instance=""`` and ``more``."""
    return tuple(sorted({"instance": "", "job": "gitops-job", "target": target, **more}.items()))
