"""The control-plane build's pure logic and cache contract (no Go needed: these run against a throw-away cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.localcluster import build, versions

UPSTREAM = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

godebug (
\twinsymlink=0
)

require (
\tk8s.io/api v0.0.0
\tgithub.com/foo/bar v1.2.3
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/foo/bar => github.com/foo/bar v1.2.4
)
"""


def test_kubernetes_gomod_replaces_every_staging_module_and_keeps_go_and_godebug() -> None:
    mod = build.kubernetes_gomod(UPSTREAM, "v1.36.4")
    assert "go 1.26.0\n" in mod
    assert "godebug default=go1.26\n" in mod
    assert "godebug (\n\twinsymlink=0\n)" in mod
    assert "\tk8s.io/api => k8s.io/api v0.36.4\n" in mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.36.4\n" in mod
    assert "github.com/foo/bar" not in mod  # only staging modules are rewritten
    assert "./staging" not in mod
    assert "require k8s.io/kubernetes v1.36.4" in mod


def test_kubernetes_gomod_without_staging_is_an_error() -> None:
    with pytest.raises(build.BuildError, match="no staging replace"):
        build.kubernetes_gomod("module x\n\ngo 1.26.0\n", "v1.36.4")


def test_cache_is_keyed_by_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITOPS_JOB_CACHE", str(tmp_path))
    assert build.binary("kube-apiserver") == tmp_path / f"kubernetes-{versions.KUBERNETES}" / "kube-apiserver"
    assert build.binary("etcd") == tmp_path / f"etcd-{versions.ETCD}" / "etcd"
    assert build.binary("helm") == tmp_path / f"helm-{versions.HELM}" / "helm"


def test_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITOPS_JOB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.cache_dir() == tmp_path / "gitops-job"


def _run_build(cache: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GITOPS_JOB_CACHE": str(cache), "PATH": path}
    return subprocess.run(
        [sys.executable, "-m", "tools.localcluster", "build"], env=env, capture_output=True, text=True
    )


def _fill(cache: Path, partial: str | None = None) -> None:
    for c in build.COMPONENTS:
        for f in c.files:
            (c.dir / f).parent.mkdir(parents=True, exist_ok=True)
            if f == "stages":
                (c.dir / f).mkdir(exist_ok=True)
            elif f != partial:
                (c.dir / f).write_text("binary")
    if partial:
        (build.binary(partial).parent / f".{partial}.partial-123").write_text("half a binary")


def test_warm_build_is_a_no_op_that_needs_no_go(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITOPS_JOB_CACHE", str(tmp_path))
    _fill(tmp_path)
    result = _run_build(tmp_path, path="/nonexistent")  # no go, no openssl on PATH
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": cached at ") == len(build.COMPONENTS)
    assert "all components ready" in result.stdout


def test_half_built_binary_is_not_trusted_and_missing_go_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GITOPS_JOB_CACHE", str(tmp_path))
    _fill(tmp_path, partial="kube-apiserver")  # a build killed half-way left only the temporary file
    kubernetes = next(c for c in build.COMPONENTS if c.name == "kubernetes")
    assert not kubernetes.present()
    result = _run_build(tmp_path, path="/nonexistent")
    assert result.returncode == 1
    assert "missing prerequisites" in result.stderr
    assert "go (Go >= 1.26" in result.stderr
    assert "openssl" in result.stderr


def test_unknown_component_is_refused() -> None:
    with pytest.raises(build.BuildError, match="unknown component"):
        build.build_all(["etcd", "kubelet"])
