"""Remote Helm charts: a version range resolved to one exact version the way Helm and Flux's source-controller do,
the archive fetched through :mod:`gitops_job.chartrepo` (only from allowed hosts, never on a run that may fetch
nothing), its digest checked, cached by digest, and unpacked safely for ``helm template``.

- HTTP repositories: ``<repository>/index.yaml``; the chart's entries are filtered by the range (a Masterminds
  constraint, :func:`gitops_job.images.policy.parse_range`; an exact string match of a listed version wins first, as
  in Helm; versions that are not ``X.Y.Z[-pre][+build]`` are skipped, as in Flux) and the highest wins; ``*`` (the
  default) never picks a pre-release. The archive's SHA-256 must equal the index entry's ``digest``.
- OCI repositories: ``oci://host/path`` holds the chart at ``path/<name>``; an exact version is the tag (``+`` is
  written ``_`` in tags, as Helm pushes it), a range is resolved over the tag list; the chart layer
  (``application/vnd.cncf.helm.chart.content.v1.tar+gzip``) is fetched by the manifest's digest and checked.

Archives are kept in ``<state dir>/charts/sha256-<hex>.tgz`` (the ``--state-dir`` of a scheduled run; a temporary
directory for the process otherwise), and what a reference resolved to is kept for the rest of the process, so a
stack rendered twice in one run fetches nothing the second time, and a new run fetches only the index (or the tag
list and manifest) when the version it resolves is cached.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml

from gitops_job import chartrepo, memo
from gitops_job.config.sources import RemoteChart, Sources
from gitops_job.errors import ImageError, RenderError
from gitops_job.images.policy import Version, parse_range, parse_tag, parse_version

HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MAX_UNPACKED = 256 * 2**20  # bytes of one chart, unpacked
MAX_MEMBERS = 10_000  # files of one chart
_EXACT = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


@dataclass(frozen=True)
class ChartAccess:
    """What a render may fetch: hosts and credentials from ``gitops.yaml``'s ``sources``; ``fetch`` False on a run
    that must fetch nothing (a fork's pull request: the caller decides)."""

    sources: Sources = field(default_factory=Sources)
    fetch: bool = True


@dataclass(frozen=True)
class ResolvedChart:
    """One exact chart: where it came from, its version, its archive's digest and where the archive is cached."""

    repository: str  # as shown (no credentials)
    name: str
    version: str
    digest: str  # sha256:<hex>
    archive: Path

    @property
    def label(self) -> str:
        """What the plan shows: ``podinfo 6.5.4 (https://charts.example/)``."""
        return f"{self.name} {self.version} ({self.repository})"


_resolved: dict[tuple[Any, ...], ResolvedChart] = {}  # this process's resolutions (see the module's docstring)


def forget() -> None:
    """Drop this process's resolutions (a test starting a "new run")."""
    _resolved.clear()


# --- the pure cores --------------------------------------------------------------------------------------------------


def range_of(version: str, where: str) -> Any:
    try:
        return parse_range(version or "*", where)
    except ImageError as e:
        raise RenderError(f"chart version: {e.reason}", where=where) from None


def pick(versions: Sequence[str], version: str, where: str) -> str | None:
    """The listed version ``version`` resolves to (Helm and Flux): an exact string match, else the highest version
    in the range; None when none is."""
    if version in versions:
        return version
    wanted = range_of(version, where)
    best: Version | None = None
    for text in versions:
        parsed = parse_tag(text)
        if parsed is not None and wanted.check(parsed) is None and (best is None or parsed.key > best.key):
            best = parsed
    return best.original if best else None


def index_entry(index: Any, name: str, version: str, where: str) -> Mapping[str, Any]:
    """The entry of chart ``name`` in an ``index.yaml`` that ``version`` (a range or exact) resolves to."""
    entries = index.get("entries") if isinstance(index, dict) else None
    listed = entries.get(name) if isinstance(entries, dict) else None
    if not isinstance(listed, list) or not listed:
        known = ", ".join(sorted(entries)[:20]) if isinstance(entries, dict) else "none"
        raise RenderError(f"chart {name!r} is not in the repository's index (charts: {known or 'none'})", where=where)
    by_version = {str(e.get("version")): e for e in listed if isinstance(e, dict)}
    chosen = pick(list(by_version), version, where)
    if chosen is None:
        shown = ", ".join(list(by_version)[:10])
        raise RenderError(f"no version of chart {name!r} matches {version!r} (listed: {shown})", where=where)
    return by_version[chosen]


def is_exact(version: str) -> bool:
    """Whether ``version`` is one version (``1.2.3``, ``v1.2.3-rc.1+build``) rather than a range."""
    return _EXACT.fullmatch(version) is not None and parse_version(version) is not None


def oci_tag_version(tags: Sequence[str], version: str, where: str) -> str | None:
    """The version (``+`` as in semver) an OCI tag list resolves ``version`` to: an exact version as given, else the
    highest tag in the range."""
    if is_exact(version):
        return version
    return pick([t.replace("_", "+") for t in tags], version, where)


# --- fetching --------------------------------------------------------------------------------------------------------


def fetch(chart: RemoteChart, access: ChartAccess, where: str) -> ResolvedChart:
    """The chart ``chart`` names, resolved and in the cache."""
    if urlsplit(chart.repository).scheme == "oci":
        base = chart.repository.rstrip("/")
        return fetch_oci(f"{base}/{chart.name}", access, where, version=chart.version, insecure=chart.insecure)
    return fetch_http(chart.repository, chart.name, chart.version, access, where)


def fetch_http(repository: str, name: str, version: str, access: ChartAccess, where: str) -> ResolvedChart:
    key = ("http", repository, name, version)
    if key in _resolved:
        return _resolved[key]
    client = _client(access, repository, where)
    index_url = repository.rstrip("/") + "/index.yaml"
    body, _ = client.get(index_url, what=f"chart repository index for {name}")
    try:
        index = yaml.load(body, Loader=yaml.CSafeLoader)  # not yamlio: an index carries timestamps, and is no manifest
    except yaml.YAMLError as e:
        raise RenderError(f"the repository's index.yaml is not YAML: {e}", where=chartrepo.shown(index_url)) from None
    entry = index_entry(index, name, version, f"{where}: chart {name} from {chartrepo.shown(repository)}")
    urls = entry.get("urls") or []
    if not urls or not isinstance(urls[0], str):
        raise RenderError(f"the index lists no URL for {name} {entry.get('version')}", where=chartrepo.shown(index_url))
    url = urljoin(repository.rstrip("/") + "/", urls[0])
    digest = str(entry.get("digest") or "")
    expected = f"sha256:{digest}" if digest and not digest.startswith("sha256:") else digest
    label = f"chart {name} {entry['version']}"
    archive = _cached(expected) or _store(client.get(url, what=label)[0], expected, label, url)
    resolved = ResolvedChart(chartrepo.shown(repository), name, str(entry["version"]), _digest_of(archive), archive)
    _resolved[key] = resolved
    return resolved


def fetch_oci(
    url: str,
    access: ChartAccess,
    where: str,
    *,
    version: str | None = None,
    tag: str | None = None,
    digest: str | None = None,
    insecure: bool = False,
) -> ResolvedChart:
    """The chart at the OCI repository ``url`` (``oci://host/path/name``): by manifest ``digest``, else by ``tag``,
    else by ``version`` (a range or an exact version)."""
    key = ("oci", url, version, tag, digest, insecure)
    if key in _resolved:
        return _resolved[key]
    parts = urlsplit(url)
    repository = parts.path.strip("/")
    base = f"{'http' if insecure else 'https'}://{parts.netloc}"
    client = _client(access, base, where)
    name = repository.rsplit("/", 1)[-1]
    if digest:
        reference, shown_version = digest, digest
    elif tag:
        reference, shown_version = tag, tag
    else:
        wanted = version or "*"
        tags = [] if is_exact(wanted) else client.oci_tags(base, repository)
        found = oci_tag_version(tags, wanted, f"{where}: chart {chartrepo.shown(url)}")
        if found is None:
            shown = ", ".join(tags[:10]) or "none"
            raise RenderError(f"no tag of {chartrepo.shown(url)} matches {wanted!r} (tags: {shown})", where=where)
        reference, shown_version = found.replace("+", "_"), found
    manifest = client.oci_manifest(base, repository, reference)
    layers = [x for x in manifest.get("layers") or [] if isinstance(x, dict)]
    layer = next((x for x in layers if x.get("mediaType") == HELM_CHART_LAYER), layers[0] if layers else None)
    if layer is None or not isinstance(layer.get("digest"), str):
        raise RenderError(f"{chartrepo.shown(url)}:{reference} has no chart layer", where=where)
    expected = layer["digest"]
    label = f"chart {name} {shown_version}"
    archive = _cached(expected) or _store(client.oci_blob(base, repository, expected), expected, label, url)
    resolved = ResolvedChart(chartrepo.shown(url), name, shown_version, expected, archive)
    _resolved[key] = resolved
    return resolved


def _client(access: ChartAccess, url: str, where: str) -> chartrepo.Client:
    if not access.fetch:
        raise RenderError(
            f"remote chart at {chartrepo.shown(url)} not fetched: this run fetches nothing (a fork's pull request); "
            "the plan of a maintainer's branch renders it",
            where=where,
        )

    def auth(target: str) -> chartrepo.Basic | None:
        credential = access.sources.credential(target)
        if credential is None or credential.password is None:
            return None
        return chartrepo.Basic(credential.url, credential.username, secret(credential.password, where))

    return chartrepo.Client(access.sources.allows, auth)


def secret(ref: Any, where: str) -> str:
    """The value of a ``sources.credentials`` password (``{env: NAME}`` or ``{file: PATH}``), read now."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise RenderError(f"sources.credentials: environment variable {ref.env} is not set", where=where)
    else:
        try:
            value = Path(ref.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or e
            raise RenderError(f"sources.credentials: cannot read {ref.file}: {why}", where=where) from None
    return value.strip()


# --- the cache -------------------------------------------------------------------------------------------------------


_temporary: list[Path] = []


def cache_dir() -> Path:
    """``<state dir>/charts`` during a run with a state dir, else a temporary directory for this process."""
    kept = memo.current().path
    if kept is not None:
        return kept.parent / "charts"
    if not _temporary:
        _temporary.append(Path(tempfile.mkdtemp(prefix="gitops-job-charts-")))
        atexit.register(shutil.rmtree, _temporary[0], True)
    return _temporary[0]


def _path(digest: str) -> Path:
    return cache_dir() / f"{digest.replace(':', '-')}.tgz"


def _digest_of(archive: Path) -> str:
    return archive.name.removesuffix(".tgz").replace("-", ":", 1)


def _cached(digest: str) -> Path | None:
    if not digest.startswith("sha256:"):
        return None
    path = _path(digest)
    return path if path.is_file() else None


def _store(data: bytes, expected: str, label: str, url: str) -> Path:
    """Check ``data`` against ``expected`` (``sha256:<hex>``; empty when the index gives none) and cache it."""
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if expected and expected != actual:
        raise RenderError(
            f"{label}: the archive's digest {actual} is not the {expected} its repository lists; refused (nothing "
            "rendered from it). The repository changed the archive under the same version, or something in between "
            "altered it",
            where=chartrepo.shown(url),
        )
    path = _path(actual)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".chart-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    Path(tmp).replace(path)
    return path


@contextlib.contextmanager
def unpacked(chart: ResolvedChart, where: str) -> Iterator[Path]:
    """The chart directory of ``chart``'s archive, unpacked into a temporary directory (no links, no absolute or
    escaping paths, at most :data:`MAX_UNPACKED` bytes)."""
    with tempfile.TemporaryDirectory(prefix="gitops-job-chart-") as temporary:
        try:
            with tarfile.open(fileobj=io.BytesIO(chart.archive.read_bytes()), mode="r:gz") as archive:
                members = archive.getmembers()
                if len(members) > MAX_MEMBERS or sum(m.size for m in members) > MAX_UNPACKED:
                    raise RenderError(f"chart {chart.label} is too large to unpack; refused", where=where)
                archive.extractall(temporary, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise RenderError(f"chart {chart.label}: not a chart archive ({e})", where=where) from None
        tops = [p for p in Path(temporary).iterdir() if (p / "Chart.yaml").is_file()]
        if len(tops) != 1:
            raise RenderError(f"chart {chart.label}: the archive holds no chart (no <name>/Chart.yaml)", where=where)
        yield tops[0]
