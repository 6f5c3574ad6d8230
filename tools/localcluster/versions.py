"""The one place that pins every binary the local control plane and the renderers use.

Changing a version here changes the cache key (each component builds into ``<name>-<version>``)
and the CI cache key (the workflow hashes this file).
"""

from __future__ import annotations

ETCD = "v3.6.14"
KUBERNETES = "v1.36.4"
KWOK = "v0.8.0"
KUSTOMIZE = "v5.8.1"
HELM = "v3.21.4"
ACTIONLINT = "v1.7.12"  # the workflow linter (tests/test_workflows.py), not part of the cluster

# Go settings for every build: no toolchain download, no workspace, writable module cache, static binaries.
GO_ENV = {"GOTOOLCHAIN": "local", "GOWORK": "off", "GOFLAGS": "-modcacherw", "CGO_ENABLED": "0"}
MIN_GO = (1, 26)
