"""Every bad-input row, through the real command line: a clear error naming phase and place, and zero writes.

"Zero writes" is counted where it matters — in the API server's audit log, by gitops-job's user agent — not by the
client's own bookkeeping. Each case is a small repo; the row id is in the case name.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import SCRIPT
from tests.kube import AuditLog, crd
from tools.localcluster import build

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


def _gizmo_crd(group: str) -> str:
    spec = {"type": "object", "required": ["size"],
            "properties": {"size": {"type": "integer"}, "port": {"x-kubernetes-int-or-string": True}}}  # fmt: skip
    return json.dumps(crd(group, "Gizmo", {"type": "object", "properties": {"spec": spec}}))


def _manifest(api_version: str, kind: str, name: str, namespace: str, spec: str) -> str:
    return f"apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{spec}"


@pytest.mark.parametrize("created", ["namespace", "crd"])
def test_item07_objects_in_a_namespace_or_of_a_crd_the_run_creates_are_checked_before_any_write(
    created: str, tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog
) -> None:
    """They cannot be dry-run before the Namespace or CRD exists: they are checked against the schema the server
    publishes (the API server's OpenAPI v3; the rendered CRD's openAPIV3Schema), so a wrong field type in one of
    them stops plan and apply before the Namespace, the CRD or anything else is written."""
    new_ns, group = f"{namespace}-new", f"{namespace[-6:]}.example.com"
    if created == "namespace":
        template = "  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: x}]}\n"
        files = {
            "app/ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {new_ns}\n",
            "app/good.yaml": CM.format(name="good", ns=new_ns),
            "app/bad.yaml": _manifest("apps/v1", "Deployment", "bad", new_ns,
                                      "spec:\n  replicas: many\n  selector: {matchLabels: {a: b}}\n" + template),
        }  # fmt: skip
        expected = (f"Deployment/{new_ns}/bad (app/bad.yaml:1)", "the API server's OpenAPI schema",
                    "spec.replicas: 'many' is not of type 'integer'")  # fmt: skip
    else:
        files = {
            "app/crd.yaml": _gizmo_crd(group),
            "app/good.yaml": CM.format(name="good", ns=namespace),
            "app/ok.yaml": _manifest(f"{group}/v1", "Gizmo", "ok", namespace, "spec:\n  size: 1\n  port: http\n"),
            "app/bad.yaml": _manifest(f"{group}/v1", "Gizmo", "bad", namespace, "spec:\n  size: big\n  port: 1.5\n"),
        }
        expected = (f"Gizmo/{namespace}/bad (app/bad.yaml:1)", "the schema of its CRD in this run",
                    "spec.port: 1.5 is not of type 'integer', 'string'",
                    "spec.size: 'big' is not of type 'integer'")  # fmt: skip
    (tmp_path / "gitops.yaml").write_text("targets:\n  - name: test\nstacks:\n  - name: app\n    path: app\n")
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    try:
        for command in ("plan", "apply"):
            mark = audit.mark()
            result = subprocess.run(
                [SCRIPT, command, "--repo", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env
            )
            message = result.stdout + result.stderr
            assert result.returncode == 1, message
            for fragment in ("plan:", *expected):
                assert fragment in message, f"{fragment!r} missing from:\n{message}"
            assert audit.writes(mark) == [], "a write reached the API server"
    finally:
        kinds = ("namespace", new_ns) if created == "namespace" else ("crd", f"gizmos.{group}")
        subprocess.run([str(build.binary("kubectl")), "delete", *kinds, "--ignore-not-found", "--wait=false"],
                       env=env, capture_output=True, check=False)  # fmt: skip
