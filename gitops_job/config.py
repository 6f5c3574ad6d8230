"""The repo config (``gitops.yaml``): targets and stacks, as frozen dataclasses. Loading and checking it against the
shipped JSON Schema (``gitops_job/schemas/config.schema.json``) is :func:`load_config`'s job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RENDERERS = ("auto", "plain", "jinja", "kustomize", "helm")
DEFAULT_KUBE_VERSION = "v1.36.0"


@dataclass(frozen=True)
class Target:
    """A cluster the stacks are reconciled into."""

    name: str
    context: str | None = None  # kubeconfig context; None = the current context
    vars: Mapping[str, Any] = field(default_factory=dict)
    kube_version: str = DEFAULT_KUBE_VERSION  # for `helm template --kube-version` (render is offline)


@dataclass(frozen=True)
class AllowPolicy:
    """Where a stack may put objects."""

    namespaces: tuple[str, ...] | None = None  # None = any namespace
    cluster_scoped: bool = True  # may the stack contain cluster-scoped kinds?


@dataclass(frozen=True)
class IgnoreDifference:
    """Argo CD-style: JSON pointers whose differences the plan ignores, for one kind (optionally one object)."""

    kind: str
    json_pointers: tuple[str, ...]
    group: str = ""
    name: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class Stack:
    """A directory of manifests rendered one way and reconciled as a unit."""

    name: str
    path: str  # repo-relative POSIX path, checked to resolve inside the repository
    render: str = "auto"  # one of RENDERERS; "auto" is resolved by the renderer from the directory's content
    namespace: str | None = None  # default for namespaced objects that set none
    vars: Mapping[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()  # empty = every target
    depends_on: tuple[str, ...] = ()
    prune: bool = True
    wait: bool = True
    timeout: float = 300.0  # seconds
    allow: AllowPolicy = field(default_factory=AllowPolicy)
    service_account_name: str | None = None
    ignore_differences: tuple[IgnoreDifference, ...] = ()
    values: tuple[str, ...] = ()  # helm: values files, repo-relative
    release_name: str | None = None  # helm: default is the stack name


@dataclass(frozen=True)
class RepoConfig:
    root: Path  # the repository root (absolute)
    file: Path  # the config file that was loaded
    targets: tuple[Target, ...]
    stacks: tuple[Stack, ...]  # in dependsOn order: every stack after the stacks it depends on
