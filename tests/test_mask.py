"""reconcile/mask.py's :class:`Masker`, table-driven: what it learns, the tokens it gives (one per value, numbered in
learning order), what ``mask`` hides in a copy and what ``scrub`` finds in any text. Pure; tests/test_masking.py
searches every real output for planted values against the cluster."""

from __future__ import annotations

import base64
import copy
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from gitops_job.reconcile.mask import LAST_APPLIED, MIN_SCRUB_LENGTH, Masker


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(name: str = "db", data: dict[str, Any] | None = None, string_data: dict[str, Any] | None = None,
           **meta: Any) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "apps", **meta},
    }
    if data is not None:
        body["data"] = data
    if string_data is not None:
        body["stringData"] = string_data
    return body


def configmap(name: str = "settings", **data: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps"}, "data": data}


def learned(*objects: dict[str, Any]) -> Masker:
    m = Masker()
    m.learn(objects)
    return m


# -- learn + scrub: which values become which token --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("objects", "text", "expected"),
    [
        pytest.param([secret(data={"p": b64("hunter2")})], "pw hunter2 here", "pw <secret #1> here", id="data-plain"),
        pytest.param(
            [secret(data={"p": b64("hunter2")})], f"pw {b64('hunter2')}", "pw <secret #1>", id="data-base64-form"
        ),
        pytest.param([secret(string_data={"p": "hunter2"})], "hunter2", "<secret #1>", id="stringdata"),
        pytest.param([secret(string_data={"p": 123456})], "port 123456", "port <secret #1>", id="stringdata-number"),
        pytest.param(
            [secret(string_data={"p": "a b&c=d"})],
            f"url ?x={quote('a b&c=d', safe='')}&y={quote_plus('a b&c=d')}",
            "url ?x=<secret #1>&y=<secret #1>",
            id="url-encoded-forms",
        ),
        pytest.param(
            [secret(string_data={"a": "first-value", "b": "second-value"})],
            "second-value then first-value",
            "<secret #2> then <secret #1>",
            id="numbered-in-learning-order",
        ),
        pytest.param(
            [secret(string_data={"a": "same-value"}), secret("other", string_data={"b": "same-value"})],
            "same-value same-value",
            "<secret #1> <secret #1>",
            id="one-token-per-value",
        ),
        pytest.param(
            [secret(string_data={"a": "token"}), secret(string_data={"b": "token-longer"})],
            "token-longer",
            "<secret #2>",
            id="longest-form-first",
        ),
        pytest.param([configmap(v="hunter2")], "hunter2", "hunter2", id="configmap-values-are-not-secret"),
        pytest.param(
            [{"apiVersion": "example.com/v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {"p": b64("abcd")}}],
            "abcd",
            "abcd",
            id="a-custom-kind-named-secret-is-not-one",
        ),
        pytest.param([secret(string_data={"p": "abc"})], "abc", "<secret #1>", id="short-value-as-a-whole-string"),
        pytest.param(
            [secret(string_data={"p": "abc"})], "xabcx abc", "xabcx abc", id="short-value-not-searched-inside-text"
        ),
        pytest.param([secret(data={"p": "%%%not-base64"})], "%%%not-base64", "<secret #1>", id="data-not-base64"),
        pytest.param([secret()], "nothing to hide", "nothing to hide", id="secret-without-data"),
        pytest.param([secret(string_data={"p": "hunter2"})], "<secret #1>", "<secret #1>", id="a-token-stays"),
    ],
)
def test_scrub(objects: list[dict[str, Any]], text: str, expected: str) -> None:
    assert learned(*objects).scrub(text) == expected


def test_min_scrub_length_is_four() -> None:
    assert MIN_SCRUB_LENGTH == 4
    m = learned(secret(string_data={"a": "abcd", "b": "xyz"}))
    assert (m.scrub("-abcd-"), m.scrub("-xyz-")) == ("-<secret #1>-", "-xyz-")


# -- mask: a copy for display ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            secret(data={"p": b64("hunter2"), "q": b64("other-value")}),
            secret(data={"p": "<secret #1>", "q": "<secret #2>"}),
            id="data",
        ),
        pytest.param(secret(string_data={"p": "hunter2"}), secret(string_data={"p": "<secret #1>"}), id="stringdata"),
        pytest.param(
            configmap(url="postgres://u:hunter2@db", other="plain"),
            configmap(url="postgres://u:<secret #1>@db", other="plain"),
            id="scrubbed-in-other-objects",
        ),
        pytest.param(
            {**configmap(), "data": {"hunter2": "key-is-secret"}},
            {**configmap(), "data": {"<secret #1>": "key-is-secret"}},
            id="map-keys-scrubbed",
        ),
        pytest.param(
            {**configmap(), "spec": {"env": [{"value": "hunter2"}, 3, None]}},
            {**configmap(), "spec": {"env": [{"value": "<secret #1>"}, 3, None]}},
            id="lists-and-non-strings",
        ),
        pytest.param(configmap("hunter2"), configmap("hunter2"), id="a-name-is-never-masked"),
        pytest.param(
            secret("db", data={"p": b64("never-learned")}),
            secret("db", data={"p": "<secret #2>"}),
            id="a-value-never-learned-still-masked",
        ),
    ],
)
def test_mask(obj: dict[str, Any], expected: dict[str, Any]) -> None:
    m = learned(secret("seed", string_data={"s": "hunter2"}))
    untouched = copy.deepcopy(obj)
    masked = m.mask(obj)
    assert masked == expected
    assert obj == untouched  # a copy: what is sent to the API is never masked


def test_values_met_late_are_counted() -> None:
    m = learned(secret(string_data={"a": "known-value"}))
    m.mask(secret(string_data={"a": "known-value"}))
    assert m.late == 0
    m.mask(secret(string_data={"a": "late-value", "b": "late-value"}))
    assert m.late == 1


def test_the_last_applied_annotation() -> None:
    secret_annotation = '{"stringData":{"p":"hunter2"}}'
    cm_annotation = '{"data":{"v":"plain"}}'
    sec = secret(string_data={"p": "hunter2"}, annotations={LAST_APPLIED: secret_annotation})
    cm = {**configmap(v="plain"), "metadata": {"name": "c", "annotations": {LAST_APPLIED: cm_annotation}}}
    m = learned(sec, cm)
    # a Secret's is searched for like its values; another object's is masked only as a whole string
    assert m.mask(sec)["metadata"]["annotations"][LAST_APPLIED] == "<secret #2>"
    assert m.mask(cm)["metadata"]["annotations"][LAST_APPLIED] == "<secret #3>"
    assert m.scrub(f"x {secret_annotation} y") == "x <secret #2> y"
    assert m.scrub(f"x {cm_annotation} y") == f"x {cm_annotation} y"


def test_token_mints_in_order_and_returns_the_same_token() -> None:
    m = Masker()
    assert [m.token("alpha"), m.token("beta"), m.token("alpha")] == ["<secret #1>", "<secret #2>", "<secret #1>"]
    assert m.scrub(b64("beta")) == "<secret #2>"
