"""The one path rule (gitops_job.config.paths) the config and every renderer use: relative, and, symlinks resolved,
inside the repository and outside ``.git``."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_job.config.paths import PathRefused, Refusal, refusal_of, resolve


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a stack directory, a ``.git``, and symlinks pointing inside, out of it and into ``.git``."""
    root = tmp_path / "repo"
    (root / "apps/web").mkdir(parents=True)
    (root / "apps/web/cm.yaml").write_text("kind: ConfigMap\n")
    (root / "shared").mkdir()
    (root / ".git").mkdir()
    (root / ".git/config").write_text("token\n")
    (tmp_path / "outside").mkdir()
    (root / "apps/web/shared").symlink_to("../../shared")
    (root / "apps/web/out").symlink_to(tmp_path / "outside")
    (root / "apps/web/git").symlink_to("../../.git")
    (root / "apps/web/loop").symlink_to("loop")
    return root


@pytest.mark.parametrize(
    ("path", "base", "expected"),
    [
        pytest.param("apps/web/cm.yaml", None, "apps/web/cm.yaml", id="normal"),
        pytest.param("apps/web/missing.yaml", None, "apps/web/missing.yaml", id="normal-missing-is-the-callers-call"),
        pytest.param("apps/../apps/web", None, "apps/web", id="dotdot-staying-inside"),
        pytest.param("../../shared", "apps/web", "shared", id="dotdot-from-a-base"),
        pytest.param("apps/web/shared", None, "shared", id="symlink-inside"),
        pytest.param("shared", "apps/web", "shared", id="symlink-inside-from-a-base"),
        pytest.param("", None, "", id="the-root-itself"),
    ],
)
def test_allowed_paths_resolve_to_their_real_place(repo: Path, path: str, base: str | None, expected: str) -> None:
    found = resolve(repo, path, base=repo / base if base else None)
    assert found == repo / expected


@pytest.mark.parametrize(
    ("path", "base", "refusal", "message"),
    [
        pytest.param(
            "/etc/passwd",
            None,
            Refusal.ABSOLUTE,
            "'/etc/passwd' is absolute; give a path relative to the repository root",
            id="absolute",
        ),
        pytest.param(
            "/etc/passwd",
            "apps/web",
            Refusal.ABSOLUTE,
            "'/etc/passwd' is absolute; give a relative path",
            id="absolute-from-a-base",
        ),
        pytest.param(
            "https://example.com/values.yaml",
            None,
            Refusal.URL,
            "'https://example.com/values.yaml' is a URL; gitops-job reads only files inside the repository",
            id="url",
        ),
        pytest.param(
            "apps/../../etc",
            None,
            Refusal.ESCAPES,
            "'apps/../../etc' escapes the repository; give a path inside it",
            id="dotdot",
        ),
        pytest.param(
            "../../../outside",
            "apps/web",
            Refusal.ESCAPES,
            "'../../../outside' escapes the repository; give a path inside it",
            id="dotdot-from-a-base",
        ),
        pytest.param(
            "apps/web/out/file.yaml",
            None,
            Refusal.ESCAPES_THROUGH_SYMLINK,
            "'apps/web/out/file.yaml' escapes the repository through a symlink; point the symlink inside the "
            "repository",
            id="symlink-out-of-the-repository",
        ),
        pytest.param(
            ".git/config",
            None,
            Refusal.IN_GIT,
            "'.git/config' is inside .git (refused: it may hold credentials)",
            id="dot-git",
        ),
        pytest.param(
            "git/config",
            "apps/web",
            Refusal.IN_GIT,
            "'git/config' is inside .git (refused: it may hold credentials)",
            id="symlink-into-dot-git",
        ),
        pytest.param(
            "apps/.git/config",
            None,
            Refusal.IN_GIT,
            "'apps/.git/config' is inside .git (refused: it may hold credentials)",
            id="dot-git-below-the-root",
        ),
    ],
)
def test_refused_paths_say_which_path_why_and_what_to_do(
    repo: Path, path: str, base: str | None, refusal: Refusal, message: str
) -> None:
    with pytest.raises(PathRefused) as info:
        resolve(repo, path, base=repo / base if base else None)
    assert (info.value.path, info.value.refusal, str(info.value)) == (path, refusal, message)


def test_a_symlink_loop_is_no_crash(repo: Path) -> None:
    """A loop resolves to a path inside the repository that does not exist: the caller reports it missing."""
    assert not resolve(repo, "apps/web/loop").exists()


def test_the_root_may_be_given_through_a_symlink(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "checkout").symlink_to(repo)
    assert resolve(tmp_path / "checkout", "apps/web/shared") == repo / "shared"


@pytest.mark.parametrize(
    ("real", "refusal"),
    [
        pytest.param("apps/web", None, id="inside"),
        pytest.param("../outside", Refusal.ESCAPES, id="outside"),
        pytest.param(".git/config", Refusal.IN_GIT, id="dot-git"),
    ],
)
def test_refusal_of_a_real_path(repo: Path, real: str, refusal: Refusal | None) -> None:
    """The rule on a path whose symlinks are resolved already (the sandbox's copy uses it)."""
    assert refusal_of(repo, Path(repo.parent, "repo", real).resolve()) is refusal
