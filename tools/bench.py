"""``make bench``: gitops-job against kubectl on the same cluster in the same run, medians of several repetitions.

Generates N objects (half ConfigMaps with 10 keys, half Deployments with replicas 0, over 20 namespaces) as one
plain stack, applies them with `kubectl apply --server-side --field-manager=gitops-job` (as if gitops-job had applied
them, ownership labels included), then times:

  plan (a) nothing changed;  plan (b) 10 % changed out of band (a ConfigMap value edited by another field manager):
      `gitops-job plan` vs `kubectl diff --server-side` (default concurrency and --concurrency=16);
  apply (c) N new objects;  apply (d) the same N again, nothing changed:
      `gitops-job apply --no-wait` vs `kubectl apply --server-side` (kubectl does not wait either).

  pull (issue 14): the scheduled `gitops-job reconcile --repo <url> --state-dir D` of a commit already applied, with
      no drift (the generated repo served over smart HTTP by tests/gitservers.py, as a CronJob sees a remote), timed
      warm against `kubectl apply --server-side` of the same files (what kube-applier does every interval); writes
      counted in the audit log, peak RSS, and the startup time (`gitops-job --version`, the reconcile path's
      imports); one line per target with PASS or FAIL, at each N of --pull-n.

  many stacks (row L1): 50 stacks x 400 objects (20,000; each stack its own Namespace): `gitops-job plan`, then
      `gitops-job apply --no-wait`, then the plan again (nothing changed), against `kubectl apply --server-side` of
      the same tree; HTTP 429 answers counted by the API server (apiserver_flowcontrol_rejected_requests_total), and
      the PR comment's size (within GitHub's 65,536 characters, or cut with a pointer).

  images (issue 15): 100 repositories x 500 tags pushed to Debian's docker-registry on loopback (tests/registries.py);
      the whole process of a scan (tools/bench_scan.py: every tag list in parallel, no cache, a semver choice per
      repository) against `skopeo list-tags` run once per repository, one after another (a naive loop);
      `images.policy.select` over 10,000 tags in process (median of 11); and 100 image bumps across 100 files as
      one commit: the whole process of `gitops-job images update` (tag lists from its state dir's cache) against
      `sed -i` + `git add` + `git commit` of the same edits. Needs no cluster; prints the load average.

Prints wall time (median), peak RSS and requests per object for each tool, each ratio on its own line, and for
apply the write requests each tool sent, counted in the API server's audit log.
Usage: python -m tools.bench [--n 1000] [--reps 3] [--kubeconfig FILE] [--only plan|apply|pull|stacks|images]
       [--pull-n 1000,10000] [--stacks 50 --per-stack 400] [--repos 100 --tags 500]
       (default: starts its own cluster; --only images does not)
The gitops-job measured is this checkout's (put first on PYTHONPATH), run by the venv's console script.
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

from tests.gitservers import bare_repo, http_git_server, push
from tools.localcluster import build
from tools.localcluster.audit import complete_lines
from tools.localcluster.cluster import LocalCluster

NAMESPACES = 20
ROOT = Path(__file__).resolve().parent.parent


def generate(repo: Path, n: int, prefix: str = "bench") -> list[dict]:
    objects: list[dict] = []
    stack = repo / "bench"
    stack.mkdir(parents=True)
    owner = {"gitops-job.io/target": prefix, "gitops-job.io/stack": "bench"}  # one target per generated repo
    for ns_index in range(NAMESPACES):
        ns = f"{prefix}-{ns_index:02d}"
        docs: list[dict] = []
        for i in range(ns_index, n, NAMESPACES):
            name = f"obj-{i:05d}"
            if i % 2 == 0:
                docs.append(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "true", **owner}},
                        "data": {f"key{k}": f"value-{i}-{k}" for k in range(10)},
                    }
                )
            else:
                labels = {"app": name}
                docs.append(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "true", **owner}},
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
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{prefix}-{i:02d}"}}
                  for i in range(NAMESPACES)]  # fmt: skip
    (repo / "namespaces.yaml").write_text(yaml.safe_dump_all(namespaces))
    (repo / "gitops.yaml").write_text(
        f"targets:\n  - name: {prefix}\n    inventoryNamespace: {prefix}-00\n"
        "stacks:\n  - name: bench\n    path: bench\n"
    )
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
    parser.add_argument("--only", choices=("plan", "apply", "pull", "stacks", "images"), help="run one part")
    parser.add_argument("--pull-n", default="1000,10000", help="pull: the sizes to run at (comma-separated)")
    parser.add_argument("--stacks", type=int, default=50, help="many stacks (L1): how many")
    parser.add_argument("--per-stack", type=int, default=400, help="many stacks (L1): objects per stack")
    parser.add_argument("--repos", type=int, default=100, help="images: repositories on the registry")
    parser.add_argument("--tags", type=int, default=500, help="images: tags per repository")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    # Timed as installed (pip compiles to bytecode): never compiling the checkout's modules again on every start.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    if args.only == "images":
        with tempfile.TemporaryDirectory(prefix="gitops-job-bench-") as tmp:
            os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path(tmp) / "pycache"))
            return run_images(Path(tmp), args.repos, args.tags, args.reps)
    build.build_all(["etcd", "kubernetes", "kwok"])
    kubectl = str(build.binary("kubectl"))
    gitops_job = str(Path(sys.executable).parent / "gitops-job")
    with tempfile.TemporaryDirectory(prefix="gitops-job-bench-") as tmp:
        os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path(tmp) / "pycache"))  # bytecode outside the checkout
        cluster = None
        kubeconfig = args.kubeconfig
        if not kubeconfig:
            cluster = LocalCluster(Path(tmp) / "cluster")
            cluster.up()
            kubeconfig = str(cluster.kubeconfig)
        try:
            code = 0
            if args.only in (None, "plan"):
                code = run(Path(tmp) / "repo", args.n, args.reps, kubeconfig, kubectl, gitops_job)
            audit = cluster.audit_log if cluster else None
            if args.only in (None, "apply"):
                code = code or run_apply(Path(tmp), args.n, args.reps, kubeconfig, kubectl, gitops_job, audit)
            if args.only in (None, "pull"):
                for n in (int(x) for x in args.pull_n.split(",")):
                    code = code or run_pull(Path(tmp) / f"pull-{n}", n, args.reps, kubeconfig, kubectl, gitops_job,
                                            audit)  # fmt: skip
            if args.only in (None, "stacks"):
                code = code or run_stacks(
                    Path(tmp), args.stacks, args.per_stack, kubeconfig, kubectl, gitops_job, audit
                )
            if args.only is None:
                code = code or run_images(Path(tmp), args.repos, args.tags, args.reps)
            return code
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


def writes_in_audit(audit: Path | None, since: int, agent: str) -> int | None:
    """Write requests (not dry-runs) by ``agent`` that reached the API server since byte ``since`` of its audit log."""
    if audit is None:
        return None
    events = [json.loads(line) for line in complete_lines(audit, since)]
    return sum(1 for e in events if str(e.get("userAgent", "")).startswith(agent) and "dryRun=" not in e["requestURI"])


def run_apply(tmp: Path, n: int, reps: int, kubeconfig: str, kubectl: str, gitops_job: str, audit: Path | None) -> int:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    tools = {
        "gitops-job apply --no-wait": lambda repo: [gitops_job, "apply", "--repo", str(repo), "--no-wait", "-o",
                                                     "json", "--revision", "bench"],
        "kubectl apply --server-side": lambda repo: [kubectl, "apply", "--server-side", "--field-manager=gitops-job",
                                                     "-f", str(repo / "bench")],
    }  # fmt: skip
    repos: dict[tuple[str, int], Path] = {}
    for t, name in enumerate(tools):
        for rep in range(reps):
            repo = tmp / f"apply-{t}-{rep}"
            generate(repo, n, prefix=f"a{t}r{rep}")
            subprocess.run([kubectl, "apply", "--server-side", "-f", str(repo / "namespaces.yaml")], env=env,
                           check=True, capture_output=True)  # fmt: skip
            repos[(name, rep)] = repo
    print(f"apply: N = {n} objects; {reps} repetitions, medians; writes counted in the API server's audit log")
    for label in ("(c) create", "(d) nothing changed"):
        medians: dict[str, float] = {}
        for name, cmd in tools.items():
            walls, rss, writes = [], 0.0, []
            for rep in range(reps):
                mark = audit.stat().st_size if audit else 0
                wall, peak, _ = measure(cmd(repos[(name, rep)]), env, lambda c: c == 0)
                walls.append(wall)
                rss = max(rss, peak / 1024)
                agent = "gitops-job/" if name.startswith("gitops-job") else "kubectl"
                writes.append(writes_in_audit(audit, mark, agent))
            medians[name] = statistics.median(walls)
            counted = "" if writes[0] is None else f", {statistics.median(w or 0 for w in writes):.0f} write requests"
            print(f"  {label}: {name}: {medians[name]:.2f} s wall, {rss:.0f} MiB peak RSS{counted}")
        ours = medians["gitops-job apply --no-wait"]
        print(f"  {label}: ratio kubectl apply --server-side / gitops-job apply = "
              f"{medians['kubectl apply --server-side'] / ours:.1f}x")  # fmt: skip
    return 0


# Issue 14's targets for the scheduled pull: (N, whole-process seconds, peak RSS MiB or None).
PULL_TARGETS = {1000: (0.8, None), 10000: (8.0, 400.0)}
PULL_RATIO = 4.5  # kubectl apply --server-side / gitops-job reconcile, at N = 1,000
STARTUP = 0.25  # seconds: `gitops-job --version`, and importing what a reconcile needs
# What `gitops-job reconcile` imports before it talks to git or the cluster.
RECONCILE_PATH = "import gitops_job.cli.main, gitops_job.cli.reconcile, gitops_job.reconcile.pull, gitops_job.kube"


def verdict(label: str, value: float, limit: float, unit: str, *, at_least: bool = False) -> str:
    ok = value >= limit if at_least else value <= limit
    return f"  {label}: {value:.2f}{unit} {'>=' if at_least else '<='} {limit:g}{unit}: {'PASS' if ok else 'FAIL'}"


def run_pull(tmp: Path, n: int, reps: int, kubeconfig: str, kubectl: str, gitops_job: str, audit: Path | None) -> int:
    """The scheduled pull of a commit already applied, nothing drifted: ``gitops-job reconcile`` over smart HTTP
    with a warm ``--state-dir`` against ``kubectl apply --server-side`` of the same files."""
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    prefix, theirs = f"p{n}", tmp / "kubectl"
    work = tmp / "work"
    generate(work, n, prefix=prefix)
    generate(theirs, n, prefix=f"k{n}")  # the same objects in namespaces of their own: each tool owns its copy
    commit(work)
    bare = bare_repo(tmp / "served")
    push(work, bare)
    for repo in (work, theirs):
        subprocess.run([kubectl, "apply", "--server-side", "-f", str(repo / "namespaces.yaml")], env=env,
                       check=True, capture_output=True)  # fmt: skip
    ok = lambda code: code == 0  # noqa: E731
    print(f"pull: N = {n} objects over {NAMESPACES} namespaces, nothing new in git and no drift; {reps} repetitions, "
          "medians; writes counted in the API server's audit log")  # fmt: skip
    with http_git_server(tmp / "served") as server:
        url = server.url(bare.name)
        reconcile = [gitops_job, "reconcile", "--repo", url, "--state-dir", str(tmp / "state"), "-o", "json"]
        kubectl_apply = [kubectl, "apply", "--server-side", "-f", str(theirs / "bench")]
        measure(kubectl_apply, env, ok)  # kubectl's first apply: what it re-applies every interval from now on
        started = time.monotonic()
        measure(reconcile, env, ok)  # the first run: clones, applies everything, waits for health, records the commit
        print(
            f"  first reconcile (clone + apply of {n} objects, health waited for): {time.monotonic() - started:.2f} s"
        )
        measure(reconcile, env, ok)  # untimed: the controllers have settled the objects both tools created
        tools = {"gitops-job reconcile": (reconcile, "gitops-job/"),
                 "kubectl apply --server-side": (kubectl_apply, "kubectl")}  # fmt: skip
        runs: dict[str, list[tuple[float, float, int | None, str]]] = {name: [] for name in tools}
        for _ in range(reps):  # interleaved: both tools see the same moments of a shared machine
            for name, (cmd, agent) in tools.items():
                mark = audit.stat().st_size if audit else 0
                wall, rss, out = measure(cmd, env, ok)
                runs[name].append((wall, rss / 1024, writes_in_audit(audit, mark, agent), out))
        rows: dict[str, tuple[float, float, float | None, str]] = {}
        for name, done in runs.items():
            counted = None if done[0][2] is None else statistics.median(r[2] or 0 for r in done)
            rows[name] = (statistics.median(r[0] for r in done), max(r[1] for r in done), counted, done[-1][3])
            extra = "" if counted is None else f", {counted:.0f} write requests"
            if name.startswith("gitops-job"):
                doc = json.loads(done[-1][3])
                extra += f", {sum(doc['requests'].values())} requests ({dict(doc['requests'])})"
            print(f"  {name}: {rows[name][0]:.2f} s wall (runs: {', '.join(f'{r[0]:.2f}' for r in done)}), "
                  f"{rows[name][1]:.0f} MiB peak RSS{extra}")  # fmt: skip
    ours, rss, writes, _ = rows["gitops-job reconcile"]
    kubectl_wall, _, kubectl_writes, _ = rows["kubectl apply --server-side"]
    lines = []
    limit, rss_limit = PULL_TARGETS.get(n, (None, None))
    if limit is not None:
        lines.append(verdict(f"N={n} reconcile, whole process", ours, limit, " s"))
    if rss_limit is not None:
        lines.append(verdict(f"N={n} reconcile, peak RSS", rss, rss_limit, " MiB"))
    if writes is not None:
        lines.append(f"  N={n} reconcile, writes: {writes:.0f} (kubectl: {kubectl_writes:.0f}) == 0: "
                     f"{'PASS' if writes == 0 else 'FAIL'}")  # fmt: skip
    label = f"N={n} ratio kubectl apply --server-side / gitops-job reconcile"
    lines.append(verdict(label, kubectl_wall / ours, PULL_RATIO, "x", at_least=True) if n == 1000
                 else f"  {label}: {kubectl_wall / ours:.1f}x")  # fmt: skip
    print("\n".join([*lines, *startup(gitops_job, env, max(reps, 5))]))
    return 0


def startup(gitops_job: str, env: dict[str, str], reps: int) -> list[str]:
    """`gitops-job --version`, and a Python that imports what a reconcile needs (medians of ``reps``)."""
    ok = lambda code: code == 0  # noqa: E731
    measure([sys.executable, "-c", RECONCILE_PATH], env, ok)  # bytecode written once, as an install has it
    version = statistics.median(measure([gitops_job, "--version"], env, ok)[0] for _ in range(reps))
    imports = statistics.median(measure([sys.executable, "-c", RECONCILE_PATH], env, ok)[0] for _ in range(reps))
    return [verdict("startup: gitops-job --version", version, STARTUP, " s"),
            verdict("startup: import of the reconcile path", imports, STARTUP, " s")]  # fmt: skip


def generate_stacks(repo: Path, stacks: int, per_stack: int, prefix: str) -> None:
    """``stacks`` stacks of ``per_stack`` objects each (a Namespace, then ConfigMaps and Deployments half and half)."""
    config = [f"targets:\n  - name: {prefix}\nstacks:"]
    for s in range(stacks):
        name, ns = f"s{s:02d}", f"{prefix}-s{s:02d}"
        docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
        for i in range(per_stack - 1):
            meta = {"name": f"obj-{i:04d}", "namespace": ns, "labels": {"bench": "true"}}
            if i % 2 == 0:
                docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                             "data": {f"key{k}": f"value-{s}-{i}-{k}" for k in range(10)}})  # fmt: skip
            else:
                labels = {"app": meta["name"]}
                template = {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": f"registry.example/app:{i}"}]},
                }
                spec = {"replicas": 0, "selector": {"matchLabels": labels}, "template": template}
                docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
        (repo / name).mkdir(parents=True)
        (repo / name / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
        config.append(f"  - name: {name}\n    path: {name}")
    (repo / "gitops.yaml").write_text("\n".join(config) + "\n")
    commit(repo)


def commit(repo: Path) -> None:
    """``repo`` as a git repository (branch main) with everything in it committed."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit",
                    "-qm", "bench"], check=True)  # fmt: skip


def rejected(kubectl: str, env: dict[str, str]) -> int:
    """HTTP 429 answers the API server has sent so far (priority and fairness rejections, every flow)."""
    out = subprocess.run([kubectl, "get", "--raw", "/metrics"], env=env, check=True, capture_output=True, text=True)
    total = 0.0
    for line in out.stdout.splitlines():
        if line.startswith("apiserver_flowcontrol_rejected_requests_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def run_stacks(
    tmp: Path, stacks: int, per_stack: int, kubeconfig: str, kubectl: str, gitops_job: str, audit: Path | None
) -> int:
    """Row L1: many stacks, planned then applied; no burst of 429; the PR comment within GitHub's limit."""
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    n = stacks * per_stack
    ours, theirs = tmp / "stacks-gitops-job", tmp / "stacks-kubectl"
    generate_stacks(ours, stacks, per_stack, "l1g")
    generate_stacks(theirs, stacks, per_stack, "l1k")
    print(f"many stacks (L1): {stacks} stacks x {per_stack} objects = {n} objects, each stack its own Namespace; "
          "one run each")  # fmt: skip
    ok = lambda code: code == 0  # noqa: E731

    def timed(label: str, cmd: list[str], agent: str) -> tuple[float, str]:
        before, mark = rejected(kubectl, env), audit.stat().st_size if audit else 0
        wall, peak, stdout = measure(cmd, env, ok)
        writes = writes_in_audit(audit, mark, agent)
        counted = "" if writes is None else f", {writes} write requests"
        print(f"  L1 {label}: {wall:.2f} s wall, {peak / 1024:.0f} MiB peak RSS{counted}, "
              f"{rejected(kubectl, env) - before} answered 429 (all clients)")  # fmt: skip
        return wall, stdout

    plan = [gitops_job, "plan", "--repo", str(ours)]
    timed("gitops-job plan (all new)", [*plan, "-o", "json"], "gitops-job/")
    _, comment = timed("gitops-job plan -o markdown (the PR comment)", [*plan, "-o", "markdown"], "gitops-job/")
    print(f"  L1 PR comment: {len(comment)} characters (GitHub's limit: 65536)"
          f"{', cut with a pointer to the artifact' if 'are not shown' in comment else ''}")  # fmt: skip
    wall_ours, _ = timed("gitops-job apply --no-wait", [gitops_job, "apply", "--repo", str(ours), "--no-wait"],
                         "gitops-job/")  # fmt: skip
    dirs = [arg for s in range(stacks) for arg in ("-f", str(theirs / f"s{s:02d}"))]
    wall_theirs, _ = timed("kubectl apply --server-side", [kubectl, "apply", "--server-side", *dirs], "kubectl")
    print(f"  L1: ratio kubectl apply --server-side / gitops-job apply = {wall_theirs / wall_ours:.1f}x")
    timed("gitops-job plan (nothing changed)", [*plan, "-o", "json"], "gitops-job/")
    return 0


def load() -> str:
    """The load average, printed beside figures measured on a machine shared with other work."""
    return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


IMAGES_SCAN = 2.0  # seconds: the whole process, 100 repositories x 500 tags, chosen by semver
IMAGES_RATIO = 5.0  # skopeo list-tags once per repository / the scan
SELECT_10K = 0.050  # seconds: images.policy.select over 10,000 tags


def run_images(tmp: Path, repos: int, tags: int, reps: int) -> int:
    """Issue 15's image targets: a scan of ``repos`` x ``tags`` on a local docker-registry, whole process, against
    skopeo once per repository; and the selection over 10,000 tags."""
    from gitops_job.images.policy import parse_policy, select
    from tests.registries import docker_registry

    ok = lambda code: code == 0  # noqa: E731
    names = [f"bench/app-{i:03d}" for i in range(repos)]
    versions = [f"{1 + i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(tags - 2)] + ["latest", "main-0a1b2c3"]
    with docker_registry(tmp / "registry") as server:
        started = time.monotonic()
        server.pusher().push_many(dict.fromkeys(names, versions), workers=16)
        print(f"images: {repos} repositories x {tags} tags pushed to docker-registry (HTTP API) in "
              f"{time.monotonic() - started:.1f} s; {reps} repetitions, medians; {load()}")  # fmt: skip
        env = {**os.environ}
        scan = [sys.executable, str(ROOT / "tools" / "bench_scan.py"), server.host, *names]
        skopeo = [["skopeo", "list-tags", "--tls-verify=false", f"docker://{server.host}/{name}"] for name in names]
        measure(scan, env, ok)  # bytecode written once, as an install has it
        runs, loops = [], []
        for _ in range(reps):  # interleaved: both tools see the same moments of a shared machine
            runs.append(measure(scan, env, ok))
            started = time.monotonic()
            for cmd in skopeo:
                measure(cmd, env, ok)
            loops.append(time.monotonic() - started)
        bumps = run_bumps(tmp / "bumps", server.host, names, versions[tags - 3], reps)
    ours, theirs = statistics.median(r[0] for r in runs), statistics.median(loops)
    doc = json.loads(runs[-1][2])
    print(f"  gitops-job scan (tools/bench_scan.py): {ours:.2f} s wall (runs: "
          f"{', '.join(f'{r[0]:.2f}' for r in runs)}), {max(r[1] for r in runs) / 1024:.0f} MiB peak RSS, "
          f"{doc['tags']} tags, {doc['winners']} chosen, requests {doc['requests']}")  # fmt: skip
    print(f"  skopeo list-tags, once per repository, sequentially: {theirs:.2f} s wall (runs: "
          f"{', '.join(f'{t:.2f}' for t in loops)})")  # fmt: skip
    assert doc["tags"] == repos * tags and doc["winners"] == repos, doc
    policy = parse_policy({"policy": {"semver": {"range": ">=1.0.0"}}}, "bench")
    many = [f"{1 + i // 1000}.{(i // 10) % 100}.{i % 10}" for i in range(9_900)] + [f"main-{i:x}" for i in range(100)]
    timings = []
    for _ in range(max(2 * reps + 1, 11)):
        started = time.perf_counter()
        select(policy, many)
        timings.append(time.perf_counter() - started)
    print(f"  ({load()} at the end)")
    print("\n".join([
        verdict(f"images: scan {repos} x {tags} tags + semver choice, whole process", ours, IMAGES_SCAN, " s"),
        verdict("images: ratio skopeo list-tags per repository / gitops-job scan", theirs / ours, IMAGES_RATIO, "x",
                at_least=True),
        verdict("images: selection over 10,000 tags (semver)", statistics.median(timings) * 1000, SELECT_10K * 1000,
                " ms"),
        *bumps,
    ]))  # fmt: skip
    return 0


BUMPS_COMMIT = 1.0  # seconds: 100 image bumps across 100 files as one commit


def run_bumps(repo: Path, host: str, names: list[str], newest: str, reps: int) -> list[str]:
    """The row "100 image bumps across 100 files, one commit": a checkout of one file per repository of the
    registry, each with a ``$imagepolicy`` marker at 1.0.0 naming its own semver policy, bumped by the whole process
    of ``gitops-job images update`` — the real update path: scan, choose, setters with their verification, one
    ``git commit`` — with each policy's tag list already known (served from the state dir's cache, fetched by a
    ``--dry-run`` first and fresh within ``scanInterval``: no registry request is timed). Against it, in the same
    run and interleaved: the floor, ``sed -i`` of the same 100 values, ``git add`` and ``git commit``. Each
    repetition starts from the same commit. Prints its lines and returns the verdict lines."""
    policies = "".join(
        f"    - {{name: {name.rsplit('/', 1)[1]}, namespace: apps, repository: {host}/{name},"
        f' policy: {{semver: {{range: ">=1.0.0"}}}}}}\n'
        for name in names
    )
    files = {
        "gitops.yaml": "targets:\n  - name: t\nstacks:\n  - name: apps\n    path: apps\nimages:\n  scanInterval: 1h\n"
        "  automation: {author: {name: Bench, email: bench@example.com}}\n  policies:\n" + policies
    }
    for name in names:
        app = name.rsplit("/", 1)[1]
        files[f"apps/{app}.yaml"] = (
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n  namespace: apps\nspec:\n"
            f"  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n"
            f"    spec:\n      containers:\n        - name: {app}\n          image: {host}/{name}:1.0.0"
            f' # {{"$imagepolicy": "apps:{app}"}}\n          ports: [{{containerPort: 8080}}]\n'
        )
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    who = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]
    sh = lambda *args: subprocess.run(["git", "-C", str(repo), *who, *args], check=True, capture_output=True)  # noqa: E731
    sh("init", "-q", "-b", "main")
    sh("add", "-A")
    sh("commit", "-q", "-m", "base")
    base = sh("rev-parse", "HEAD").stdout.strip()
    state = repo.parent / "bumps-state"
    gitops_job = str(Path(sys.executable).parent / "gitops-job")
    update = [gitops_job, "images", "update", "--repo", str(repo), "--state-dir", str(state)]
    env = {**os.environ}
    measure([*update, "--dry-run"], env, lambda code: code == 3)  # the tag lists into the cache; bytecode written
    sed = ["sed", "-i", f"s|:1.0.0 # |:{newest} # |", *(str(repo / f) for f in sorted(files) if f != "gitops.yaml")]
    floor = [sed, ["git", "-C", str(repo), "add", "--", "apps"],
             ["git", "-C", str(repo), *who, "commit", "-q", "-m", "images: 100 bumps", "--", "apps"]]  # fmt: skip

    def bumped() -> None:
        changed = sh("diff", "--name-only", base, "HEAD").stdout.decode().split()
        assert len(changed) == len(names) and sh("rev-parse", "HEAD^").stdout.strip() == base, changed
        assert f":{newest} #" in (repo / f"apps/{names[0].rsplit('/', 1)[1]}.yaml").read_text()
        sh("reset", "-q", "--hard", base)

    ours, theirs, rss = [], [], 0
    for _ in range(reps):
        wall, peak, _ = measure(update, env, lambda code: code == 0)
        bumped()
        ours.append(wall)
        rss = max(rss, peak)
        started = time.monotonic()
        for cmd in floor:
            measure(cmd, env, lambda code: code == 0)
        theirs.append(time.monotonic() - started)
        bumped()
    mine, floor_wall = statistics.median(ours), statistics.median(theirs)
    runs = ", ".join(f"{t:.2f}" for t in ours)
    print(f"  gitops-job images update, {len(names)} bumps in {len(names)} files, one commit (tags from the cache):"
          f" {mine:.2f} s wall (runs: {runs}), {rss / 1024:.0f} MiB peak RSS")  # fmt: skip
    print(f"  sed -i + git add + git commit of the same {len(names)} edits (the floor): {floor_wall:.2f} s wall (runs: "
          f"{', '.join(f'{t:.2f}' for t in theirs)})")  # fmt: skip
    return [
        verdict(f"images: {len(names)} bumps across {len(names)} files, one commit, whole process", mine,
                BUMPS_COMMIT, " s"),
        f"  images: ratio gitops-job images update / sed -i + git commit = {mine / floor_wall:.1f}x",
    ]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
