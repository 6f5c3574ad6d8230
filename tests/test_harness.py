"""The test harness itself: every test that needs the cluster is marked ``cluster``, so ``pytest -m "not cluster"``
never starts one (tests/conftest.py ``pytest_collection_modifyitems``). Pure: no cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import CLUSTER_FIXTURES, NO_CLUSTER

ROOT = Path(__file__).resolve().parent.parent
_TEST = re.compile(r"^\s*(tests/\S+::\S+)(?: \(fixtures used|$)", re.MULTILINE)
# A fixture set up (a parametrized argument shows as ``name[value]``: no fixture of ours).
_SETUP = re.compile(r"^\s*SETUP\s+[SPMCF] (\w+)(?: \(fixtures used|$)", re.MULTILINE)


def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess, with the cluster fixture made to fail if anything reached it."""
    env = {**os.environ, NO_CLUSTER: "1"}
    env.pop("GITOPS_JOB_TEST_KUBECONFIG", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)


def setup_plan(*args: str) -> tuple[list[str], set[str]]:
    """The tests pytest would run and the fixtures it would set up (``--setup-plan``: nothing is set up or run)."""
    result = pytest_run("--setup-plan", "-q", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return _TEST.findall(result.stdout), set(_SETUP.findall(result.stdout))


def test_not_cluster_sets_up_no_cluster_fixture() -> None:
    tests, fixtures = setup_plan("-m", "not cluster")
    assert len(tests) > 100, "the pure suite is the bulk of the tests"
    assert "tmp_path" in fixtures  # the plan does list what would be set up
    assert fixtures & CLUSTER_FIXTURES == set()
    # Parametrized over an argument named like a cluster fixture, but needing no cluster: still in the pure suite.
    assert any(t.startswith("tests/test_ownership.py::test_item05_reserved_names[") for t in tests)


def test_the_cluster_selection_sets_up_the_cluster() -> None:
    """The check above can fail: the same plan for cluster tests names the fixtures."""
    _, fixtures = setup_plan("-m", "cluster", "tests/test_messages.py")
    assert {"kubeconfig", "api_client", "namespace"} <= fixtures


def test_a_test_using_a_cluster_fixture_is_marked_without_a_decorator() -> None:
    # test_cli.py has no cluster marker of its own; this test takes ``kubeconfig`` directly, test_status's
    # state tests reach it through their own ``kube`` fixture (-> dyn -> api_client -> kubeconfig).
    selected = pytest_run("--collect-only", "-q", "-m", "cluster", "tests/test_cli.py", "tests/test_status.py")
    assert selected.returncode == 0, selected.stdout + selected.stderr
    assert "tests/test_cli.py::test_plan_examples_json_and_exit_codes" in selected.stdout
    assert "tests/test_cli.py::test_version[--version]" not in selected.stdout
    pure = pytest_run("--collect-only", "-q", "-m", "not cluster", "tests/test_cli.py")
    assert "tests/test_cli.py::test_version[--version]" in pure.stdout
    assert "test_plan_examples_json_and_exit_codes" not in pure.stdout


def test_the_cluster_fixture_refuses_to_start_when_told_not_to(tmp_path: Path) -> None:
    """With GITOPS_JOB_TEST_NO_CLUSTER set, a cluster test fails at its fixture instead of starting a cluster."""
    result = pytest_run("-q", "tests/test_cli.py::test_plan_examples_json_and_exit_codes", "--basetemp", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{NO_CLUSTER} is set, but this test reached the cluster fixture" in result.stdout
    assert "1 error" in result.stdout
