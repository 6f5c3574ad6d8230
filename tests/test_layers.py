"""The layers contract (pyproject.toml, ``[tool.importlinter]``) holds today and catches a back edge."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LINT = str(Path(sys.executable).parent / "lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120, check=False)


def test_the_package_keeps_its_layers() -> None:
    result = lint(ROOT)

    assert result.returncode == 0, result.stdout
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "back_edge", "broken"),
    [
        pytest.param("reconcile/wait.py", "from gitops_job.cli import main", "layers", id="reconcile-imports-cli"),
        pytest.param("kube.py", "from gitops_job.reconcile import plan", "layers", id="io-owner-imports-reconcile"),
        pytest.param("identity.py", "from gitops_job import kube", "layers", id="kernel-imports-kube"),
        pytest.param("registry.py", "from gitops_job import kube", "layers", id="registry-imports-kube"),
        pytest.param("registry.py", "from gitops_job.config import load", "layers", id="registry-imports-config"),
        pytest.param(
            "report/text.py", "from gitops_job.reconcile import run", "report sees only", id="report-sees-run"
        ),
        pytest.param(
            "notify/events.py", "from gitops_job.reconcile import run", "notify sees only", id="notify-sees-run"
        ),
        pytest.param("github/client.py", "from gitops_job.notify import events", "layers", id="github-imports-notify"),
        pytest.param(
            "render/jinja.py", "from gitops_job.render import stack", "no import circle", id="renderer-imports-stack"
        ),
        pytest.param("images/policy.py", "from gitops_job.render import stack", "layers", id="images-imports-render"),
    ],
)
def test_a_back_edge_breaks_the_contract(tmp_path: Path, module: str, back_edge: str, broken: str) -> None:
    shutil.copytree(ROOT / "gitops_job", tmp_path / "gitops_job")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / "gitops_job" / module
    path.write_text(path.read_text() + f"\n{back_edge}  # noqa\n")

    result = lint(tmp_path)

    assert result.returncode != 0, result.stdout
    broken_section = result.stdout.split("Broken contracts", 1)[1]
    assert broken in broken_section and back_edge.split()[1] in broken_section
