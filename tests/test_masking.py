"""Item 13: secret values never appear in any output — planted values searched for in every output (text, JSON,
markdown, errors on stderr, the status command), against the real local cluster.

Each test plants a value that is a Secret somewhere in the run (a Secret being pruned, a Secret of an unselected
stack, a Secret a Helm error echoes, a Secret a controller's condition message quotes) and checks that neither it nor
its base64 form is printed anywhere, while the output still shows a ``<secret #N>`` token where it was.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

from kubernetes import client

from gitops_job.outcomes import Action
from gitops_job.reconcile import context
from gitops_job.reconcile import run as pipeline
from gitops_job.reconcile.digest import digest
from tests.helpers import cm, config, git_repo, gitops_job, write
from tests.kube import crd


def planted() -> str:
    return f"planted-{uuid.uuid4().hex[:12]}-value"


def secret(name: str, ns: str, **values: str) -> str:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": values}
    return json.dumps(body) + "\n"


def assert_hidden(value: str, *outputs: str) -> None:
    forms = (value, base64.b64encode(value.encode()).decode())
    for out in outputs:
        for form in forms:
            assert form not in out, f"{form!r} printed in:\n{out}"


def every_plan_output(kubeconfig: Path, repo: Path, *args: str) -> list[str]:
    outs = []
    for output in ("text", "json", "markdown"):
        result = gitops_job(kubeconfig, "plan", "--repo", str(repo), "-o", output, *args, ok=False)
        outs.append(result.stdout + result.stderr)
    return outs


def test_item13_a_pruned_secrets_values_never_appear_in_other_objects_diffs(
    tmp_path: Path, kubeconfig: Path, namespace: str
) -> None:
    """The Secret leaves git while its value moves into a ConfigMap: the plan learns the live Secret being pruned
    before it builds the ConfigMap's diff, so the value is a token there too."""
    value, repo = planted(), tmp_path / "repo"
    write(repo, {"gitops.yaml": config(namespace, f"  - {{name: app, path: app, namespace: {namespace}}}\n"),
                 "app/db.yaml": secret("db", namespace, password=value),
                 "app/settings.yaml": cm("settings", namespace, "plain")})  # fmt: skip
    git_repo(repo)
    gitops_job(kubeconfig, "apply", "--repo", str(repo), "--no-wait")
    (repo / "app/db.yaml").unlink()
    write(repo, {"app/settings.yaml": cm("settings", namespace, f"postgres://app:{value}@db/app")})
    git_repo(repo)

    outs = every_plan_output(kubeconfig, repo)

    assert_hidden(value, *outs)
    assert "Secret/" + namespace + "/db (prune)" in outs[0] and "postgres://app:<secret #" in outs[0], outs[0]


def test_item13_with_stack_b_a_secret_of_stack_a_is_masked(tmp_path: Path, kubeconfig: Path, namespace: str) -> None:
    """``--stack b``: stack a is not selected, but its Secrets are rendered to be learned, so b's ConfigMap that
    reuses one of their values shows a token — in the plan and in the offline render alike."""
    value, repo = planted(), tmp_path / "repo"
    stacks = f"  - {{name: a, path: a, namespace: {namespace}}}\n  - {{name: b, path: b, namespace: {namespace}}}\n"
    write(repo, {"gitops.yaml": config(namespace, stacks),
                 "a/db.yaml": secret("db", namespace, password=value),
                 "b/settings.yaml": cm("settings", namespace, f"password={value}")})  # fmt: skip
    git_repo(repo)

    outs = every_plan_output(kubeconfig, repo, "--stack", "b")
    rendered = [gitops_job(kubeconfig, "render", "--repo", str(repo), "-s", "b", *o).stdout
                for o in ((), ("-o", "json"))]  # fmt: skip

    assert_hidden(value, *outs, *rendered)
    assert "password=<secret #" in outs[0], outs[0]


def helm_echoing(value: str, ns: str) -> dict[str, str]:
    """A chart whose template fails with a message quoting a value (``fail``), next to a stack whose Secret holds it."""
    return {
        "charts/app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\n",
        "charts/app/values.yaml": f"password: {value}\n",
        "charts/app/templates/cm.yaml": '{{ fail (printf "password %s is too weak" .Values.password) }}\n',
        "db/db.yaml": secret("db", ns, password=value),
    }


def test_item13_a_render_error_echoing_a_secret_value_is_scrubbed(
    tmp_path: Path, kubeconfig: Path, namespace: str
) -> None:
    value, repo = planted(), tmp_path / "repo"
    stacks = (f"  - {{name: db, path: db, namespace: {namespace}}}\n"
              f"  - {{name: app, path: charts/app, render: helm, namespace: {namespace}}}\n")  # fmt: skip
    write(repo, {"gitops.yaml": config(namespace, stacks), **helm_echoing(value, namespace)})
    git_repo(repo)

    runs = [
        gitops_job(kubeconfig, *args, "--repo", str(repo), ok=False)
        for args in (("render",), ("render", "-s", "app"), ("validate", "--offline"), ("plan",), ("plan", "-s", "app"),
                     ("apply", "--no-wait"))
    ]  # fmt: skip

    for run in runs:
        assert run.returncode == 1, run.stdout + run.stderr
        assert "is too weak" in run.stderr and "password <secret #" in run.stderr, run.stderr
    assert_hidden(value, *(r.stdout + r.stderr for r in runs))


def test_item13_health_reasons_and_the_in_sync_wait_error_are_scrubbed(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    """A controller's condition message quotes a secret value: the in-sync apply's wait error (text, JSON) and the
    status command (text, JSON) show a token."""
    group, value, repo = f"m{uuid.uuid4().hex[:8]}.example.com", planted(), tmp_path / "repo"
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd(group, "Link", schema))
    link = {"apiVersion": f"{group}/v1", "kind": "Link", "metadata": {"name": "db", "namespace": namespace},
            "spec": {"to": "db"}}  # fmt: skip
    write(repo, {"gitops.yaml": config(namespace, f"  - {{name: app, path: app, namespace: {namespace}}}\n"),
                 "app/db.yaml": secret("db", namespace, password=value),
                 "app/link.yaml": json.dumps(link) + "\n"})  # fmt: skip
    git_repo(repo)
    _wait_served(kubeconfig, repo)
    gitops_job(kubeconfig, "apply", "--repo", str(repo))
    condition = {"type": "Ready", "status": "False", "reason": "LoginFailed", "message": f"login with {value} refused"}
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        group, "v1", namespace, "links", "db", {"status": {"conditions": [condition]}}
    )

    applied = [gitops_job(kubeconfig, "apply", "--repo", str(repo), *o, ok=False) for o in ((), ("-o", "json"))]
    status = [gitops_job(kubeconfig, "status", "--repo", str(repo), *o, ok=False) for o in ((), ("-o", "json"))]

    assert "LoginFailed: login with <secret #" in applied[0].stdout, applied[0].stdout + applied[0].stderr
    assert json.loads(applied[1].stdout)["stacks"][0]["inSync"]
    assert "LoginFailed: login with <secret #" in status[0].stdout, status[0].stdout
    assert_hidden(value, *(r.stdout + r.stderr for r in (*applied, *status)))


def _wait_served(kubeconfig: Path, repo: Path) -> None:
    """Until discovery serves the new CRD's kind (validate with discovery says valid)."""
    deadline = time.monotonic() + 30
    while gitops_job(kubeconfig, "validate", "--repo", str(repo), ok=False).returncode != 0:
        assert time.monotonic() < deadline, "the CRD's kind was never served"
        time.sleep(0.5)


def test_item13_one_plan_has_one_digest_at_concurrency_16(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    """Tokens are minted while learning, on one thread, never by the dry-run threads: 20 plans of the same objects
    at concurrency 16 have one digest. The objects carry kubectl's last-applied annotation (each a distinct
    token) and all change, so every one is dry-run and masked on a worker thread."""
    repo, n = tmp_path / "repo", 48
    live_client = client.CoreV1Api(api_client)
    files = {"gitops.yaml": config(namespace, f"  - {{name: app, path: app, namespace: {namespace}}}\n")}
    files |= {f"app/cm-{i:02d}.yaml": cm(f"cm-{i:02d}", namespace, f"old-{i}") for i in range(n)}
    files["app/db.yaml"] = secret("db", namespace, password=planted())
    write(repo, files)
    git_repo(repo)
    settings = context.Settings(repo=repo, kubeconfig=str(kubeconfig), concurrency=16)
    pipeline.run_apply(settings, pipeline.ApplyOptions(wait=False, lock_wait=0))
    for i in range(n):  # ours, then annotated by hand with kubectl's last-applied configuration
        last = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": f"old-{i}"}})
        patch = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}}}
        live_client.patch_namespaced_config_map(f"cm-{i:02d}", namespace, patch)
    write(repo, {f"app/cm-{i:02d}.yaml": cm(f"cm-{i:02d}", namespace, f"new-{i}-" + "x" * 20_000) for i in range(n)})
    git_repo(repo)

    runs = [pipeline.run_plan(settings) for _ in range(20)]

    assert all(p.count(Action.UPDATE) == n and not p.failures for _, p in runs)
    assert len({digest(p) for _, p in runs}) == 1, [digest(p) for _, p in runs]
    assert sum(rendered.masker.late for rendered, _ in runs) == 0  # every token was minted while learning
