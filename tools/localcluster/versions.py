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

# The renderers run with cluster credentials in the action, which restores them from a cache that another workflow
# of the repository could have written: each is checked against the sha256 below before it is used, and refused when
# it differs (build.verify, `python -m tools.localcluster verify`). Go builds them reproducibly (-trimpath, no cgo,
# modules checked against Go's checksum database), so the sums hold for this Go release on each GOOS-GOARCH; the
# action builds with exactly this Go. Print the sums of a build with `python -m tools.localcluster verify --print`.
GO_VERSION = "1.26.8"
SHA256: dict[str, dict[str, str]] = {
    "kustomize": {"linux-amd64": "fd587f6f31ecb8e1ebb7d7b3baa040c85162e445c80c5e3d0971cabbdd8add0e"},
    "helm": {"linux-amd64": "c0bf0edf00597bb93a20ecc41c36c6f4b6a7d5e4bfc86a11dc5ba522d5440397"},
}
