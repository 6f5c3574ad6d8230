"""The test harness: one real control plane per test session, a fresh namespace per test.

Set ``GITOPS_JOB_TEST_KUBECONFIG`` to run the suite against a cluster that already runs (for example the one from
``make cluster-up``: ``GITOPS_JOB_TEST_KUBECONFIG=.localcluster/kubeconfig pytest``).

Every test that uses a cluster fixture (:data:`CLUSTER_FIXTURES`, directly or through another fixture) is marked
``cluster`` at collection (:func:`pytest_collection_modifyitems`), so ``pytest -m "not cluster"`` runs the pure suite
and never starts the control plane. With ``GITOPS_JOB_TEST_NO_CLUSTER=1`` the cluster fixture fails instead of
starting one: a test that reaches it unmarked fails loudly.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from gitops_job.kube import Kube
from tests.githubstub import GitHubStub
from tests.kube import AuditLog
from tests.pushgateway import pushgateway  # noqa: F401 (a fixture, for every test module)
from tests.registries import registry, registry_htpasswd, registry_token  # noqa: F401 (fixtures, likewise)
from tools.localcluster import build
from tools.localcluster.cluster import LocalCluster

# The CLI the tests start as a subprocess (the venv's console script) imports gitops_job from this checkout, not from
# wherever the venv's editable install points (another worktree, say).
_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])

# The renderers find kustomize and helm through these variables (or PATH); point them at the pinned builds.
for _tool in ("kustomize", "helm"):
    os.environ.setdefault(f"GITOPS_JOB_{_tool.upper()}", str(build.binary(_tool)))


#: The fixtures that reach the cluster; every other cluster fixture (``dyn``, ``audit``, a test module's own ``kube``…)
#: depends on ``kubeconfig``, so ``item.fixturenames`` (the closure of what a test uses) names it too.
CLUSTER_FIXTURES = frozenset({"kubeconfig", "api_client", "dyn", "namespace", "audit", "kube"})
NO_CLUSTER = "GITOPS_JOB_TEST_NO_CLUSTER"


def uses_cluster(item: pytest.Item) -> bool:
    """Whether ``item`` uses one of this module's cluster fixtures, directly or through other fixtures.

    A name counts only where it resolves to the fixture defined here: a test parametrized over an argument that
    happens to be called ``namespace`` needs no cluster.
    """
    info = getattr(item, "_fixtureinfo", None)
    if info is None:  # not a Python test function (a doctest, a plugin's item)
        return False
    for name in CLUSTER_FIXTURES.intersection(info.names_closure):
        defs = info.name2fixturedefs.get(name) or ()
        if any(getattr(d.func, "__module__", None) == __name__ for d in defs):
            return True
    return False


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects: the marks set here count
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``cluster`` every test that uses a cluster fixture."""
    for item in items:
        if uses_cluster(item):
            item.add_marker(pytest.mark.cluster)


def ensure_binaries() -> None:
    """Build the control plane if the cache lacks it (``make test`` has built it already)."""
    build.build_all(["etcd", "kubernetes", "kwok"])


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.environ.get(NO_CLUSTER):
        pytest.fail(f"{NO_CLUSTER} is set, but this test reached the cluster fixture (is it marked cluster?)")
    existing = os.environ.get("GITOPS_JOB_TEST_KUBECONFIG")
    if existing:
        yield Path(existing).resolve()
        return
    ensure_binaries()
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    cluster.up()
    try:
        yield cluster.kubeconfig
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def audit(kubeconfig: Path) -> AuditLog:
    """The cluster's audit log of writes (the local cluster writes it next to its kubeconfig, under logs/)."""
    path = kubeconfig.parent / "logs" / "audit.log"
    assert path.exists(), f"no audit log at {path}: the test cluster must be started by tools.localcluster"
    return AuditLog(path)


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def dyn(api_client: client.ApiClient) -> DynamicClient:
    return DynamicClient(api_client)


@pytest.fixture
def kube(kubeconfig: Path) -> Iterator[Kube]:
    """A gitops-job connection to the test cluster (its own pool and discovery cache), closed afterwards."""
    k = Kube.connect(str(kubeconfig))
    yield k
    k.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api_client: client.ApiClient) -> Iterator[str]:
    """A namespace of the test's own, deleted afterwards (without waiting for the deletion to finish)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    with made_namespace(api_client, f"t-{slug}-{uuid.uuid4().hex[:6]}") as name:
        yield name


@contextlib.contextmanager
def made_namespace(api_client: client.ApiClient, name: str) -> Iterator[str]:
    """Create a test namespace ``name``; delete it afterwards (without waiting for the deletion to finish)."""
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name, "labels": {"gitops-job.io/test": "true"}}})
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    """A local api.github.com that validates every request and response against GitHub's OpenAPI description.

    The test fails at teardown when the stub recorded a contract violation; a test that provokes one on purpose
    asserts on ``stub.violations`` and clears it.
    """
    with GitHubStub() as stub:
        yield stub
    if stub.violations:
        pytest.fail("GitHub contract violations:\n" + "\n".join(f"  {v}" for v in stub.violations))
