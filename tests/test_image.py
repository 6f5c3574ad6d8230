"""Issue 14 item 8: the shipped RBAC is enough and no more, proven with the built image (marked ``image``).

The image is built by tools/image.py (buildah on an mmdebstrap base: no registry). ``gitops-job install``'s output is
applied to the local cluster with kubectl; the ServiceAccount's token comes from the TokenRequest API; the image's
``gitops-job`` runs under ``buildah run`` with exactly what a pod of the CronJob sees: the CronJob's own arguments,
the token, ``ca.crt`` and ``namespace`` at the in-cluster path, ``KUBERNETES_SERVICE_HOST``/``PORT``, ``/tmp`` and
the state dir as volumes. The repository is served over smart HTTP by tests/gitservers.py.

``buildah run`` cannot mount the root filesystem read-only, so that is checked another way: the container's root
filesystem (``buildah mount``) is the same before and after a reconcile — every file's path, size, mode and mtime —
outside the volumes, and a write there fails as the image's user.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from gitops_job.reconcile import install
from tests.conftest import made_namespace
from tests.gitservers import bare_repo, http_git_server, push
from tests.helpers import cm, git_repo, gitops_job, write
from tools import image as images
from tools.localcluster import build

pytestmark = pytest.mark.image
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # where the client reads it
# Debian's /var/run is a symlink to /run, which buildah does not follow for a mount's target: mount where it leads.
SA_MOUNT = "/run/secrets/kubernetes.io/serviceaccount"
#: What buildah itself adds to a container's root while it runs one (mount points, its generated files).
BUILDAH_OWN = ("run/", "var/run/", "tmp/", "var/cache/gitops-job/", "etc/hosts", "etc/resolv.conf", "etc/hostname")


@pytest.fixture(scope="module")
def built() -> str:
    return images.build_image().image


@pytest.fixture
def container(built: str) -> Iterator[str]:
    cid = images.buildah(
        "from", "--pull-never", "--name", f"gitops-job-test-{uuid.uuid4().hex[:8]}", built, step="test container"
    ).strip()
    yield cid
    images.buildah("rm", cid, step="test container")


def rootfs_snapshot(cid: str) -> dict[str, tuple[int, int, int]]:
    root = Path(images.buildah("mount", cid, step="mount").strip())
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root)) + ("/" if name in dirnames else "")
            if rel.startswith(BUILDAH_OWN):
                continue
            st = path.lstat()
            found[rel] = (st.st_size, st.st_mode, st.st_mtime_ns)
    images.buildah("umount", cid, step="umount")
    return found


def apply_yaml(kubeconfig: Path, text: str) -> None:
    done = subprocess.run(
        [str(build.binary("kubectl")), "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def installed(
    namespace: str, kubeconfig: Path, api_client: client.ApiClient, tmp_path: Path, built: str
) -> Iterator[dict[str, Any]]:
    """install's output for ``namespace`` (its own) managing one namespace, applied; the pod's view prepared."""
    with (
        made_namespace(api_client, f"{namespace[:50]}-apps") as apps,
        made_namespace(api_client, f"{namespace[:50]}-other") as other,
    ):
        bare = bare_repo(tmp_path / "srv")
        with http_git_server(tmp_path / "srv") as server:
            args = ["install", "--repo", server.url(), "--install-namespace", namespace, "-n", apps, "--image", built]
            printed = gitops_job(kubeconfig, *args).stdout
            docs = [d for d in yaml.safe_load_all(printed) if d]
            apply_yaml(kubeconfig, printed)
            try:
                yield {
                    "ns": namespace,
                    "apps": apps,
                    "other": other,
                    "bare": bare,
                    "server": server,
                    "docs": docs,
                    "sa": pod_files(api_client, namespace, tmp_path / "sa"),
                }
            finally:
                rbac = client.RbacAuthorizationV1Api(api_client)
                for d in docs:
                    if d["kind"] == "ClusterRole":
                        rbac.delete_cluster_role(d["metadata"]["name"])
                    elif d["kind"] == "ClusterRoleBinding":
                        rbac.delete_cluster_role_binding(d["metadata"]["name"])


def pod_files(api_client: client.ApiClient, ns: str, where: Path) -> Path:
    """What the kubelet mounts at SA_DIR: a TokenRequest token, the cluster CA, the namespace."""
    core = client.CoreV1Api(api_client)
    token = core.create_namespaced_service_account_token(install.NAME, ns, {"spec": {"expirationSeconds": 3600}})
    where.mkdir()
    (where / "token").write_text(token.status.token)
    (where / "ca.crt").write_bytes(Path(api_client.configuration.ssl_ca_cert).read_bytes())
    (where / "namespace").write_text(ns)
    for f in where.iterdir():
        f.chmod(0o644)
    return where


def run_in_pod(cid: str, setup: dict[str, Any], api_client: client.ApiClient, tmp: Path, *command: str) -> Any:
    host, port = api_client.configuration.host.removeprefix("https://").rsplit(":", 1)
    for d in ("tmp", "state"):
        (tmp / d).mkdir(exist_ok=True)
        os.chown(tmp / d, images.UID, images.UID)
    env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "POD_NAMESPACE": setup["ns"]}
    volumes = [f"{setup['sa']}:{SA_MOUNT}:ro", f"{tmp / 'tmp'}:/tmp", f"{tmp / 'state'}:{install.STATE_DIR}"]
    args = images.run_args(cid, command, env=env, volumes=volumes)
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)


def cronjob_command(docs: list[dict[str, Any]]) -> list[str]:
    cronjob = next(d for d in docs if d["kind"] == "CronJob")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return ["gitops-job", *container["args"]]


@pytest.mark.timeout(1800)  # the first use builds the image (an mmdebstrap base, then buildah): minutes when cold
def test_the_image_reconciles_as_its_service_account_and_nothing_more(
    installed: dict[str, Any], container: str, api_client: client.ApiClient, tmp_path: Path
) -> None:
    s = installed
    work = tmp_path / "work"
    stacks = "  - name: app\n    path: app\n"
    write(
        work,
        {
            "gitops.yaml": f"targets:\n  - name: t\n    inventoryNamespace: {s['ns']}\nstacks:\n{stacks}",
            "app/cm.yaml": cm("web", s["apps"], "v1"),
        },
    )
    first = git_repo(work)
    push(work, s["bare"])
    core = client.CoreV1Api(api_client)

    who = run_in_pod(container, s, api_client, tmp_path, "sh", "-c", "id -u; touch /opt/gitops-job/x /probe || true")
    assert who.stdout.split()[0] == str(images.UID), who.stdout + who.stderr  # non-root
    assert who.stderr.count("Permission denied") == 2, who.stderr

    before = rootfs_snapshot(container)
    done = run_in_pod(container, s, api_client, tmp_path, *cronjob_command(s["docs"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"at {first}" in done.stderr
    assert core.read_namespaced_config_map("web", s["apps"]).data == {"v": "v1"}
    assert rootfs_snapshot(container) == before  # nothing written outside /tmp and the state volume

    # A change that needs more than the rules: an object in a namespace it may not manage, and a ClusterRole.
    write(
        work,
        {
            "app/cm.yaml": cm("web", s["apps"], "v2"),
            "app/other.yaml": cm("stray", s["other"]),
            "app/role.yaml": yaml.safe_dump(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": f"{s['ns']}-extra"},
                    "rules": [],
                }
            ),
        },
    )
    git_repo(work)
    push(work, s["bare"])
    refused = run_in_pod(container, s, api_client, tmp_path, *cronjob_command(s["docs"]))
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    user = f"system:serviceaccount:{s['ns']}:{install.NAME}"
    assert f"ConfigMap/{s['other']}/stray" in out, out
    assert f'User "{user}" cannot list resource "configmaps" in API group "" in the namespace "{s["other"]}"' in out
    assert f"ClusterRole/{s['ns']}-extra" in out, out
    assert f'User "{user}" cannot list resource "clusterroles"' in out, out
    # nothing else broken: nothing written, the managed object as it was
    assert core.read_namespaced_config_map("web", s["apps"]).data == {"v": "v1"}
    assert not [c for c in core.list_namespaced_config_map(s["other"]).items if c.metadata.name == "stray"]
