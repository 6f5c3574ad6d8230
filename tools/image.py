"""Build the gitops-job image with Debian's buildah, on a Debian base made by mmdebstrap: no registry involved.

    python -m tools.image            # build localhost/gitops-job:dev (what `make image` runs); prints timings
    python -m tools.image --print    # also print the buildah flags to run it by hand

Steps, each cached in ``~/.cache/gitops-job/image`` (``$GITOPS_JOB_CACHE``) and keyed by its inputs, so a warm run
redoes only the last one:

1. **rootfs**: ``mmdebstrap --variant=minbase`` of bookworm with python3, git, ssh and CA certificates
   (``rootfs-<key>.tar``, about 90 s cold); the key is the suite, the packages and the mirrors.
2. **base image**: ``FROM scratch`` + ``ADD rootfs.tar /``, tagged ``localhost/gitops-job-base:<key>``.
3. **wheelhouse**: every dependency as a wheel, ``pip download --require-hashes --only-binary :all:`` from
   ``action-requirements.txt`` (``wheels-<key>``, keyed by that file and this Python), and gitops-job's own wheel
   built from the checkout with ``pip wheel --no-index`` against it.
4. **image**: the repository's ``Dockerfile`` with ``BASE`` set to the base image, the wheels and the pinned
   kustomize and helm (tools/localcluster) in the build context.

buildah runs with ``--storage-driver vfs --isolation chroot`` (what works unprivileged in a container) and its
storage under the cache (``buildah/``), never in the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.localcluster import build, versions

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/gitops-job:dev"
SUITE = "bookworm"
# What the base must hold: python3 (and venv, for the image's own environment), git and ssh for remotes.
PACKAGES = ("python3", "python3-venv", "git", "openssh-client", "ca-certificates")
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
UID = 65532  # the image's user (the Dockerfile's ARG UID)


class ImageError(RuntimeError):
    """A build step failed; the message names the step and the command's own words."""


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise ImageError(f"{tool} is not installed: run tools/system-tools (apt-get install {tool})")


def cache() -> Path:
    path = build.cache_dir() / "image"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


def buildah_flags() -> list[str]:
    """The storage flags every buildah call takes (storage in the cache, run state in /tmp)."""
    return ["--storage-driver", "vfs", "--root", str(cache() / "buildah"), "--runroot", "/tmp/gitops-job-buildah-run"]


def buildah(*args: str, step: str, capture: bool = True) -> str:
    _require("buildah")
    done = subprocess.run(["buildah", *buildah_flags(), *args], capture_output=capture, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{step}: buildah {args[0]} failed (exit {done.returncode}): {(done.stderr or '')[-3000:]}")
    return done.stdout or ""


def has_image(name: str) -> bool:
    done = subprocess.run(
        ["buildah", *buildah_flags(), "inspect", "--type", "image", name], capture_output=True, check=False
    )
    return done.returncode == 0


def rootfs() -> Path:
    """The Debian minbase rootfs tar (made once per key)."""
    path = cache() / f"rootfs-{_key(SUITE, PACKAGES, MIRRORS)}.tar"
    if path.exists():
        return path
    _require("mmdebstrap")
    partial = path.with_suffix(".partial.tar")
    cmd = [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(partial),
        *MIRRORS,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ImageError(f"rootfs: mmdebstrap failed (exit {done.returncode}): {done.stderr[-3000:]}")
    partial.rename(path)
    return path


def base_image() -> str:
    """The base image made from :func:`rootfs` (imported once per key)."""
    tar = rootfs()
    name = f"localhost/gitops-job-base:{tar.stem.removeprefix('rootfs-')}"
    if has_image(name):
        return name
    with tempfile.TemporaryDirectory(prefix="gitops-job-base-") as tmp:
        ctx = Path(tmp)
        (ctx / "rootfs.tar").hardlink_to(tar)
        (ctx / "Containerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n')
        buildah("bud", "--isolation", "chroot", "--layers=false", "-t", name, str(ctx), step="base image")
    return name


def wheelhouse() -> Path:
    """Every dependency as a wheel, exactly as action-requirements.txt pins them (made once per key)."""
    lock = ROOT / "action-requirements.txt"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    path = cache() / f"wheels-{_key(lock.read_text(), python, sys.platform)}"
    if path.exists():
        return path
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--require-hashes",
        "--only-binary",
        ":all:",
        "-r",
        str(lock),
        "-d",
        str(partial),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"wheelhouse: pip download failed (exit {done.returncode}): {done.stderr[-3000:]}")
    partial.rename(path)
    return path


@contextmanager
def context() -> Iterator[Path]:
    """The build context the Dockerfile expects: Dockerfile, wheels/ (dependencies + gitops-job), bin/."""
    with tempfile.TemporaryDirectory(prefix="gitops-job-image-") as tmp:
        ctx = Path(tmp)
        shutil.copy(ROOT / "Dockerfile", ctx / "Dockerfile")
        wheels = ctx / "wheels"
        shutil.copytree(wheelhouse(), wheels)
        with tempfile.TemporaryDirectory(prefix="gitops-job-src-") as src:  # a copy: the build writes build/ there
            shutil.copytree(
                ROOT,
                src,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns(
                    ".git", ".venv", ".localcluster", "build", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache"
                ),
            )
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-index",
                "--find-links",
                str(wheels),
                "-w",
                str(wheels),
                src,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ImageError(f"wheel: pip wheel of gitops-job failed (exit {done.returncode}): {done.stderr[-3000:]}")
        (ctx / "bin").mkdir()
        build.build_all(["kustomize", "helm"])
        for tool in ("kustomize", "helm"):
            shutil.copy(build.binary(tool), ctx / "bin" / tool)
        yield ctx


@dataclass(frozen=True)
class Built:
    image: str
    seconds: dict[str, float]  # per step


def build_image(image: str = IMAGE) -> Built:
    """Build ``image`` from the repository's Dockerfile on the local base; the time each step took."""
    seconds: dict[str, float] = {}
    t = time.monotonic()
    base = base_image()
    seconds["base"] = time.monotonic() - t
    t = time.monotonic()
    with context() as ctx:
        seconds["context"] = time.monotonic() - t
        t = time.monotonic()
        args = {"BASE": base, "KUSTOMIZE_VERSION": versions.KUSTOMIZE, "HELM_VERSION": versions.HELM, "UID": str(UID)}
        build_args = [a for k, v in args.items() for a in ("--build-arg", f"{k}={v}")]
        buildah("bud", "--isolation", "chroot", "--layers=false", *build_args, "-t", image, str(ctx), step="image")
    seconds["image"] = time.monotonic() - t
    return Built(image, seconds)


def run_args(container: str, command: Sequence[str], *, env: dict[str, str], volumes: Sequence[str]) -> list[str]:
    """The ``buildah run`` command line for ``command`` in ``container`` on the host network."""
    flags = [a for k, v in env.items() for a in ("-e", f"{k}={v}")] + [a for v in volumes for a in ("-v", v)]
    return [
        "buildah",
        *buildah_flags(),
        "run",
        "--isolation",
        "chroot",
        "--network",
        "host",
        *flags,
        container,
        "--",
        *command,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.image", description=__doc__.split("\n")[0])
    parser.add_argument("--image", default=IMAGE)
    parser.add_argument("--print", action="store_true", help="print the buildah storage flags")
    args = parser.parse_args(argv)
    t = time.monotonic()
    try:
        built = build_image(args.image)
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in built.seconds.items())
    print(f"built {built.image} in {time.monotonic() - t:.1f}s ({steps})")
    if args.print:
        print("buildah " + " ".join(buildah_flags()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
