"""Build the pinned control-plane and renderer binaries from Go modules into a cache outside the repo.

Layout of the cache (``$GITOPS_JOB_CACHE``, default ``${XDG_CACHE_HOME:-~/.cache}/gitops-job``)::

    etcd-v3.6.14/etcd
    kubernetes-v1.36.4/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}
    kwok-v0.8.0/kwok  kwok-v0.8.0/stages/...
    kustomize-v5.8.1/kustomize
    helm-v3.21.4/helm
    actionlint-v1.7.12/actionlint   the workflow linter (tests/test_workflows.py)
    go/{mod,build}          Go module and build caches
    src/<name>-<version>/   throw-away main modules for etcd and Kubernetes

Every binary is built to a temporary name in its final directory and renamed into place, so a build killed half-way
leaves nothing a later run trusts: a component is present exactly when all its files are.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import versions


class BuildError(RuntimeError):
    """A build step failed; the message says which component and why."""


def cache_dir() -> Path:
    """The cache root: ``$GITOPS_JOB_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/gitops-job``."""
    explicit = os.environ.get("GITOPS_JOB_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(xdg) / "gitops-job").resolve()


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    files: tuple[str, ...]  # relative paths that must all exist for the component to count as built
    build: Callable[[Component, Path, dict[str, str]], None]

    @property
    def dir(self) -> Path:
        return cache_dir() / f"{self.name}-{self.version}"

    def present(self) -> bool:
        return all((self.dir / f).exists() for f in self.files)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise BuildError(f"{what}: `{' '.join(cmd)}` exited {proc.returncode}\n{tail}")
    return proc.stdout


def _install_atomically(built: Path, final: Path) -> None:
    """Rename a finished file into place (same filesystem: atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    built.replace(final)


def _go_build(c: Component, pkg: str, out_name: str, module_dir: Path, env: dict[str, str], ldflags: str) -> None:
    c.dir.mkdir(parents=True, exist_ok=True)
    tmp = c.dir / f".{out_name}.partial-{os.getpid()}"
    try:
        _run(
            ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), pkg],
            module_dir,
            env,
            f"{c.name} {out_name}",
        )
        _install_atomically(tmp, c.dir / out_name)
    finally:
        tmp.unlink(missing_ok=True)


def _go_install(c: Component, pkg: str, out_name: str, env: dict[str, str], ldflags: str = "-s -w") -> None:
    c.dir.mkdir(parents=True, exist_ok=True)
    gobin = c.dir / f".gobin-{os.getpid()}"
    shutil.rmtree(gobin, ignore_errors=True)
    try:
        env = {**env, "GOBIN": str(gobin)}
        _run(["go", "install", "-trimpath", "-ldflags", ldflags, f"{pkg}@{c.version}"], c.dir, env, c.name)
        _install_atomically(gobin / out_name, c.dir / out_name)
    finally:
        shutil.rmtree(gobin, ignore_errors=True)


def _tool_module(c: Component, header: str, tools: list[str], env: dict[str, str]) -> Path:
    """Write a throw-away main module that lists ``tools`` and tidy it."""
    src = cache_dir() / "src" / f"{c.name}-{c.version}"
    src.mkdir(parents=True, exist_ok=True)
    tool_block = "tool (\n" + "".join(f"\t{t}\n" for t in tools) + ")\n"
    (src / "go.mod").write_text(header + tool_block)
    _run(["go", "mod", "tidy"], src, env, f"{c.name} go mod tidy")
    return src


def build_etcd(c: Component, _: Path, env: dict[str, str]) -> None:
    header = (
        f"module localcluster/etcd\n\ngo {_go_version_line(env)}\n\nrequire go.etcd.io/etcd/server/v3 {c.version}\n\n"
    )
    src = _tool_module(c, header, ["go.etcd.io/etcd/server/v3"], env)
    _go_build(c, "go.etcd.io/etcd/server/v3", "etcd", src, env, "-s -w")


_KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def _upstream_gomod(module: str, version: str, env: dict[str, str]) -> str:
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"], cache_dir(), env, f"download {module}")
    return Path(json.loads(out)["GoMod"]).read_text()


def kubernetes_gomod(upstream: str, version: str) -> str:
    """The throw-away main module for Kubernetes: upstream's go/godebug lines, a replace for every staging module."""
    go_line = re.search(r"^go (\S+)$", upstream, re.M)
    if not go_line:
        raise BuildError("kubernetes: upstream go.mod has no go line")
    godebug = re.findall(r"^godebug (?:\([^)]*\)|.*)$", upstream, re.M)
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", upstream, re.M)))
    if not staging:
        raise BuildError("kubernetes: no staging replace directives found in upstream go.mod")
    staging_version = "v0." + version.split(".", 1)[1]  # v1.36.4 -> v0.36.4
    lines = [f"module localcluster/kubernetes\n\ngo {go_line.group(1)}\n"]
    lines += [g + "\n" for g in godebug]
    lines.append(f"\nrequire k8s.io/kubernetes {version}\n\nreplace (\n")
    lines += [f"\t{m} => {m} {staging_version}\n" for m in staging]
    lines.append(")\n\n")
    return "".join(lines)


def build_kubernetes(c: Component, _: Path, env: dict[str, str]) -> None:
    header = kubernetes_gomod(_upstream_gomod("k8s.io/kubernetes", c.version, env), c.version)
    src = _tool_module(c, header, [f"k8s.io/kubernetes/cmd/{cmd}" for cmd in _KUBE_COMMANDS], env)
    major, minor = c.version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={c.version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    for cmd in _KUBE_COMMANDS:
        started = time.monotonic()
        _go_build(c, f"k8s.io/kubernetes/cmd/{cmd}", cmd, src, env, " ".join(flags))
        _progress(f"  {cmd} built", started)


def build_kwok(c: Component, _: Path, env: dict[str, str]) -> None:
    _go_install(c, "sigs.k8s.io/kwok/cmd/kwok", "kwok", env)
    # The stage definitions ship in the module source; kwok 0.8.0 has none built in.
    module_src = Path(env["GOMODCACHE"]) / f"sigs.k8s.io/kwok@{c.version}" / "kustomize" / "stage"
    if not module_src.is_dir():
        raise BuildError(f"kwok: stage directory {module_src} not found in the module cache")
    tmp = c.dir / f".stages.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(module_src, tmp)
    shutil.rmtree(c.dir / "stages", ignore_errors=True)
    tmp.replace(c.dir / "stages")


def build_kustomize(c: Component, _: Path, env: dict[str, str]) -> None:
    _go_install(c, "sigs.k8s.io/kustomize/kustomize/v5", "kustomize", env)


def build_helm(c: Component, _: Path, env: dict[str, str]) -> None:
    ldflags = f"-s -w -X helm.sh/helm/v3/internal/version.version={c.version}"
    _go_install(c, "helm.sh/helm/v3/cmd/helm", "helm", env, ldflags)


def build_actionlint(c: Component, _: Path, env: dict[str, str]) -> None:
    ldflags = f"-s -w -X github.com/rhysd/actionlint.version={c.version}"
    _go_install(c, "github.com/rhysd/actionlint/cmd/actionlint", "actionlint", env, ldflags)


COMPONENTS: tuple[Component, ...] = (
    Component("etcd", versions.ETCD, ("etcd",), build_etcd),
    Component("kubernetes", versions.KUBERNETES, _KUBE_COMMANDS, build_kubernetes),
    # "stages" is written last, so it marks kwok as complete.
    Component("kwok", versions.KWOK, ("kwok", "stages"), build_kwok),
    Component("kustomize", versions.KUSTOMIZE, ("kustomize",), build_kustomize),
    Component("helm", versions.HELM, ("helm",), build_helm),
    Component("actionlint", versions.ACTIONLINT, ("actionlint",), build_actionlint),
)


def binary(name: str) -> Path:
    """Path of a built binary (``kube-apiserver``, ``etcd``, ``kubectl``, ``helm`` …) in the cache."""
    for c in COMPONENTS:
        if name in c.files:
            return c.dir / name
    raise KeyError(name)


def platform_key() -> str:
    """This machine as Go names it: ``linux-amd64``, ``darwin-arm64`` …"""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{platform.system().lower()}-{arch}"


def pinned(names: list[str]) -> bool:
    """Whether every one of ``names`` has a pinned checksum for this platform (then a cached copy may be used)."""
    return all(platform_key() in versions.SHA256.get(name, {}) for name in names)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(names: list[str], *, built_here: bool = False) -> dict[str, Path]:
    """The path of each binary in ``names`` once its sha256 is the one pinned in ``versions.SHA256`` for this
    platform; a :class:`BuildError` naming the binary, both sums and what to do otherwise. Without a pin for this
    platform a binary is accepted only when ``built_here`` (built from source in this run, never restored)."""
    out = {}
    for name in names:
        path = binary(name)
        version = next(c.version for c in COMPONENTS if name in c.files)
        if not path.is_file():
            raise BuildError(f"{name} {version}: {path} does not exist; build it first (python -m tools.localcluster "
                             f"build {name})")  # fmt: skip
        want = versions.SHA256.get(name, {}).get(platform_key())
        if want is None:
            if not built_here:
                raise BuildError(
                    f"{name} {version}: no pinned sha256 for {platform_key()} in tools/localcluster/versions.py, "
                    "so a copy that was not built in this run is refused; build it from source in this run, or "
                    "add the sum that `python -m tools.localcluster verify --print` shows for a trusted build"
                )
        else:
            got = sha256(path)
            if got != want:
                raise BuildError(
                    f"{name} {version}: {path} has sha256 {got}, not the pinned {want} "
                    f"({platform_key()}, Go {versions.GO_VERSION}; tools/localcluster/versions.py): refused, it is "
                    "not the binary the pinned sources build (a tampered or poisoned cache, or another Go release); "
                    "it was not run. Delete it and build it again"
                )
        out[name] = path
    return out


def kwok_stages_dir() -> Path:
    return next(c for c in COMPONENTS if c.name == "kwok").dir / "stages"


def _go_version_line(env: dict[str, str]) -> str:
    out = _run(["go", "env", "GOVERSION"], cache_dir(), env, "go env").strip()  # e.g. go1.26.8
    return out.removeprefix("go")


def _min_go() -> str:
    return ".".join(map(str, versions.MIN_GO))


def check_prerequisites() -> None:
    """Fail early, naming what to install."""
    missing = []
    if shutil.which("go") is None:
        missing.append(f"go (Go >= {_min_go()}: https://go.dev/dl/ or your package manager's golang package)")
    if shutil.which("openssl") is None:
        missing.append("openssl (Debian/Ubuntu: apt-get install openssl)")
    if shutil.which("git") is None:
        missing.append("git (Debian/Ubuntu: apt-get install git)")
    if missing:
        raise BuildError("missing prerequisites; install:\n  - " + "\n  - ".join(missing))
    out = subprocess.run(
        ["go", "env", "GOVERSION"], capture_output=True, text=True, env={**os.environ, "GOTOOLCHAIN": "local"}
    )
    m = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
    if not m or (int(m.group(1)), int(m.group(2))) < versions.MIN_GO:
        raise BuildError(f"go {out.stdout.strip() or '(unknown version)'} is too old; install Go >= {_min_go()}")


def _progress(msg: str, started: float) -> None:
    print(f"{msg} ({time.monotonic() - started:.1f}s)", flush=True)


def build_all(only: list[str] | None = None) -> None:
    """Build every component (or ``only`` these) that is not complete in the cache; a no-op, without Go, otherwise."""
    wanted = [c for c in COMPONENTS if not only or c.name in only]
    unknown = set(only or ()) - {c.name for c in COMPONENTS}
    if unknown:
        raise BuildError(f"unknown component(s): {', '.join(sorted(unknown))}")
    if not all(c.present() for c in wanted):
        check_prerequisites()
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **versions.GO_ENV,
        "GOMODCACHE": str(root / "go" / "mod"),
        "GOCACHE": str(root / "go" / "build"),
        "GOPATH": str(root / "go" / "path"),
    }
    total = time.monotonic()
    for c in wanted:
        started = time.monotonic()
        if c.present():
            _progress(f"{c.name} {c.version}: cached at {c.dir}", started)
            continue
        print(f"{c.name} {c.version}: building …", flush=True)
        c.build(c, root, env)
        if not c.present():
            raise BuildError(f"{c.name}: build finished but {c.dir} lacks one of {', '.join(c.files)}")
        _progress(f"{c.name} {c.version}: built into {c.dir}", started)
    _progress(f"all components ready in {root}", total)


def main(argv: list[str] | None = None) -> int:
    try:
        build_all(argv or None)
    except BuildError as e:
        print(f"build failed: {e}", file=sys.stderr)
        return 1
    return 0
