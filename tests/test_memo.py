"""The memo a scheduled run keeps in its state dir: what it remembers, when it forgets, and that nothing a caller does
to what it got changes what the next caller gets."""

from __future__ import annotations

import marshal
from pathlib import Path
from typing import Any

import pytest

from gitops_job import memo, yamlio
from gitops_job.config import load
from gitops_job.errors import ConfigError, RenderError
from tests.test_yamlio import SAME


def test_a_value_put_is_got_back_in_the_next_run_and_only_for_the_same_text_and_kind(tmp_path: Path) -> None:
    with memo.kept(tmp_path) as first:
        assert first.get("yaml", "a: 1\n") is None
        first.put("yaml", "a: 1\n", [({"a": 1}, 1)])
    with memo.kept(tmp_path) as second:
        assert second.get("yaml", "a: 1\n") == [({"a": 1}, 1)]
        assert second.get("yaml", "a: 2\n") is None
        assert second.get("schema", "a: 1\n") is None


def test_every_get_is_a_fresh_copy_so_a_caller_that_changes_it_changes_nothing_kept(tmp_path: Path) -> None:
    with memo.kept(tmp_path) as kept:
        value: list[Any] = [{"metadata": {"labels": {}}}]
        kept.put("yaml", "t", value)
        value[0]["metadata"]["labels"]["ours"] = "x"  # the caller labels what it parsed
        got = kept.get("yaml", "t")
        assert got == [{"metadata": {"labels": {}}}]
        got[0]["metadata"]["labels"]["again"] = "y"
        assert kept.get("yaml", "t") == [{"metadata": {"labels": {}}}]
    with memo.kept(tmp_path) as later:
        assert later.get("yaml", "t") == [{"metadata": {"labels": {}}}]


def test_the_file_keeps_what_the_last_run_used_and_is_not_rewritten_when_that_did_not_change(tmp_path: Path) -> None:
    with memo.kept(tmp_path) as kept:
        kept.put("yaml", "old", 1)
        kept.put("yaml", "kept", 2)
    with memo.kept(tmp_path) as kept:
        assert kept.get("yaml", "kept") == 2  # "old" is not asked for: it is dropped
    file = tmp_path / memo.FILE
    with memo.kept(tmp_path) as kept:
        assert kept.get("yaml", "old") is None
        assert kept.get("yaml", "kept") == 2
    before = file.read_bytes()
    file.write_bytes(before)  # the same content, a known mtime
    touched = file.stat().st_mtime_ns
    with memo.kept(tmp_path) as kept:
        assert kept.get("yaml", "kept") == 2
    assert file.stat().st_mtime_ns == touched


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not marshal at all", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(marshal.dumps({"": (1, "0.0.0-another-version"), memo.Memo.key("yaml", "t"): b"x"}), id="version"),
        pytest.param(marshal.dumps([1, 2]), id="not-a-mapping"),
    ],
)
def test_a_file_that_is_unreadable_or_from_another_version_is_ignored(tmp_path: Path, content: bytes) -> None:
    (tmp_path / memo.FILE).write_bytes(content)
    with memo.kept(tmp_path) as kept:
        assert kept.get("yaml", "t") is None


def test_without_a_state_dir_nothing_is_kept_or_written(tmp_path: Path) -> None:
    with memo.kept(None) as kept:
        kept.put("yaml", "t", 1)
        assert kept.get("yaml", "t") is None
    assert memo.current().get("yaml", "t") is None  # the run is over: back to the memo that keeps nothing


@pytest.mark.parametrize("text", SAME)
def test_documents_from_the_memo_equal_a_fresh_parse(tmp_path: Path, text: str) -> None:
    try:
        fresh = yamlio.load_documents(text, "f.yaml")
    except RenderError as refused:
        for _ in range(2):  # a refusal is never kept: the next run refuses it again, with the same words
            with memo.kept(tmp_path), pytest.raises(RenderError) as again:
                yamlio.load_documents(text, "f.yaml")
            assert str(again.value) == str(refused)
        return
    for _ in range(2):  # the first run parses and keeps, the second gets it from the file
        with memo.kept(tmp_path):
            assert yamlio.load_documents(text, "f.yaml") == fresh


def test_a_kept_parse_is_not_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
    with memo.kept(tmp_path):
        yamlio.load_documents(text, "a.yaml")

    def parse(*_: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(yamlio, "_load_documents", parse)
    with memo.kept(tmp_path):
        assert yamlio.load_documents(text, "a.yaml") == [({"apiVersion": "v1", "kind": "ConfigMap",
                                                            "metadata": {"name": "a"}}, 1)]  # fmt: skip
    with memo.kept(tmp_path), pytest.raises(AssertionError):
        yamlio.load_documents(text + "# changed\n", "a.yaml")


def test_a_config_that_passed_the_schema_skips_the_checker_and_one_that_failed_is_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, state = tmp_path / "repo", tmp_path / "state"
    (repo / "app").mkdir(parents=True)
    good = "stacks:\n  - name: app\n    path: app\n"
    (repo / "gitops.yaml").write_text(good)
    with memo.kept(state):
        load.load_config(repo)
    calls: list[object] = []
    real = load._validator

    def counted() -> Any:
        calls.append(1)
        return real()

    monkeypatch.setattr(load, "_validator", counted)
    with memo.kept(state):
        assert [s.name for s in load.load_config(repo).stacks] == ["app"]
    assert calls == []
    (repo / "gitops.yaml").write_text(good + "unknown: 1\n")
    for _ in range(2):
        with memo.kept(state), pytest.raises(ConfigError, match="unknown"):
            load.load_config(repo)
    assert len(calls) == 2
