"""Issue 11, items 1-5: nothing is deleted (or taken over) that isn't ours.

Pure rules (remote names, claims, moves, reserved names) by tables; then each item through the real command line
against the real API server, writes counted in its audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitops_job.git import canonical_remote
from gitops_job.identity import ObjectId
from gitops_job.kube import Kube
from gitops_job.model import RenderedObject, Source
from gitops_job.outcomes import Action
from gitops_job.reconcile.inventory import inventory_name
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.ownership import Claim, Holders, Standing, claim_problem, reserved
from tests.helpers import cm, config, git, git_repo, gitops_job, object_writes, write
from tests.kube import AuditLog

TOKEN = "ghs_0123456789abcdefSECRETTOKEN"


# -- pure rules ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"https://x-access-token:{TOKEN}@github.com/o/r", "github.com/o/r"),
        (f"https://{TOKEN}@GitHub.com/o/r.git", "github.com/o/r"),
        ("git@github.com:o/r.git", "github.com/o/r"),
        ("ssh://git@github.com/o/r.git/", "github.com/o/r"),
        ("https://gitlab.example.com:8443/group/sub/r.git?x=1#f", "gitlab.example.com:8443/group/sub/r"),
        ("file:///srv/git/r.git", "/srv/git/r"),
        ("/srv/git/r", "/srv/git/r"),
        ("../r.git", "../r"),
    ],
)
def test_item01_remote_names_one_repository_without_credentials(url: str, name: str) -> None:
    assert canonical_remote(url) == name
    assert TOKEN not in canonical_remote(url)


INVENTORY = ObjectId("", "ConfigMap", "state", "gitops-job.t.app")


@pytest.mark.parametrize(
    ("stored", "ours", "fragments"),
    [
        (None, "github.com/o/mine", None),  # written before inventories named a repository: claimed
        (None, None, None),
        ("github.com/o/mine", "github.com/o/mine", None),
        ("github.com/o/theirs", "github.com/o/mine", ("github.com/o/theirs", "github.com/o/mine", "rename")),
        ("github.com/o/theirs", None, ("github.com/o/theirs", "no git remote and no name", "set name:")),
    ],
)
def test_item01_claim_problem(stored: str | None, ours: str | None, fragments: tuple[str, ...] | None) -> None:
    problem = claim_problem(INVENTORY, "app", stored, ours, "t")
    if fragments is None:
        assert problem is None
    else:
        assert problem is not None and all(f in problem for f in fragments), problem
        assert "kubectl -n state delete configmap gitops-job.t.app" in problem


A, B, C, X = (ObjectId("", "ConfigMap", "ns", n) for n in ("a", "b", "c", "x"))


def live(target: str | None = None, stack: str | None = None, managers: tuple[str, ...] = ()) -> dict[str, Any]:
    labels = {k: v for k, v in (("gitops-job.io/target", target), ("gitops-job.io/stack", stack)) if v}
    meta: dict[str, Any] = {"name": "x", "namespace": "ns", "labels": labels,
                            "managedFields": [{"manager": m} for m in managers]}  # fmt: skip
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"secret-ish": "live content"}}


HOLDERS = Holders(
    target="t",
    repository="github.com/o/mine",
    stacks=frozenset({"app", "infra"}),
    inventories={"app": frozenset({A, C}), "infra": frozenset({X}), "theirs": frozenset({B, C}), "old": frozenset()},
    repositories={"app": "github.com/o/mine", "infra": None, "theirs": "github.com/o/other", "old": None},
    rendered={A: "app", X: "app", B: "app"},
)


@pytest.mark.parametrize(
    ("oid", "body", "claim"),
    [
        pytest.param(A, live(), Claim(Standing.OURS), id="in-our-inventory"),
        pytest.param(A, live("t", "stray"), Claim(Standing.OURS), id="in-our-inventory-relabelled-by-hand"),
        pytest.param(C, live("t", "theirs"), Claim(Standing.FOREIGN, "stack theirs of repository github.com/o/other"),
                     id="in-our-inventory-adopted-by-another-repository"),
        pytest.param(X, live("t", "app"), Claim(Standing.OURS), id="labelled-ours"),
        pytest.param(X, live("t", "infra"), Claim(Standing.MOVED, "infra"), id="from-another-stack-of-ours"),
        pytest.param(X, live(), Claim(Standing.MOVED, "infra"), id="in-another-stack-inventory"),
        pytest.param(B, live(), Claim(Standing.FOREIGN, "stack theirs of repository github.com/o/other"),
                     id="another-repository"),
        pytest.param(ObjectId("", "ConfigMap", "ns", "y"), live("t", "gone"),
                     Claim(Standing.FOREIGN, "stack gone, which is not in this repository's gitops.yaml"),
                     id="unknown-stack"),
        pytest.param(ObjectId("", "ConfigMap", "ns", "y"), live("prod", "app"),
                     Claim(Standing.FOREIGN, "gitops-job target prod, stack app"), id="another-target"),
        pytest.param(ObjectId("", "ConfigMap", "ns", "y"), live(managers=("kubectl-create", "kubectl-edit")),
                     Claim(Standing.FOREIGN, "kubectl-create, kubectl-edit, not gitops-job"), id="made-by-kubectl"),
        pytest.param(ObjectId("", "ConfigMap", "ns", "y"), live(),
                     Claim(Standing.FOREIGN, "someone else, not gitops-job"), id="no-managers"),
    ],
)  # fmt: skip
def test_item02_claims(oid: ObjectId, body: dict[str, Any], claim: Claim) -> None:
    got = HOLDERS.claim(oid, "app", body)
    assert got == claim
    assert "live content" not in got.holder


def test_item04_moved_out_is_what_another_stack_renders_now() -> None:
    holders = Holders("t", None, frozenset({"a", "b"}), rendered={A: "b", B: "a"})
    assert holders.moved_out("a", {A, B, X}) == {A}
    assert holders.moved_out("b", {A, B}) == {B}


@pytest.mark.parametrize(
    ("kind", "api", "namespace", "name", "refused"),
    [
        ("ConfigMap", "v1", "state", "gitops-job.t.app", True),
        ("Lease", "coordination.k8s.io/v1", "state", "gitops-job.prod.web-1", True),
        ("ConfigMap", "v1", "other", "gitops-job.t.app", False),  # another namespace: not our state
        ("ConfigMap", "v1", "state", "gitops-job.settings", False),  # not a target.stack name
        ("Secret", "v1", "state", "gitops-job.t.app", False),
    ],
)
def test_item05_reserved_names(kind: str, api: str, namespace: str, name: str, refused: bool) -> None:
    body = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
    obj = RenderedObject(ObjectId.of(body), body, Source("app/x.yaml", 1), "app")
    errors = reserved([obj], "state")
    assert bool(errors) is refused
    if refused:
        assert f"{kind}/{namespace}/{name}" in str(errors[0]) and "app/x.yaml:1" in str(errors[0])


# -- against the cluster -------------------------------------------------------------------------------------------
def stored_inventory(core: client.CoreV1Api, ns: str, stack: str, target: str = "t") -> dict[str, Any]:
    data = core.read_namespaced_config_map(inventory_name(target, stack), ns).data
    return dict(json.loads(data["inventory.json"]))


def repo(root: Path, ns: str, stacks: str, files: dict[str, str], remote: str | None = None, name: str = "") -> Path:
    write(root, {"gitops.yaml": (f"name: {name}\n" if name else "") + config(ns, stacks), **files})
    git_repo(root)
    if remote:
        git(root, "remote", "add", "origin", remote)
    return root


def app(ns: str, name: str = "app", extra: str = "") -> str:
    return f"  - name: {name}\n    path: {name}\n    namespace: {ns}\n{extra}"


def test_item01_two_repositories_with_one_stack_name_second_is_refused_before_any_write(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    one = repo(tmp_path / "one", namespace, app(namespace), {"app/a.yaml": cm("a", namespace)},
               remote=f"https://x-access-token:{TOKEN}@example.com/org/one.git")  # fmt: skip
    first = gitops_job(kubeconfig, "apply", "--repo", str(one))
    assert TOKEN not in first.stdout + first.stderr
    inv = core.read_namespaced_config_map(inventory_name("t", "app"), namespace)
    assert json.loads(inv.data["inventory.json"])["repository"] == "example.com/org/one"
    assert TOKEN not in json.dumps(inv.to_dict(), default=str)

    # A second repository with a stack of the same name, on the same target: planned and applied, both refused.
    two = repo(tmp_path / "two", namespace, app(namespace), {"app/b.yaml": cm("b", namespace)},
               remote="git@example.com:org/two.git")  # fmt: skip
    mark = audit.mark()
    for verb in ("plan", "apply"):
        refused = gitops_job(kubeconfig, verb, "--repo", str(two), ok=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        message = refused.stderr
        assert "validate" in message and f"ConfigMap/{namespace}/gitops-job.t.app" in message, message
        assert "example.com/org/one" in message and "example.com/org/two" in message, message
        assert "rename the stack or the target" in message, message
    assert audit.writes(mark) == [], "a refused run wrote"
    assert core.read_namespaced_config_map("a", namespace).data == {"v": "1"}  # the first repository's object

    # `name:` wins over the remote: the same repository by name, from a checkout with another remote, may apply.
    again = repo(tmp_path / "three", namespace, app(namespace), {"app/a.yaml": cm("a", namespace, "2")},
                 remote="https://mirror.example.com/one.git", name="example.com/org/one")  # fmt: skip
    # (this checkout's history is not the first one's — a mirror's would be — so the history guard asks for the flag)
    gitops_job(kubeconfig, "apply", "--repo", str(again), "--allow-non-descendant")
    assert core.read_namespaced_config_map("a", namespace).data == {"v": "2"}

    # No remote and no name: it may not take over a named repository's stack either.
    anonymous = repo(tmp_path / "four", namespace, app(namespace), {"app/a.yaml": cm("a", namespace)})
    refused = gitops_job(kubeconfig, "apply", "--repo", str(anonymous), ok=False)
    assert "no git remote and no name" in refused.stderr, refused.stderr


def test_item01_inventory_without_owner_is_claimed_by_the_first_run(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    one = repo(tmp_path / "one", namespace, app(namespace), {"app/a.yaml": cm("a", namespace)},
               remote="https://example.com/org/one")  # fmt: skip
    gitops_job(kubeconfig, "apply", "--repo", str(one))
    # As an inventory written before inventories named their repository.
    name = inventory_name("t", "app")
    doc = stored_inventory(core, namespace, "app")
    del doc["repository"]
    core.patch_namespaced_config_map(name, namespace, {"data": {"inventory.json": json.dumps(doc)}})
    write(one, {"app/a.yaml": cm("a", namespace, "2")})
    git_repo(one)
    gitops_job(kubeconfig, "apply", "--repo", str(one))
    assert stored_inventory(core, namespace, "app")["repository"] == "example.com/org/one"


def test_item02_live_object_not_ours_is_planned_as_adopt_and_applied_only_when_asked(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    # Made by kubectl: a ConfigMap with content of its own, and the Namespace itself (the test fixture made it).
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "handmade"}, "data": {"v": "1", "only-live": "live-only-value"}},
        field_manager="kubectl-create",
    )  # fmt: skip
    ns_manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}) + "\n"
    root = repo(tmp_path, namespace, app(namespace), {
        "app/ns.yaml": ns_manifest, "app/handmade.yaml": cm("handmade", namespace),
        "app/new.yaml": cm("new", namespace),
    })  # fmt: skip

    planned = json.loads(gitops_job(kubeconfig, "plan", "--repo", str(root), "-o", "json").stdout)
    by_id = {o["id"]: o for o in planned["objects"]}
    handmade = by_id[f"ConfigMap/{namespace}/handmade"]
    assert handmade["action"] == "adopt", handmade
    assert "owned by kubectl-create, not gitops-job" in handmade["note"], handmade
    assert by_id[f"Namespace/{namespace}"]["action"] == "adopt"
    assert by_id[f"ConfigMap/{namespace}/new"]["action"] == "create"
    assert planned["summary"]["adopt"] == 2
    text = gitops_job(kubeconfig, "plan", "--repo", str(root)).stdout
    markdown = gitops_job(kubeconfig, "plan", "--repo", str(root), "-o", "markdown").stdout
    for out in (json.dumps(planned), text, markdown):
        assert "live-only-value" not in out and "only-live" not in out, "live content of an object not ours printed"
    assert f"ConfigMap/{namespace}/handmade (adopt)" in text and "1 to create, 2 to adopt" in text, text
    assert "exist and are not ours" in markdown and "--adopt" in markdown, markdown

    mark = audit.mark()
    refused = gitops_job(kubeconfig, "apply", "--repo", str(root), ok=False)
    assert refused.returncode == 1
    for fragment in ("validate", f"ConfigMap/{namespace}/handmade", f"Namespace/{namespace}", "kubectl-create",
                     "--adopt", "gitops-job.io/adopt: enabled"):  # fmt: skip
        assert fragment in refused.stderr, refused.stderr
    assert audit.writes(mark) == [], "a refused adoption wrote"

    # The annotation adopts one object; the rest still refuses.
    write(root, {"app/handmade.yaml": cm("handmade", namespace, annotations={"gitops-job.io/adopt": "enabled"})})
    git_repo(root)
    refused = gitops_job(kubeconfig, "apply", "--repo", str(root), ok=False)
    assert f"Namespace/{namespace}" in refused.stderr and f"ConfigMap/{namespace}/handmade" not in refused.stderr
    uid = core.read_namespaced_config_map("handmade", namespace).metadata.uid
    out = gitops_job(kubeconfig, "apply", "--repo", str(root), "--adopt").stdout
    assert f"adopted    ConfigMap/{namespace}/handmade" in out and f"adopted    Namespace/{namespace}" in out, out
    taken = core.read_namespaced_config_map("handmade", namespace)
    assert taken.metadata.uid == uid and taken.metadata.labels["gitops-job.io/stack"] == "app"
    # Ours now: planned as any object of ours.
    again = json.loads(gitops_job(kubeconfig, "plan", "--repo", str(root), "-o", "json").stdout)
    assert again["summary"]["adopt"] == 0, again


def test_item02_another_repositorys_object_is_adopt_naming_that_repository(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog
) -> None:
    one = repo(tmp_path / "one", namespace, app(namespace, "web"), {"web/a.yaml": cm("a", namespace)},
               remote="https://example.com/org/one")  # fmt: skip
    gitops_job(kubeconfig, "apply", "--repo", str(one))
    two = repo(tmp_path / "two", namespace, app(namespace, "api"), {"api/a.yaml": cm("a", namespace, "2")},
               remote="https://example.com/org/two")  # fmt: skip
    planned = json.loads(gitops_job(kubeconfig, "plan", "--repo", str(two), "-o", "json").stdout)
    [entry] = planned["objects"]
    assert entry["action"] == "adopt" and "stack web of repository example.com/org/one" in entry["note"], entry
    mark = audit.mark()
    refused = gitops_job(kubeconfig, "apply", "--repo", str(two), ok=False)
    assert "stack web of repository example.com/org/one" in refused.stderr, refused.stderr
    assert object_writes(audit, mark) == []


def test_item02_another_stacks_object_still_rendered_there_is_a_validation_error(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog
) -> None:
    stacks = app(namespace, "a") + app(namespace, "b")
    root = repo(tmp_path, namespace, stacks, {"a/x.yaml": cm("x", namespace), "b/y.yaml": cm("y", namespace)})
    gitops_job(kubeconfig, "apply", "--repo", str(root))
    write(root, {"b/x.yaml": cm("x", namespace, "from b")})  # stack a still renders it
    git_repo(root)
    mark = audit.mark()
    for verb in ("plan", "apply"):
        refused = gitops_job(kubeconfig, verb, "--repo", str(root), "--stack", "b", ok=False)
        assert refused.returncode == 1
        for fragment in ("validate", f"ConfigMap/{namespace}/x", "stack a", "stack b", "a/x.yaml", "b/x.yaml"):
            assert fragment in refused.stderr, refused.stderr
    assert audit.writes(mark) == []


def deployment(ns: str, selector: str, labels: dict[str, str] | None = None, force: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": ns, "labels": labels or {}}
    if force:
        meta["annotations"] = {"gitops-job.io/force": "enabled"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": selector}},
                     "template": {"metadata": {"labels": {"app": selector}},
                                  "spec": {"containers": [{"name": "c", "image": "example/web:1"}]}}}}  # fmt: skip


def test_item03_forced_recreate_never_deletes_an_object_not_ours(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog, api_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment(namespace, "old"), field_manager="kubectl-create")
    uid = apps.read_namespaced_deployment("web", namespace).metadata.uid
    root = repo(tmp_path, namespace, app(namespace),
                {"app/web.yaml": json.dumps(deployment(namespace, "new", force=True))})  # fmt: skip
    mark = audit.mark()
    for args in (("plan",), ("apply",), ("apply", "--adopt")):
        refused = gitops_job(kubeconfig, *args, "--repo", str(root), ok=False)
        assert refused.returncode == 1
        out = refused.stdout + refused.stderr
        assert f"Deployment/{namespace}/web" in out and "not ours to delete" in out, out
    assert audit.writes(mark) == []
    assert apps.read_namespaced_deployment("web", namespace).metadata.uid == uid


def test_item03_apply_deletes_to_recreate_only_through_the_ownership_check(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    """Apply's own check, under the plan's: a RECREATE entry for an object labelled for another stack is refused."""
    apps = client.AppsV1Api(api_client)
    theirs = {"gitops-job.io/target": "t", "gitops-job.io/stack": "other"}
    apps.create_namespaced_deployment(namespace, deployment(namespace, "old", theirs))
    uid = apps.read_namespaced_deployment("web", namespace).metadata.uid
    from gitops_job.reconcile.apply import apply_plan
    from gitops_job.reconcile.results import Plan, PlanEntry

    body = deployment(namespace, "new", {"gitops-job.io/target": "t", "gitops-job.io/stack": "app"}, force=True)
    obj = RenderedObject(ObjectId.of(body), body, Source("app/web.yaml", 1), "app")
    plan = Plan("t", (PlanEntry(obj.id, "app", Action.RECREATE, obj.source),))
    kube = Kube.connect(str(kubeconfig))
    try:
        [result] = apply_plan(kube, plan, {obj.id: obj}, "rev", Masker())
    finally:
        kube.close()
    assert not result.ok and "refusing to delete it" in result.message and "stack other" in result.message, result
    assert apps.read_namespaced_deployment("web", namespace).metadata.uid == uid


def uid_and_stack(core: client.CoreV1Api, ns: str) -> tuple[str, str]:
    live = core.read_namespaced_config_map("mover", ns)
    return live.metadata.uid, live.metadata.labels["gitops-job.io/stack"]


def listed(core: client.CoreV1Api, ns: str, stack: str) -> bool:
    return ["", "ConfigMap", ns, "mover"] in stored_inventory(core, ns, stack)["objects"]


def test_with_stack_selected_each_stack_is_rendered_once_even_when_a_move_is_checked(
    tmp_path: Path, kubeconfig: Path, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--stack b`` where b's inventory lists what a renders now (a possible move): the move check uses a's render
    from learning its Secrets, and renders neither stack again."""
    from gitops_job.reconcile import context
    from gitops_job.reconcile.run import run_plan

    stacks = app(namespace, "a") + app(namespace, "b")
    root = repo(tmp_path, namespace, stacks, {"a/keep.yaml": cm("keep-a", namespace),
                                              "b/mover.yaml": cm("mover", namespace)})  # fmt: skip
    gitops_job(kubeconfig, "apply", "--repo", str(root))
    (root / "b" / "mover.yaml").rename(root / "a" / "mover.yaml")  # b's inventory lists it; a renders it now
    write(root, {"b/keep.yaml": cm("keep-b", namespace)})
    git_repo(root)
    rendered: list[str] = []
    real = context.render_stack

    def counting(config: Any, stack: Any, *args: Any, **kwargs: Any) -> Any:
        rendered.append(stack.name)
        return real(config, stack, *args, **kwargs)

    monkeypatch.setattr(context, "render_stack", counting)
    _, plan = run_plan(context.Settings(repo=root, stacks=("b",), kubeconfig=str(kubeconfig)))
    assert sorted(rendered) == ["a", "b"], rendered
    assert not [e for e in plan.entries if e.action is Action.PRUNE], plan.entries  # moved to a: not pruned


def test_item04_object_moved_between_stacks_is_handed_over_never_deleted(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    # b depends on a: a applies (and would prune) first.
    stacks = app(namespace, "a") + app(namespace, "b", "    dependsOn: [a]\n")
    root = repo(tmp_path, namespace, stacks, {
        "a/mover.yaml": cm("mover", namespace), "a/keep.yaml": cm("keep-a", namespace),
        "b/keep.yaml": cm("keep-b", namespace),
    })  # fmt: skip
    gitops_job(kubeconfig, "apply", "--repo", str(root))
    uid, _ = uid_and_stack(core, namespace)

    def move(src: str, dst: str, *select: str) -> None:
        (root / src / "mover.yaml").rename(root / dst / "mover.yaml")
        git_repo(root)
        planned = json.loads(gitops_job(kubeconfig, "plan", "--repo", str(root), *select, "-o", "json").stdout)
        entries = [o for o in planned["objects"] if o["id"] == f"ConfigMap/{namespace}/mover"]
        assert [(e["stack"], e["action"]) for e in entries] == [(dst, "update")], entries
        assert f"moved from stack {src}" in entries[0]["note"], entries
        mark = audit.mark()
        out = gitops_job(kubeconfig, "apply", "--repo", str(root), *select).stdout
        assert not [w for w in object_writes(audit, mark) if w.startswith("delete")], out
        assert uid_and_stack(core, namespace) == (uid, dst), out
        assert listed(core, namespace, dst)

    move("a", "b")  # the stack it leaves applies first
    assert not listed(core, namespace, "a")
    move("b", "a")  # the stack it leaves applies second
    assert not listed(core, namespace, "b")
    move("a", "b", "--stack", "b")  # only the stack it joins is selected: a's inventory still lists it
    gitops_job(kubeconfig, "apply", "--repo", str(root), "--stack", "a")  # and a hands it over, deleting nothing
    assert not listed(core, namespace, "a") and uid_and_stack(core, namespace) == (uid, "b")
    (root / "b" / "mover.yaml").rename(root / "a" / "mover.yaml")  # only the stack it leaves is selected
    git_repo(root)
    mark = audit.mark()
    gitops_job(kubeconfig, "apply", "--repo", str(root), "--stack", "b")
    assert not [w for w in object_writes(audit, mark) if w.startswith("delete")]
    assert not listed(core, namespace, "b") and uid_and_stack(core, namespace) == (uid, "b")
    gitops_job(kubeconfig, "apply", "--repo", str(root), "--stack", "a")
    assert listed(core, namespace, "a") and uid_and_stack(core, namespace) == (uid, "a")


def test_item05_manifests_naming_our_inventory_or_lease_are_refused_with_zero_writes(
    tmp_path: Path, kubeconfig: Path, namespace: str, audit: AuditLog, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    root = repo(tmp_path, namespace, app(namespace), {"app/a.yaml": cm("a", namespace)})
    gitops_job(kubeconfig, "apply", "--repo", str(root))
    before = stored_inventory(core, namespace, "app")
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "gitops-job.t.other", "namespace": namespace}, "spec": {}}  # fmt: skip
    write(root, {"app/inv.yaml": cm(inventory_name("t", "app"), namespace), "app/lease.yaml": json.dumps(lease)})
    git_repo(root)
    mark = audit.mark()
    for args in (("validate",), ("plan",), ("apply", "--force-conflicts")):
        refused = gitops_job(kubeconfig, *args, "--repo", str(root), ok=False)
        assert refused.returncode != 0
        for fragment in (f"ConfigMap/{namespace}/gitops-job.t.app", f"Lease/{namespace}/gitops-job.t.other",
                         "app/inv.yaml", "app/lease.yaml", "own state"):  # fmt: skip
            assert fragment in refused.stderr, refused.stderr
    assert audit.writes(mark) == []
    assert stored_inventory(core, namespace, "app") == before
