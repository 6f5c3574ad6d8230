"""gitops_job.git without a cluster: URLs as printed, credentials kept out of reprs, ancestry through a shallow clone
(deepened from its origin), a password in a URL refused before git runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitops_job import git as g
from gitops_job.errors import SourceError
from tests.helpers import git, git_repo, write


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://x-access-token:s3cret@github.com/o/r.git", "https://x-access-token@github.com/o/r.git"),
        ("https://github.com/o/r.git?token=s3cret#frag", "https://github.com/o/r.git"),
        ("ssh://git@example.com:2222/o/r.git", "ssh://git@example.com:2222/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
        ("file:///srv/git/r.git", "file:///srv/git/r.git"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert g.redact(url) == shown


def test_auth_never_shows_its_token() -> None:
    auth = g.Auth(token="s3cret-token")
    assert "s3cret" not in repr(auth) and "s3cret" not in str(auth)
    assert auth.scrub("fatal: s3cret-token rejected") == "fatal: *** rejected"


def test_is_sha() -> None:
    assert g.is_sha("a" * 40) and g.is_sha("b" * 64)
    assert not g.is_sha("unversioned") and not g.is_sha("a" * 40 + "-dirty") and not g.is_sha(None)


def test_a_password_in_the_url_is_refused_before_git_runs() -> None:
    with pytest.raises(SourceError) as e:
        g.remote_head("https://x:s3cret@127.0.0.1:9/r.git", None)
    assert "s3cret" not in str(e.value) and "--token-file" in str(e.value) and "source:" in str(e.value)


def test_remote_head_names_the_default_branch_and_a_missing_one(tmp_path: Path) -> None:
    write(tmp_path / "w", {"f": "1"})
    sha = git_repo(tmp_path / "w")
    assert g.remote_head(str(tmp_path / "w"), None) == ("main", sha)
    with pytest.raises(SourceError, match="no branch nope: nothing was fetched"):
        g.remote_head(str(tmp_path / "w"), "nope")


def test_ancestry_through_a_shallow_clone_deepens_it(tmp_path: Path) -> None:
    work = tmp_path / "w"
    write(work, {"f": "1"})
    first = git_repo(work)
    write(work, {"f": "2"})
    second = git_repo(work)
    clone = tmp_path / "c"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{work}", str(clone)], check=True)
    assert not g.has_commit(clone, first)
    assert g.is_ancestor(clone, first, second)  # fetched enough history to prove it
    assert not g.is_ancestor(clone, second, first)
    git(work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--amend", "-m", "rewritten")
    rewritten = git(work, "rev-parse", "HEAD").strip()
    assert not g.is_ancestor(clone, rewritten, second)  # fetched by id, yet not an ancestor
    assert not g.is_ancestor(clone, "c" * 40, second)  # unknown anywhere: not an ancestor
