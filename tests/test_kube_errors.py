"""kube.py's error translation by HTTP status, and what ``request`` retries, table-driven. The transport
(``Kube._send``) is replaced by a script of answers; no cluster, no sleeping."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitops_job.errors import ClusterUnreachableError
from gitops_job.kube import ApiError, Conflict, Forbidden, Gone, Invalid, Kube, NotFound, _retry_after, _translate


def status_body(code: int, message: str, reason: str = "", **details: Any) -> bytes:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("status", "raw", "cls", "reason"),
    [
        pytest.param(404, status_body(404, 'configmaps "x" not found'), NotFound, 'configmaps "x" not found', id="404"),
        pytest.param(401, status_body(401, "Unauthorized"), Forbidden, "Unauthorized", id="401"),
        pytest.param(
            403, status_body(403, "forbidden: User cannot get"), Forbidden, "forbidden: User cannot get", id="403"
        ),
        pytest.param(
            409, status_body(409, "Apply failed with 1 conflict"), Conflict, "Apply failed with 1 conflict", id="409"
        ),
        pytest.param(410, status_body(410, "too old resource version"), Gone, "too old resource version", id="410"),
        pytest.param(
            422, status_body(422, "spec.replicas: Invalid value"), Invalid, "spec.replicas: Invalid value", id="422"
        ),
        pytest.param(
            500,
            status_body(500, "failed to create typed patch object (/v1, Kind=ConfigMap): .data: expected map"),
            Invalid,
            "failed to create typed patch object (/v1, Kind=ConfigMap): .data: expected map",
            id="500-typed-patch-is-invalid",
        ),
        pytest.param(
            500, status_body(500, "etcdserver: leader changed"), ApiError, "etcdserver: leader changed", id="500-other"
        ),
        pytest.param(429, status_body(429, "too many requests"), ApiError, "too many requests", id="429"),
        pytest.param(
            400, status_body(400, "", reason="BadRequest"), ApiError, "BadRequest", id="reason-without-message"
        ),
        pytest.param(503, b"{}", ApiError, "HTTP 503", id="empty-status"),
        pytest.param(502, b"<html>Bad Gateway</html>", ApiError, "<html>Bad Gateway</html>", id="not-json"),
        pytest.param(502, b"x" * 600, ApiError, "x" * 500, id="not-json-cut-at-500"),
        pytest.param(418, b"\xff\xfe", ApiError, "\ufffd\ufffd", id="not-utf8"),
    ],
)
def test_translate(status: int, raw: bytes, cls: type[ApiError], reason: str) -> None:
    err = _translate(status, raw, "ConfigMap/apps/x")
    assert type(err) is cls
    assert (err.status, err.reason, err.where) == (status, reason, "ConfigMap/apps/x")
    assert str(err) == f"api: ConfigMap/apps/x: {reason}"


def test_translate_keeps_the_body_and_a_conflict_lists_its_fields() -> None:
    raw = status_body(409, "Apply failed with 2 conflicts", causes=[
        {"type": "FieldManagerConflict", "message": 'conflict with "kubectl"', "field": ".data.a"},
        {"type": "FieldManagerConflict", "message": 'conflict with "helm"', "field": ".spec.replicas"},
    ])  # fmt: skip
    err = _translate(409, raw, "x")
    assert isinstance(err, Conflict)
    assert err.body["code"] == 409
    assert err.conflicts == [(".data.a", 'conflict with "kubectl"'), (".spec.replicas", 'conflict with "helm"')]


def test_a_conflict_without_causes_lists_none() -> None:
    err = _translate(409, status_body(409, "AlreadyExists"), "x")
    assert isinstance(err, Conflict)
    assert err.conflicts == []


@pytest.mark.parametrize(
    ("headers", "status", "attempt", "wait"),
    [
        pytest.param({"Retry-After": "3"}, 429, 0, 3.0, id="retry-after"),
        pytest.param({"Retry-After": "0.5"}, 503, 2, 0.5, id="retry-after-fraction"),
        pytest.param({"Retry-After": "-4"}, 429, 0, 0.0, id="negative-is-zero"),
        pytest.param({}, 429, 3, 1.0, id="429-without-header-one-second"),
        pytest.param({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 429, 0, 1.0, id="http-date-not-understood"),
        pytest.param({}, 503, 0, 0.5, id="backoff-0"),
        pytest.param({}, 503, 1, 1.0, id="backoff-1"),
        pytest.param({}, 500, 3, 4.0, id="backoff-3"),
        pytest.param({}, 500, 6, 8.0, id="backoff-capped"),
    ],
)
def test_retry_after(headers: dict[str, str], status: int, attempt: int, wait: float) -> None:
    assert _retry_after(headers, status, attempt) == wait


# -- request: what is retried ------------------------------------------------------------------------------------------
Answer = tuple[int, bytes, dict[str, str]] | Exception


class Scripted(Kube):
    """A Kube whose transport answers from a script, and whose sleeps are recorded instead of slept."""

    def __init__(self, answers: list[Answer]) -> None:
        super().__init__(None)
        self.answers = list(answers)
        self.sent: list[str] = []
        self.slept: list[float] = []

    def _send(self, method: str, path: str, *args: Any, **kw: Any) -> Any:
        self.sent.append(method)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _sleep(self, seconds: float, method: str, path: str, where: str | None) -> None:
        self.slept.append(seconds)


OK = (200, b'{"kind": "ConfigMap"}', {})
DOWN = ClusterUnreachableError("connection refused")


def answer(status: int, retry_after: str | None = None) -> Answer:
    return (status, status_body(status, f"HTTP {status} said so"), {"Retry-After": retry_after} if retry_after else {})


@pytest.mark.parametrize(
    ("method", "answers", "sent", "slept"),
    [
        pytest.param("GET", [OK], 1, [], id="ok-at-once"),
        pytest.param("GET", [answer(429, "2"), OK], 2, [2.0], id="429-waits-retry-after"),
        pytest.param("PATCH", [answer(429, "2"), OK], 2, [2.0], id="429-write-retried-too"),
        pytest.param("GET", [answer(503), answer(500), OK], 3, [0.5, 1.0], id="5xx-read-retried-with-backoff"),
        pytest.param("GET", [answer(503, "7"), OK], 2, [7.0], id="5xx-read-waits-retry-after"),
    ],
)
def test_request_retries(method: str, answers: list[Answer], sent: int, slept: list[float]) -> None:
    kube = Scripted(answers)
    assert kube.request(method, "/api/v1/namespaces/a/configmaps/x") == {"kind": "ConfigMap"}
    assert (len(kube.sent), kube.slept) == (sent, slept)


@pytest.mark.parametrize(
    ("method", "answers", "cls", "sent"),
    [
        pytest.param("PATCH", [answer(500), OK], ApiError, 1, id="5xx-write-not-retried"),
        pytest.param("DELETE", [answer(503), OK], ApiError, 1, id="5xx-delete-not-retried"),
        pytest.param("GET", [answer(404), OK], NotFound, 1, id="404-not-retried"),
        pytest.param("GET", [answer(403), OK], Forbidden, 1, id="403-not-retried"),
        pytest.param("PATCH", [answer(409), OK], Conflict, 1, id="409-not-retried"),
        pytest.param("PATCH", [answer(422), OK], Invalid, 1, id="422-not-retried"),
        pytest.param("GET", [answer(500)] * (Kube.RETRIES + 1), ApiError, 5, id="5xx-read-gives-up-after-retries"),
        pytest.param("GET", [answer(429)] * (Kube.RETRIES + 1), ApiError, 5, id="429-gives-up-after-retries"),
    ],
)
def test_request_fails(method: str, answers: list[Answer], cls: type[ApiError], sent: int) -> None:
    kube = Scripted(answers)
    with pytest.raises(cls) as err:
        kube.request(method, "/api/v1/namespaces/a/configmaps/x", where="ConfigMap/a/x")
    assert type(err.value) is cls
    assert err.value.where == "ConfigMap/a/x"
    assert len(kube.sent) == sent


def test_request_names_the_method_and_path_when_no_where_is_given() -> None:
    with pytest.raises(NotFound) as err:
        Scripted([answer(404)]).request("GET", "/api/v1/namespaces/a/configmaps/x")
    assert err.value.where == "GET /api/v1/namespaces/a/configmaps/x"


def test_an_unreachable_server_is_retried_then_reported() -> None:
    kube = Scripted([DOWN, DOWN, OK])
    assert kube.request("PATCH", "/x") == {"kind": "ConfigMap"}
    assert len(kube.sent) == 3
    assert len(kube.slept) == 2
    kube = Scripted([DOWN] * (Kube.RETRIES + 1))
    with pytest.raises(ClusterUnreachableError, match="connection refused"):
        kube.request("GET", "/x")
    assert len(kube.sent) == Kube.RETRIES + 1
