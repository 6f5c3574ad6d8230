"""A Flux repository read as it is (issue 16): discovery of Kustomizations as stacks (gitops_job.config.flux), each
field rendered with Flux's semantics by the real kustomize binary, and the acceptance on the real cluster over
examples/flux/ (plan, apply, re-plan, prune, suspend, warnings)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gitops_job.config.load import RepoConfig, Stack, Target, load_config
from gitops_job.errors import ConfigError, GitopsJobError
from gitops_job.identity import ObjectId
from gitops_job.reconcile.ownership import Holders, Standing, flux_held
from gitops_job.render import sandbox
from gitops_job.render.stack import render_stack
from tests.helpers import EXAMPLES, git_repo, gitops_job, write

SYNC = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec: {url: "ssh://git@github.com/example/fleet", ref: {branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flux-system, namespace: flux-system}
spec: {interval: 10m, path: ./clusters/c, prune: true, sourceRef: {kind: GitRepository, name: flux-system}}
"""
INSTALL = {
    "clusters/c/flux-system/gotk-components.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n"
    "  labels: {app.kubernetes.io/part-of: flux}\n",
    "clusters/c/flux-system/gotk-sync.yaml": SYNC,
    "clusters/c/flux-system/kustomization.yaml": "resources: [gotk-components.yaml, gotk-sync.yaml]\n",
}


def ks(name: str, path: str, **spec: Any) -> str:
    """A Flux Kustomization (one JSON document: valid YAML) in flux-system reading this repository."""
    body = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": path, "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, **spec},
    }  # fmt: skip
    return json.dumps(body) + "\n"


def cm(name: str, ns: str | None = None, **data: str) -> str:
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}) + "\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def flux_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    write(root, {**INSTALL, **files})
    return root


def load(root: Path, entry: str = "clusters/c") -> RepoConfig:
    return load_config(root, flux=entry)


def stack(config: RepoConfig, name: str) -> Stack:
    return next(s for s in config.stacks if s.name == name)


def rendered(config: RepoConfig, name: str) -> dict[str, dict[str, Any]]:
    """``Kind/name`` → body of what the stack ``name`` renders."""
    objects = render_stack(config, stack(config, name), config.targets[0])
    return {f"{o.id.kind}/{o.id.name}": o.body for o in objects}


# --- discovery: Kustomizations to stacks ----------------------------------------------------------------------------


def test_discovery_maps_fields_and_orders_by_depends_on(tmp_path: Path) -> None:
    root = flux_repo(tmp_path, {
        "clusters/c/apps.yaml": ks("apps", "./apps", dependsOn=[{"name": "infra"}], wait=True, timeout="90s",
                                   targetNamespace="web", serviceAccountName="deployer"),
        "clusters/c/infra.yaml": ks("infra", "./infra", prune=False, interval="5m"),
        "clusters/c/namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
        "apps/a.yaml": cm("a"),
        "infra/i.yaml": cm("i", "default"),
    })  # fmt: skip
    config = load(root)
    assert [s.name for s in config.stacks] == ["flux-system", "infra", "apps"]
    apps, infra, entry = stack(config, "apps"), stack(config, "infra"), stack(config, "flux-system")
    assert (apps.path, apps.depends_on, apps.wait, apps.timeout, apps.prune) == ("apps", ("infra",), True, 90.0, True)
    assert (apps.namespace, apps.service_account_name, apps.service_account_namespace) == (
        "web",
        "deployer",
        "flux-system",
    )
    assert (infra.prune, infra.wait, infra.timeout) == (False, False, 300.0)  # timeout defaults to the interval
    assert entry.path == "clusters/c" and entry.flux is not None
    assert entry.flux.skip == ("clusters/c/flux-system",)
    assert "note: clusters/c/flux-system/gotk-components.yaml: the Flux installation (gotk-components) is skipped" in (
        config.notes
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"suspend": True}, "note: clusters/c/apps.yaml:1: Kustomization/flux-system/apps is suspended"),
        (
            {"decryption": {"provider": "sops"}},
            "warning: clusters/c/apps.yaml:1: Kustomization/flux-system/apps: "
            "spec.decryption is not supported: SOPS decryption is not done",
        ),
        ({"healthCheckExprs": []}, "spec.healthCheckExprs is not supported"),
        (
            {"kubeConfig": {"secretRef": {"name": "x"}}},
            "spec.kubeConfig is not supported: a remote cluster is not reconciled: this Kustomization is skipped",
        ),
        ({"fancyNewField": 1}, "spec.fancyNewField is not a field gitops-job knows; ignored"),
        (
            {"sourceRef": {"kind": "OCIRepository", "name": "o"}},
            "spec.sourceRef OCIRepository/flux-system/o: a OCIRepository source is not supported (only Git "
            "repositories are read): vendor its manifests into a Git repository: this Kustomization is skipped",
        ),
        (
            {"sourceRef": {"kind": "ExternalArtifact", "name": "e"}},
            "spec.sourceRef ExternalArtifact/flux-system/e: a ExternalArtifact source is not supported",
        ),
    ],
)
def test_unsupported_and_suspended_are_said_with_file_and_line(
    tmp_path: Path, spec: dict[str, Any], expected: str
) -> None:
    other = (
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: other\n"
        "  namespace: flux-system\nspec:\n  url: https://git.example.com/other/repo.git\n"
    )
    files = {"clusters/c/apps.yaml": ks("apps", "./apps", **spec), "clusters/c/other.yaml": other}
    root = flux_repo(tmp_path, {**files, "apps/a.yaml": cm("a")})
    config = load(root)
    assert any(
        expected in n and n.startswith(("note: clusters/c/apps.yaml:1: ", "warning: clusters/c/apps.yaml:1: "))
        for n in config.notes
    ), config.notes
    skipped = "suspend" in spec or "kubeConfig" in spec or "sourceRef" in spec
    assert ("apps" in {s.name for s in config.stacks}) is not skipped


def test_suspended_kustomization_is_not_walked(tmp_path: Path) -> None:
    """What a suspended Kustomization would apply is not read: a Kustomization inside its path is not a stack."""
    root = flux_repo(tmp_path, {
        "clusters/c/apps.yaml": ks("apps", "./apps", suspend=True),
        "apps/nested.yaml": ks("nested", "./nested"),
        "nested/n.yaml": cm("n"),
    })  # fmt: skip
    config = load(root)
    assert [s.name for s in config.stacks] == []  # the entry path holds only Flux objects: no stack of its own
    assert "note: clusters/c: holds only Flux objects, so it is no stack of its own" in config.notes


def test_nested_kustomizations_are_followed(tmp_path: Path) -> None:
    root = flux_repo(tmp_path, {
        "clusters/c/apps.yaml": ks("apps", "./apps"),
        "apps/team/kustomization.yaml": "resources: [team.yaml]\n",
        "apps/team/team.yaml": ks("team", "./teams/one"),
        "teams/one/x.yaml": cm("x"),
    })  # fmt: skip
    config = load(root)
    assert stack(config, "team").path == "teams/one"
    assert "ConfigMap/x" in rendered(config, "team")


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            {"clusters/c/apps.yaml": ks("apps", "./apps", dependsOn=[{"name": "nope"}])},
            "spec.dependsOn names Kustomization/flux-system/nope, which the Flux repository does not hold",
        ),
        ({"clusters/c/apps.yaml": ks("apps", "./missing")}, "spec.path 'missing' is not a directory"),
        ({"clusters/c/apps.yaml": ks("apps", "../../outside")}, "escapes the repository"),
        (
            {
                "clusters/c/apps.yaml": ks("apps", "./apps", dependsOn=[{"name": "oci"}]),
                "clusters/c/oci.yaml": ks("oci", "./apps", sourceRef={"kind": "OCIRepository", "name": "o"}),
            },
            "spec.dependsOn names Kustomization/flux-system/oci, which is skipped (see its warning)",
        ),
        (
            {
                "clusters/c/a.yaml": ks("a", "./apps", dependsOn=[{"name": "b"}]),
                "clusters/c/b.yaml": ks("b", "./apps", dependsOn=[{"name": "a"}]),
            },
            "dependsOn cycle",
        ),
        (
            {"clusters/c/apps.yaml": ks("apps", "./apps", postBuild={"substitute": {"bad-name": "x"}})},
            "postBuild variable 'bad-name' is not a valid name",
        ),
    ],
)
def test_what_cannot_be_a_stack_is_a_config_error(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    root = flux_repo(tmp_path, {"apps/a.yaml": cm("a"), **files})
    with pytest.raises(ConfigError) as e:
        load(root)
    assert reason in str(e.value)
    assert "clusters/c/" in str(e.value)  # where: file:line of the Kustomization, or the entry path


def test_this_repository_by_url(tmp_path: Path) -> None:
    """A GitRepository other than the bootstrap's is this repository when its URL is this checkout's remote."""
    root = flux_repo(tmp_path, {
        "clusters/c/apps.yaml": ks("apps", "./apps", sourceRef={"kind": "GitRepository", "name": "mine"}),
        "clusters/c/mine.yaml": "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n"
        "  name: mine\n  namespace: flux-system\nspec:\n  url: https://x-access-token:T@GitHub.com/acme/fleet.git\n",
        "apps/a.yaml": cm("a"),
    })  # fmt: skip
    git_repo(root)
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin", "git@github.com:acme/fleet"], check=True)
    assert "apps" in {s.name for s in load(root).stacks}


def test_gitops_yaml_flux_path_beside_native_stacks(tmp_path: Path) -> None:
    root = flux_repo(tmp_path, {
        "gitops.yaml": "flux: {path: clusters/c}\nstacks:\n  - name: extra\n    path: extra\n",
        "extra/e.yaml": cm("e", "default"),
        "clusters/c/apps.yaml": ks("apps", "./apps"),
        "apps/a.yaml": cm("a"),
    })  # fmt: skip
    assert [s.name for s in load_config(root).stacks] == ["extra", "apps"]
    write(root, {"gitops.yaml": "flux: {path: clusters/c, typo: 1}\n"})
    with pytest.raises(ConfigError, match=r"gitops.yaml:1: flux.typo: unknown key 'typo'"):
        load_config(root)


# --- render: each field with Flux's semantics (the real kustomize binary) ---------------------------------------


DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
"""


def test_generated_kustomization_with_every_overlay_field(tmp_path: Path) -> None:
    root = flux_repo(tmp_path, {
        "clusters/c/apps.yaml": ks(
            "apps", "./apps",
            targetNamespace="web", namePrefix="p-", nameSuffix="-s",
            patches=[
                {"patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 4\n"},
                {"patch": '[{"op": "add", "path": "/data/patched", "value": "yes"}]',
                 "target": {"kind": "ConfigMap", "labelSelector": "patch=me"}},
            ],
            images=[{"name": "nginx", "newName": "registry.example.com/nginx", "newTag": "1.27"}],
            components=["../components/extra"],
            commonMetadata={"labels": {"team": "a"}, "annotations": {"owner": "a@example.com"}},
            force=True,
        ),
        "apps/deploy.yaml": DEPLOY,
        "apps/sub/cms.yaml": cm("one") + "---\n" + json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "two", "labels": {"patch": "me"}}, "data": {}}),
        "apps/notes.txt": "not yaml: Flux's generated kustomization lists only .yaml and .yml files\n",
        "components/extra/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "resources: [extra.yaml]\n",
        "components/extra/extra.yaml": cm("extra"),
    })  # fmt: skip
    objects = rendered(load(root), "apps")
    assert sorted(objects) == ["ConfigMap/p-extra-s", "ConfigMap/p-one-s", "ConfigMap/p-two-s", "Deployment/p-web-s"]
    web = objects["Deployment/p-web-s"]
    assert web["metadata"]["namespace"] == "web"
    assert web["spec"]["replicas"] == 4  # strategic merge, by the name before the prefix (as Flux)
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/nginx:1.27"
    assert web["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert web["spec"]["selector"] == {"matchLabels": {"app": "web"}}  # commonMetadata never touches selectors
    assert web["metadata"]["annotations"] == {"owner": "a@example.com", "gitops-job.io/force": "enabled"}
    assert objects["ConfigMap/p-two-s"]["data"] == {"patched": "yes"}  # JSON6902 by its label selector only
    assert objects["ConfigMap/p-one-s"]["data"] == {}


def test_existing_kustomization_gets_the_fields_merged(tmp_path: Path) -> None:
    """A path with a kustomization file keeps it: Flux's fields are merged in (namespace set; patches appended;
    an image of the same name replaced), in the sandbox's copy only — the repository's file is unchanged."""
    kustomization = ("resources: [deploy.yaml]\nnamespace: old\nimages: [{name: nginx, newTag: '1.0'}]\n"
                     "patches:\n  - patch: '[{\"op\": \"add\", \"path\": \"/metadata/labels/first\", "
                     "\"value\": \"1\"}]'\n"
                     "    target: {kind: Deployment}\n")  # fmt: skip
    root = flux_repo(tmp_path, {
        "clusters/c/apps.yaml": ks("apps", "./apps", targetNamespace="new", images=[{"name": "nginx", "newTag": "2.0"}],
                                   patches=[{"patch": '[{"op": "add", "path": "/metadata/labels/second", "value": '
                                             '"2"}]', "target": {"kind": "Deployment", "name": "web"}}]),
        "apps/kustomization.yaml": kustomization,
        "apps/deploy.yaml": DEPLOY,
    })  # fmt: skip
    web = rendered(load(root), "apps")["Deployment/web"]
    assert web["metadata"]["namespace"] == "new"
    assert web["metadata"]["labels"] == {"app": "web", "first": "1", "second": "2"}
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2.0"
    assert (root / "apps/kustomization.yaml").read_text() == kustomization


def test_post_build_substitution_from_the_repository(tmp_path: Path) -> None:
    """substituteFrom in order (a later one wins), then substitute over them; a Secret's data is base64-decoded;
    an object annotated kustomize.toolkit.fluxcd.io/substitute: disabled is left alone."""
    secret = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "flux-system"},
                         "data": {"token": b64("hunter2"), "region": b64("eu")}})  # fmt: skip
    disabled = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw", "annotations": {
        "kustomize.toolkit.fluxcd.io/substitute": "disabled"}}, "data": {"v": "${region}"}})  # fmt: skip
    root = flux_repo(tmp_path, {
        "clusters/c/vars.yaml": cm("vars", "flux-system", region="us", env="dev") + "---\n" + secret,
        "clusters/c/apps.yaml": ks("apps", "./apps", postBuild={
            "substitute": {"env": "prod"},
            "substituteFrom": [{"kind": "ConfigMap", "name": "vars"}, {"kind": "Secret", "name": "s"}]}),
        "apps/a.yaml": cm("a", None, where="${region}-${env}", token="${token}", default="${missing:=fallback}"),
        "apps/raw.yaml": disabled,
    })  # fmt: skip
    config = load(root)
    objects = rendered(config, "apps")
    assert objects["ConfigMap/a"]["data"] == {"where": "eu-prod", "token": "hunter2", "default": "fallback"}
    assert objects["ConfigMap/raw"]["data"] == {"v": "${region}"}
    # The ConfigMap and Secret that hold the values are the entry stack's objects (the sync Kustomization applies
    # them), so the Secret is rendered, and its values masked in every output.
    assert {"ConfigMap/vars", "Secret/s"} <= set(rendered(config, "flux-system"))


def test_entry_stack_leaves_flux_objects_out(tmp_path: Path) -> None:
    root = flux_repo(tmp_path, {
        "clusters/c/apps.yaml": ks("apps", "./apps"),
        "clusters/c/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
        "clusters/c/repo.yaml": "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n"
        "  name: charts\n  namespace: flux-system\nspec: {url: 'https://charts.example.com'}\n",
        "apps/a.yaml": cm("a"),
    })  # fmt: skip
    config = load(root)
    assert sorted(rendered(config, "flux-system")) == ["Namespace/team"]
    assert "note: clusters/c/repo.yaml:1: HelmRepository/flux-system/charts is a Flux source: read, never applied" in (
        config.notes
    )


# --- acceptance: examples/flux on the real cluster --------------------------------------------------------------


def _ensure_namespace(kubeconfig: Path, name: str) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    try:
        api.create_namespace({"metadata": {"name": name}})
    except client.ApiException as e:
        assert e.status == 409


def _config_map(kubeconfig: Path, namespace: str, name: str) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig))).read_namespaced_config_map(name, namespace)


def test_apply_moves_on_from_new_crds_only_once_discovery_serves_them(kubeconfig: Path) -> None:
    """The acceptance's infra-configs applies a Widget right after infra-controllers created its CRD. The API server
    lists a CRD in discovery from its own queue, only after that has seen Established: so apply waits for discovery
    to serve each new kind, not only for Established (its kind would otherwise be "not served" for a moment)."""
    from gitops_job.kube import Kube
    from gitops_job.model import RenderedObject, Source
    from gitops_job.reconcile.apply import _established
    from tests.kube import crd

    kube = Kube.connect(str(kubeconfig))
    try:
        crd_type = kube.resource_type("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        assert crd_type is not None
        for round_ in range(3):
            groups = [f"r{round_}g{i}.discovery.example.com" for i in range(4)]
            bodies = [
                crd(g, "Gadget", {"type": "object", "x-kubernetes-preserve-unknown-fields": True}) for g in groups
            ]
            for body in bodies:
                kube.apply(crd_type, body, where="crd")
            _established(kube, [RenderedObject(ObjectId.of(b), b, Source("crds.yaml"), "s") for b in bodies])
            assert all(kube.resource_type(f"{g}/v1", "Gadget") is not None for g in groups)  # no refresh needed
    finally:
        kube.close()


def test_acceptance_examples_flux_staging(tmp_path: Path, kubeconfig: Path) -> None:
    """``plan --flux clusters/staging`` on examples/flux shows every object with its Kustomization as the stack;
    apply converges; re-plan is clean; removing a file prunes exactly its objects; a suspended Kustomization is
    skipped and says so; an unsupported field is warned with file:line."""
    repo = tmp_path / "fleet"
    shutil.copytree(EXAMPLES / "flux", repo)
    git_repo(repo)
    _ensure_namespace(kubeconfig, "flux-system")  # Flux's installation made it: the entry stack's ConfigMap goes there
    args = ["--repo", str(repo), "--flux", "clusters/staging"]
    plan = gitops_job(kubeconfig, "plan", *args, "-o", "json")
    entries = {(e["id"], e["stack"]) for e in json.loads(plan.stdout)["objects"]}
    assert entries == {
        ("ConfigMap/flux-system/cluster-vars", "flux-system"),
        ("Namespace/widget-system", "infra-controllers"),
        ("CustomResourceDefinition/widgets.fleet.example.com", "infra-controllers"),
        ("Widget/widget-system/default", "infra-configs"),
        ("Namespace/podinfo", "apps"),
        ("ConfigMap/podinfo/podinfo-settings", "apps"),
        ("ConfigMap/podinfo/greeting", "apps"),  # apps' HelmRelease, its chart in this repository
    }, plan.stdout
    assert "gotk-components.yaml: the Flux installation (gotk-components) is skipped" in plan.stderr

    gitops_job(kubeconfig, "apply", *args)
    again = gitops_job(kubeconfig, "plan", *args, "--exit-code")
    assert "0 to create" in again.stdout and "0 to update" in again.stdout
    greeting = _config_map(kubeconfig, "podinfo", "greeting")
    assert greeting.data == {"greeting": "hello from staging", "environment": "staging", "chart": "greeting-0.1.0"}
    assert greeting.metadata.labels["helm.toolkit.fluxcd.io/name"] == "greeting"

    # Removing a file prunes exactly its objects.
    (repo / "apps/base/config.yaml").unlink()
    write(repo, {"apps/base/kustomization.yaml": "resources: [namespace.yaml, release.yaml]\n"})
    git_repo(repo)
    pruning = json.loads(gitops_job(kubeconfig, "plan", *args, "-o", "json").stdout)
    changed = {(e["id"], e["action"]) for e in pruning["objects"] if e["action"] != "unchanged"}
    assert changed == {("ConfigMap/podinfo/podinfo-settings", "prune")}, changed
    gitops_job(kubeconfig, "apply", *args)
    assert "0 to prune" in gitops_job(kubeconfig, "plan", *args).stdout

    # Suspended: skipped and said; an unsupported field: warned with file:line.
    text = (repo / "clusters/staging/apps.yaml").read_text()
    text = text.replace("  prune: true\n", "  prune: true\n  suspend: true\n", 1)
    write(repo, {"clusters/staging/apps.yaml": text})
    infra = (repo / "clusters/staging/infrastructure.yaml").read_text()
    infra = infra.replace("  wait: true\n", "  wait: true\n  decryption:\n    provider: sops\n", 1)
    write(repo, {"clusters/staging/infrastructure.yaml": infra})
    git_repo(repo)
    suspended = gitops_job(kubeconfig, "plan", *args)
    assert "note: clusters/staging/apps.yaml:13: Kustomization/flux-system/apps is suspended" in suspended.stderr
    assert ("warning: clusters/staging/infrastructure.yaml:12: Kustomization/flux-system/infra-controllers: "
            "spec.decryption is not supported") in suspended.stderr  # fmt: skip
    assert "stack apps" not in suspended.stdout and "prune" not in suspended.stdout.replace("0 to prune", "")


def test_render_time_against_plain_kustomize(tmp_path: Path) -> None:
    """Not a pass/fail figure: the example's render, against `kustomize build` of each path (printed with -s)."""
    repo = tmp_path / "fleet"
    shutil.copytree(EXAMPLES / "flux", repo)
    started = time.monotonic()
    config = load(repo, "clusters/staging")
    for s in config.stacks:
        render_stack(config, s, Target("default"))
    ours = time.monotonic() - started
    kustomize = sandbox.binary("kustomize")
    assert kustomize
    # Plain kustomize needs a kustomization where Flux generates one: written here as Flux would.
    generated = {
        "clusters/staging/kustomization.yaml": "resources: [apps.yaml, cluster-vars.yaml, infrastructure.yaml]\n",
        "infrastructure/controllers/kustomization.yaml": "resources: [namespace.yaml, widgets-crd.yaml]\n",
    }
    write(repo, generated)
    started = time.monotonic()
    built = [kustomize_build(kustomize, repo / s.path) for s in config.stacks]
    plain = time.monotonic() - started
    assert len(built) == len(config.stacks) == 4
    print(f"render of examples/flux clusters/staging: gitops-job {ours:.3f}s ({len(config.stacks)} stacks), "
          f"kustomize build of the same {len(built)} paths {plain:.3f}s")  # fmt: skip


def kustomize_build(kustomize: str, path: Path) -> str:
    return subprocess.run([kustomize, "build", str(path)], check=True, capture_output=True, text=True).stdout


# --- migration off Flux: ownership on the real cluster ------------------------------------------------------------

FLUX_LABELS = "kustomize.toolkit.fluxcd.io"


def test_migration_adopts_from_kustomize_controller_and_respects_flux_inventory(
    tmp_path: Path, kubeconfig: Path, namespace: str, dyn: Any, api_client: Any
) -> None:
    """Objects Flux applied (its labels, field manager kustomize-controller) plan as 'adopt (from
    kustomize-controller)', not as conflicts; apply refuses them without --adopt-from-flux and takes their fields with
    it; an object a live Flux Kustomization's inventory lists is never pruned until that Kustomization is suspended."""
    from kubernetes.dynamic.exceptions import NotFoundError

    configmaps, kustomizations = _simulate_flux(dyn, api_client, namespace)
    repo = tmp_path / "repo"
    gitops = f"targets:\n  - name: t\n    inventoryNamespace: {namespace}\nflux: {{path: clusters/c}}\n"
    write(repo, {
        **INSTALL,
        "gitops.yaml": gitops,
        "clusters/c/apps.yaml": ks("apps", "./apps")
        .replace('"namespace": "flux-system"}', f'"namespace": "{namespace}"}}')
        .replace('"name": "flux-system"}', '"name": "flux-system", "namespace": "flux-system"}'),
        "apps/settings.yaml": cm("settings", namespace, v="from git"),
        "apps/kept.yaml": cm("kept", namespace, v="1"),
    })  # fmt: skip
    git_repo(repo)
    args = ["--repo", str(repo)]
    plan = json.loads(gitops_job(kubeconfig, "plan", *args, "-o", "json").stdout)
    by_id = {e["id"]: e for e in plan["objects"]}
    assert {e["action"] for e in by_id.values()} == {"adopt"}, plan
    settings = by_id[f"ConfigMap/{namespace}/settings"]
    assert settings["note"].startswith(f"adopt (from kustomize-controller): Flux Kustomization {namespace}/apps")
    assert "kustomize-controller -> gitops-job" in settings["note"]
    assert plan["failures"] == []

    refused = gitops_job(kubeconfig, "apply", *args, ok=False)
    assert refused.returncode != 0 and "re-run with --adopt-from-flux" in refused.stderr
    assert "someone" not in refused.stderr
    gitops_job(kubeconfig, "apply", *args, "--adopt-from-flux")
    live = configmaps.get(name="settings", namespace=namespace).to_dict()
    assert live["data"] == {"v": "from git"}
    managers = {m["manager"]: m for m in live["metadata"]["managedFields"]}
    assert "f:v" in json.dumps(managers["gitops-job"]["fieldsV1"])
    assert "kustomize-controller" not in managers or "f:v" not in json.dumps(managers["kustomize-controller"])
    assert "0 to create" in gitops_job(kubeconfig, "plan", *args).stdout

    # Removed from git while Flux's inventory still lists it: the plan says so, and apply leaves it.
    (repo / "apps/kept.yaml").unlink()
    git_repo(repo)
    held = json.loads(gitops_job(kubeconfig, "plan", *args, "-o", "json").stdout)
    (entry,) = [e for e in held["objects"] if e["action"] == "prune"]
    assert entry["id"] == f"ConfigMap/{namespace}/kept"
    assert entry["note"].startswith(f"held by flux: Flux Kustomization {namespace}/apps still lists it")
    applied = gitops_job(kubeconfig, "apply", *args, "-o", "json")
    assert f"Flux Kustomization {namespace}/apps still lists it in its inventory" in applied.stdout + applied.stderr
    assert configmaps.get(name="kept", namespace=namespace).to_dict()["data"] == {"v": "1"}
    # Suspended in the cluster: Flux holds nothing any more, so the next apply prunes it.
    kustomizations.patch(name="apps", namespace=namespace, body={"spec": {"suspend": True}},
                         content_type="application/merge-patch+json")  # fmt: skip
    gitops_job(kubeconfig, "apply", *args)
    with pytest.raises(NotFoundError):
        configmaps.get(name="kept", namespace=namespace)


def _simulate_flux(dyn: Any, api_client: Any, namespace: str) -> tuple[Any, Any]:
    """What Flux would have left: its Kustomization CRD, a Kustomization ``apps`` whose status lists two
    ConfigMaps in its inventory, and those ConfigMaps applied by kustomize-controller with Flux's labels."""
    from kubernetes import client

    from tests.kube import crd, wait_until

    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    try:
        client.ApiextensionsV1Api(api_client).create_custom_resource_definition(
            crd("kustomize.toolkit.fluxcd.io", "Kustomization", schema)
        )
    except client.ApiException as e:
        assert e.status == 409
    wait_until(lambda: _served(dyn), 30, "Flux's Kustomization CRD served")
    labels = {f"{FLUX_LABELS}/name": "apps", f"{FLUX_LABELS}/namespace": namespace}
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    for name, value in (("settings", "from flux"), ("kept", "1")):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace,
                "labels": labels}, "data": {"v": value}}  # fmt: skip
        dyn.server_side_apply(configmaps, body=body, namespace=namespace, field_manager="kustomize-controller")
    kustomizations = dyn.resources.get(api_version="kustomize.toolkit.fluxcd.io/v1", kind="Kustomization")
    inventory = {"entries": [{"id": f"{namespace}_settings__ConfigMap", "v": "v1"},
                             {"id": f"{namespace}_kept__ConfigMap", "v": "v1"}]}  # fmt: skip
    live_ks = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
               "metadata": {"name": "apps", "namespace": namespace},
               "spec": {"path": "./apps", "prune": True}, "status": {"inventory": inventory}}  # fmt: skip
    kustomizations.create(body=live_ks, namespace=namespace)
    return configmaps, kustomizations


def _served(dyn: Any) -> bool | None:
    try:
        dyn.resources.get(api_version="kustomize.toolkit.fluxcd.io/v1", kind="Kustomization")
    except Exception:
        dyn.resources.invalidate_cache() if hasattr(dyn.resources, "invalidate_cache") else None
        return None
    return True


@pytest.mark.parametrize(
    ("kustomizations", "expected"),
    [
        (
            [
                {
                    "metadata": {"name": "apps", "namespace": "fs"},
                    "status": {
                        "inventory": {
                            "entries": [
                                {"id": "web_settings__ConfigMap"},
                                {"id": "_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition"},
                                {"id": "web_app_apps_Deployment"},
                            ]
                        }
                    },
                }
            ],
            {
                ObjectId("", "ConfigMap", "web", "settings"): "Flux Kustomization fs/apps",
                ObjectId(
                    "apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com"
                ): "Flux Kustomization fs/apps",
                ObjectId("apps", "Deployment", "web", "app"): "Flux Kustomization fs/apps",
            },
        ),
        (
            [
                {
                    "metadata": {"name": "apps", "namespace": "fs"},
                    "spec": {"suspend": True},
                    "status": {"inventory": {"entries": [{"id": "web_settings__ConfigMap"}]}},
                }
            ],
            {},
        ),  # suspended: holds nothing
        ([{"metadata": {"name": "new"}, "status": {}}], {}),  # never reconciled: no inventory
        (
            [
                {
                    "metadata": {"name": "x"},
                    "status": {"inventory": {"entries": [{"id": "garbage"}, "no", {"id": "a__b"}]}},
                }
            ],
            {},
        ),
    ],
)
def test_flux_inventory_ids(kustomizations: list[dict[str, Any]], expected: dict[ObjectId, str]) -> None:
    assert flux_held(kustomizations) == expected


@pytest.mark.parametrize(
    ("labels", "managers", "standing"),
    [
        ({f"{FLUX_LABELS}/name": "apps", f"{FLUX_LABELS}/namespace": "fs"}, ["kustomize-controller"], Standing.FLUX),
        ({f"{FLUX_LABELS}/name": "apps", f"{FLUX_LABELS}/namespace": "fs"}, ["kubectl"], Standing.FOREIGN),
        ({}, ["kustomize-controller"], Standing.FOREIGN),  # no Flux labels: not Flux's to hand over
        (
            {
                "gitops-job.io/target": "t",
                "gitops-job.io/stack": "s",
                f"{FLUX_LABELS}/name": "apps",
                f"{FLUX_LABELS}/namespace": "fs",
            },
            ["kustomize-controller"],
            Standing.OURS,
        ),
    ],
)
def test_claim_of_what_flux_applied(labels: dict[str, str], managers: list[str], standing: Standing) -> None:
    live = {"metadata": {"labels": labels, "managedFields": [{"manager": m} for m in managers]}}
    holders = Holders(target="t", repository="r", stacks=frozenset({"s"}))
    oid = ObjectId("", "ConfigMap", "web", "settings")
    assert holders.claim(oid, "s", live).standing is standing


def test_substitute_from_the_cluster_is_read_there_named_and_masked(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: Any
) -> None:
    """A substituteFrom ConfigMap or Secret the repository does not hold is read from the cluster and named on
    stderr; the Secret's value never appears in any output, even substituted into a ConfigMap; a missing one is an
    error naming it unless optional."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    planted = "planted-s3cret-Value-91"
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "stringData": {"token": planted}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "region"}, "data": {"region": "eu"}})
    post = {"substituteFrom": [{"kind": "ConfigMap", "name": "region"}, {"kind": "Secret", "name": "creds"},
                               {"kind": "ConfigMap", "name": "absent", "optional": True}]}  # fmt: skip
    kustomization = (
        ks("apps", "./apps", postBuild=post)
        .replace('"namespace": "flux-system"}', f'"namespace": "{namespace}"}}')
        .replace('"name": "flux-system"}', '"name": "flux-system", "namespace": "flux-system"}')
    )
    repo = tmp_path / "repo"
    write(repo, {
        **INSTALL,
        "gitops.yaml": f"targets:\n  - name: t\n    inventoryNamespace: {namespace}\nflux: {{path: clusters/c}}\n",
        "clusters/c/apps.yaml": kustomization,
        "apps/app.yaml": cm("app", namespace, region="${region}", token="${token}"),
    })  # fmt: skip
    git_repo(repo)
    text = gitops_job(kubeconfig, "plan", "--repo", str(repo))
    as_json = gitops_job(kubeconfig, "plan", "--repo", str(repo), "-o", "json")
    for out in (text, as_json):
        assert planted not in out.stdout + out.stderr
    assert f"postBuild.substituteFrom Secret/{namespace}/creds: not in the repository, read from the cluster" in (
        text.stderr
    )
    assert f"ConfigMap/{namespace}/absent: not in the repository nor the cluster; optional, so skipped" in text.stderr
    assert "region: eu" in text.stdout and "<secret #" in text.stdout
    gitops_job(kubeconfig, "apply", "--repo", str(repo))
    assert core.read_namespaced_config_map("app", namespace).data == {"region": "eu", "token": planted}

    write(
        repo, {"clusters/c/apps.yaml": kustomization.replace('"name": "absent", "optional": true', '"name": "absent"')}
    )
    git_repo(repo)
    missing = gitops_job(kubeconfig, "plan", "--repo", str(repo), ok=False)
    assert missing.returncode != 0
    assert (f"ConfigMap/{namespace}/absent is neither in the Flux repository nor in the cluster; add it, or mark it "
            "optional: true") in missing.stderr  # fmt: skip
    assert "clusters/c/apps.yaml:1: postBuild.substituteFrom" in missing.stderr


def test_a_repository_secret_substituted_elsewhere_is_masked_in_render(tmp_path: Path) -> None:
    """A Secret the repository holds, read by substituteFrom into a ConfigMap: `render` (text and JSON) shows
    neither the Secret's value nor the ConfigMap's copy of it."""
    planted = "planted-Zq81-value"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "flux-system"},
              "stringData": {"token": planted}}  # fmt: skip
    root = flux_repo(tmp_path, {
        "clusters/c/vars.yaml": json.dumps(secret) + "\n",
        "clusters/c/apps.yaml": ks("apps", "./apps", postBuild={"substituteFrom": [{"kind": "Secret", "name": "s"}]}),
        "apps/cm.yaml": cm("a", "default", token="${token}"),
    })  # fmt: skip
    for output in ("yaml", "json"):
        result = gitops_job(tmp_path / "no-kubeconfig", "render", "--repo", str(root), "--flux", "clusters/c",
                            "-o", output)  # fmt: skip
        assert planted not in result.stdout + result.stderr
        assert "<secret #1>" in result.stdout


# --- HelmRelease in a Kustomization's build (rendered into its stack) ------------------------------------------------


def helm_release(name: str, spec: dict[str, Any], namespace: str = "web") -> str:
    body = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"interval": "10m", **spec}}  # fmt: skip
    return json.dumps(body) + "\n"


HELM_REPOSITORY = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: charts
  namespace: flux-system
spec:
  interval: 1h
  url: {url}
"""
FROM_CHARTS = {
    "spec": {
        "chart": "demo",
        "version": "1.x",
        "sourceRef": {"kind": "HelmRepository", "name": "charts", "namespace": "flux-system"},
    }
}


def helm_fleet(tmp_path: Path, url: str, allow: str | None, **release: Any) -> Path:
    """A Flux repository whose sources (a HelmRepository at ``url``) sit in the entry path and whose apps
    Kustomization holds a HelmRelease of chart ``demo`` with a Secret's value in valuesFrom."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "greeting", "namespace": "web"},
              "stringData": {"text": PLANTED}}  # fmt: skip
    spec = {"chart": FROM_CHARTS, "valuesFrom": [{"kind": "Secret", "name": "greeting", "valuesKey": "text",
                                                  "targetPath": "greeting"}], **release}  # fmt: skip
    gitops = f"sources:\n  allowHosts: [{allow}]\n" if allow else ""
    return flux_repo(tmp_path, {
        **({"gitops.yaml": gitops + "flux: {path: clusters/c}\n"} if gitops else {}),
        "clusters/c/sources.yaml": HELM_REPOSITORY.format(url=url),
        "clusters/c/apps.yaml": ks("apps", "./apps"),
        "apps/secret.yaml": json.dumps(secret) + "\n",
        "apps/release.yaml": "# the release\n" + helm_release("demo", spec),
    })  # fmt: skip


PLANTED = "planted-Hr-9x7-value"


def render_fleet(tmp_path: Path, root: Path, *more: str, ok: bool = True) -> Any:
    return gitops_job(tmp_path / "no-kubeconfig", "render", "--repo", str(root), "--flux", "clusters/c", *more, ok=ok)


def test_helmrelease_from_an_http_helmrepository_joins_its_stack_masked(tmp_path: Path) -> None:
    """A HelmRelease in apps' build, its HelmRepository in another path (the entry's): the chart is fetched from
    the allowed loopback repository, its objects are apps' (with Flux's origin labels), the HelmRelease and
    HelmRepository are not applied, and a valuesFrom Secret's value is masked in every output."""
    from tests.chartrepo import chart_server

    with chart_server(tmp_path / "served") as served:
        served.publish({"demo": ["1.0.0", "1.2.0", "2.0.0"]}, crds=False)
        root = helm_fleet(tmp_path, served.url, "127.0.0.1")
        config = load_config(root)
        apps = rendered(config, "apps")
        assert sorted(apps) == ["ConfigMap/demo-settings", "Secret/greeting"]
        cm = apps["ConfigMap/demo-settings"]
        assert cm["data"] == {"greeting": PLANTED, "version": "1.2.0"}
        assert cm["metadata"]["namespace"] == "web"
        assert cm["metadata"]["labels"] == {"helm.toolkit.fluxcd.io/name": "demo",
                                            "helm.toolkit.fluxcd.io/namespace": "web"}  # fmt: skip
        assert [s.name for s in config.stacks] == ["apps"]  # the entry path holds only Flux objects: read, not applied
        for output in ("yaml", "json"):
            result = render_fleet(tmp_path, root, "-o", output)
            assert PLANTED not in result.stdout + result.stderr
            assert "<secret #" in result.stdout
        assert (
            "stack: apps, source: demo/templates/configmap.yaml in chart demo 1.2.0"
            in render_fleet(tmp_path, root).stdout
        )


def test_helmrelease_host_not_allowed_or_fork_fetches_nothing(tmp_path: Path) -> None:
    """A HelmRepository whose host sources.allowHosts does not name: an error naming the HelmRelease's file:line
    and the host, nothing fetched; a fork's pull request (fetch False) fetches nothing either."""
    from tests.chartrepo import chart_server

    with chart_server(tmp_path / "served") as served:
        served.publish({"demo": ["1.0.0"]}, crds=False)
        refused = render_fleet(tmp_path, helm_fleet(tmp_path, served.url, None), ok=False)
        assert refused.returncode != 0
        assert "apps/release.yaml:2: HelmRelease/web/demo" in refused.stderr, refused.stderr
        assert "host '127.0.0.1' is not in sources.allowHosts" in refused.stderr, refused.stderr
        assert PLANTED not in refused.stdout + refused.stderr
        config = load_config(helm_fleet(tmp_path / "fork", served.url, "127.0.0.1"))
        with pytest.raises(GitopsJobError, match="fetches nothing"):
            render_stack(config, stack(config, "apps"), config.targets[0], fetch=False)
        assert served.requests == []


def test_helmrelease_suspended_and_warned(tmp_path: Path) -> None:
    """A suspended HelmRelease is not rendered (a note names it); a field helm-controller honours and gitops-job
    does not is a warning on stderr with the HelmRelease's file:line."""
    suspended = helm_fleet(tmp_path / "s", "https://charts.invalid", None, suspend=True)
    result = render_fleet(tmp_path, suspended)
    assert ("note: apps/release.yaml:2: HelmRelease/web/demo is suspended (spec.suspend: true): not rendered"
            in result.stderr), result.stderr  # fmt: skip
    assert "demo-settings" not in result.stdout

    from tests.chartrepo import chart_server

    with chart_server(tmp_path / "served") as served:
        served.publish({"demo": ["1.0.0"]}, crds=False)
        spec = {**FROM_CHARTS["spec"], "verify": {"provider": "cosign"}}
        root = helm_fleet(tmp_path / "w", served.url, "127.0.0.1", chart={"spec": spec},
                          dependsOn=[{"name": "elsewhere"}])  # fmt: skip
        warned = render_fleet(tmp_path, root)
    assert ("warning: apps/release.yaml:2: HelmRelease/web/demo: spec.chart.spec.verify is not supported; ignored"
            in warned.stderr), warned.stderr  # fmt: skip
    assert ("warning: apps/release.yaml:2: HelmRelease/web/demo: spec.dependsOn HelmRelease/web/elsewhere is not in "
            "this Kustomization's build") in warned.stderr  # fmt: skip
    assert "ConfigMap" in warned.stdout


def test_helmrelease_error_echoing_a_values_from_secret_is_masked(tmp_path: Path) -> None:
    """A chart of this repository (the bootstrap's GitRepository) whose template fails quoting a value read from a
    Secret through valuesFrom: the error names the HelmRelease, and the Secret's value is masked in it."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "greeting", "namespace": "web"},
              "stringData": {"text": PLANTED}}  # fmt: skip
    chart = {"spec": {"chart": "./charts/bad", "sourceRef": {"kind": "GitRepository", "name": "flux-system",
                                                               "namespace": "flux-system"}}}  # fmt: skip
    spec = {"chart": chart, "valuesFrom": [{"kind": "Secret", "name": "greeting", "valuesKey": "text",
                                            "targetPath": "greeting"}]}  # fmt: skip
    root = flux_repo(tmp_path, {
        "clusters/c/apps.yaml": ks("apps", "./apps"),
        "apps/secret.yaml": json.dumps(secret) + "\n",
        "apps/release.yaml": helm_release("bad", spec),
        "charts/bad/Chart.yaml": "apiVersion: v2\nname: bad\nversion: 0.1.0\n",
        "charts/bad/templates/cm.yaml": '{{ fail (printf "greeting %s is refused" .Values.greeting) }}\n',
    })  # fmt: skip
    failed = render_fleet(tmp_path, root, ok=False)
    assert failed.returncode != 0
    assert "apps/release.yaml:1: HelmRelease/web/bad" in failed.stderr, failed.stderr
    assert "is refused" in failed.stderr and PLANTED not in failed.stdout + failed.stderr, failed.stderr
