"""`gitops-job install`: the manifests (a pure function, by table), deploy/ is its output with defaults, and
`--dry-run` is the plan of them against the cluster. That the RBAC is enough and no more: tests/test_image.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_job.reconcile import install
from tests.helpers import SCRIPT, gitops_job

DEPLOY = Path(__file__).parent.parent / "deploy"
DEPLOY_ARGS = ("--repo", "https://git.example.com/acme/deploy.git", "--namespace", "apps")


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (cronjob,) = by_kind(docs, "CronJob")
    return dict(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"])


@pytest.mark.parametrize(
    ("opts", "roles", "cluster_roles"),
    [
        pytest.param(
            install.Install("u", namespaces=("a",)),
            {("gitops-job", "gitops-job-system"), ("gitops-job.gitops-job-system", "a")},
            {"gitops-job.gitops-job-system"},
            id="one-namespace",
        ),
        pytest.param(
            install.Install("u", namespaces=("a", "b"), namespace="ops"),
            {("gitops-job", "ops"), ("gitops-job.ops", "a"), ("gitops-job.ops", "b")},
            {"gitops-job.ops"},
            id="two-namespaces-own-namespace",
        ),
        pytest.param(
            install.Install("u", cluster_wide=True),
            {("gitops-job", "gitops-job-system")},
            {"gitops-job.gitops-job-system", "gitops-job.gitops-job-system.cluster-wide"},
            id="cluster-wide",
        ),
    ],
)
def test_rbac_scope(opts: install.Install, roles: set[tuple[str, str]], cluster_roles: set[str]) -> None:
    docs = install.manifests(opts)
    assert {(d["metadata"]["name"], d["metadata"]["namespace"]) for d in by_kind(docs, "Role")} == roles
    assert {(d["metadata"]["name"], d["metadata"]["namespace"]) for d in by_kind(docs, "RoleBinding")} == roles
    assert {d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")} == cluster_roles
    assert {d["metadata"]["name"] for d in by_kind(docs, "ClusterRoleBinding")} == cluster_roles
    for role in [*by_kind(docs, "Role"), *by_kind(docs, "ClusterRole")]:
        for rule in role["rules"]:
            assert not {"update", "escalate", "bind", "impersonate", "*"} & set(rule["verbs"]) or (
                rule.get("resources") != ["*"]
            ), rule  # the managing rules hold the six verbs only
    subjects = {(s["name"], s["namespace"]) for d in docs if "subjects" in d for s in d["subjects"]}
    assert subjects == {("gitops-job", opts.namespace)}


@pytest.mark.parametrize(
    ("opts", "args"),
    [
        (
            install.Install("https://x/r.git", namespaces=("a",)),
            ["reconcile", "--repo", "https://x/r.git", "--drift", "correct", "--state-dir", install.STATE_DIR],
        ),
        (
            install.Install(
                "ssh://x/r", namespaces=("a",), branch="prod", target="eu", path_in_repo="clusters", drift="report"
            ),
            [
                "reconcile",
                "--repo",
                "ssh://x/r",
                "--branch",
                "prod",
                "--target",
                "eu",
                "--path-in-repo",
                "clusters",
                "--ssh-key-file",
                f"{install.GIT_DIR}/identity",
                "--known-hosts",
                f"{install.GIT_DIR}/known_hosts",
                "--drift",
                "report",
                "--state-dir",
                install.STATE_DIR,
            ],
        ),
    ],
)
def test_cronjob_runs_reconcile_with_the_options(opts: install.Install, args: list[str]) -> None:
    docs = install.manifests(opts)
    (container,) = pod_of(docs)["containers"]
    assert container["args"] == args


def test_cronjob_is_locked_down() -> None:
    docs = install.manifests(install.Install("u", namespaces=("a",), schedule="0 * * * *", image="r/i:1"))
    (cronjob,) = by_kind(docs, "CronJob")
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["concurrencyPolicy"], spec["startingDeadlineSeconds"]) == (
        "0 * * * *",
        "Forbid",
        180,
    )
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    pod = pod_of(docs)
    assert pod["serviceAccountName"] == "gitops-job"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["image"] == "r/i:1"
    assert c["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(c["resources"]) == {"requests", "limits"}
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp", install.STATE_DIR}
    token = next(e for e in c["env"] if e["name"] == "GITOPS_JOB_GIT_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == install.GIT_SECRET
    assert c["envFrom"] == [{"secretRef": {"name": install.RECEIVERS_SECRET, "optional": True}}]


@pytest.mark.parametrize(
    ("opts", "problem"),
    [
        (install.Install("u"), "--namespace"),
        (install.Install("u", namespaces=("a",), cluster_wide=True), "exclude each other"),
    ],
)
def test_scope_must_be_chosen(opts: install.Install, problem: str) -> None:
    assert problem in (opts.problem() or "")
    with pytest.raises(ValueError, match=problem):
        install.manifests(opts)


def test_every_rule_says_what_it_is_for() -> None:
    text = install.to_yaml(install.manifests(install.Install("u", namespaces=("a",))))
    for doc in text.split("---\n")[1:]:
        if "\nrules:\n" not in doc:
            continue
        lines = doc.split("\nrules:\n")[1].splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("  - ")]
        assert starts, doc
        assert all(i > 0 and lines[i - 1].startswith("  # ") for i in starts), doc


def test_deploy_is_what_install_prints_with_defaults(tmp_path: Path) -> None:
    import subprocess

    printed = subprocess.run([SCRIPT, "install", *DEPLOY_ARGS], capture_output=True, text=True, check=True).stdout
    shipped = (DEPLOY / "gitops-job.yaml").read_text()
    body = shipped[shipped.index("---\n") :]
    assert body == printed, "deploy/gitops-job.yaml drifted from `gitops-job install`: regenerate it (its header)"
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["gitops-job.yaml"]


def test_default_namespace_is_the_inventories() -> None:
    from gitops_job.reconcile import inventory

    assert install.DEFAULT_NAMESPACE == inventory.DEFAULT_NAMESPACE


def test_usage_error_without_a_scope() -> None:
    import subprocess

    done = subprocess.run([SCRIPT, "install", "--repo", "u"], capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert "--namespace" in done.stderr and "--cluster-wide" in done.stderr


def test_dry_run_is_a_plan_against_the_cluster(kubeconfig: Path, namespace: str) -> None:
    args = ["install", "--repo", "https://x/r.git", "--install-namespace", namespace, "-n", namespace, "--dry-run"]
    out = gitops_job(kubeconfig, *args).stdout
    assert f"CronJob/{namespace}/gitops-job" in out, out
    assert f"Role/{namespace}/gitops-job" in out, out
    assert "create" in out.lower(), out
    # nothing was written
    again = gitops_job(kubeconfig, *args).stdout
    assert f"CronJob/{namespace}/gitops-job" in again


@pytest.mark.parametrize(
    ("repo", "ssh"),
    [("https://x/r.git", False), ("ssh://git@x/r", True), ("git@github.com:acme/deploy.git", True),
     ("file:///srv/r.git", False), ("./r", False)],
)  # fmt: skip
def test_git_credentials_are_a_token_for_https_and_a_mounted_key_for_ssh(repo: str, ssh: bool) -> None:
    pod = pod_of(install.manifests(install.Install(repo, namespaces=("a",))))
    (c,) = pod["containers"]
    names = [e["name"] for e in c["env"]]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert ("GITOPS_JOB_GIT_TOKEN" in names) is not ssh
    assert ("--ssh-key-file" in c["args"] and "--known-hosts" in c["args"]) is ssh
    assert (install.GIT_DIR in mounts) is ssh
    if ssh:
        assert mounts[install.GIT_DIR]["readOnly"] is True
        (vol,) = [v for v in pod["volumes"] if v["name"] == mounts[install.GIT_DIR]["name"]]
        assert vol["secret"] == {"secretName": install.GIT_SECRET, "defaultMode": 0o440}
