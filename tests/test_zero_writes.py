"""Every bad-input row, through the real command line: a clear error naming phase and place, and zero writes.

"Zero writes" is counted where it matters — in the API server's audit log, by gitops-job's user agent — not by the
client's own bookkeeping. Each case is a small repo; the row id is in the case name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kube import AuditLog

SCRIPT = str(Path(sys.executable).parent / "gitops-job")

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  a: '1'\n"

# name -> (files, expected fragments of the error). {ns} is the test's namespace.
CASES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "v1_rejected_by_api_schema": (
        {"app/good.yaml": CM.format(name="good", ns="{ns}"),
         "app/bad.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\n  namespace: {ns}\n"
                         "spec:\n  replicas: many\n"},
        ("plan", "Deployment/{ns}/bad", "app/bad.yaml:1"),
    ),
    "v2_unknown_kind": (
        {"app/w.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: {ns}\n"},
        ("validate", "unknown kind", "app/w.yaml"),
    ),
    "v3_duplicate_yaml_key": (
        {"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"},
        ("render", "app/cm.yaml:5", "duplicate key"),
    ),
    "v4_duplicate_object": (
        {"app/a.yaml": CM.format(name="same", ns="{ns}"), "app/b.yaml": CM.format(name="same", ns="{ns}")},
        ("validate", "duplicate object", "app/a.yaml", "app/b.yaml"),
    ),
    "v5_namespace_not_allowed": (
        {"app/cm.yaml": CM.format(name="x", ns="kube-system")},
        ("validate", "kube-system", "app/cm.yaml"),
    ),
    "v6_cluster_admin_from_namespaced_stack": (
        {"app/crb.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n"
                         "  name: escalate\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n"
                         "  name: cluster-admin\nsubjects:\n  - kind: ServiceAccount\n    name: default\n"
                         "    namespace: {ns}\n"},
        ("validate", "ClusterRoleBinding/escalate", "app/crb.yaml"),
    ),
    "m1_jinja_sandbox_escape": (
        {"app/cm.yaml.j2": "x: {{ ''.__class__.__mro__[1].__subclasses__() }}\n"},
        ("render", "app/cm.yaml.j2", "unsafe"),
    ),
    "m3_symlink_outside_repo": (
        {"app/cm.yaml": "@symlink:/etc/passwd"},
        ("render", "app/cm.yaml", "escapes the repository"),
    ),
    "m5_billion_laughs": (
        {"app/cm.yaml": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"},
        ("render", "app/cm.yaml"),
    ),
    "m6_python_object_tag": (
        {"app/cm.yaml": "!!python/object/apply:os.system ['touch /tmp/gitops-job-pwned']\n"},
        ("render", "app/cm.yaml:1"),
    ),
}  # fmt: skip


def _repo(root: Path, files: dict[str, str], ns: str) -> None:
    allow = "    allow:\n      namespaces: [{ns}]\n"
    (root / "gitops.yaml").write_text(
        f"targets:\n  - name: test\nstacks:\n  - name: app\n    path: app\n    namespace: {ns}\n{allow.format(ns=ns)}"
    )
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content.startswith("@symlink:"):
            path.symlink_to(content.removeprefix("@symlink:"))
        else:
            path.write_text(content.replace("{ns}", ns))


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_writes_nothing(
    case: str, command: str, tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog
) -> None:
    files, expected = CASES[case]
    _repo(tmp_path, files, namespace)
    mark = audit.mark()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run(
        [SCRIPT, command, "--repo", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    message = result.stdout + result.stderr
    for fragment in expected:
        assert fragment.replace("{ns}", namespace) in message, f"{fragment!r} missing from:\n{message}"
    assert audit.writes(mark) == [], "a write reached the API server"
    assert not Path("/tmp/gitops-job-pwned").exists()


def test_item08_an_object_over_etcds_limit_stops_the_run_before_any_write(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog
) -> None:
    """A 1.6 MiB ConfigMap among other objects passes the API server's dry-run but not etcd: refused by validation."""
    big = CM.format(name="big", ns="{ns}").replace("a: '1'", "blob: " + "x" * int(1.6 * 2**20))
    _repo(tmp_path, {"app/a.yaml": CM.format(name="a", ns="{ns}"), "app/big.yaml": big,
                     "app/z.yaml": CM.format(name="z", ns="{ns}")}, namespace)  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    for command in ("plan", "apply"):
        mark = audit.mark()
        result = subprocess.run(
            [SCRIPT, command, "--repo", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env
        )
        message = result.stdout + result.stderr
        assert result.returncode == 1, message
        assert f"validate: app/big.yaml:1: ConfigMap/{namespace}/big: is 1.60 MiB" in message, message
        assert "1572864 bytes (1.5 MiB)" in message
        assert audit.writes(mark) == [], "a write reached the API server"
