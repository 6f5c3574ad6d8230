"""gitops_job.git without a cluster: URLs as printed, credentials kept out of reprs, ancestry through a shallow clone
(deepened from its origin), a password in a URL refused before git runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitops_job import git as g
from gitops_job.errors import PushRejectedError, SourceError
from tests.gitservers import bare_repo, http_git_server, push, ssh_git_server
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


# -- writes: commit and push --------------------------------------------------------------------------------------
BOT = g.Author("gitops-job bot", "bot@example.com")
TOKEN = "push-token-7f3a1c"


def test_commit_takes_exactly_the_changed_files_as_the_author(tmp_path: Path) -> None:
    work = tmp_path / "w"
    write(work, {"app.yaml": "image: a:1\n", "other.yaml": "x: 1\n"})
    base = git_repo(work)
    write(work, {"other.yaml": "x: 2 (the user's edit, not ours)\n"})
    sha = g.commit(work, {"app.yaml": b"image: a:2\n", "new/file.yaml": b"n: 1\n"}, "bump a\n\n1 -> 2\n", BOT)
    assert sha is not None and sha != base and git(work, "rev-parse", "HEAD").strip() == sha
    assert git(work, "show", "--name-only", "--format=", sha).split() == ["app.yaml", "new/file.yaml"]
    assert git(work, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", sha).strip() == (
        "gitops-job bot <bot@example.com>|gitops-job bot <bot@example.com>|bump a\n\n1 -> 2"
    )
    assert git(work, "status", "--porcelain").strip() == "M other.yaml"  # left as it was, uncommitted
    assert git(work, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"  # the branch moved
    assert g.commit(work, {"app.yaml": b"image: a:2\n"}, "no change", BOT) is None
    assert g.commit(work, {}, "nothing", BOT) is None
    assert git(work, "rev-parse", "HEAD").strip() == sha  # no empty commit
    for bad in ("../outside", "/etc/passwd", "."):
        with pytest.raises(ValueError, match="not a file path inside the repository"):
            g.commit(work, {bad: b"x"}, "escape", BOT)
    assert not (tmp_path / "outside").exists()


def _served(tmp_path: Path) -> tuple[Path, Path, str]:
    """A bare repository (with one commit on main) and a second working clone of it, the commit's sha."""
    repos = tmp_path / "srv"
    repos.mkdir()
    bare = bare_repo(repos)
    work = tmp_path / "w"
    write(work, {"app.yaml": 'image: a:1 # {"$imagepolicy": "apps:a"}\r\n'})
    sha = git_repo(work)
    push(work, bare)
    return bare, work, sha


def test_push_from_the_state_dir_clone_and_a_rejected_push_over_https(tmp_path: Path) -> None:
    bare, work, base = _served(tmp_path)
    state = tmp_path / "state"
    auth = g.Auth(token=TOKEN)
    with http_git_server(bare.parent, token=TOKEN) as server:
        url = server.url()
        clone, head = g.checkout(url, "main", base, state_dir=state, workdir=tmp_path, auth=auth)
        new = (clone / "app.yaml").read_bytes().replace(b"a:1", b"a:2")
        sha = g.commit(clone, {"app.yaml": new}, "bump", BOT)
        assert sha is not None and head == base
        g.push(clone, url, "main", auth)
        assert git(bare, "rev-parse", "main").strip() == sha and g.branch_head(url, "main", auth) == sha
        shown = subprocess.run(["git", "-C", str(bare), "show", "main:app.yaml"], capture_output=True, check=True)
        assert shown.stdout == new  # CRLF and all, byte for byte
        assert g.checkout(url, "main", sha, state_dir=state, workdir=tmp_path, auth=auth) == (clone, sha)

        write(work, {"other.yaml": "moved on\n"})  # someone else pushes meanwhile
        git(work, "pull", "-q", "--rebase", str(bare), "main")
        theirs = git_repo(work)
        push(work, bare)
        mine = g.commit(clone, {"app.yaml": new.replace(b"a:2", b"a:3")}, "bump again", BOT)
        with pytest.raises(PushRejectedError) as rejected:
            g.push(clone, url, "main", auth)
        assert "not a fast-forward" in str(rejected.value) and rejected.value.where == url
        assert git(bare, "rev-parse", "main").strip() == theirs  # nothing was overwritten
        assert g.fetch(clone, url, "main", auth) == theirs
        assert g.branch_head(url, "gitops-job/bot", auth) is None
        g.push(clone, url, "gitops-job/bot", auth, rev=str(mine))  # a new branch
        with pytest.raises(PushRejectedError):  # main's head does not descend from the bot branch's
            g.push(clone, url, "gitops-job/bot", auth, rev=theirs)
        g.push(clone, url, "gitops-job/bot", auth, rev=theirs, force=True)  # force: replaced
        assert g.branch_head(url, "gitops-job/bot", auth) == theirs

        with pytest.raises(SourceError) as denied:
            g.push(clone, url, "main", g.Auth(token="wrong-" + TOKEN))
        assert not isinstance(denied.value, PushRejectedError)
        assert "Check the token" in str(denied.value) and TOKEN not in str(denied.value)
    with pytest.raises(SourceError) as down:  # the server is gone
        g.push(clone, url, "main", auth)
    assert not isinstance(down.value, PushRejectedError) and "reachable" in str(down.value)


def test_push_over_ssh_with_the_deploy_key(tmp_path: Path) -> None:
    bare, _work, base = _served(tmp_path)
    with ssh_git_server(tmp_path / "sshd") as server:
        auth = g.Auth(ssh_key=server.deploy_key, known_hosts=server.known_hosts)
        url = server.url(bare)
        clone, _ = g.checkout(url, "main", base, state_dir=tmp_path / "state", workdir=tmp_path, auth=auth)
        sha = g.commit(clone, {"app.yaml": b"image: a:2\n"}, "bump", BOT)
        g.push(clone, url, "main", auth)
        assert git(bare, "rev-parse", "main").strip() == sha
