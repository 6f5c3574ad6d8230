"""The only module that talks to GitHub: the Actions run's context, the sticky PR comment, merged-PR lookup, commit
statuses, and the sticky drift issue and the open pull requests' plan comments that ``reconcile`` keeps up to date.

It wraps PyGithub (pagination, retries on 5xx and on rate limits through ``GithubRetry``) behind a small interface of
our own: what goes in and out are frozen dataclasses, never PyGithub objects, and every failure is a ``GitHubError``
that says which repository, pull request or commit it was about and which ``permissions:`` the workflow job needs.
The token never appears in any message.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import github
import requests
from github import Auth, GithubException, GithubRetry, RateLimitExceededException, UnknownObjectException
from github.GithubException import RateLimitExceededExceedsMaxWait
from github.Issue import Issue as GhIssue
from github.IssueComment import IssueComment
from urllib3 import Retry
from urllib3.response import BaseHTTPResponse

from gitops_job.errors import GitopsJobError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
STATUS_DESCRIPTION_MAX = 140  # GitHub rejects longer commit status descriptions
DEPENDABOT = "dependabot[bot]"
#: ``Merge pull request #12 from …`` (merge), ``Title (#12)`` (squash): the pull requests a commit message names.
_PULL_NUMBER = re.compile(r"#(\d+)\b")
T = TypeVar("T")

# The `permissions:` a workflow job needs per operation (GITHUB_TOKEN scopes; fine-grained tokens use the same names).
PERMISSION_COMMENT = "pull-requests: write"  # issue comments on a pull request (`issues: write` also allows it)
PERMISSION_READ_PULLS = "pull-requests: read, contents: read"
PERMISSION_STATUS = "statuses: write"
PERMISSION_READ_ISSUES = "issues: read"
PERMISSION_ISSUES = "issues: write"
PERMISSION_PULLS = "pull-requests: write"


class GitHubError(GitopsJobError):
    """A GitHub API call failed, or the Actions environment is not what the runner provides."""

    phase = "github"


# --------------------------------------------------------------------------------------------------------------------
# The Actions run's context


@dataclass(frozen=True)
class ActionsContext:
    """What the GitHub Actions runner tells a step about its run (``GITHUB_*`` variables and the event payload)."""

    event_name: str
    event: Mapping[str, Any] = field(repr=False, compare=False)
    repository: str
    sha: str
    ref: str
    server_url: str
    api_url: str
    run_id: str
    run_attempt: str
    step_summary: Path | None
    output: Path | None
    actor: str = ""  # GITHUB_ACTOR: who started the run

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ActionsContext | None:
        """The context of the current run, or None outside GitHub Actions (``GITHUB_ACTIONS`` is not ``true``)."""
        if env.get("GITHUB_ACTIONS") != "true":
            return None
        missing = [
            k for k in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_REPOSITORY", "GITHUB_SHA") if not env.get(k)
        ]
        if missing:
            raise GitHubError(
                f"{', '.join(missing)} not set although GITHUB_ACTIONS=true: run inside a GitHub Actions job, "
                "or unset GITHUB_ACTIONS to run outside one"
            )
        path = Path(env["GITHUB_EVENT_PATH"])
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise GitHubError(f"cannot read the event payload: {e.strerror}", where=str(path)) from e
        except ValueError as e:
            raise GitHubError(f"the event payload is not JSON: {e}", where=str(path)) from e
        if not isinstance(event, dict):
            raise GitHubError("the event payload is not a JSON object", where=str(path))

        def optional_path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        return cls(
            event_name=env["GITHUB_EVENT_NAME"],
            event=event,
            repository=env["GITHUB_REPOSITORY"],
            sha=env["GITHUB_SHA"],
            ref=env.get("GITHUB_REF", ""),
            server_url=env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL,
            api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL,
            run_id=env.get("GITHUB_RUN_ID", ""),
            run_attempt=env.get("GITHUB_RUN_ATTEMPT", "1"),
            step_summary=optional_path("GITHUB_STEP_SUMMARY"),
            output=optional_path("GITHUB_OUTPUT"),
            actor=env.get("GITHUB_ACTOR", ""),
        )

    @property
    def run_url(self) -> str:
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @property
    def _pull(self) -> Mapping[str, Any] | None:
        pr = self.event.get("pull_request")
        return pr if self.event_name.startswith("pull_request") and isinstance(pr, dict) else None

    @property
    def pull_request_number(self) -> int | None:
        """The pull request's number on ``pull_request`` events, else None."""
        pr = self._pull
        number = pr.get("number", self.event.get("number")) if pr is not None else None
        return number if isinstance(number, int) else None

    @property
    def head_sha(self) -> str:
        """The PR's head commit on ``pull_request`` events (GITHUB_SHA is a test merge there), else GITHUB_SHA."""
        pr = self._pull
        sha = pr.get("head", {}).get("sha") if pr is not None else None
        return sha if isinstance(sha, str) and sha else self.sha

    @property
    def is_fork(self) -> bool:
        """True when the PR's head lives in another (or a deleted) repository: it must not get cluster credentials.

        Only ``head.repo.full_name`` against ``base.repo.full_name`` says so: ``head.repo.fork`` says that the head
        repository was itself forked from another one, which is true of every PR of a GitOps repository that was
        created by forking a template."""
        pr = self._pull
        if pr is None:
            return False
        head_repo = (pr.get("head") or {}).get("repo")
        base_repo = (pr.get("base") or {}).get("repo") or {}
        if not head_repo:
            return True
        return bool(head_repo.get("full_name") != (base_repo.get("full_name") or self.repository))

    @property
    def is_dependabot(self) -> bool:
        """A run Dependabot started (its PR, or its push): GitHub gives it a read-only token and no Actions secrets, so
        it gets no cluster credentials either (``GITHUB_ACTOR`` is ``dependabot[bot]``)."""
        return self.actor == DEPENDABOT

    @property
    def pushed_commits(self) -> tuple[PushedCommit, ...]:
        """The commits a ``push`` event brought, oldest first, the pushed head (GITHUB_SHA) last: several merged pull
        requests when a merge queue merged a batch. Outside a push, the one commit GITHUB_SHA."""
        out: list[PushedCommit] = []
        commits = self.event.get("commits") if self.event_name == "push" else None
        for c in commits if isinstance(commits, list) else []:
            sha, message = (c.get("id"), c.get("message")) if isinstance(c, dict) else (None, None)
            if isinstance(sha, str) and sha != self.sha:
                out.append(PushedCommit(sha, message if isinstance(message, str) else ""))
        head = self.event.get("head_commit") if self.event_name == "push" else None
        message = head.get("message") if isinstance(head, dict) and head.get("id") == self.sha else None
        return (*out, PushedCommit(self.sha, message if isinstance(message, str) else ""))

    @property
    def default_branch(self) -> str | None:
        repo = self.event.get("repository")
        branch = repo.get("default_branch") if isinstance(repo, dict) else None
        return branch if isinstance(branch, str) else None

    @property
    def is_default_branch_push(self) -> bool:
        """A ``push`` to the repository's default branch (the merge that ``apply`` acts on)."""
        return (
            self.event_name == "push"
            and self.default_branch is not None
            and self.ref == f"refs/heads/{self.default_branch}"
        )


# --------------------------------------------------------------------------------------------------------------------
# What the client returns


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    url: str  # the comment's page on github.com
    author: str = ""  # the login of who wrote it
    updated: datetime | None = None  # when it was last written (created or edited)


@dataclass(frozen=True)
class PushedCommit:
    sha: str
    message: str


@dataclass(frozen=True)
class CommentResult:
    id: int
    url: str
    action: Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class PullRequest:
    number: int
    head_sha: str
    merged: bool
    merge_commit_sha: str | None
    url: str  # the pull request's page on github.com


@dataclass(frozen=True)
class PullResult:
    """The pull request :meth:`GitHub.ensure_pull` keeps open for a bot branch, and what it did to it."""

    number: int
    url: str  # the pull request's page on github.com
    action: Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Issue:
    """An issue (not a pull request)."""

    number: int
    body: str
    url: str  # the issue's page on github.com


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before reporting a failure; total time stays under ``attempts * max(max_wait, backoff_max)``."""

    attempts: int = 5  # retries after the first request (5xx, rate limits, lost connections)
    backoff: float = 1.0  # seconds; doubled on every retry
    backoff_max: float = 30.0
    max_wait: float = 120.0  # longest Retry-After or rate-limit reset we sleep through; longer fails at once
    secondary_rate_wait: float = 60.0  # wait after a secondary rate limit that gives no Retry-After
    timeout: int = 15  # seconds per request (PyGithub takes whole seconds)
    request_interval: float = 0.25  # pacing between requests, and between writes (GitHub's advice against
    write_interval: float = 1.0  # secondary rate limits); tests set both to 0
    #: How long ``merged_pulls`` asks again while ``GET /commits/{sha}/pulls`` does not list a pull request yet: that
    #: index is filled some seconds after a merge (eventually consistent).
    index_wait: float = 30.0
    index_backoff: float = 1.0  # the first wait of those; doubled each time, at most a quarter of index_wait


class _Retry(GithubRetry):
    """``GithubRetry`` that never sleeps past ``max_rate_limit_wait`` and never re-sends a POST that GitHub may have
    applied: not after a 5xx, and not after a read timeout or a connection lost once the request was sent (urllib3
    re-sends those when POST is an allowed method: a slow GitHub would get two sticky comments).

    The caller decides instead: ``GitHub._post`` looks for the comment before posting again. Rate-limited POSTs
    (403/429) were not applied and are retried here, and so are POSTs whose connection was never made.
    """

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "POST" and status_code >= 500:
            return False
        return bool(super().is_retry(method, status_code, has_retry_after))

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        if error is not None and (method or "").upper() == "POST" and not self._is_connection_error(error):
            raise error  # sent, perhaps applied: GitHub._post looks before it sends again
        if response is not None and self.max_rate_limit_wait is not None:
            wait = self.get_retry_after(response)
            if wait is not None and wait > self.max_rate_limit_wait:
                raise RateLimitExceededExceedsMaxWait(response.status, None, dict(response.headers), wait=wait)
        return super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------------
# The client


class GitHub:
    """A repository's pull requests, comments and commit statuses through GitHub's REST API."""

    def __init__(
        self,
        api_url: str,
        token: str,
        repository: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token:
            raise GitHubError("no GitHub token: pass `github-token` (in a workflow: ${{ secrets.GITHUB_TOKEN }})")
        if repository.count("/") != 1:
            raise GitHubError(f"repository {repository!r} is not of the form owner/name")
        self.repository = repository
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._policy = retry
        self._sleep = sleep
        self._clock = clock
        self._login: str | None = None
        self._gh = github.Github(
            base_url=self.api_url,
            auth=Auth.Token(token),
            timeout=retry.timeout,
            per_page=100,
            seconds_between_requests=retry.request_interval,
            seconds_between_writes=retry.write_interval,
            lazy=True,
            retry=_Retry(
                total=retry.attempts,
                backoff_factor=retry.backoff,
                backoff_max=retry.backoff_max,
                status_forcelist=[*range(500, 600), 429],
                allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"GET", "POST", "PATCH"},  # PATCH: same body, same end
                raise_on_status=False,
                secondary_rate_wait=retry.secondary_rate_wait,
                max_rate_limit_wait=retry.max_wait,
            ),
        )
        self._repo = self._gh.get_repo(repository)

    def close(self) -> None:
        self._gh.close()

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- who we are -----------------------------------------------------------------------------------------------
    def login(self, where: str = "") -> str:
        """The login of the token's own identity, the author of the comments this client writes.

        GraphQL's ``viewer`` answers for every kind of token: a personal access token's user, and a GitHub App
        installation token's bot (``github-actions[bot]`` for an Actions run's GITHUB_TOKEN, ``<app>[bot]`` for
        another app). REST's ``GET /user`` refuses installation tokens (403 "Resource not accessible by
        integration"), and ``GET /app`` wants the app's JWT: neither can tell an Actions run who it is.
        """
        if self._login is None:

            def viewer() -> str:
                _, data = self._gh.requester.graphql_query("query { viewer { login } }", {})
                login = ((data.get("data") or {}).get("viewer") or {}).get("login")
                if not isinstance(login, str) or not login:
                    raise GitHubError(f"GitHub's GraphQL API at {self.api_url} did not say who the token is")
                return login

            # A read: sent again after a 5xx or a timeout (``_post`` without a recheck).
            self._login = self._post(
                "learn whose token it is (to find our comments) on",
                where or self.repository,
                "contents: read",
                viewer,
                None,
            )
        return self._login

    # -- comments -----------------------------------------------------------------------------------------------------
    def find_comment(self, pr: int, marker: str) -> Comment | None:
        """The oldest comment on pull request ``pr`` written by this token's identity whose body contains ``marker``
        (our hidden tag), or None. A comment by anyone else is never ours, whatever it says."""
        me = self.login(self._pr(pr))
        found = self._call(
            "list the comments of", self._pr(pr), PERMISSION_READ_PULLS, lambda: self._find(pr, marker, me)
        )
        return None if found is None else _comment(found)

    def _find(self, pr: int, marker: str, me: str) -> IssueComment | None:
        for c in self._repo.get_issue(pr).get_comments():
            if marker in (c.body or "") and c.user is not None and c.user.login == me:
                return c
        return None

    def upsert_comment(self, pr: int, marker: str, body: str, *, same: str | None = None) -> CommentResult:
        """Create our comment on ``pr``, or edit it in place; leave it alone when the body is already ``body`` (or
        already contains ``same``: a key of the content that matters, when only a footer would change).

        Our comment is the oldest one by this token's identity containing ``marker``; the marker is prepended to
        ``body`` if it lacks it, so the next run finds it again. A comment by anyone else, or without the marker, is
        never touched, and a comment is never posted twice: after a failed POST (5xx, a read timeout, a lost
        connection) the comments are searched again before another try.
        """
        if not marker:
            raise ValueError("upsert_comment needs a non-empty marker")
        if marker not in body:
            body = f"{marker}\n{body}"
        where = self._pr(pr)
        me = self.login(where)
        existing = self._call("list the comments of", where, PERMISSION_READ_PULLS, lambda: self._find(pr, marker, me))
        if existing is not None:
            if existing.body == body or (same is not None and same in (existing.body or "")):
                return CommentResult(existing.id, existing.html_url, "unchanged")
            self._call("edit our comment on", where, PERMISSION_COMMENT, lambda: existing.edit(body))
            return CommentResult(existing.id, existing.html_url, "updated")

        def create() -> Comment:
            return _comment(self._repo.get_issue(pr).create_comment(body))

        made = self._post("comment on", where, PERMISSION_COMMENT, create, lambda: self.find_comment(pr, marker))
        return CommentResult(made.id, made.url, "created")

    def edit_comment(self, pr: int, marker: str, edit: Callable[[Comment], str | None]) -> CommentResult | None:
        """Edit our comment on ``pr`` (found as :meth:`find_comment` finds it) to what ``edit`` makes of it; ``edit``
        returns None to leave it alone. None when there is no such comment."""
        where = self._pr(pr)
        me = self.login(where)
        existing = self._call("list the comments of", where, PERMISSION_READ_PULLS, lambda: self._find(pr, marker, me))
        if existing is None:
            return None
        body = edit(_comment(existing))
        if body is None or body == existing.body:
            return CommentResult(existing.id, existing.html_url, "unchanged")
        self._call("edit our comment on", where, PERMISSION_COMMENT, lambda: existing.edit(body))
        return CommentResult(existing.id, existing.html_url, "updated")

    def _pr(self, pr: int) -> str:
        return f"pull request #{pr} in {self.repository}"

    # -- issues -------------------------------------------------------------------------------------------------------
    def find_issue(self, marker: str) -> Issue | None:
        """The oldest open issue (not a pull request) written by this token's identity whose body contains ``marker``,
        or None: one listing of the open issues, followed across pages."""
        where = f"the open issues of {self.repository}"
        me = self.login(where)

        def find() -> Issue | None:
            found: GhIssue | None = None
            for i in self._repo.get_issues(state="open"):  # newest first: the last one seen is the oldest
                if i.pull_request is None and marker in (i.body or "") and i.user is not None and i.user.login == me:
                    found = i
            return None if found is None else Issue(found.number, found.body or "", found.html_url)

        return self._call("list", where, PERMISSION_READ_ISSUES, find)

    def open_issue(self, title: str, marker: str, body: str) -> Issue:
        """Open an issue; after a failed POST the open issues are searched for ``marker`` before another try, so it is
        never opened twice."""
        if marker not in body:
            body = f"{marker}\n{body}"

        def create() -> Issue:
            i = self._repo.create_issue(title, body=body)
            return Issue(i.number, i.body or "", i.html_url)

        return self._post(
            "open an issue in", self.repository, PERMISSION_ISSUES, create, lambda: self.find_issue(marker)
        )

    def edit_issue(self, number: int, body: str) -> None:
        where = f"issue #{number} in {self.repository}"
        self._call("edit", where, PERMISSION_ISSUES, lambda: self._repo.get_issue(number).edit(body=body))

    def close_issue(self, number: int, marker: str, comment: str) -> str:
        """Comment on issue ``number`` (once: a comment of ours carrying ``marker`` is not posted again), then close it
        as completed; the comment's URL."""
        where = f"issue #{number} in {self.repository}"
        if marker not in comment:
            comment = f"{marker}\n{comment}"
        me = self.login(where)

        def find() -> Comment | None:
            found = self._call(
                "list the comments of", where, PERMISSION_READ_ISSUES, lambda: self._find(number, marker, me)
            )
            return None if found is None else _comment(found)

        def create() -> Comment:
            return _comment(self._repo.get_issue(number).create_comment(comment))

        made = find() or self._post("comment on", where, PERMISSION_ISSUES, create, find)
        self._call("close", where, PERMISSION_ISSUES,
                   lambda: self._repo.get_issue(number).edit(state="closed", state_reason="completed"))  # fmt: skip
        return made.url

    def open_pulls(self) -> tuple[PullRequest, ...]:
        """The open pull requests, newest first (one listing, followed across pages)."""

        def listed() -> tuple[PullRequest, ...]:
            return tuple(PullRequest(p.number, p.head.sha, False, None, p.html_url)
                         for p in self._repo.get_pulls(state="open"))  # fmt: skip

        return self._call("list the open pull requests of", self.repository, PERMISSION_READ_PULLS, listed)

    def ensure_pull(self, head: str, base: str, title: str, body: str) -> PullResult:
        """The one open pull request from branch ``head`` (of this repository) into ``base``: opened when there is
        none, its title and body edited when they differ, left alone when they are already these. After a failed
        POST the open pull requests are looked up again before another try, so it is never opened twice."""
        owner = self.repository.split("/")[0]
        where = f"the pull request from {head} into {base} in {self.repository}"

        def find() -> PullResult | None:
            def listed() -> PullResult | None:
                for p in self._repo.get_pulls(state="open", head=f"{owner}:{head}", base=base):
                    if p.head.ref == head:
                        same = p.title == title and (p.body or "") == body
                        return PullResult(p.number, p.html_url, "unchanged" if same else "updated")
                return None

            return self._call("list the open pull requests of", self.repository, PERMISSION_READ_PULLS, listed)

        found = find()
        if found is not None:
            if found.action == "updated":
                number = found.number
                self._call("edit", self._pr(number), PERMISSION_PULLS,
                           lambda: self._repo.get_pull(number).edit(title=title, body=body))  # fmt: skip
            return found

        def create() -> PullResult:
            p = self._repo.create_pull(base=base, head=head, title=title, body=body)
            return PullResult(p.number, p.html_url, "created")

        def made() -> PullResult | None:  # a POST that failed late may have opened it
            again = find()
            return None if again is None else PullResult(again.number, again.url, "created")

        return self._post("open", where, f"{PERMISSION_PULLS}, contents: write", create, made)

    # -- pull requests and statuses ------------------------------------------------------------------------------------
    def merged_pull_for(self, sha: str, message: str = "") -> PullRequest | None:
        """The merged pull request whose merge commit is ``sha`` (a push to the default branch), or None."""
        found = self.merged_pulls([PushedCommit(sha, message)])
        return found[0] if found else None

    def merged_pulls(self, commits: Sequence[PushedCommit]) -> tuple[PullRequest, ...]:
        """The merged pull requests whose merge (or squash) commit is one of ``commits`` (a push: the pushed head last;
        a merge queue's batch holds several), in the order of ``commits``.

        ``GET /commits/{sha}/pulls`` is filled some seconds after a merge: an empty answer is asked again, with
        backoff, for up to ``RetryPolicy.index_wait`` seconds while the pushed head has no pull request yet. A
        commit the index does not list is also looked up by the numbers its message names (``Merge pull request
        #12 …``, ``Title (#12)``), each confirmed with ``GET /pulls/{n}``: merged, with this very merge commit.
        """
        if not commits:
            return ()
        head = commits[-1].sha
        found: dict[str, PullRequest] = {}
        named: set[str] = set()
        deadline = self._clock() + self._policy.index_wait
        delay = self._policy.index_backoff
        while True:
            for c in commits:
                if c.sha not in found and (pr := self._indexed(c.sha)) is not None:
                    found[c.sha] = pr
            for c in commits:
                if c.sha not in found and c.sha not in named:
                    named.add(c.sha)  # a pull request's own record is not eventually consistent: asked once
                    if (pr := self._named(c)) is not None:
                        found[c.sha] = pr
            left = deadline - self._clock()
            if head in found or left <= 0:
                break
            self._sleep(min(delay, left))
            delay = min(delay * 2, self._policy.index_wait / 4)
        return tuple(found[c.sha] for c in commits if c.sha in found)

    def _indexed(self, sha: str) -> PullRequest | None:
        def lookup() -> PullRequest | None:
            for p in self._repo.get_commit(sha).get_pulls():
                if p.merged_at is not None and p.merge_commit_sha == sha:
                    return PullRequest(p.number, p.head.sha, True, p.merge_commit_sha, p.html_url)
            return None

        return self._call(
            "list the pull requests of", f"commit {sha} in {self.repository}", PERMISSION_READ_PULLS, lookup
        )

    def _named(self, commit: PushedCommit) -> PullRequest | None:
        for number in dict.fromkeys(int(n) for n in _PULL_NUMBER.findall(commit.message)):
            pr = self.pull(number)
            if pr is not None and pr.merged and pr.merge_commit_sha == commit.sha:
                return pr
        return None

    def pull(self, number: int) -> PullRequest | None:
        """Pull request ``number`` (``GET /pulls/{n}``), or None when there is none (a ``#n`` naming an issue)."""

        def get() -> PullRequest | None:
            try:
                p = self._repo.get_pull(number)
                return PullRequest(p.number, p.head.sha, bool(p.merged), p.merge_commit_sha, p.html_url)
            except UnknownObjectException:
                return None

        return self._call("read", self._pr(number), PERMISSION_READ_PULLS, get)

    def set_status(
        self,
        sha: str,
        state: Literal["error", "failure", "pending", "success"],
        description: str,
        context: str = "gitops-job",
        target_url: str | None = None,
    ) -> None:
        """Set commit status ``context`` on ``sha``; ``description`` is cut to GitHub's 140 characters."""
        if len(description) > STATUS_DESCRIPTION_MAX:
            description = description[: STATUS_DESCRIPTION_MAX - 1] + "…"
        commit = self._repo.get_commit(sha)

        def create() -> None:
            if target_url is None:
                commit.create_status(state, description=description, context=context)
            else:
                commit.create_status(state, target_url=target_url, description=description, context=context)

        self._post("set a commit status on", f"commit {sha} in {self.repository}", PERMISSION_STATUS, create, None)

    # -- error translation and the POST retry loop --------------------------------------------------------------------
    def _post(
        self, what: str, where: str, needs: str, create: Callable[[], T], recheck: Callable[[], T | None] | None
    ) -> T:
        """Run a POST; after a 5xx, a read timeout or a lost connection, look whether it was applied (``recheck``)
        before sending it again."""
        delay = self._policy.backoff
        for attempt in range(self._policy.attempts + 1):
            try:
                return self._call(what, where, needs, create, raw_5xx=attempt < self._policy.attempts)
            except _ServerError:
                found = recheck() if recheck is not None else None
                if found is not None:
                    return found
                self._sleep(min(delay, self._policy.backoff_max))
                delay *= 2
        raise AssertionError("unreachable")  # the last attempt raises GitHubError

    def _call(self, what: str, where: str, needs: str, fn: Callable[[], T], *, raw_5xx: bool = False) -> T:
        try:
            return fn()
        except RateLimitExceededExceedsMaxWait:
            raise GitHubError(
                f"cannot {what} {where}: rate limited, and GitHub asks to wait longer than the "
                f"{self._policy.max_wait:g}s we allow; run again later"
            ) from None
        except RateLimitExceededException as e:
            raise GitHubError(f"cannot {what} {where}: rate limited ({self._message(e)}); run again later") from None
        except GithubException as e:
            if raw_5xx and e.status >= 500:
                raise _ServerError from None
            raise GitHubError(self._explain(e, what, where, needs)) from None
        except requests.RequestException as e:
            if raw_5xx and not isinstance(e, requests.ConnectTimeout):
                raise _ServerError from None  # sent, perhaps applied (a POST answered too late)
            raise GitHubError(
                f"cannot {what} {where}: GitHub at {self.api_url} is unreachable ({type(e).__name__}); "
                "check the network or GITHUB_API_URL"
            ) from None

    def _message(self, e: GithubException) -> str:
        data = e.data
        message = data.get("message") if isinstance(data, dict) else None
        text = str(message or e.message or "no message")
        return text.replace(self._token, "***") if self._token else text

    def _explain(self, e: GithubException, what: str, where: str, needs: str) -> str:
        msg = self._message(e)
        if e.status == 401:
            return (
                f"cannot {what} {where}: GitHub rejected the token (401 {msg}): it is missing, expired or invalid; "
                "pass a valid `github-token` (in a workflow: ${{ secrets.GITHUB_TOKEN }})"
            )
        if e.status == 403:
            return (
                f"cannot {what} {where}: the token lacks permission (403 {msg}); "
                f"grant the token `{needs}` (a workflow job: `permissions: {needs}`)"
            )
        if e.status == 404:
            return (
                f"cannot {what} {where}: not found (404): {where} does not exist, "
                f"or the token cannot see it (it needs `{needs}`)"
            )
        if e.status == 422:
            return f"cannot {what} {where}: GitHub refused the request (422 {msg})"
        if e.status >= 500:
            return f"cannot {what} {where}: GitHub failed (HTTP {e.status} {msg}) after retrying; run again later"
        return f"cannot {what} {where}: GitHub answered HTTP {e.status} ({msg})"


def _comment(c: IssueComment) -> Comment:
    return Comment(id=c.id, body=c.body, url=c.html_url, author=c.user.login if c.user is not None else "",
                   updated=c.updated_at)  # fmt: skip


class _ServerError(Exception):
    """A POST answered 5xx, or not answered in time: ``GitHub._post`` decides whether to send it again."""
