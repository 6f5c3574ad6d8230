"""The installed command line: version, help that teaches, documented exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitops_job import __version__
from gitops_job.exitcodes import ExitCode

SCRIPT = str(Path(sys.executable).parent / "gitops-job")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    result = run(flag)
    assert result.returncode == ExitCode.OK
    assert result.stdout.strip() == f"gitops-job, version {__version__}"


def test_module_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "gitops_job", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_explains_the_tool_and_every_exit_code() -> None:
    result = run("--help")
    assert result.returncode == ExitCode.OK
    assert "GitOps for Kubernetes without a resident operator" in result.stdout
    assert "CronJob" in result.stdout
    for code in ExitCode:
        assert f"{code.value}  {code.meaning}" in result.stdout


def test_unknown_option_is_a_usage_error() -> None:
    result = run("--no-such-flag")
    assert result.returncode == ExitCode.USAGE
    assert "No such option" in result.stderr


def test_exit_codes_are_the_documented_contract() -> None:
    assert [(c.name, c.value) for c in ExitCode] == [("OK", 0), ("ERROR", 1), ("USAGE", 2), ("CHANGES", 3)]
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | {code.meaning} |" in readme
