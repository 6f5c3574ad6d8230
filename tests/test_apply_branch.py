"""``apply --github`` on a push to a branch other than the default one is refused unless ``--allow-branch`` (issue 12,
item 8). No cluster: the refusal comes before anything is read, and the allowed run fails later, elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.githubstub import webhook_example


def _push_to(tmp_path: Path, branch: str) -> dict[str, str]:
    payload = webhook_example("push")
    payload["ref"] = f"refs/heads/{branch}"
    payload["repository"]["default_branch"] = "main"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "KUBECONFIG"))}
    return {
        **env,
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": payload["repository"]["full_name"],
        "GITHUB_SHA": "f" * 40,
        "GITHUB_REF": payload["ref"],
        "GITHUB_API_URL": "http://127.0.0.1:9",  # nothing listens: GitHub is never reached in these tests
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),
    }


def _apply(tmp_path: Path, branch: str, *flags: str) -> subprocess.CompletedProcess[str]:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "gitops_job", "apply", "--repo", str(repo), "--github", "--no-comment", *flags],
        env=_push_to(tmp_path, branch),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_item12_8_apply_on_a_push_to_another_branch_is_refused(tmp_path: Path) -> None:
    result = _apply(tmp_path, "feature/x")
    assert result.returncode == 1, result.stderr
    assert "error: branch: this push is to feature/x, not the default branch main: nothing was applied" in result.stderr
    assert "--allow-branch" in result.stderr
    assert not (tmp_path / "summary.md").exists()  # refused before anything else happened


@pytest.mark.parametrize(("branch", "flags"), [("main", ()), ("feature/x", ("--allow-branch",))])
def test_item12_8_the_default_branch_or_allow_branch_goes_on(tmp_path: Path, branch: str, flags: tuple[str]) -> None:
    result = _apply(tmp_path, branch, *flags)
    # It goes on, and fails later for what this test left out (no repo config): never at the branch check.
    assert "error: branch:" not in result.stderr
    assert "gitops.yaml" in result.stderr, result.stderr
