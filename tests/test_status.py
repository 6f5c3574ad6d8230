"""The health rules of :mod:`gitops_job.status`: a table of literal objects per kind and branch, then real objects on
the local cluster (controller-manager + scheduler + kwok) read back and judged by the same function."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kubernetes.dynamic import DynamicClient

from gitops_job.outcomes import HealthState
from gitops_job.reconcile.health import condition, status
from gitops_job.reconcile.results import Health
from tests.kube import crd as make_crd
from tests.kube import wait_until

CURRENT, IN_PROGRESS, FAILED, NOT_FOUND = (
    HealthState.CURRENT,
    HealthState.IN_PROGRESS,
    HealthState.FAILED,
    HealthState.NOT_FOUND,
)


def obj(
    api_version: str, kind: str, spec: dict[str, Any] | None = None, st: dict[str, Any] | None = None, gen: int = 1
) -> dict[str, Any]:
    o: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "generation": gen}}
    if spec is not None:
        o["spec"] = spec
    if st is not None:
        o["status"] = st
    return o


def cond(type_: str, value: str = "True", reason: str = "", message: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "status": value, "reason": reason, "message": message, **extra}


def deploy(spec: dict[str, Any] | None = None, gen: int = 1, **st: Any) -> dict[str, Any]:
    return obj("apps/v1", "Deployment", {"replicas": 3, **(spec or {})}, {"observedGeneration": 1, **st}, gen)


def sts(spec: dict[str, Any] | None = None, **st: Any) -> dict[str, Any]:
    full = {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3}
    full |= {"currentRevision": "r1", "updateRevision": "r1"}
    return obj("apps/v1", "StatefulSet", {"replicas": 3, **(spec or {})}, full | st)


def ds(spec: dict[str, Any] | None = None, **st: Any) -> dict[str, Any]:
    full = {"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2}
    full |= {"updatedNumberScheduled": 2, "numberAvailable": 2}
    return obj("apps/v1", "DaemonSet", spec or {}, full | st)


def rs(kind: str = "ReplicaSet", api: str = "apps/v1", **st: Any) -> dict[str, Any]:
    full = {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    return obj(api, kind, {"replicas": 2}, full | st)


def job(spec: dict[str, Any] | None = None, *conditions: dict[str, Any], **st: Any) -> dict[str, Any]:
    return obj("batch/v1", "Job", spec or {}, {"conditions": list(conditions), **st})


def pod(phase: str, *conditions: dict[str, Any], waiting: str | None = None, **st: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "state": {"waiting": {"reason": waiting}} if waiting else {}}
    full = {"phase": phase, "conditions": list(conditions), "containerStatuses": [container]}
    return obj("v1", "Pod", {}, full | st)


def cr(*conditions: dict[str, Any], gen: int = 1, **st: Any) -> dict[str, Any]:
    return obj("example.io/v1", "Widget", {}, {"conditions": list(conditions), **st}, gen)


def case(name: str, o: dict[str, Any] | None, state: HealthState, fragment: str) -> Any:
    return pytest.param(o, state, fragment, id=name)


CASES = [
    case("none-is-not-found", None, NOT_FOUND, "not found"),
    case(
        "deletion-timestamp",
        {**obj("v1", "ConfigMap"), "metadata": {"name": "x", "deletionTimestamp": "2024-01-01T00:00:00Z"}},
        IN_PROGRESS,
        "being deleted",
    ),
    # -- Deployment
    case("deploy-no-status-yet", obj("apps/v1", "Deployment", {"replicas": 1}), IN_PROGRESS, "generation 1 not"),
    case("deploy-old-generation", deploy(gen=2, updatedReplicas=3), IN_PROGRESS, "generation 2 not observed"),
    case(
        "deploy-deadline-exceeded",
        deploy(conditions=[cond("Progressing", "False", "ProgressDeadlineExceeded", "RS web-1 has timed out")]),
        FAILED,
        "ProgressDeadlineExceeded",
    ),
    case("deploy-updating", deploy(replicas=3, updatedReplicas=2), IN_PROGRESS, "2/3 replicas updated"),
    case(
        "deploy-old-pending",
        deploy(replicas=4, updatedReplicas=3, availableReplicas=3),
        IN_PROGRESS,
        "1 old replicas pending termination",
    ),
    case(
        "deploy-unavailable",
        deploy(replicas=3, updatedReplicas=3, availableReplicas=1),
        IN_PROGRESS,
        "1/3 replicas available (2 unavailable)",
    ),
    case("deploy-done", deploy(replicas=3, updatedReplicas=3, availableReplicas=3), CURRENT, "3/3 replicas"),
    case("deploy-zero-replicas", deploy({"replicas": 0}), CURRENT, "0/0 replicas"),
    case(
        "deploy-zero-replicas-scaling-down",
        deploy({"replicas": 0}, replicas=2),
        IN_PROGRESS,
        "2 old replicas pending termination",
    ),
    case(
        "deploy-replicas-unset-means-1",
        obj("apps/v1", "Deployment", {}, {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}),
        IN_PROGRESS,
        "0/1 replicas available",
    ),
    case(
        "deploy-paused",
        deploy({"paused": True}, replicas=3, updatedReplicas=0, availableReplicas=3),
        CURRENT,
        "rollout paused (0/3",
    ),
    case(
        "deploy-paused-unobserved",
        deploy({"paused": True}, gen=2),
        IN_PROGRESS,
        "generation 2 not observed",
    ),
    # -- StatefulSet
    case("sts-unobserved", obj("apps/v1", "StatefulSet", {"replicas": 1}, {}), IN_PROGRESS, "generation 1 not"),
    case("sts-not-ready", sts(readyReplicas=1), IN_PROGRESS, "1/3 replicas ready"),
    case("sts-scaling-down", sts(replicas=4), IN_PROGRESS, "1 extra replicas pending termination"),
    case(
        "sts-rolling",
        sts(updatedReplicas=1, updateRevision="r2"),
        IN_PROGRESS,
        "1/3 replicas updated to revision r2",
    ),
    case("sts-done", sts(), CURRENT, "3/3 replicas ready at revision r1"),
    case(
        "sts-partition-pending",
        sts(
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
            updatedReplicas=1,
            updateRevision="r2",
        ),
        IN_PROGRESS,
        "1/2 replicas updated (partition 1)",
    ),
    case(
        "sts-partition-done",
        sts(
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
            updatedReplicas=2,
            updateRevision="r2",
        ),
        CURRENT,
        "partitioned rollout done",
    ),
    case(
        "sts-on-delete",
        sts({"updateStrategy": {"type": "OnDelete"}}, updatedReplicas=0, updateRevision="r2"),
        CURRENT,
        "OnDelete",
    ),
    case("sts-on-delete-not-ready", sts({"updateStrategy": {"type": "OnDelete"}}, readyReplicas=2), IN_PROGRESS, "2/3"),
    # -- DaemonSet
    case("ds-unobserved", obj("apps/v1", "DaemonSet", {}, {"observedGeneration": 0}), IN_PROGRESS, "observed 0"),
    case("ds-scheduling", ds(currentNumberScheduled=1), IN_PROGRESS, "1/2 pods scheduled"),
    case("ds-updating", ds(updatedNumberScheduled=1), IN_PROGRESS, "1/2 pods updated"),
    case("ds-on-delete", ds({"updateStrategy": {"type": "OnDelete"}}, updatedNumberScheduled=0), CURRENT, "2/2"),
    case("ds-unavailable", ds(numberAvailable=0), IN_PROGRESS, "0/2 pods available (2 unavailable)"),
    case("ds-done", ds(), CURRENT, "2/2 pods available"),
    case(
        "ds-no-matching-nodes",
        ds(desiredNumberScheduled=0, currentNumberScheduled=0, numberAvailable=0),
        CURRENT,
        "0/0 pods available",
    ),
    # -- ReplicaSet (and ReplicationController)
    case("rs-done", rs(), CURRENT, "2/2 pods available"),
    case(
        "rs-quota",
        rs(replicas=1, readyReplicas=1, conditions=[cond("ReplicaFailure", "True", "FailedCreate", "exceeded quota")]),
        IN_PROGRESS,
        "1/2 pods created (FailedCreate: exceeded quota)",
    ),
    case("rs-not-ready", rs(readyReplicas=1), IN_PROGRESS, "1/2 pods ready"),
    case("rs-not-available", rs(availableReplicas=1), IN_PROGRESS, "1/2 pods available"),
    case("rs-extra", rs(replicas=3), IN_PROGRESS, "1 extra pods"),
    case("rc-done", rs("ReplicationController", "v1"), CURRENT, "2/2 pods available"),
    # -- Job
    case("job-complete", job({}, cond("Complete"), succeeded=1), CURRENT, "Job complete (1 succeeded)"),
    case(
        "job-failed",
        job({}, cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")),
        FAILED,
        "Job failed: BackoffLimitExceeded",
    ),
    case(
        "job-failure-target",
        job({}, cond("FailureTarget", "True", "DeadlineExceeded")),
        FAILED,
        "Job failed: DeadlineExceeded",
    ),
    case("job-running", job({"completions": 3}, active=1, succeeded=1), IN_PROGRESS, "1 active, 1/3 succeeded"),
    case("job-suspended", job({"suspend": True}), CURRENT, "Job suspended"),
    # -- Pod
    case("pod-ready", pod("Running", cond("Ready")), CURRENT, "Pod ready"),
    case("pod-succeeded", pod("Succeeded"), CURRENT, "Pod succeeded"),
    case("pod-failed", pod("Failed", reason="Evicted"), FAILED, "Pod failed: Evicted"),
    case(
        "pod-crashloop",
        pod("Running", cond("Ready", "False"), waiting="CrashLoopBackOff"),
        FAILED,
        "container app waiting: CrashLoopBackOff",
    ),
    case(
        "pod-image-pull-backoff",
        pod("Pending", waiting="ImagePullBackOff"),
        IN_PROGRESS,
        "container app waiting: ImagePullBackOff",
    ),
    case("pod-creating", pod("Pending", waiting="ContainerCreating"), IN_PROGRESS, "Pod Pending, not ready"),
    case(
        "pod-unschedulable",
        pod("Pending", cond("PodScheduled", "False", "Unschedulable", "0/1 nodes are available")),
        IN_PROGRESS,
        "Pod not scheduled: Unschedulable",
    ),
    case("pod-running-not-ready", pod("Running", cond("Ready", "False")), IN_PROGRESS, "Pod Running, not ready"),
    # -- PersistentVolumeClaim
    case("pvc-bound", obj("v1", "PersistentVolumeClaim", {"volumeName": "pv1"}, {"phase": "Bound"}), CURRENT, "pv1"),
    case("pvc-pending", obj("v1", "PersistentVolumeClaim", {}, {"phase": "Pending"}), IN_PROGRESS, "PVC Pending"),
    case("pvc-no-status", obj("v1", "PersistentVolumeClaim", {}), IN_PROGRESS, "PVC Pending"),
    case("pvc-lost", obj("v1", "PersistentVolumeClaim", {}, {"phase": "Lost"}), FAILED, "PVC Lost"),
    # -- Namespace
    case("ns-active", obj("v1", "Namespace", {}, {"phase": "Active"}), CURRENT, "Active"),
    case("ns-terminating", obj("v1", "Namespace", {}, {"phase": "Terminating"}), IN_PROGRESS, "Terminating"),
    # -- Service
    case("svc-clusterip", obj("v1", "Service", {"type": "ClusterIP"}, {}), CURRENT, "ClusterIP Service"),
    case("svc-type-unset", obj("v1", "Service", {}), CURRENT, "ClusterIP Service"),
    case("svc-lb-pending", obj("v1", "Service", {"type": "LoadBalancer"}, {}), IN_PROGRESS, "load balancer ingress"),
    case(
        "svc-lb-ready",
        obj("v1", "Service", {"type": "LoadBalancer"}, {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}),
        CURRENT,
        "ingress",
    ),
    # -- CustomResourceDefinition
    case(
        "crd-established",
        obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", {}, {"conditions": [cond("Established")]}),
        CURRENT,
        "Established",
    ),
    case(
        "crd-waiting",
        obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", {}, {"conditions": [cond("NamesAccepted")]}),
        IN_PROGRESS,
        "waiting for CRD to be Established",
    ),
    case(
        "crd-names-rejected",
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            {},
            {"conditions": [cond("NamesAccepted", "False", "MultipleNamesNotAllowed", '"w" is already in use')]},
        ),
        FAILED,
        "names not accepted: MultipleNamesNotAllowed",
    ),
    # -- APIService
    case(
        "apiservice-available",
        obj("apiregistration.k8s.io/v1", "APIService", {}, {"conditions": [cond("Available", "True", "Local")]}),
        CURRENT,
        "Available",
    ),
    case(
        "apiservice-unavailable",
        obj(
            "apiregistration.k8s.io/v1",
            "APIService",
            {},
            {"conditions": [cond("Available", "False", "MissingEndpoints")]},
        ),
        IN_PROGRESS,
        "MissingEndpoints",
    ),
    case("apiservice-no-status", obj("apiregistration.k8s.io/v1", "APIService", {}), IN_PROGRESS, "not Available"),
    # -- PodDisruptionBudget
    case(
        "pdb-observed",
        obj("policy/v1", "PodDisruptionBudget", {}, {"observedGeneration": 1, "disruptionsAllowed": 1}),
        CURRENT,
        "1 disruptions allowed",
    ),
    case("pdb-unobserved", obj("policy/v1", "PodDisruptionBudget", {}, {}), IN_PROGRESS, "generation 1 not observed"),
    # -- everything else: the generic rule
    case("configmap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, CURRENT, "exists"),
    case("rbac-role", obj("rbac.authorization.k8s.io/v1", "Role"), CURRENT, "exists"),
    case("cr-no-status", obj("example.io/v1", "Widget", {}), CURRENT, "exists"),
    case("cr-old-generation", cr(cond("Ready"), gen=3, observedGeneration=2), IN_PROGRESS, "generation 3 not"),
    case("cr-ready", cr(cond("Ready"), observedGeneration=1), CURRENT, "Ready"),
    case("cr-ready-progressing", cr(cond("Ready", "False", "Progressing")), IN_PROGRESS, "not Ready: Progressing"),
    case("cr-ready-unknown", cr(cond("Ready", "Unknown", "Reconciling")), IN_PROGRESS, "not Ready"),
    case("cr-ready-failed", cr(cond("Ready", "False", "InstallFailed", "boom")), FAILED, "InstallFailed: boom"),
    case("cr-ready-stalled-reason", cr(cond("Ready", "False", "Stalled")), FAILED, "Stalled"),
    case("cr-stale-ready", cr(cond("Ready", observedGeneration=1), gen=2), IN_PROGRESS, "for generation 1, not 2"),
    case("cr-available", cr(cond("Available")), CURRENT, "Available"),
    case("cr-stalled", cr(cond("Ready", "False"), cond("Stalled", "True", "BuildFailed")), FAILED, "Stalled: Build"),
    case("cr-reconciling", cr(cond("Ready"), cond("Reconciling", "True", "Progressing")), IN_PROGRESS, "Reconciling"),
    case("cr-unrelated-conditions", cr(cond("Synced")), CURRENT, "no Ready condition"),
    case("cronjob-generic", obj("batch/v1", "CronJob", {}, {"lastScheduleTime": "x"}), CURRENT, "exists"),
]


@pytest.mark.parametrize(("o", "state", "fragment"), CASES)
def test_status_table(o: dict[str, Any] | None, state: HealthState, fragment: str) -> None:
    health = status(o)
    assert health.state is state, health
    assert fragment in health.reason, health


def test_condition_helper_and_long_messages_are_cut() -> None:
    o = cr(cond("Ready", "False", "Progressing", "word " * 100))
    assert condition(o, "Ready") is not None
    assert condition(o, "Missing") is None
    assert condition({"status": None}, "Ready") is None
    assert len(status(o).reason) < 160


def test_status_is_pure_and_tolerates_partial_objects() -> None:
    o = deploy(replicas=3, updatedReplicas=3, availableReplicas=3)
    before = repr(o)
    assert status(o) == status(o) == Health(CURRENT, "3/3 replicas updated and available")
    assert repr(o) == before
    assert status({}).state is CURRENT  # no kind, no status: the generic rule, never an exception
    assert status({"kind": "Deployment", "apiVersion": "apps/v1"}).state is IN_PROGRESS  # no generation: not observed
    assert HealthState.IN_PROGRESS == "in_progress"


# -- real objects on the local cluster --------------------------------------------------------------------------------

MANAGER = "gitops-job-test"
IMAGE = "registry.example/app:1.0"


def template(name: str, **pod_spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": IMAGE}], **pod_spec},
    }


def workload(kind: str, name: str, replicas: int | None = 2, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "template": template(name), **spec}
    if replicas is not None:
        body["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": body}


class Cluster:
    """Apply objects and read them back as plain dicts, for :func:`status`."""

    def __init__(self, dyn: DynamicClient, namespace: str | None) -> None:
        self.dyn, self.namespace = dyn, namespace

    def _res(self, o: dict[str, Any]) -> Any:
        return self.dyn.resources.get(api_version=o["apiVersion"], kind=o["kind"])

    def apply(self, o: dict[str, Any]) -> dict[str, Any]:
        applied = self.dyn.server_side_apply(self._res(o), body=o, namespace=self.namespace, field_manager=MANAGER)
        return dict(applied.to_dict())

    def live(self, o: dict[str, Any]) -> dict[str, Any]:
        return dict(self._res(o).get(name=o["metadata"]["name"], namespace=self.namespace).to_dict())

    def health(self, o: dict[str, Any]) -> Health:
        return status(self.live(o))

    def wait(self, o: dict[str, Any], state: HealthState, timeout: float = 20) -> Health:
        what = f"{o['kind']} {o['metadata']['name']} to be {state}"
        return wait_until(lambda: (h := self.health(o)).state is state and h, timeout, what, interval=0.1)


@pytest.fixture
def kube(dyn: DynamicClient, namespace: str) -> Cluster:
    return Cluster(dyn, namespace)


@pytest.mark.cluster
def test_deployment_rolls_out_then_a_new_image_is_in_progress_until_rolled_out(kube: Cluster) -> None:
    d = workload("Deployment", "web")
    assert status(kube.apply(d)).state is IN_PROGRESS  # the controller has not observed generation 1 yet
    assert "2/2 replicas updated and available" in kube.wait(d, CURRENT).reason

    d["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/app:2.0"
    changed = kube.apply(d)  # the write's own response: generation 2, observedGeneration still 1
    assert status(changed) == Health(IN_PROGRESS, "generation 2 not observed yet (observed 1)")
    kube.wait(d, CURRENT)
    assert kube.live(d)["status"]["observedGeneration"] == 2


@pytest.mark.cluster
def test_deployment_no_node_can_take_stays_in_progress_naming_unavailable_replicas(kube: Cluster) -> None:
    d = workload("Deployment", "stuck")
    d["spec"]["template"]["spec"]["nodeSelector"] = {"gitops-job.io/no-such-node": "true"}
    kube.apply(d)
    wait_until(lambda: "replicas available" in kube.health(d).reason, 10, "the replicas to be created")
    for _ in range(5):  # and it stays there: nothing can schedule the pods
        assert kube.health(d) == Health(IN_PROGRESS, "0/2 replicas available (2 unavailable)")
        time.sleep(0.1)


@pytest.mark.cluster
def test_statefulset_and_daemonset_become_current(kube: Cluster) -> None:
    s = workload("StatefulSet", "db", serviceName="db")
    dm = workload("DaemonSet", "agent", replicas=None)
    kube.apply(s)
    kube.apply(dm)
    assert "2/2 replicas ready at revision" in kube.wait(s, CURRENT).reason
    assert "1/1 pods available" in kube.wait(dm, CURRENT).reason  # one kwok node

    s["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/app:2.0"
    kube.apply(s)
    live = kube.wait(s, CURRENT)
    revisions = kube.live(s)["status"]
    assert revisions["currentRevision"] == revisions["updateRevision"], live


@pytest.mark.cluster
def test_job_completes_and_a_job_past_its_deadline_fails(kube: Cluster) -> None:
    ok = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": template("once")["spec"]["containers"]}}
        },
    }
    # kwok has no stage that fails a pod, so a Job fails here only by its deadline: its pod can never be scheduled.
    late = {**ok, "metadata": {"name": "late"}}
    late["spec"] = {**ok["spec"], "activeDeadlineSeconds": 1}
    late["spec"]["template"] = {"spec": {**ok["spec"]["template"]["spec"], "nodeSelector": {"no-such": "node"}}}
    kube.apply(ok)
    kube.apply(late)
    assert kube.wait(ok, CURRENT).reason == "Job complete (1 succeeded)"
    assert kube.wait(late, FAILED).reason.startswith("Job failed: DeadlineExceeded")


@pytest.mark.cluster
def test_pvc_binds_and_configmap_pod_service_pdb_are_current(kube: Cluster) -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {
            "storageClassName": "kwok-volume",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}}
    pod_ = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "p"}},
        "spec": template("p")["spec"],
    }
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    lb = {**svc, "metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "pdb"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "p"}}},
    }
    for o in (pvc, cm, pod_, svc, lb, pdb):
        kube.apply(o)
    assert status(kube.live(cm)) == Health(CURRENT, "exists")  # current as soon as it exists
    assert kube.health(svc) == Health(CURRENT, "ClusterIP Service")
    assert kube.wait(pvc, CURRENT).reason.startswith("PVC Bound to pvc-")
    assert kube.wait(pod_, CURRENT).reason == "Pod ready"
    assert kube.wait(pdb, CURRENT).reason.startswith("PDB observed")
    assert kube.health(lb) == Health(IN_PROGRESS, "waiting for load balancer ingress")  # no load-balancer controller


@pytest.mark.cluster
def test_namespace_apiservice_and_deletion(dyn: DynamicClient, namespace: str) -> None:
    cluster = Cluster(dyn, None)
    assert cluster.health({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}).state is CURRENT
    local = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.apps"}}
    assert cluster.health(local) == Health(CURRENT, "APIService Available")

    kube = Cluster(dyn, namespace)
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["gitops-job.io/test"]},
    }
    kube.apply(held)
    kube._res(held).delete(name="held", namespace=namespace)
    assert kube.health(held) == Health(IN_PROGRESS, "being deleted")
    kube._res(held).patch(
        body={"metadata": {"finalizers": None}},
        name="held",
        namespace=namespace,
        content_type="application/merge-patch+json",
    )


@pytest.mark.cluster
def test_crd_becomes_current_once_established_and_its_objects_are_current(kube: Cluster) -> None:
    group = f"s{uuid.uuid4().hex[:8]}.gitops-job.io"
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    c = make_crd(group, "Gadget", schema)
    crds = Cluster(kube.dyn, None)
    crds.apply(c)
    try:
        assert crds.wait(c, CURRENT).reason == "CRD Established"
        gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 1}}

        def served() -> bool:
            kube.dyn.resources.invalidate_cache()
            try:
                kube.apply(gadget)
            except Exception:
                return False
            return True

        wait_until(served, 20, "discovery to serve Gadget")
        assert kube.health(gadget) == Health(CURRENT, "exists")  # no status at all: current once it exists
    finally:
        kube.dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition").delete(
            name=c["metadata"]["name"]
        )
