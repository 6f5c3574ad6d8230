"""What ``gitops-job install`` puts in a cluster so ``reconcile`` runs there on a schedule: the manifests (a pure
function of :class:`Install`, what ``deploy/`` holds with the defaults) and their plan against a cluster (the plan
recipe, :func:`~gitops_job.reconcile.run.run_plan`, over a throw-away repository holding them).

RBAC is least privilege for what a reconcile does (docs/deploy.md): a Role in its own namespace for the inventory
ConfigMaps, the Leases and the Events; a Role in each namespace it manages (``namespaces``) with the verbs apply,
plan, wait and prune use; a small ClusterRole for discovery, the admission configuration the fast path reads and
its own Namespace. ``cluster_wide`` (opt-in) replaces the per-namespace Roles with one ClusterRole over everything.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gitops_job import git

if TYPE_CHECKING:
    from gitops_job.reconcile.results import Plan

NAME = "gitops-job"
# inventory.DEFAULT_NAMESPACE, not imported: printing the manifests loads no Kubernetes client (tests/test_install.py)
DEFAULT_NAMESPACE = "gitops-job-system"
DEFAULT_IMAGE = "localhost/gitops-job:dev"  # what `make image` builds
DEFAULT_SCHEDULE = "*/5 * * * *"
STATE_DIR = "/var/cache/gitops-job"
UID = 65532
GIT_SECRET = "gitops-job-git"  # https: key `token` (as $GITOPS_JOB_GIT_TOKEN); ssh: keys `identity` and `known_hosts`
GIT_DIR = "/etc/gitops-job/git"  # where an ssh repository's Secret is mounted (files readable by the pod's group)
RECEIVERS_SECRET = "gitops-job-receivers"  # every key an environment variable the receivers of gitops.yaml name
#: The verbs a reconcile uses on the objects it manages: get/list/watch (plan, wait), patch (server-side apply and
#: its dry-run), create (an apply that creates is authorized as create too), delete (prune). Not update,
#: deletecollection, escalate, bind or impersonate.
MANAGE_VERBS = ("get", "list", "watch", "create", "patch", "delete")
_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": NAME}


@dataclass(frozen=True)
class Install:
    """What the manifests are parameterised by; every default is the CLI's."""

    repo: str
    namespaces: tuple[str, ...] = ()  # the namespaces it may manage (one Role each)
    cluster_wide: bool = False  # one ClusterRole over every namespace and cluster-scoped kind instead
    branch: str | None = None  # default: the remote's HEAD
    target: str | None = None
    path_in_repo: str = "."
    schedule: str = DEFAULT_SCHEDULE
    image: str = DEFAULT_IMAGE
    namespace: str = DEFAULT_NAMESPACE  # its own: CronJob, ServiceAccount, inventories, Leases, Events
    drift: str = "correct"
    extra_args: tuple[str, ...] = field(default=())  # more reconcile flags, appended as given

    def problem(self) -> str | None:
        if not self.namespaces and not self.cluster_wide:
            return "name the namespaces it may manage (--namespace, repeatable), or opt in to --cluster-wide"
        if self.namespaces and self.cluster_wide:
            return "--namespace and --cluster-wide exclude each other: --cluster-wide manages every namespace"
        return None


def manifests(opts: Install) -> list[dict[str, Any]]:
    """The objects, in apply order (Namespace first)."""
    problem = opts.problem()
    if problem:
        raise ValueError(problem)
    ns, sa = opts.namespace, {"kind": "ServiceAccount", "name": NAME, "namespace": opts.namespace}
    cluster_name = f"{NAME}.{ns}"  # cluster-scoped names carry the namespace: two installs do not collide
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": _LABELS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, ns)},
        _role(
            "ClusterRole",
            cluster_name,
            None,
            [
                _rule(
                    "discovery (aggregated /api, /apis) and the OpenAPI v3 documents the plan checks schemas against",
                    nonResourceURLs=["/api", "/api/*", "/apis", "/apis/*", "/openapi/v3", "/openapi/v3/*"],
                    verbs=["get"],
                ),
                _rule(
                    "the fast path proves an object unchanged only for kinds no mutating webhook or policy may change",
                    apiGroups=["admissionregistration.k8s.io"],
                    resources=["mutatingwebhookconfigurations", "mutatingadmissionpolicies"],
                    verbs=["list"],
                ),
                _rule(
                    "apply checks that its own namespace (the inventories') exists before its first write",
                    apiGroups=[""],
                    resources=["namespaces"],
                    resourceNames=[ns],
                    verbs=["get"],
                ),
            ],
        ),
        _binding("ClusterRoleBinding", cluster_name, None, "ClusterRole", cluster_name, sa),
        _role(
            "Role",
            NAME,
            ns,
            [
                _rule(
                    "the inventories (a ConfigMap per target + stack): read, listed by label, created, replaced"
                    " (guarded by resourceVersion)",
                    apiGroups=[""],
                    resources=["configmaps"],
                    verbs=["get", "list", "create", "update"],
                ),
                _rule(
                    "the per-stack Leases that serialise a scheduled run and a CI apply: taken, renewed, released",
                    apiGroups=["coordination.k8s.io"],
                    resources=["leases"],
                    verbs=["get", "create", "update", "delete"],
                ),
                _rule(
                    "the Events on the inventory ConfigMaps (ApplySucceeded, ApplyFailed: docs/reconcile.md)",
                    apiGroups=["events.k8s.io"],
                    resources=["events"],
                    verbs=["create"],
                ),
            ],
        ),
        _binding("RoleBinding", NAME, ns, "Role", NAME, sa),
    ]
    manage = [
        _rule(
            "the managed objects, of every kind: plan (list by label, get), server-side apply and its dry-run (patch,"
            " create), wait (list, watch), prune (delete); Secrets too: the plan reads the live ones it manages to mask"
            " their values",
            apiGroups=["*"],
            resources=["*"],
            verbs=list(MANAGE_VERBS),
        )
    ]
    if opts.cluster_wide:
        name = f"{cluster_name}.cluster-wide"
        docs += [
            _role("ClusterRole", name, None, manage),
            _binding("ClusterRoleBinding", name, None, "ClusterRole", name, sa),
        ]
    for managed in opts.namespaces:
        docs += [
            _role("Role", cluster_name, managed, manage),
            _binding("RoleBinding", cluster_name, managed, "Role", cluster_name, sa),
        ]
    docs += [_state_claim(ns), _cronjob(opts)]
    return docs


_WHY: dict[str, str] = {}  # a rule (as canonical JSON) -> what it is for, written above it in the YAML


def _rule(why: str, **rule: Any) -> dict[str, Any]:
    _WHY[json.dumps(rule, sort_keys=True)] = why
    return rule


def _meta(name: str, namespace: str | None) -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {}), "labels": _LABELS}


def _role(kind: str, name: str, namespace: str | None, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": _meta(name, namespace),
        "rules": rules,
    }


def _binding(kind: str, name: str, namespace: str | None, role_kind: str, role: str, sa: dict[str, str]) -> Any:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [sa],
    }


def _state_claim(ns: str) -> dict[str, Any]:
    """The state dir's volume: the clone is cached there between runs (fetched only when the branch moved)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(f"{NAME}-state", ns),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def reconcile_args(opts: Install) -> list[str]:
    args = ["reconcile", "--repo", opts.repo]
    args += ["--branch", opts.branch] if opts.branch else []
    args += ["--target", opts.target] if opts.target else []
    args += ["--path-in-repo", opts.path_in_repo] if opts.path_in_repo != "." else []
    if git.is_ssh(opts.repo):
        args += ["--ssh-key-file", f"{GIT_DIR}/identity", "--known-hosts", f"{GIT_DIR}/known_hosts"]
    return [*args, "--drift", opts.drift, "--state-dir", STATE_DIR, *opts.extra_args]


def _cronjob(opts: Install) -> dict[str, Any]:
    ssh = git.is_ssh(opts.repo)
    env: list[dict[str, Any]] = [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ]
    if not ssh:
        env.append({
            "name": "GITOPS_JOB_GIT_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": GIT_SECRET, "key": "token", "optional": True}},
        })  # fmt: skip
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "state", "mountPath": STATE_DIR}]
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},  # HOME and the per-run checkout
        {"name": "state", "persistentVolumeClaim": {"claimName": f"{NAME}-state"}},
    ]
    if ssh:  # the deploy key and the pinned known_hosts as files: owned by root, readable by the pod's group only
        mounts.append({"name": "git", "mountPath": GIT_DIR, "readOnly": True})
        volumes.append({"name": "git", "secret": {"secretName": GIT_SECRET, "defaultMode": 0o440}})
    container = {
        "name": "reconcile",
        "image": opts.image,
        "args": reconcile_args(opts),
        "env": env,
        "envFrom": [{"secretRef": {"name": RECEIVERS_SECRET, "optional": True}}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    pod = {
        "serviceAccountName": NAME,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(NAME, opts.namespace),
        "spec": {
            "schedule": opts.schedule,
            "concurrencyPolicy": "Forbid",  # never two runs at once (the Lease would make the second wait anyway)
            "startingDeadlineSeconds": 180,  # a run missed by more than this is skipped, not made up later
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,  # the next scheduled run is the retry
                    "activeDeadlineSeconds": 1800,  # a run stuck longer is killed (the Lease expires on its own)
                    "template": {"metadata": {"labels": _LABELS}, "spec": pod},
                }
            },
        },
    }


def to_yaml(docs: Sequence[dict[str, Any]]) -> str:
    """The manifests as one YAML stream (``kubectl apply -f -`` and kustomize read it), each RBAC rule under a
    comment saying what it is for."""
    out = []
    for doc in docs:
        rules = doc.get("rules")
        text = _dump({k: v for k, v in doc.items() if k != "rules"})
        if rules is not None:
            text += "rules:\n"
            for rule in rules:
                why = _WHY.get(json.dumps(rule, sort_keys=True))
                text += "".join(f"  # {line}\n" for line in textwrap.wrap(why, 110)) if why else ""
                text += textwrap.indent(_dump([rule]), "  ")
        out.append(f"---\n{text}")
    return "".join(out)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def plan_of(docs: Sequence[dict[str, Any]], namespace: str, kubeconfig: str | None) -> Plan:
    """The plan of ``docs`` against the cluster: the plan recipe over a repository holding just them (one stack
    ``gitops-job-install``, inventories in ``namespace``), so it is the plan an apply of them would make."""
    from gitops_job.reconcile import run  # the recipe: not needed to print the manifests
    from gitops_job.reconcile.context import Settings

    with tempfile.TemporaryDirectory(prefix="gitops-job-install-") as tmp:
        root = Path(tmp)
        (root / "deploy").mkdir()
        (root / "deploy" / "gitops-job.yaml").write_text(to_yaml(docs))
        target = {"name": "install", "inventoryNamespace": namespace}
        config = {
            "name": "gitops-job-install",
            "targets": [target],
            "stacks": [{"name": "gitops-job-install", "path": "deploy", "render": "plain"}],
        }
        (root / "gitops.yaml").write_text(yaml.safe_dump(config))
        _, plan = run.run_plan(Settings(repo=root, kubeconfig=kubeconfig))
        return plan
