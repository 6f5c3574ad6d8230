"""The source stage's questions to git: which revision is being reconciled, which repository it belongs to, what
a remote's branch points at, a checkout of it, and whether one commit descends from another; and the writes of image
automation and the workload controls: a commit of exactly the files changed, and a push of it.

The only module that runs git, always the real ``git`` binary. Credentials never reach a command line or a printed
URL: an https token is handed to git through ``GIT_ASKPASS`` (a small script that prints an environment variable
of git's own process, so ``ps`` shows neither), an ssh deploy key and its pinned ``known_hosts`` through
``GIT_SSH_COMMAND`` (``StrictHostKeyChecking yes``); every URL in a message goes through :func:`redact`, and every
message of git's is scrubbed of the token before it is raised.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from gitops_job.errors import PushRejectedError, SourceError

# ``user@host:path`` (scp-like, as ssh remotes are written), not ``scheme://``
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?!//)(?P<path>.+)$")


def scp_like(url: str) -> tuple[str, str] | None:
    """The host (lowercase) and path of an scp-like ssh remote ``[user@]host:path`` (git's rule: no ``://``, no
    leading ``/`` or ``.``); None for any other URL or a local path."""
    scp = _SCP_LIKE.match(url)
    if "://" in url or scp is None or url.startswith(("/", ".")):
        return None
    return scp["host"].lower(), scp["path"]


def is_ssh(url: str) -> bool:
    """Does git reach ``url`` over ssh (``ssh://…``, ``git+ssh://…`` or scp-like ``user@host:path``)?"""
    if "://" in url:
        return urlsplit(url).scheme in ("ssh", "git+ssh", "ssh+git")
    return scp_like(url) is not None


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def revision(repo: Path) -> str:
    """The commit checked out in ``repo`` (``<sha>-dirty`` with uncommitted changes; ``unversioned`` outside git)."""
    head = _git(repo, "rev-parse", "HEAD")
    if head.returncode != 0:
        return "unversioned"
    sha = head.stdout.strip()
    dirty = _git(repo, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return f"{sha}-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else sha


def repository(repo: Path) -> str | None:
    """The repository ``repo`` is a checkout of: its ``origin`` remote (else its first remote) as
    :func:`canonical_remote` writes it; None without a remote (or outside git)."""
    url = _git(repo, "config", "--get", "remote.origin.url").stdout.strip()
    if not url:
        remotes = _git(repo, "remote").stdout.split()
        url = _git(repo, "remote", "get-url", remotes[0]).stdout.strip() if remotes else ""
    return canonical_remote(url) if url else None


def canonical_remote(url: str) -> str:
    """A remote URL as one name per repository, without credentials: ``host[:port]/path`` with no ``.git``.

    ``https://x-access-token:TOKEN@github.com/o/r.git``, ``git@github.com:o/r`` and ``ssh://git@github.com/o/r``
    are all ``github.com/o/r``; a local path stays a path. User, password, query and fragment are dropped.
    """
    url = url.strip()
    scp = scp_like(url)
    if "://" in url:
        parts = urlsplit(url)
        host = (parts.netloc.rpartition("@")[2]).lower()  # drop user:password@
        name = f"{host}{parts.path}" if host else parts.path
    elif scp is not None:
        name = f"{scp[0]}/{scp[1].lstrip('/')}"
    else:
        name = url
    name = name.rstrip("/")
    return name.removesuffix(".git") or name


# -- remotes -------------------------------------------------------------------------------------------------------
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_TOKEN_ENV = "GITOPS_JOB_GIT_ASKPASS_TOKEN"  # git's own environment only: never ours, never a command line
_USER_ENV = "GITOPS_JOB_GIT_ASKPASS_USER"
_ASKPASS = f"""#!/bin/sh
# gitops-job: answers git's credential prompts from git's environment (never from a command line).
case "$1" in
  Username*) printf '%s\\n' "${_USER_ENV}" ;;
  *) printf '%s\\n' "${_TOKEN_ENV}" ;;
esac
"""


def is_sha(text: str | None) -> bool:
    """Whether ``text`` is a full commit id (SHA-1 or SHA-256), as ``revision`` records a clean checkout."""
    return bool(text) and bool(_SHA.match(text or ""))


def redact(url: str) -> str:
    """``url`` as it may be printed: without a password (``https://user:TOKEN@host/…`` → ``https://user@host/…``),
    query or fragment. Paths and scp-like ssh remotes are unchanged."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0] if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{user}@{host}" if user else host, parts.path, "", ""))


@dataclass(frozen=True)
class Auth:
    """How git authenticates to a remote: an https ``token`` (the password of ``username``), or an ssh deploy key
    with a pinned ``known_hosts`` file. Empty: git's own configuration (a checkout's stored credentials, an agent)."""

    token: str | None = None
    username: str = "x-access-token"
    ssh_key: Path | None = None
    known_hosts: Path | None = None

    def __repr__(self) -> str:  # never the token, not even in a traceback's locals
        return f"Auth(token={'***' if self.token else None}, ssh_key={self.ssh_key}, known_hosts={self.known_hosts})"

    def scrub(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text


@contextmanager
def _environment(auth: Auth | None) -> Iterator[dict[str, str]]:
    """git's environment for ``auth``: never prompts on a terminal, ignores stored credential helpers when we
    bring our own, asks the askpass script (in a private temp dir, removed afterwards) for a token."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "LC_ALL": "C"}
    env.pop(_TOKEN_ENV, None)
    env.pop("GITOPS_JOB_GIT_TOKEN", None)  # our own variable: git and its children never need it by that name
    if auth is None:
        yield env
        return
    if auth.ssh_key is not None or auth.known_hosts is not None:
        ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if auth.known_hosts is not None:
            ssh += ["-o", f"UserKnownHostsFile={auth.known_hosts.resolve()}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if auth.ssh_key is not None:
            ssh += ["-i", str(auth.ssh_key.resolve()), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        env["GIT_SSH_VARIANT"] = "ssh"
    if auth.token is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="gitops-job-askpass-") as tmp:
        script = Path(tmp) / "askpass.sh"
        script.write_text(_ASKPASS)
        script.chmod(stat.S_IRWXU)
        env.update({"GIT_ASKPASS": str(script), _TOKEN_ENV: auth.token, _USER_ENV: auth.username})
        yield env


def _credential_args(auth: Auth | None) -> list[str]:
    """With a token of ours: no credential helper is asked or told (none stores our token)."""
    return ["-c", "credential.helper=", "-c", "core.askPass="] if auth is not None and auth.token else []


_TOKEN_FROM = "--token-file or GITOPS_JOB_GIT_TOKEN"


def _run(
    args: list[str],
    auth: Auth | None,
    *,
    url: str,
    what: str,
    cwd: Path | None = None,
    check: bool = True,
    token_from: str = _TOKEN_FROM,
) -> subprocess.CompletedProcess[str]:
    """``git args`` with ``auth``; with ``check``, a failure raises a :class:`SourceError` naming ``what`` (the
    phase's verb), the redacted ``url`` and git's own words, scrubbed of the token."""
    with _environment(auth) as env:
        command = ["git", *_credential_args(auth), *args]
        try:
            done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)
        except subprocess.TimeoutExpired:
            raise SourceError(f"git {what} timed out after 600 s", where=redact(url)) from None
    scrub = auth.scrub if auth else (lambda t: t)
    done = subprocess.CompletedProcess(done.args, done.returncode, scrub(done.stdout), scrub(done.stderr))
    if check and done.returncode != 0:
        hint = _hint(done.stderr, token_from)
        raise SourceError(f"git {what} failed: {_git_words(done.stderr)}{hint}", where=redact(url))
    return done


def _git_words(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "; ".join(lines[-3:]) or "(no message)"


def _hint(stderr: str, token_from: str = _TOKEN_FROM) -> str:
    low = stderr.lower()
    if "authentication failed" in low or "could not read username" in low or "could not read password" in low:
        return (f". Check the token ({token_from}): it must be valid and allowed to read this repository (and to"
                " write it, to push)")  # fmt: skip
    if "host key verification failed" in low or "no matching host key" in low:
        return (". The server's host key is not the one pinned in --known-hosts (or none is pinned for this host and"
                " port): add the server's key, as `ssh-keyscan -p PORT HOST` prints it, once checked")  # fmt: skip
    if "permission denied (publickey" in low:
        return ". The deploy key (--ssh-key-file) was refused: add its public half to the repository's deploy keys"
    if any(w in low for w in ("could not resolve host", "connection refused", "timed out", "failed to connect")):
        return ". Check the URL and that the git server is reachable from here"
    return ""


def _refuse_password(url: str) -> None:
    if "://" in url and ":" in urlsplit(url).netloc.rpartition("@")[0]:
        raise SourceError(
            "the URL carries a password: it would show in `ps` and in git's messages, so it is not used. Put the"
            " token in a file (--token-file) or GITOPS_JOB_GIT_TOKEN and drop it from the URL",
            where=redact(url),
        )


def remote_head(url: str, branch: str | None, auth: Auth | None = None) -> tuple[str, str]:
    """``(branch, sha)`` the remote's ``branch`` points at (default: the branch the remote's HEAD names), by one
    ``git ls-remote``: nothing is fetched."""
    _refuse_password(url)
    ref = f"refs/heads/{branch}" if branch else "HEAD"
    out = _run(["ls-remote", "--symref", "--", url, ref], auth, url=url, what="ls-remote").stdout
    sha, name = None, branch
    for line in out.splitlines():
        left, _, right = line.partition("\t")
        if left.startswith("ref: ") and right == "HEAD":
            name = left.removeprefix("ref: refs/heads/")
        elif right == ref:
            sha = left
    if sha is None or name is None:
        what = f"branch {branch}" if branch else "a default branch (HEAD)"
        raise SourceError(
            f"the remote has no {what}: nothing was fetched. Pass an existing branch with --branch",
            where=redact(url),
        )
    return name, sha


def checkout(
    url: str, branch: str, sha: str, *, state_dir: Path | None, workdir: Path, auth: Auth | None = None
) -> tuple[Path, str]:
    """A working tree of ``url`` at ``sha`` (the head of ``branch`` that :func:`remote_head` saw), and the commit
    it holds.

    With ``state_dir`` (a volume that outlives the run): one full clone per repository under it, fetched only when
    it does not hold ``sha`` yet — a warm cache at ``sha`` runs no git command that reaches the remote. Without it:
    a shallow clone (depth 1) of ``branch`` into ``workdir``, whose head may have moved past ``sha`` since
    (the commit returned is the one cloned)."""
    if state_dir is None:
        dest = workdir / "repo"
        _run(["clone", "--quiet", "--depth", "1", "--no-tags", "--single-branch", "--branch", branch, "--", url,
              str(dest)], auth, url=url, what="clone")  # fmt: skip
        return dest, _git(dest, "rev-parse", "HEAD").stdout.strip()
    dest = _cache(state_dir, url)
    warm = (dest / ".git").is_dir() and _git(dest, "rev-parse", "--verify", "--quiet", "HEAD").stdout.strip() == sha
    if warm and not _git(dest, "status", "--porcelain", "--untracked-files=all").stdout.strip():
        return dest, sha  # warm and clean: nothing reaches the remote
    if not (dest / ".git").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        _run(["clone", "--quiet", "--no-checkout", "--no-tags", "--", url, str(dest)], auth, url=url, what="clone")
    elif not has_commit(dest, sha):
        _git(dest, "remote", "set-url", "origin", url)  # the URL may be written differently now (same repository)
        _fetch(dest, url, auth, branch)
    if not has_commit(dest, sha):  # the branch moved on since ls-remote (or was rewritten): take its head
        _fetch(dest, url, auth, branch)
        sha = _git(dest, "rev-parse", f"refs/remotes/origin/{branch}").stdout.strip() or sha
    _run(["-C", str(dest), "checkout", "--quiet", "--force", "--detach", sha], None, url=url, what="checkout")
    _run(["-C", str(dest), "clean", "-ffdxq"], None, url=url, what="clean")
    return dest, sha


def refs(url: str, auth: Auth | None = None, *, token_from: str = _TOKEN_FROM) -> dict[str, str]:
    """Every ref the remote ``url`` advertises (``HEAD``, ``refs/heads/…``, ``refs/tags/…``) → the commit it points at,
    by one ``git ls-remote``: nothing is fetched. An annotated tag is the commit it points at (its peeled ``^{}``)."""
    _refuse_password(url)
    out = _run(["ls-remote", "--", url], auth, url=url, what="ls-remote", token_from=token_from).stdout
    found: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        if name.endswith("^{}"):
            peeled[name.removesuffix("^{}")] = sha
        elif name:
            found[name] = sha
    return found | peeled


_FETCHED = "refs/gitops-job/"  # where checkout_commit keeps what it fetched


def checkout_commit(
    url: str,
    sha: str,
    ref: str | None,
    *,
    dest: Path,
    shallow: bool,
    auth: Auth | None = None,
    token_from: str = _TOKEN_FROM,
) -> Path:
    """``dest``, a working tree of ``url`` at commit ``sha`` (detached, cleaned): a clone kept there is fetched only
    when it lacks ``sha``. ``ref`` (``refs/heads/main``, ``refs/tags/v1``) is what is fetched (the commit itself
    when None); ``shallow``: depth 1 (a throwaway directory), else the ref's whole history (a cache)."""
    _refuse_password(url)
    if not (dest / ".git").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        _local(dest, "init", "--quiet")
    depth = ["--depth", "1"] if shallow else []
    if not has_commit(dest, sha):
        want = f"+{ref}:{_FETCHED}{ref.removeprefix('refs/')}" if ref else sha  # never into a checked-out branch
        _run(["-C", str(dest), "fetch", "--quiet", "--no-tags", *depth, "--", url, want], auth, url=url,
             what="fetch", check=ref is not None, token_from=token_from)  # fmt: skip
    if not has_commit(dest, sha):  # a commit below its branch's tip (or by id from a server that refuses that)
        shallow_now = _git(dest, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        unshallow = ["--unshallow"] if shallow_now else []
        every = [f"+refs/heads/*:{_FETCHED}heads/*", f"+refs/tags/*:{_FETCHED}tags/*"]
        _run(
            ["-C", str(dest), "fetch", "--quiet", *unshallow, "--", url, *every],
            auth,
            url=url,
            what="fetch",
            token_from=token_from,
        )
    if not has_commit(dest, sha):
        raise SourceError(f"commit {sha} is not in the repository (nor reachable from its branches and tags)",
                          where=redact(url))  # fmt: skip
    _run(["-C", str(dest), "checkout", "--quiet", "--force", "--detach", sha], None, url=url, what="checkout")
    _run(["-C", str(dest), "clean", "-ffdxq"], None, url=url, what="clean")
    return dest


def cache_name(url: str) -> str:
    """A directory name for the cached clone of ``url``: one per repository (however its URL is written)."""
    return hashlib.sha256(canonical_remote(url).encode()).hexdigest()[:16]


def _cache(state_dir: Path, url: str) -> Path:
    """The state dir's clone of ``url``: one per repository (however its URL is written)."""
    return state_dir / f"repo-{cache_name(url)}"


def cached_head(state_dir: Path, url: str) -> str | None:
    """The commit the state dir's clone of ``url`` has checked out (None: no clone yet)."""
    dest = _cache(state_dir, url)
    if not (dest / ".git").is_dir():
        return None
    return _git(dest, "rev-parse", "--verify", "--quiet", "HEAD").stdout.strip() or None


def _fetch(repo: Path, url: str, auth: Auth | None, branch: str) -> None:
    refspec = f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
    _run(["-C", str(repo), "fetch", "--quiet", "--no-tags", "--", url, refspec], auth, url=url, what="fetch")


def has_commit(repo: Path, sha: str) -> bool:
    return _git(repo, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0


def is_ancestor(repo: Path, old: str, new: str, auth: Auth | None = None) -> bool:
    """Whether commit ``old`` is ``new`` or one of its ancestors (``git merge-base --is-ancestor``), fetching what
    the checkout lacks from its ``origin``: a shallow clone is deepened to full history, and ``old`` is fetched
    by id. ``old`` that cannot be found once ``new``'s whole history is here is not an ancestor."""
    if old == new:
        return True
    url = _git(repo, "config", "--get", "remote.origin.url").stdout.strip()
    if has_commit(repo, old) and has_commit(repo, new) and _is_ancestor(repo, old, new):
        return True  # proven even in a shallow history
    if url and _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        _run(["-C", str(repo), "fetch", "--quiet", "--no-tags", "--unshallow", "origin"], auth, url=url,
             what="fetch --unshallow")  # fmt: skip
    if url and not has_commit(repo, new):
        _run(
            ["-C", str(repo), "fetch", "--quiet", "--no-tags", "origin", new], auth, url=url, what="fetch", check=False
        )
    if not has_commit(repo, new):
        raise SourceError(
            f"commit {new} is not in the checkout (nor on its remote): cannot check that it descends from the commit"
            " last applied. Pass the checked-out commit, or fetch it first",
            where=str(repo),
        )
    if url and not has_commit(repo, old):
        _run(
            ["-C", str(repo), "fetch", "--quiet", "--no-tags", "origin", old], auth, url=url, what="fetch", check=False
        )
    return has_commit(repo, old) and _is_ancestor(repo, old, new)


def _is_ancestor(repo: Path, old: str, new: str) -> bool:
    return _git(repo, "merge-base", "--is-ancestor", old, new).returncode == 0


def is_checkout(repo: Path) -> bool:
    """Whether ``repo`` is inside a git working tree."""
    return _git(repo, "rev-parse", "--is-inside-work-tree").stdout.strip() == "true"


# -- writes: a commit of exactly the files changed, and its push ----------------------------------------------------
@dataclass(frozen=True)
class Author:
    """Who a commit of ours is by: its author and its committer."""

    name: str
    email: str


def commit(repo: Path, changes: Mapping[str, bytes | None], message: str, author: Author) -> str | None:
    """Write each file of ``changes`` (a path relative to ``repo``'s root → its new bytes, or None to remove a
    tracked file) into ``repo``'s working tree, stage exactly those paths and commit only them (anything else
    staged or modified stays out of the commit) as ``author`` (author and committer), with ``message``; no hooks
    run. The new commit's sha; None when the bytes are those already committed (no commit is made). Works on a
    detached HEAD (the state dir's clone) as on a branch (a local checkout: the branch moves)."""
    root = repo.resolve()
    paths = []
    for rel in changes:
        pure = PurePosixPath(rel)
        target = (root / pure).resolve()
        if pure.is_absolute() or ".." in pure.parts or not target.is_relative_to(root) or target == root:
            raise ValueError(f"{rel}: not a file path inside the repository {repo}")
        paths.append(str(pure))
    for rel, data in changes.items():
        target = root / rel
        if data is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if not paths:
        return None
    _local(root, "add", "--", *paths)
    has_head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD").returncode == 0
    if has_head and _git(root, "diff", "--cached", "--quiet", "HEAD", "--", *paths).returncode == 0:
        return None
    who = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
           "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email}  # fmt: skip
    _local(root, "commit", "--quiet", "--no-verify", "--file", "-", "--", *paths, stdin=message, env=who)
    return _git(root, "rev-parse", "HEAD").stdout.strip()


def _local(repo: Path, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> None:
    """A git command on ``repo`` alone (nothing reaches a remote); a failure raises naming the repository."""
    with _environment(None) as base:
        done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, env={**base, **(env or {})},
                              capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SourceError(f"git {args[0]} failed: {_git_words(done.stderr)}", where=str(repo))


def push(
    repo: Path, url: str, branch: str, auth: Auth | None = None, *, rev: str = "HEAD", force: bool = False
) -> None:
    """Push commit ``rev`` of ``repo`` to ``url``'s ``branch`` (made when missing). With ``force`` the branch is
    replaced whatever it held (a bot branch of ours); without, a branch that moved on since ``rev``'s parent was
    fetched raises :class:`PushRejectedError` (fetch, rebuild the change, push again) — any other failure (no
    access, a protected branch, the server down) a :class:`SourceError`."""
    _refuse_password(url)
    refspec = f"{'+' if force else ''}{rev}:refs/heads/{branch}"
    done = _run(["-C", str(repo), "push", "--porcelain", "--no-verify", "--", url, refspec], auth, url=url,
                what="push", check=False)  # fmt: skip
    if done.returncode == 0:
        return
    status = [line for line in done.stdout.splitlines() if line.startswith("!")]
    if any("[rejected]" in line and ("non-fast-forward" in line or "fetch first" in line) for line in status):
        raise PushRejectedError(
            f"push to branch {branch} was rejected: the branch moved on (not a fast-forward). Fetch it and make the"
            " change again on its new head",
            where=redact(url),
        )
    words = _git_words("\n".join([*status, done.stderr]))
    raise SourceError(f"git push to branch {branch} failed: {words}{_hint(done.stderr)}", where=redact(url))


def fetch(repo: Path, url: str, branch: str, auth: Auth | None = None) -> str:
    """Fetch ``url``'s ``branch`` into ``repo`` (as ``refs/remotes/origin/<branch>``); the commit it points at."""
    _refuse_password(url)
    _fetch(repo, url, auth, branch)
    return _git(repo, "rev-parse", f"refs/remotes/origin/{branch}").stdout.strip()


def branch_head(url: str, branch: str, auth: Auth | None = None) -> str | None:
    """The commit ``url``'s ``branch`` points at; None when the remote has no such branch (one ``ls-remote``)."""
    _refuse_password(url)
    ref = f"refs/heads/{branch}"
    out = _run(["ls-remote", "--", url, ref], auth, url=url, what="ls-remote").stdout
    return next((left for left, _, right in (line.partition("\t") for line in out.splitlines()) if right == ref), None)


def identity(repo: Path) -> Author | None:
    """git's configured identity in ``repo`` (``user.name``, ``user.email``); None when either is not set."""
    name = _git(repo, "config", "--get", "user.name").stdout.strip()
    email = _git(repo, "config", "--get", "user.email").stdout.strip()
    return Author(name, email) if name and email else None


def upstream(repo: Path) -> tuple[str, str] | None:
    """Where a commit made in the checkout ``repo`` is pushed: its ``origin`` remote's URL and the branch checked
    out; None without a remote named origin or on a detached HEAD."""
    url = _git(repo, "config", "--get", "remote.origin.url").stdout.strip()
    branch = _git(repo, "symbolic-ref", "--quiet", "--short", "HEAD").stdout.strip()
    return (url, branch) if url and branch else None


@contextmanager
def worktree(repo: Path, rev: str) -> Iterator[Path]:
    """A temporary working tree of ``repo``'s repository at commit ``rev`` (``git worktree add --detach``; it shares
    the repository's objects and remotes), removed afterwards; yields the directory that corresponds to ``repo``
    in it (``repo`` may be a subdirectory of the repository)."""
    prefix = _git(repo, "rev-parse", "--show-prefix").stdout.strip()
    with tempfile.TemporaryDirectory(prefix="gitops-job-worktree-") as tmp:
        tree = Path(tmp) / "tree"
        _local(repo, "worktree", "add", "--quiet", "--detach", str(tree), rev)
        try:
            yield tree / prefix if prefix else tree
        finally:
            _git(repo, "worktree", "remove", "--force", str(tree))
            _git(repo, "worktree", "prune")


def detach(repo: Path, rev: str) -> None:
    """Check out commit ``rev`` of ``repo`` (detached, working tree cleaned): the state a fetched checkout has."""
    _local(repo, "checkout", "--quiet", "--force", "--detach", rev)
    _local(repo, "clean", "-ffdxq")


def same_tree(repo: Path, a: str, b: str) -> bool:
    """Whether commits ``a`` and ``b`` of ``repo`` hold the very same files (both must be in ``repo``)."""
    trees = [_git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{tree}}").stdout.strip() for rev in (a, b)]
    return bool(trees[0]) and trees[0] == trees[1]


def modified(repo: Path, paths: list[str]) -> tuple[str, ...]:
    """Which of ``paths`` (relative to ``repo``) differ from the commit checked out, staged or not."""
    if not paths:
        return ()
    out = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", *paths).stdout
    return tuple(line[3:] for line in out.splitlines() if line.strip())


def files_at(repo: Path, rev: str, needle: str) -> dict[str, bytes] | None:
    """The files of commit ``rev`` under ``repo`` (a directory of a checkout) that contain ``needle``: each path,
    relative to ``repo``, → its bytes. A commit the checkout lacks is fetched from its ``origin`` by id (a shallow
    CI checkout); None when it cannot be had."""
    if not has_commit(repo, rev):
        url = _git(repo, "config", "--get", "remote.origin.url").stdout.strip()
        if url:
            _run(["-C", str(repo), "fetch", "--quiet", "--no-tags", "--depth", "1", "origin", rev], None, url=url,
                 what="fetch", check=False)  # fmt: skip
        if not has_commit(repo, rev):
            return None
    listed = _git(repo, "grep", "-l", "-F", "-e", needle, rev, "--", ".")
    out: dict[str, bytes] = {}
    for line in listed.stdout.splitlines():
        path = line.removeprefix(f"{rev}:")
        shown = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:./{path}"], capture_output=True, check=False)
        if shown.returncode == 0:
            out[path] = shown.stdout
    return out
