"""Drift (issue 14, item 3) against the real API server: apply with gitops-job, change fields by hand as other field
managers (an edit, a scale through the /scale subresource, a Secret's value), then `plan --drift` names each field,
what we applied, what it holds now and who changed it; ignored fields and objects never count; no secret appears."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
from kubernetes import client

from tests.helpers import cm, config, git_repo, gitops_job, write

SCHEMA = json.loads((Path(__file__).parent.parent / "gitops_job/report/schemas/plan.schema.json").read_text())
PLANTED = "planted-by-hand-" + "z" * 12


def _deployment(ns: str) -> str:
    labels = {"app": "web"}
    container = {"name": "web", "image": "registry.example/web:1", "ports": [{"containerPort": 80}],
                 "env": [{"name": "LOG", "value": "info"}]}  # fmt: skip
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
    })  # fmt: skip


def _secret(ns: str) -> str:
    meta = {"name": "creds", "namespace": ns}
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"password": "ours-1"}})


def _settings(ns: str) -> str:
    meta = {"name": "settings", "namespace": ns}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": "1", "b": "1"}})


STACK = """  - name: app
    path: app
    namespace: {ns}
    ignoreDifferences:
      - kind: ConfigMap
        name: settings
        jsonPointers: [/data/b]
"""


def _repo(tmp_path: Path, ns: str, *, left_alone: bool = False) -> None:
    """The stack; with ``left_alone``, ConfigMap left is annotated gitops-job.io/ssa: Ignore (never applied again)."""
    write(tmp_path, {
        "gitops.yaml": config(ns, STACK.format(ns=ns)),
        "app/deploy.yaml": _deployment(ns),
        "app/secret.yaml": _secret(ns),
        "app/settings.yaml": _settings(ns),
        "app/left.yaml": cm("left", ns, "1", {"gitops-job.io/ssa": "Ignore"} if left_alone else None),
    })  # fmt: skip
    git_repo(tmp_path)


def _drift(kubeconfig: Path, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    text = gitops_job(kubeconfig, "plan", "--repo", str(tmp_path), "--drift").stdout
    doc = json.loads(gitops_job(kubeconfig, "plan", "--repo", str(tmp_path), "--drift", "-o", "json").stdout)
    jsonschema.validate(doc, SCHEMA)
    return text, doc


def test_item14_3_drift_names_the_field_old_and_new_value_and_the_manager(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    _repo(tmp_path, namespace)
    gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "--no-wait")
    text, doc = _drift(kubeconfig, tmp_path)
    assert doc["drift"] == {"objects": 0, "findings": []}, doc["drift"]
    assert "drift: 0 objects (none found)" in text
    _repo(tmp_path, namespace, left_alone=True)

    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    web = {"name": "web", "image": "registry.example/web:hotfix", "env": [{"name": "LOG", "value": "debug"}]}
    edit = {"spec": {"template": {"spec": {"containers": [web]}}}}
    apps.patch_namespaced_deployment("web", namespace, edit, field_manager="kubectl-edit")
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}}, field_manager="kubectl-scale")
    by_hand = {"stringData": {"password": PLANTED}}
    core.patch_namespaced_secret("creds", namespace, by_hand, field_manager="kubectl-edit")
    # ignored: a field under ignoreDifferences, and an object annotated gitops-job.io/ssa: Ignore
    core.patch_namespaced_config_map("settings", namespace, {"data": {"b": "by hand"}}, field_manager="kubectl-edit")
    core.patch_namespaced_config_map("left", namespace, {"data": {"v": "by hand"}}, field_manager="kubectl-edit")

    text, doc = _drift(kubeconfig, tmp_path)
    findings = {(f["id"], f["path"]): f for f in doc["drift"]["findings"]}
    deploy, secret = f"Deployment/{namespace}/web", f"Secret/{namespace}/creds"
    assert doc["drift"]["objects"] == 2, doc["drift"]
    assert {oid for oid, _ in findings} == {deploy, secret}, findings  # not settings (ignored field), nor left
    replicas = findings[deploy, "spec.replicas"]
    assert (replicas["before"], replicas["after"]) == ("3", "5")
    assert [m["name"] for m in replicas["managers"]] == ["kubectl-scale"]
    assert replicas["managers"][0]["subresource"] == "scale"
    image = findings[deploy, "spec.template.spec.containers[name=web].image"]
    assert (image["before"], image["after"]) == ("registry.example/web:1", "registry.example/web:hotfix")
    assert [m["name"] for m in image["managers"]] == ["kubectl-edit"]
    env = findings[deploy, "spec.template.spec.containers[name=web].env[name=LOG].value"]
    assert (env["before"], env["after"], env["managers"][0]["name"]) == ("info", "debug", "kubectl-edit")
    password = findings[secret, "data.password"]
    assert password["before"].startswith("<secret #") and password["after"].startswith("<secret #")
    assert password["before"] != password["after"] and password["managers"][0]["name"] == "kubectl-edit"
    assert len(findings) == 4, findings

    assert f"  Deployment/{namespace}/web" in text.splitlines(), text
    assert "    spec.replicas: 3 → 5 (manager: kubectl-scale (/scale))" in text.splitlines(), text
    assert ("    spec.template.spec.containers[name=web].image: registry.example/web:1 → registry.example/web:hotfix"
            " (manager: kubectl-edit)") in text.splitlines()  # fmt: skip
    for out in (text, json.dumps(doc)):
        for form in (PLANTED, base64.b64encode(PLANTED.encode()).decode(), "ours-1", "b3Vycy0x"):
            assert form not in out, form

    # corrected by an apply: no drift left
    gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "--no-wait", "--force-conflicts")
    _, doc = _drift(kubeconfig, tmp_path)
    assert doc["drift"] == {"objects": 0, "findings": []}, doc["drift"]


def test_item14_3_an_ignored_field_changed_by_hand_is_no_drift(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    _repo(tmp_path, namespace)
    gitops_job(kubeconfig, "apply", "--repo", str(tmp_path), "--no-wait")
    _repo(tmp_path, namespace, left_alone=True)
    core = client.CoreV1Api(api_client)
    core.patch_namespaced_config_map("settings", namespace, {"data": {"b": "by hand"}}, field_manager="kubectl-edit")
    core.patch_namespaced_config_map("left", namespace, {"data": {"v": "by hand"}}, field_manager="kubectl-edit")
    text, doc = _drift(kubeconfig, tmp_path)
    assert doc["drift"] == {"objects": 0, "findings": []}, doc["drift"]
    assert doc["summary"]["update"] == 0, doc["summary"]
    assert "drift: 0 objects (none found)" in text
