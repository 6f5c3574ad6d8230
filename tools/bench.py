"""``make bench``: `gitops-job plan` against `kubectl diff --server-side`, same cluster, same run, medians.

Generates N objects (half ConfigMaps with 10 keys, half Deployments with replicas 0, over 20 namespaces) as one
plain stack, applies them with `kubectl apply --server-side --field-manager=gitops-job` (as if gitops-job had applied
them), then times, several repetitions each:

  (a) nothing changed;  (b) 10 % changed out of band (a ConfigMap value edited by another field manager).

Prints wall time (median), peak RSS and requests per object for each tool, and each ratio on its own line.
Usage: python -m tools.bench [--n 1000] [--reps 3] [--kubeconfig FILE]   (default: starts its own cluster)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tools.localcluster import build
from tools.localcluster.cluster import LocalCluster

NAMESPACES = 20


def generate(repo: Path, n: int) -> list[dict]:
    objects: list[dict] = []
    stack = repo / "bench"
    stack.mkdir(parents=True)
    for ns_index in range(NAMESPACES):
        ns = f"bench-{ns_index:02d}"
        docs: list[dict] = []
        for i in range(ns_index, n, NAMESPACES):
            name = f"obj-{i:05d}"
            if i % 2 == 0:
                docs.append(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "true"}},
                        "data": {f"key{k}": f"value-{i}-{k}" for k in range(10)},
                    }
                )
            else:
                labels = {"app": name}
                docs.append(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "true"}},
                        "spec": {
                            "replicas": 0,
                            "selector": {"matchLabels": labels},
                            "template": {
                                "metadata": {"labels": labels},
                                "spec": {"containers": [{"name": "app", "image": f"registry.example/app:{i}"}]},
                            },
                        },
                    }
                )
        (stack / f"{ns}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
        objects.extend(docs)
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-{i:02d}"}} for i in range(20)]
    (repo / "namespaces.yaml").write_text(yaml.safe_dump_all(namespaces))
    (repo / "gitops.yaml").write_text("targets:\n  - name: bench\nstacks:\n  - name: bench\n    path: bench\n")
    return objects


def measure(cmd: list[str], env: dict[str, str], ok: Callable[[int], bool]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) of the process tree's largest member, and stdout."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode()
    if not ok(code):
        raise SystemExit(f"{cmd[0]} exited {code}: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return wall, usage.ru_maxrss, stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--kubeconfig", help="use this cluster instead of starting one")
    args = parser.parse_args()

    build.build_all(["etcd", "kubernetes", "kwok"])
    kubectl = str(build.binary("kubectl"))
    gitops_job = str(Path(sys.executable).parent / "gitops-job")
    with tempfile.TemporaryDirectory(prefix="gitops-job-bench-") as tmp:
        cluster = None
        kubeconfig = args.kubeconfig
        if not kubeconfig:
            cluster = LocalCluster(Path(tmp) / "cluster")
            cluster.up()
            kubeconfig = str(cluster.kubeconfig)
        try:
            return run(Path(tmp) / "repo", args.n, args.reps, kubeconfig, kubectl, gitops_job)
        finally:
            if cluster:
                cluster.down()


def run(repo: Path, n: int, reps: int, kubeconfig: str, kubectl: str, gitops_job: str) -> int:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    objects = generate(repo, n)
    subprocess.run([kubectl, "apply", "--server-side", "-f", str(repo / "namespaces.yaml")], env=env, check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(
        [kubectl, "apply", "--server-side", "--field-manager=gitops-job", "-f", str(repo / "bench")],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    print(f"N = {n} objects ({n // 2} ConfigMaps, {n - n // 2} Deployments) over {NAMESPACES} namespaces; "
          f"{reps} repetitions, medians")  # fmt: skip

    diff_ok = lambda code: code in (0, 1)  # noqa: E731  kubectl diff exits 1 when there are differences
    # Like for like: the same field manager, and conflicts taken (gitops-job plan diffs as a forced apply would).
    diff = [
        kubectl,
        "diff",
        "--server-side",
        "--force-conflicts",
        "--field-manager=gitops-job",
        "-f",
        str(repo / "bench"),
    ]
    tools = {
        "gitops-job plan": ([gitops_job, "plan", "--repo", str(repo), "-o", "json"], lambda c: c == 0),
        "kubectl diff --server-side": (diff, diff_ok),
        "kubectl diff --server-side --concurrency=16": ([*diff, "--concurrency=16"], diff_ok),
    }

    def scenario(label: str) -> dict[str, float]:
        medians: dict[str, float] = {}
        for name, (cmd, ok) in tools.items():
            runs = [measure(cmd, env, ok) for _ in range(reps)]
            wall = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs) / 1024
            extra = ""
            if name.startswith("gitops-job"):
                doc = json.loads(runs[-1][2])
                requests = sum(doc["requests"].values())
                summary = doc["summary"]
                extra = f", {requests / n:.3f} requests/object, {summary['update']} to update"
            print(f"  {label}: {name}: {wall:.2f} s wall, {rss:.0f} MiB peak RSS{extra}")
            medians[name] = wall
        ours = medians["gitops-job plan"]
        for name, wall in medians.items():
            if name != "gitops-job plan":
                print(f"  {label}: ratio {name} / gitops-job plan = {wall / ours:.1f}x")
        return medians

    print("(a) nothing changed")
    scenario("(a)")
    changed = [o for o in objects if o["kind"] == "ConfigMap"][: n // 10]
    for obj in changed:
        patch = json.dumps({"data": {"key0": "edited-out-of-band"}})
        meta = obj["metadata"]
        cmd = [kubectl, "patch", "configmap", meta["name"], "-n", meta["namespace"], "--type=merge", "-p", patch]
        subprocess.run([*cmd, "--field-manager=bench-editor"], env=env, check=True, capture_output=True)
    print(f"(b) {len(changed)} objects ({len(changed) * 100 // n} %) changed out of band")
    scenario("(b)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
