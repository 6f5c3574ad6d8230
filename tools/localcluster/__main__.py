"""``python -m tools.localcluster {build,verify,up,down,status}``: build the pinned binaries, check their checksums,
run a local control plane."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import build
from .cluster import ClusterError, LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.localcluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the pinned binaries into the cache (a no-op when present)")
    b.add_argument("components", nargs="*", help=f"only these ({', '.join(c.name for c in build.COMPONENTS)})")
    v = sub.add_parser("verify", help="check built binaries against their pinned sha256; print name=path of each")
    v.add_argument("names", nargs="+", help="binaries (kustomize, helm)")
    v.add_argument("--built-here", action="store_true", help="accept a binary without a pin for this platform "
                   "(only when it was built from source in this run, never restored from a cache)")  # fmt: skip
    v.add_argument("--print", action="store_true", help="print the sums of the built binaries; check nothing")
    for name, text in (("up", "start a cluster"), ("down", "stop it"), ("status", "say what runs")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--state-dir", type=Path, default=Path(".localcluster"), help="default: .localcluster")
        if name == "up":
            p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for a Ready node")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        return build.main(args.components)
    if args.cmd == "verify":
        return _verify(args.names, built_here=args.built_here, show=args.print)
    cluster = LocalCluster(args.state_dir)
    try:
        if args.cmd == "up":
            procs = cluster.status()
            if procs and all(p.alive for p in procs):  # `make demo` twice: use the cluster that runs
                print(f"cluster already running at {cluster.server}", file=sys.stderr)
            else:
                started = time.monotonic()
                cluster.up(timeout=args.timeout)
                print(f"cluster ready in {time.monotonic() - started:.1f}s at {cluster.server}", file=sys.stderr)
            print(cluster.kubeconfig)
        elif args.cmd == "down":
            stopped = cluster.down()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        else:
            procs = cluster.status()
            if not procs:
                print(f"no cluster in {cluster.state_dir}")
                return 1
            for p in procs:
                print(f"{p.name:<24} pid {p.pid:<8} {'running' if p.alive else 'NOT RUNNING'}")
            print(f"kubeconfig: {cluster.kubeconfig}")
            return 0 if all(p.alive for p in procs) else 1
    except ClusterError as e:
        print(f"localcluster {args.cmd} failed: {e}", file=sys.stderr)
        return 1
    return 0


def _verify(names: list[str], *, built_here: bool, show: bool) -> int:
    try:
        if show:
            for name in names:
                print(f"{name} {build.platform_key()} {build.sha256(build.binary(name))}")
            return 0
        for name, path in build.verify(names, built_here=built_here).items():
            print(f"{name}={path}")
    except (build.BuildError, KeyError, OSError) as e:
        print(f"verify failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
