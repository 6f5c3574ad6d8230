"""gitops_job.github against the local GitHub stand-in, which holds both sides to GitHub's OpenAPI description."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from gitops_job.github.client import ActionsContext, GitHub, GitHubError, PushedCommit, RetryPolicy
from tests.githubstub import BOT, FakeClock, GitHubStub, webhook_example

REPO = "octo/app"
MARKER = "<!-- gitops-job:target=prod -->"
HEAD, MERGE = "a" * 40, "c" * 40
FAST = RetryPolicy(
    attempts=3, backoff=0.01, backoff_max=0.05, max_wait=3, secondary_rate_wait=1, request_interval=0, write_interval=0
)


@pytest.fixture
def clock(github: GitHubStub) -> FakeClock:
    """One fake clock for the stub (index lag) and the client (its backoff sleeps): waiting costs no time."""
    fake = FakeClock()
    github.clock = fake.now
    return fake


@pytest.fixture
def gh(github: GitHubStub, clock: FakeClock) -> GitHub:
    github.add_pull(REPO, 7, head_sha=HEAD)
    github.add_pull(REPO, 6, head_sha="b" * 40, merged=True, merge_commit_sha=MERGE)
    return GitHub(github.url, github.token, REPO, retry=FAST, sleep=clock.sleep, clock=clock.now)


# -- the sticky comment -----------------------------------------------------------------------------------------------


def test_comment_created_then_updated_then_unchanged(github: GitHubStub, gh: GitHub) -> None:
    first = gh.upsert_comment(7, MARKER, f"{MARKER}\nplan: 1 to create")
    second = gh.upsert_comment(7, MARKER, f"{MARKER}\nplan: 2 to create")
    third = gh.upsert_comment(7, MARKER, f"{MARKER}\nplan: 2 to create")

    assert (first.action, second.action, third.action) == ("created", "updated", "unchanged")
    assert first.id == second.id == third.id
    assert first.url.startswith(f"https://github.com/{REPO}/pull/7#issuecomment-")
    assert len(github.sent("POST", "/comments$")) == 1
    assert len(github.sent("PATCH")) == 1
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"] == f"{MARKER}\nplan: 2 to create"
    assert comment["user"]["login"] == BOT
    assert gh.find_comment(7, MARKER) is not None


def test_marker_is_added_when_the_body_lacks_it(github: GitHubStub, gh: GitHub) -> None:
    gh.upsert_comment(7, MARKER, "no marker here")
    assert github.comments_on(REPO, 7)[0]["body"] == f"{MARKER}\nno marker here"
    assert gh.upsert_comment(7, MARKER, "no marker here").action == "unchanged"


def test_marker_found_across_pages(github: GitHubStub, gh: GitHub) -> None:
    for i in range(150):
        github.add_comment(REPO, 7, f"LGTM {i}")
    ours = github.add_comment(REPO, 7, f"{MARKER}\nold plan", user=BOT)

    result = gh.upsert_comment(7, MARKER, f"{MARKER}\nnew plan")

    assert (result.action, result.id) == ("updated", ours["id"])
    pages = github.sent("GET", r"/issues/7/comments$")
    assert [r.query.get("page", "1") for r in pages] == ["1", "2"]  # followed the Link header
    assert not github.sent("POST", "/comments$")


def test_comment_without_marker_is_never_edited(github: GitHubStub, gh: GitHub) -> None:
    theirs = github.add_comment(REPO, 7, "gitops-job: please look at prod")
    result = gh.upsert_comment(7, MARKER, f"{MARKER}\nplan")
    assert result.action == "created" and result.id != theirs["id"]
    assert not github.sent("PATCH")
    assert github.comments_on(REPO, 7)[0]["body"] == "gitops-job: please look at prod"


def test_find_comment_returns_none_without_marker(github: GitHubStub, gh: GitHub) -> None:
    github.add_comment(REPO, 7, "hello")
    assert gh.find_comment(7, MARKER) is None


def test_create_answered_5xx_is_looked_for_then_posted_again(github: GitHubStub, gh: GitHub) -> None:
    github.fail(502, method="POST", path=r"/issues/7/comments$")
    assert gh.upsert_comment(7, MARKER, f"{MARKER}\nplan").action == "created"
    assert len(github.sent("POST", "/comments$")) == 2  # the 502, then again after looking for the comment
    assert len(github.comments_on(REPO, 7)) == 1


def test_create_applied_but_answered_5xx_is_not_posted_twice(github: GitHubStub, gh: GitHub) -> None:
    github.fail(502, method="POST", path=r"/issues/7/comments$", after_serving=True)
    result = gh.upsert_comment(7, MARKER, f"{MARKER}\nplan")
    assert result.action == "created"
    assert len(github.sent("POST", "/comments$")) == 1
    [comment] = github.comments_on(REPO, 7)
    assert result.id == comment["id"]


# -- pull requests and statuses ---------------------------------------------------------------------------------------


def test_merged_pull_for(github: GitHubStub, gh: GitHub) -> None:
    pr = gh.merged_pull_for(MERGE)
    assert pr is not None
    assert (pr.number, pr.merged, pr.merge_commit_sha, pr.head_sha) == (6, True, MERGE, "b" * 40)
    assert pr.url == f"https://github.com/{REPO}/pull/6"


def test_merged_pull_for_ignores_open_pulls_containing_the_commit(github: GitHubStub, gh: GitHub) -> None:
    github.associate(REPO, HEAD, [7])
    assert gh.merged_pull_for(HEAD) is None


def test_set_status_truncates_description(github: GitHubStub, gh: GitHub) -> None:
    gh.set_status(MERGE, "success", "x" * 200, target_url="https://github.com/octo/app/actions/runs/1")
    [status] = github.statuses(REPO, MERGE)
    assert len(status["description"]) == 140
    assert (status["state"], status["context"]) == ("success", "gitops-job")
    [post] = github.sent("POST", "/statuses/")
    assert post.body["target_url"] == "https://github.com/octo/app/actions/runs/1"


# -- errors -----------------------------------------------------------------------------------------------------------


def test_401_says_token_invalid_and_hides_it(github: GitHubStub) -> None:
    github.add_pull(REPO, 7, head_sha=HEAD)
    secret = "ghs_wrongTOKENvalue1234567890"
    with pytest.raises(GitHubError) as e:
        GitHub(github.url, secret, REPO, retry=FAST).upsert_comment(7, MARKER, "x")
    text = str(e.value)
    assert "401" in text and "missing, expired or invalid" in text and "pull request #7 in octo/app" in text
    assert secret not in text and secret not in repr(e.value.__cause__) and github.token not in text
    assert all("ghs_" not in v for r in github.requests for v in r.headers.values())  # recorded without the token


def test_403_names_the_permission(github: GitHubStub, gh: GitHub) -> None:
    github.fail(403, method="POST", message="Resource not accessible by integration")
    with pytest.raises(GitHubError) as e:
        gh.upsert_comment(7, MARKER, "x")
    assert "pull-requests: write" in str(e.value) and "Resource not accessible by integration" in str(e.value)
    assert e.value.phase == "github" and github.token not in str(e.value)

    github.fail(403, method="POST", path="/statuses/", message="Resource not accessible by integration")
    with pytest.raises(GitHubError, match="statuses: write"):
        gh.set_status(MERGE, "success", "ok")


def test_404_names_what_is_missing(github: GitHubStub, gh: GitHub) -> None:
    with pytest.raises(GitHubError, match=r"pull request #99 in octo/app does not exist"):
        gh.upsert_comment(99, MARKER, "x")
    with pytest.raises(GitHubError, match=r"pull request #7 in octo/missing does not exist.*pull-requests: read"):
        GitHub(github.url, github.token, "octo/missing", retry=FAST).find_comment(7, MARKER)


def test_5xx_is_retried_then_succeeds(github: GitHubStub, gh: GitHub) -> None:
    github.fail(502, times=2, method="GET")
    github.fail(503, method="PATCH")
    github.add_comment(REPO, 7, f"{MARKER}\nold", user=BOT)
    assert gh.upsert_comment(7, MARKER, "new").action == "updated"
    assert len(github.sent("GET")) == 3 and len(github.sent("PATCH")) == 2


def test_5xx_gives_up_after_the_configured_attempts(github: GitHubStub, gh: GitHub) -> None:
    github.fail(500, times=10, method="GET")
    with pytest.raises(GitHubError, match=r"GitHub failed \(HTTP 500"):
        gh.find_comment(7, MARKER)
    assert len(github.sent("GET")) == FAST.attempts + 1


def test_secondary_rate_limit_waits_for_retry_after(github: GitHubStub, gh: GitHub) -> None:
    github.fail(
        403,
        method="POST",
        headers={"Retry-After": "1"},
        message="You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    )
    github.fail(429, method="GET", headers={"Retry-After": "1"}, message="secondary rate limit")
    start = time.monotonic()
    assert gh.upsert_comment(7, MARKER, "x").action == "created"
    assert time.monotonic() - start >= 2.0  # both waits honoured
    assert len(github.sent("POST", "/comments$")) == 2 and len(github.comments_on(REPO, 7)) == 1


def test_primary_rate_limit_reset_beyond_max_wait_fails_fast(github: GitHubStub, gh: GitHub) -> None:
    reset = str(int(time.time()) + 3600)
    github.fail(
        403,
        method="GET",
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
        message="API rate limit exceeded for installation ID 1.",
    )
    start = time.monotonic()
    with pytest.raises(GitHubError, match="rate limited"):
        gh.find_comment(7, MARKER)
    assert time.monotonic() - start < 2


def test_retry_after_beyond_max_wait_fails_fast(github: GitHubStub, gh: GitHub) -> None:
    github.fail(429, method="GET", headers={"Retry-After": "600"}, message="slow down")
    with pytest.raises(GitHubError, match="longer than the 3s"):
        gh.find_comment(7, MARKER)


def test_unreachable_api(github: GitHubStub) -> None:
    with pytest.raises(GitHubError, match="unreachable"):
        GitHub("http://127.0.0.1:9", "t", REPO, retry=RetryPolicy(attempts=0, request_interval=0)).find_comment(7, "m")


def test_no_token() -> None:
    with pytest.raises(GitHubError, match="no GitHub token"):
        GitHub("https://api.github.com", "", REPO)


# -- ActionsContext from real event payloads --------------------------------------------------------------------------


def _env(tmp_path: Path, event: str, payload: dict[str, Any], **extra: str) -> dict[str, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": payload["repository"]["full_name"],
        "GITHUB_SHA": "f" * 40,
        "GITHUB_REF": payload.get("ref", "refs/pull/1/merge"),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        **extra,
    }


@pytest.mark.parametrize("action", ["opened", "synchronize"])
def test_context_pull_request_same_repo(tmp_path: Path, action: str) -> None:
    payload = webhook_example("pull_request", action)
    ctx = ActionsContext.from_env(_env(tmp_path, "pull_request", payload))
    assert ctx is not None
    pr = payload["pull_request"]
    assert ctx.pull_request_number == pr["number"] == payload["number"]
    assert ctx.head_sha == pr["head"]["sha"] != ctx.sha
    assert not ctx.is_fork
    assert ctx.default_branch == payload["repository"]["default_branch"]
    assert ctx.api_url == "https://api.github.com"
    assert ctx.run_url == f"https://github.com/{payload['repository']['full_name']}/actions/runs/42"
    assert ctx.step_summary == tmp_path / "summary.md" and ctx.output == tmp_path / "output"
    assert not ctx.is_default_branch_push


@pytest.mark.parametrize("action", ["opened", "synchronize"])
def test_context_pull_request_from_fork(tmp_path: Path, action: str) -> None:
    # The examples hold no fork PR; derive one: the head lives in the contributor's fork (or was deleted).
    payload = webhook_example("pull_request", action)
    head = payload["pull_request"]["head"]
    head["repo"]["full_name"] = "contributor/Hello-World"
    head["repo"]["fork"] = True
    ctx = ActionsContext.from_env(_env(tmp_path, "pull_request", payload))
    assert ctx is not None and ctx.is_fork
    head["repo"] = None
    ctx = ActionsContext.from_env(_env(tmp_path, "pull_request", payload))
    assert ctx is not None and ctx.is_fork


def test_context_push(tmp_path: Path) -> None:
    payload = next(
        webhook_example("push", index=i)
        for i in range(7)
        if webhook_example("push", index=i)["ref"]
        == "refs/heads/" + webhook_example("push", index=i)["repository"]["default_branch"]
    )
    ctx = ActionsContext.from_env(
        _env(tmp_path, "push", payload, GITHUB_SHA=payload["after"], GITHUB_API_URL="http://x")
    )
    assert ctx is not None
    assert ctx.pull_request_number is None and not ctx.is_fork
    assert ctx.head_sha == payload["after"] and ctx.api_url == "http://x"
    assert ctx.is_default_branch_push


def test_context_outside_actions(tmp_path: Path) -> None:
    assert ActionsContext.from_env({}) is None
    assert ActionsContext.from_env({"GITHUB_ACTIONS": "false"}) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot read the event payload"), ("{not json", "not JSON"), ("[1]", "not a JSON object")],
)
def test_context_bad_payload(tmp_path: Path, content: str | None, reason: str) -> None:
    env = _env(tmp_path, "pull_request", webhook_example("pull_request", "opened"))
    if content is None:
        Path(env["GITHUB_EVENT_PATH"]).unlink()
    else:
        Path(env["GITHUB_EVENT_PATH"]).write_text(content)
    with pytest.raises(GitHubError, match=reason) as e:
        ActionsContext.from_env(env)
    assert env["GITHUB_EVENT_PATH"] in str(e.value)


def test_context_missing_variables() -> None:
    with pytest.raises(GitHubError, match="GITHUB_EVENT_PATH, GITHUB_REPOSITORY, GITHUB_SHA not set"):
        ActionsContext.from_env({"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push"})


# -- the stub can fail ------------------------------------------------------------------------------------------------


def test_stub_rejects_a_request_body_the_schema_rejects(github: GitHubStub) -> None:
    github.add_pull(REPO, 7, head_sha=HEAD)
    url = f"{github.url}/repos/{REPO}/issues/7/comments"
    r = requests.post(url, json={"text": "no body"}, headers={"Authorization": f"Bearer {github.token}"}, timeout=5)
    assert r.status_code == 500
    assert "issues/create-comment" in r.json()["message"] and "'body' is a required property" in r.json()["message"]
    assert len(github.violations) == 1 and not github.comments_on(REPO, 7)
    github.violations.clear()


def test_stub_rejects_bad_parameters_and_unknown_routes(github: GitHubStub) -> None:
    github.add_pull(REPO, 7, head_sha=HEAD)
    auth = {"Authorization": f"token {github.token}"}
    assert (
        requests.get(f"{github.url}/repos/{REPO}/issues/7/comments?per_page=lots", headers=auth, timeout=5).status_code
        == 500
    )
    assert (
        requests.get(f"{github.url}/repos/{REPO}/issues/7/comments?pgae=2", headers=auth, timeout=5).status_code == 500
    )
    assert requests.get(f"{github.url}/repos/{REPO}/nonsense/7", headers=auth, timeout=5).status_code == 500
    assert [v.split(":")[0] for v in github.violations] == [
        "issues/list-comments (GET /repos/octo/app/issues/7/comments)",
        "issues/list-comments (GET /repos/octo/app/issues/7/comments)",
        "GET /repos/octo/app/nonsense/7",
    ]
    github.violations.clear()


def test_stub_catches_an_invalid_response(github: GitHubStub, gh: GitHub) -> None:
    github.add_comment(REPO, 7, f"{MARKER}\nold", user=BOT)

    def break_comment(_req: object, body: Any) -> Any:
        body[0]["id"] = "not-an-integer"
        return body

    github.tamper(break_comment)
    assert gh.find_comment(7, MARKER) is not None  # the invalid answer went out as a 500, the retry got a valid one
    [violation] = github.violations
    assert "issues/list-comments" in violation and "0/id: 'not-an-integer' is not of type 'integer'" in violation
    github.violations.clear()


def test_stub_requires_a_token(github: GitHubStub) -> None:
    github.add_repo(REPO)
    assert requests.get(f"{github.url}/repos/{REPO}", timeout=5).status_code == 401
    r = requests.get(f"{github.url}/repos/{REPO}", headers={"Authorization": f"Bearer {github.token}"}, timeout=5)
    assert r.status_code == 200 and r.json()["full_name"] == REPO


def test_stub_serves_pull_and_issue_as_github_describes_them(github: GitHubStub) -> None:
    github.add_pull(REPO, 7, head_sha=HEAD, head_repo="contributor/app")
    auth = {"Authorization": f"token {github.token}"}
    pr = requests.get(f"{github.url}/repos/{REPO}/pulls/7", headers=auth, timeout=5).json()
    assert pr["head"]["sha"] == HEAD and pr["head"]["repo"]["full_name"] == "contributor/app"
    issue = requests.get(f"{github.url}/repos/{REPO}/issues/7", headers=auth, timeout=5).json()
    assert issue["number"] == 7 and "pull_request" in issue
    assert requests.get(f"{github.url}/repos/{REPO}/pulls/8", headers=auth, timeout=5).status_code == 404


# -- issue 12: GitHub's timing, authorship and retries ----------------------------------------------------------------
M2, M3, M4 = "d" * 40, "e" * 40, "9" * 40


def test_item12_1_merged_pull_found_when_the_index_lags_10s(github: GitHubStub, gh: GitHub, clock: FakeClock) -> None:
    """Right after a merge ``GET /commits/{sha}/pulls`` is empty: it is asked again with backoff (fake time: no real
    waiting) until the index lists the pull request, 10 s later, well inside the 30 s allowed."""
    github.add_pull(REPO, 8, head_sha="8" * 40, merged=True, merge_commit_sha=M2, index_lag=10)
    pr = gh.merged_pull_for(M2, "Update settings")  # a custom merge message: no number to fall back to
    assert pr is not None and (pr.number, pr.merge_commit_sha) == (8, M2)
    asked = github.sent("GET", f"/commits/{M2}/pulls$")
    assert len(asked) >= 3
    assert 10 <= sum(clock.slept) < 30


def test_item12_1_merged_pull_by_the_number_in_its_message_when_the_index_stays_empty(
    github: GitHubStub, gh: GitHub, clock: FakeClock
) -> None:
    """The index still empty: the number in a merge or squash message, confirmed by ``GET /pulls/{n}`` (merged, with
    this very merge commit); a number naming another pull request (or an issue) is not taken."""
    github.add_pull(REPO, 8, head_sha="8" * 40, merged=True, merge_commit_sha=M2, index_lag=3600)
    pr = gh.merged_pull_for(M2, "Merge pull request #8 from acme/settings\n\nFixes #6 and #99")
    assert pr is not None and pr.number == 8
    assert github.sent("GET", r"/pulls/8$") and not clock.slept  # confirmed at once: no waiting for the index
    github.add_pull(REPO, 9, head_sha="7" * 40, merged=True, merge_commit_sha=M3, index_lag=3600)
    assert gh.merged_pull_for(M3, "Retry (#6), see #99") is None  # #6 merged as another commit; #99 does not exist


def test_item12_1_merge_queue_batch_finds_every_pull(github: GitHubStub, gh: GitHub) -> None:
    """A merge queue merges a batch with one push: every merged pull request of its commits is found, in order."""
    github.add_pull(REPO, 11, head_sha="1" * 40, merged=True, merge_commit_sha=M2)
    github.add_pull(REPO, 12, head_sha="2" * 40, merged=True, merge_commit_sha=M3, index_lag=3600)
    github.add_pull(REPO, 13, head_sha="3" * 40, merged=True, merge_commit_sha=M4, index_lag=5)
    github.associate(REPO, "4" * 40, [13])  # a commit of #13 itself, not its merge commit
    pushed = [PushedCommit(M2, "First (#11)"), PushedCommit(M3, "Second (#12)"), PushedCommit("4" * 40, "wip"),
              PushedCommit(M4, "Merge pull request #13 from acme/third")]  # fmt: skip
    assert [p.number for p in gh.merged_pulls(pushed)] == [11, 12, 13]


def test_item12_1_a_push_without_pull_request_gives_up_after_the_index_wait(
    github: GitHubStub, gh: GitHub, clock: FakeClock
) -> None:
    github.associate(REPO, M2, [])
    assert gh.merged_pull_for(M2, "hotfix pushed by hand") is None
    assert 29 <= sum(clock.slept) <= 30 and len(clock.slept) <= 8  # bounded: a few requests, never past 30 s


def test_item12_2c_a_comment_by_another_user_is_never_found_nor_edited(github: GitHubStub) -> None:
    """Someone else's comment carrying our marker (and a digest) is not ours: never edited, never returned; the
    token's identity comes from GraphQL's ``viewer`` (``GET /user`` refuses an Actions token), asked once."""
    github.add_pull(REPO, 7, head_sha=HEAD)
    planted = github.add_comment(REPO, 7, f"{MARKER}\nplan\n<!-- gitops-job:digest sha256:{'0' * 64} -->",
                                 user="mallory")  # fmt: skip
    gh = GitHub(github.url, github.token, REPO, retry=FAST)
    assert gh.find_comment(7, MARKER) is None
    made = gh.upsert_comment(7, MARKER, f"{MARKER}\nour plan")
    assert made.action == "created" and made.id != planted["id"]
    assert gh.upsert_comment(7, MARKER, f"{MARKER}\nour plan, again").id == made.id
    assert not github.sent("PATCH", rf"/comments/{planted['id']}$")
    assert github.comments_on(REPO, 7)[0]["body"] == planted["body"]
    found = gh.find_comment(7, MARKER)
    assert found is not None and (found.id, found.author) == (made.id, BOT)
    assert len(github.sent("POST", "^/graphql$")) == 1


def test_item12_2b_a_changed_digest_refreshes_the_comment(github: GitHubStub) -> None:
    """The comment's visible text is the same but the plan's digest is not: the comment is edited, so re-running the
    plan always refreshes a stale digest (and an identical run still leaves it alone)."""
    from gitops_job.github.actions import publish, reviewed_digest
    from gitops_job.report.markdown import Page, markdown

    github.add_pull(REPO, 7, head_sha=HEAD)
    gh = GitHub(github.url, github.token, REPO, retry=FAST)
    old, new = "sha256:" + "a" * 64, "sha256:" + "b" * 64

    def body(d: str) -> str:
        return markdown(None, Page(marker=MARKER, target="prod", notice="3 objects", footer=["run"], digest=d))

    publish(gh, 7, MARKER, body(old), old)
    publish(gh, 7, MARKER, body(new), new)
    [comment] = github.comments_on(REPO, 7)
    assert reviewed_digest(comment["body"]) == new
    publish(gh, 7, MARKER, body(new), new)
    assert len(github.sent("PATCH")) == 1


def test_item12_5_a_comment_answered_after_a_read_timeout_is_not_posted_again(github: GitHubStub) -> None:
    """GitHub creates the comment but answers after the client's read timeout: urllib3 must not re-send the POST
    (two sticky comments); the client looks the comment up and finds it."""
    github.add_pull(REPO, 7, head_sha=HEAD)
    gh = GitHub(github.url, github.token, REPO, retry=replace(FAST, timeout=1))
    github.slow(method="POST", path=r"/issues/7/comments$")
    result = gh.upsert_comment(7, MARKER, f"{MARKER}\nplan")
    [comment] = github.comments_on(REPO, 7)
    assert result.id == comment["id"]
    assert len(github.sent("POST", r"/issues/7/comments$")) == 1


def test_a_status_answered_after_a_read_timeout_is_not_an_error(github: GitHubStub) -> None:
    github.add_pull(REPO, 6, head_sha="b" * 40, merged=True, merge_commit_sha=MERGE)
    gh = GitHub(github.url, github.token, REPO, retry=replace(FAST, timeout=1))
    github.slow(method="POST", path="/statuses/")
    gh.set_status(MERGE, "success", "ok")
    assert [s["state"] for s in github.statuses(REPO, MERGE)][-1] == "success"


def test_item12_3_a_pull_request_inside_a_repository_forked_from_a_template_is_not_a_fork(tmp_path: Path) -> None:
    """``head.repo.fork`` says the repository is itself a fork (of a template, say): a PR between two of its branches
    is no fork PR. Only another ``full_name`` makes one."""
    payload = webhook_example("pull_request", "opened")
    for side in ("head", "base"):
        payload["pull_request"][side]["repo"]["fork"] = True
    ctx = ActionsContext.from_env(_env(tmp_path, "pull_request", payload))
    assert ctx is not None and not ctx.is_fork and not ctx.is_dependabot
    ctx = ActionsContext.from_env(_env(tmp_path, "pull_request", payload, GITHUB_ACTOR="dependabot[bot]"))
    assert ctx is not None and ctx.is_dependabot and not ctx.is_fork


def test_item12_1_a_push_lists_its_commits_head_last(tmp_path: Path) -> None:
    payload = webhook_example("push")
    payload["commits"] = [{**payload["head_commit"], "id": M2, "message": "First (#11)"},
                          {**payload["head_commit"], "id": M3, "message": "Second (#12)"}]  # fmt: skip
    payload["head_commit"] = {**payload["head_commit"], "id": M3, "message": "Second (#12)"}
    ctx = ActionsContext.from_env(_env(tmp_path, "push", payload, GITHUB_SHA=M3))
    assert ctx is not None
    assert ctx.pushed_commits == (PushedCommit(M2, "First (#11)"), PushedCommit(M3, "Second (#12)"))
