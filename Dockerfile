# The gitops-job image: `gitops-job reconcile` in a CronJob (deploy/, docs/deploy.md).
#
# Build it with `make image` (tools/image.py): it prepares the build context this file expects —
#   wheels/     gitops-job and every dependency as wheels, pinned by action-requirements.txt (pip download --require-hashes)
#   bin/        kustomize and helm, the pinned builds of tools/localcluster (versions.py, checked by sha256 there)
# and builds on a local Debian bookworm base made by mmdebstrap (no registry needed). BASE may be any Debian bookworm
# image with the same Python minor as the wheels (3.11): python3, python3-venv and git are installed from its apt when
# it lacks them, at the pinned GIT_DEB version.
ARG BASE=docker.io/library/debian:bookworm-slim@sha256:7802002798b0e351323ed2357ae6dc5a8c4d0a05a57e7f4d8f97136151d3d603
FROM ${BASE}

ARG KUSTOMIZE_VERSION=v5.8.1
ARG HELM_VERSION=v3.21.4
ARG GIT_VERSION=2.39.5
ARG GIT_DEB=1:2.39.5-0+deb12u3
ARG UID=65532

# git (https and ssh remotes) and python3 from the base's apt unless the base has them (the mmdebstrap base does).
RUN if ! { command -v git && command -v ssh && python3 -m venv --help; } >/dev/null 2>&1; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "git=${GIT_DEB}" openssh-client ca-certificates python3 python3-venv && rm -rf /var/lib/apt/lists/*; \
    fi \
 && test "$(git --version)" = "git version ${GIT_VERSION}" \
    || { echo "git is $(git --version), expected ${GIT_VERSION}" >&2; exit 1; }

COPY bin/kustomize bin/helm /usr/local/bin/
RUN kustomize version | grep -qx "${KUSTOMIZE_VERSION}" \
    || { echo "kustomize is $(kustomize version), expected ${KUSTOMIZE_VERSION}" >&2; exit 1; } \
 && helm version --template '{{.Version}}' | grep -qx "${HELM_VERSION}" \
    || { echo "helm is $(helm version --short), expected ${HELM_VERSION}" >&2; exit 1; }

# Everything from the wheelhouse, nothing from an index.
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/gitops-job \
 && /opt/gitops-job/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels gitops-job \
 && rm -rf /tmp/wheels \
 && /opt/gitops-job/bin/gitops-job --version

# A non-root user; the root filesystem may be mounted read-only: only /tmp (HOME is there) and the state volume
# (/var/cache/gitops-job) are written.
RUN mkdir -p /var/cache/gitops-job && chown "${UID}:${UID}" /var/cache/gitops-job && chmod 1777 /tmp
ENV PATH=/opt/gitops-job/bin:/usr/local/bin:/usr/bin:/bin \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    GITOPS_JOB_KUSTOMIZE=/usr/local/bin/kustomize \
    GITOPS_JOB_HELM=/usr/local/bin/helm
USER ${UID}:${UID}
WORKDIR /tmp
VOLUME ["/var/cache/gitops-job"]
ENTRYPOINT ["gitops-job"]
CMD ["--help"]
