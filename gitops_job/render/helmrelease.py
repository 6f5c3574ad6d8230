"""A Flux ``HelmRelease`` (``helm.toolkit.fluxcd.io/v2``) rendered the way helm-controller would install it, with
``helm template`` in the sandbox: the chart from the source objects found with it (a ``HelmRepository``, HTTP or
``type: oci``; an ``OCIRepository`` through ``chartRef``; a ``GitRepository`` path), the values from ``valuesFrom`` and
``values``, the release's name and namespace, the CRD policies, the kustomize post-renderers, Flux's origin labels,
and its ``dependsOn`` for the caller's ordering. Entry point: :func:`render_helmrelease`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from gitops_job.config import paths
from gitops_job.config.flux import FluxBuild, Ref, git_source
from gitops_job.config.load import Target
from gitops_job.errors import RenderError
from gitops_job.identity import ObjectId
from gitops_job.model import ANNOTATION_SSA, RenderedObject, Source
from gitops_job.render import charts, gitrepo, sandbox
from gitops_job.render.documents import each, parse_objects
from gitops_job.render.helm_template import Release, template
from gitops_job.yamlio import load_documents

HELM_GROUP = "helm.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
API_VERSION = f"{HELM_GROUP}/v2"
MAX_RELEASE_NAME = 53  # Helm's limit; Flux shortens a longer default name
DEFAULT_VALUES_KEY = "values.yaml"
# Fields that change what helm-controller would install and that are not honoured here: each is a warning.
UNSUPPORTED = ("kubeConfig", "serviceAccountName", "chart.spec.verify", "chart.spec.ignoreMissingValuesFiles")


class CrdPolicy(StrEnum):
    SKIP = "Skip"
    CREATE = "Create"
    CREATE_REPLACE = "CreateReplace"


@dataclass(frozen=True)
class RenderedRelease:
    """What one HelmRelease renders to."""

    objects: tuple[RenderedObject, ...]
    release_name: str
    namespace: str  # the release's namespace (targetNamespace, else the HelmRelease's)
    chart: str  # the chart as resolved: "demo 1.1.0 (https://charts.example/)" or "charts/demo (GitRepository/…)"
    depends_on: tuple[ObjectId, ...] = ()  # other HelmReleases, for the caller's ordering
    warnings: tuple[str, ...] = ()  # fields present that are not honoured, each naming the field


def render_helmrelease(
    release: RenderedObject,
    found: Sequence[RenderedObject],
    *,
    target: Target,
    access: charts.ChartAccess,
    checkouts: Mapping[ObjectId, Path] | None = None,
) -> RenderedRelease:
    """Render the HelmRelease ``release`` with ``helm template``.

    ``found``: the objects rendered with it (its sources — HelmRepository, OCIRepository, HelmChart, GitRepository —
    and the ConfigMaps and Secrets its ``valuesFrom`` names); one without a namespace counts as in the
    HelmRelease's. ``access``: where remote charts may be fetched from (``sources`` of gitops.yaml; nothing on a
    fork's pull request). ``checkouts``: the local checkout of each GitRepository a chart may come from (this
    repository's at the revision planned), by its ObjectId; another is cloned (:func:`gitrepo.checkout`, with
    ``access``'s rules) when a chart is read from it. The objects' stack is the
    HelmRelease's. Every problem is a RenderError at ``<file:line>: HelmRelease/<ns>/<name>``.
    """
    renderer = _Renderer(release, found, target, access, dict(checkouts or {}))
    try:
        return renderer.run()
    except RenderError as e:  # a chart fetch names its URL: lead with the HelmRelease too
        if e.where and e.where.startswith(renderer.where):
            raise
        raise renderer.fail(f"{e.where}: {e.reason}" if e.where else e.reason) from None


def release_name(name: str, target_namespace: str | None, explicit: str | None) -> str:
    """Flux's release name: ``releaseName``, else ``[targetNamespace-]name``, a name longer than 53 characters
    shortened to its first 40 and ``-`` and the first 12 hex digits of its SHA-256."""
    if explicit:
        return explicit
    full = f"{target_namespace}-{name}" if target_namespace else name
    if len(full) <= MAX_RELEASE_NAME:
        return full
    return f"{full[:40]}-{hashlib.sha256(full.encode()).hexdigest()[:12]}"


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Flux's ``MergeMaps``: mappings merged key by key, anything else (lists included) replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


_INT = re.compile(r"-?(0|[1-9][0-9]*)")


def typed(value: str) -> Any:
    """Helm's ``--set`` typing of a value (what ``targetPath`` uses): ``true``/``false``, ``null``, a decimal
    integer; anything else stays a string. A value in single or double quotes is the string inside."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if value in ("true", "false"):
        return value == "true"
    if value == "null":
        return None
    if _INT.fullmatch(value) and -(2**63) <= int(value) < 2**63:
        return int(value)
    return value


_SEGMENT = re.compile(r"((?:\\.|[^.\[\\])+)((?:\[[0-9]+\])*)")


def set_path(values: dict[str, Any], path: str, value: Any, where: str) -> None:
    """Set ``value`` at the dot path ``path`` (``a.b``, ``a\\.b`` for a dot in a key, ``list[0].x``)."""
    parts: list[str | int] = []
    for segment in _split(path, where):
        m = _SEGMENT.fullmatch(segment)
        if m is None:
            raise RenderError(f"targetPath {path!r}: cannot read {segment!r}", where=where)
        parts.append(m[1].replace("\\.", "."))
        parts.extend(int(i) for i in re.findall(r"\[([0-9]+)\]", m[2]))
    current: Any = values
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        fresh: Any = value if following is None else ([] if isinstance(following, int) else {})
        if isinstance(part, int):
            if not isinstance(current, list):
                raise RenderError(f"targetPath {path!r}: [{part}] indexes something that is not a list", where=where)
            current.extend([None] * (part + 1 - len(current)))
            if following is None or not isinstance(current[part], dict | list):
                current[part] = fresh
            current = current[part]
        else:
            if following is None or not isinstance(current.get(part), dict | list):
                current[part] = fresh
            current = current[part]


def _split(path: str, where: str) -> list[str]:
    segments, current, i = [], "", 0
    while i < len(path):
        if path[i] == "\\" and i + 1 < len(path):
            current += path[i : i + 2]
            i += 2
            continue
        if path[i] == ".":
            segments.append(current)
            current = ""
        else:
            current += path[i]
        i += 1
    segments.append(current)
    if any(not s for s in segments):
        raise RenderError(f"targetPath {path!r} has an empty part", where=where)
    return segments


@dataclass
class _Renderer:
    release: RenderedObject
    found: Sequence[RenderedObject]
    target: Target
    access: charts.ChartAccess
    checkouts: dict[ObjectId, Path]
    said: list[str] = field(default_factory=list)  # warnings about the sources it read (a GitRepository's fields)

    @property
    def where(self) -> str:
        return f"{self.release.source}: {self.release.id}"

    def fail(self, reason: str) -> RenderError:
        return RenderError(reason, where=self.where)

    def run(self) -> RenderedRelease:
        body = self.release.body
        if body.get("apiVersion") != API_VERSION or body.get("kind") != "HelmRelease":
            raise self.fail(f"expected apiVersion {API_VERSION}, kind HelmRelease, got {body.get('apiVersion')}")
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise self.fail("spec must be a mapping")
        meta = body.get("metadata") or {}
        self.namespace = str(meta.get("namespace") or "default")
        name = str(meta.get("name"))
        target_namespace = spec.get("targetNamespace")
        release = release_name(name, target_namespace, spec.get("releaseName"))
        namespace = str(target_namespace or self.namespace)
        install, upgrade = (
            self._policy(spec, "install", CrdPolicy.CREATE),
            self._policy(spec, "upgrade", CrdPolicy.SKIP),
        )
        values = self._values(spec)
        warnings = tuple(f"{self.where}: spec.{f} is not supported; ignored" for f in UNSUPPORTED if _has(spec, f))
        with tempfile.TemporaryDirectory(prefix="gitops-job-values-") as work:
            values_file = Path(work) / "values.json"
            values_file.write_text(json.dumps(values), encoding="utf-8")
            objects, label = self._template(spec, release, namespace, install is not CrdPolicy.SKIP, values_file)
        warnings += tuple(w.removeprefix("warning: ") for w in self.said)
        objects = self._crd_policy(objects, upgrade)
        objects = self._post_render(spec, objects)
        objects = [self._labelled(o, name, spec) for o in objects]
        depends = tuple(self._dependency(d, i) for i, d in enumerate(spec.get("dependsOn") or ()))
        return RenderedRelease(tuple(objects), release, namespace, label, depends, warnings)

    # --- the chart ---------------------------------------------------------------------------------------------------

    def _source(self, ref: Any, field: str, kinds: Sequence[str]) -> RenderedObject:
        if not isinstance(ref, dict) or not ref.get("name") or ref.get("kind") not in kinds:
            raise self.fail(f"spec.{field} must name a kind ({', '.join(kinds)}) and a name")
        wanted = ObjectId(SOURCE_GROUP, ref["kind"], str(ref.get("namespace") or self.namespace), str(ref["name"]))
        for obj in self.found:
            if self._id(obj) == wanted:
                return obj
        raise self.fail(
            f"spec.{field}: {wanted} is not among the objects rendered with it; gitops-job reads sources from the "
            "repository only (add it there)"
        )

    def _id(self, obj: RenderedObject) -> ObjectId:
        return obj.id if obj.id.namespace else replace(obj.id, namespace=self.namespace)

    def _template(
        self, spec: Mapping[str, Any], release: str, namespace: str, include_crds: bool, values: Path
    ) -> tuple[list[RenderedObject], str]:
        stack = self.release.stack

        def make(chart: Path, shown: str, files: Sequence[Path], label: str | None) -> Release:
            kube = self.target.kube_version
            return Release(chart, shown, release, namespace, kube, [*files, values], include_crds, label)

        if "chartRef" in spec:
            source = self._source(spec["chartRef"], "chartRef", ("OCIRepository", "HelmChart"))
            if source.id.kind == "HelmChart":
                return self._template_spec(source.body.get("spec") or {}, make, "chartRef")
            remote = self._oci_repository(source)
            with charts.unpacked(remote, self.where) as directory:
                rendered = template(make(directory, directory.name, [], remote.label), stack=stack, where=self.where)
                return rendered, remote.label
        chart = spec.get("chart")
        if not isinstance(chart, dict) or not isinstance(chart.get("spec"), dict):
            raise self.fail("spec.chart.spec (or spec.chartRef) is required")
        return self._template_spec(chart["spec"], make, "chart.spec")

    def _template_spec(self, chart: Mapping[str, Any], make: Any, field: str) -> tuple[list[RenderedObject], str]:
        name, version = chart.get("chart"), str(chart.get("version") or "*")
        if not isinstance(name, str) or not name:
            raise self.fail(f"spec.{field}.chart (the chart's name or path) is required")
        kinds = ("HelmRepository", "GitRepository", "Bucket")
        source = self._source(chart.get("sourceRef"), f"{field}.sourceRef", kinds)
        files = [f for f in chart.get("valuesFiles") or () if isinstance(f, str)]
        if source.id.kind == "Bucket":
            raise self.fail(f"spec.{field}.sourceRef: a Bucket source is not supported; vendor the chart into git")
        if source.id.kind == "GitRepository":
            return self._git_chart(source, name, files, make)
        src = source.body.get("spec") or {}
        url, insecure = str(src.get("url") or ""), bool(src.get("insecure"))
        if src.get("type") == "oci" or url.startswith("oci://"):
            remote = charts.fetch_oci(
                f"{url.rstrip('/')}/{name}", self.access, self.where, version=version, insecure=insecure
            )
        else:
            remote = charts.fetch_http(url, name, version, self.access, self.where)
        with charts.unpacked(remote, self.where) as directory:
            chart_files = [self._chart_file(directory, f, field) for f in files]
            rendered = template(
                make(directory, directory.name, chart_files, remote.label), stack=self.release.stack, where=self.where
            )
            return rendered, remote.label

    def _chart_file(self, directory: Path, file: str, field: str) -> Path:
        try:
            return paths.resolve(directory, file)
        except paths.PathRefused as e:
            raise self.fail(f"spec.{field}.valuesFiles: {e.reason}") from None

    def _oci_repository(self, source: RenderedObject) -> charts.ResolvedChart:
        spec = source.body.get("spec") or {}
        ref = spec.get("ref") or {}
        url = str(spec.get("url") or "")
        if not url.startswith("oci://"):
            raise self.fail(f"{source.id}: spec.url must be an oci:// URL")
        return charts.fetch_oci(
            url,
            self.access,
            self.where,
            digest=ref.get("digest"),
            version=ref.get("semver"),
            tag=None if ref.get("semver") or ref.get("digest") else str(ref.get("tag") or "latest"),
            insecure=bool(spec.get("insecure")),
        )

    def _git_chart(
        self, source: RenderedObject, name: str, files: list[str], make: Any
    ) -> tuple[list[RenderedObject], str]:
        oid = self._id(source)
        root, label, origin = self.checkouts.get(oid), str(oid), None
        if root is None:  # another repository: cloned at its ref, under the same rules as a Kustomization's source
            spec, said = git_source(source.body, Ref(oid.kind, oid.namespace, oid.name), str(source.source))
            self.said.extend(said)
            if not spec.url:
                raise self.fail(f"{oid} ({source.source}) has no spec.url to read the chart {name!r} from")
            got = gitrepo.checkout(spec, self.access, what=str(self.release.id))
            root, label = got.root, got.label
            origin = label  # its objects' files are in that checkout
        root = paths.real(root)
        try:
            directory = paths.resolve(root, name)
            values = [paths.resolve(directory, f) for f in files]
        except paths.PathRefused as e:
            raise self.fail(f"chart {name!r}: {e.reason}") from None
        if not (directory / "Chart.yaml").is_file():
            raise self.fail(f"chart {name!r} in {self._id(source)}: no Chart.yaml there")
        shown = directory.relative_to(root).as_posix()
        with sandbox.tree(root, [directory]) as tree:
            release = make(tree.path(directory), shown, [tree.path(v) for v in values], None)
            objects = template(release, stack=self.release.stack, where=self.where, tree=tree)
            if origin is not None:
                objects = [replace(o, source=replace(o.source, origin=origin)) for o in objects]
            return objects, f"{shown} ({label})"

    # --- values ------------------------------------------------------------------------------------------------------

    def _values(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for i, ref in enumerate(spec.get("valuesFrom") or ()):
            at = f"spec.valuesFrom[{i}]"
            if not isinstance(ref, dict) or ref.get("kind") not in ("ConfigMap", "Secret") or not ref.get("name"):
                raise self.fail(f"{at} must name a kind (ConfigMap or Secret) and a name")
            text = self._reference(ref, at)
            if text is None:
                continue
            if ref.get("targetPath"):
                set_path(result, str(ref["targetPath"]), typed(text), self.where)
                continue
            documents = load_documents(text, f"{self.where}: {at}", error=RenderError)
            value = documents[0][0] if documents else {}
            if not isinstance(value, dict):
                raise self.fail(f"{at}: the values are not a mapping")
            result = merge(result, value)
        inline = spec.get("values") or {}
        if not isinstance(inline, dict):
            raise self.fail("spec.values must be a mapping")
        return merge(result, inline)

    def _reference(self, ref: Mapping[str, Any], at: str) -> str | None:
        """The text ``valuesFrom`` entry ``ref`` names; None when it is optional and missing."""
        wanted = ObjectId("", ref["kind"], self.namespace, str(ref["name"]))
        key = str(ref.get("valuesKey") or DEFAULT_VALUES_KEY)
        optional = bool(ref.get("optional"))
        obj = next((o for o in self.found if self._id(o) == wanted), None)
        if obj is None:
            if optional:
                return None
            raise self.fail(
                f"{at}: {wanted} is not among the objects rendered with it (one that exists only in the cluster is "
                "not read); add it to the repository, or set optional: true"
            )
        body = obj.body
        if ref["kind"] == "ConfigMap":
            text = (body.get("data") or {}).get(key)
            binary = (body.get("binaryData") or {}).get(key)
        else:
            text = (body.get("stringData") or {}).get(key)
            binary = (body.get("data") or {}).get(key) if text is None else None
        if text is None and binary is not None:
            try:
                text = base64.b64decode(str(binary), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise self.fail(f"{at}: {wanted} key {key!r} is not base64 of UTF-8 text") from None
        if text is None:
            if optional:
                return None
            raise self.fail(f"{at}: {wanted} has no key {key!r} (valuesKey); set optional: true if it may be missing")
        return str(text)

    # --- CRDs, post-renderers, labels, dependsOn ---------------------------------------------------------------------

    def _policy(self, spec: Mapping[str, Any], action: str, default: CrdPolicy) -> CrdPolicy:
        raw = (spec.get(action) or {}).get("crds")
        if raw is None:
            return default
        try:
            return CrdPolicy(raw)
        except ValueError:
            raise self.fail(f"spec.{action}.crds: expected Skip, Create or CreateReplace, got {raw!r}") from None

    def _crd_policy(self, objects: list[RenderedObject], upgrade: CrdPolicy) -> list[RenderedObject]:
        """install Skip: the chart's ``crds/`` were left out. Otherwise they are created when missing and, unless the
        upgrade policy is CreateReplace, never updated (``gitops-job.io/ssa: IfNotPresent``), as helm-controller
        leaves an existing CRD alone on an upgrade with Skip or Create."""
        if upgrade is CrdPolicy.CREATE_REPLACE:
            return objects
        return [_if_not_present(o) if _from_crds_dir(o) else o for o in objects]

    def _post_render(self, spec: Mapping[str, Any], objects: list[RenderedObject]) -> list[RenderedObject]:
        for i, renderer in enumerate(spec.get("postRenderers") or ()):
            kustomize = renderer.get("kustomize") if isinstance(renderer, dict) else None
            if not isinstance(kustomize, dict):
                raise self.fail(f"spec.postRenderers[{i}]: only kustomize post-renderers are supported")
            objects = self._kustomize(objects, kustomize, i)
        return objects

    def _kustomize(self, objects: list[RenderedObject], spec: Mapping[str, Any], i: int) -> list[RenderedObject]:
        allowed = {"patches", "images", "patchesStrategicMerge", "patchesJson6902"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise self.fail(f"spec.postRenderers[{i}].kustomize: {', '.join(unknown)} not supported")
        kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
        kustomization["resources"] = ["rendered.yaml"]  # type: ignore[assignment]
        kustomization.update({k: v for k, v in spec.items() if k in allowed})
        with tempfile.TemporaryDirectory(prefix="gitops-job-postrender-") as work:
            (Path(work) / "rendered.yaml").write_text("\n---\n".join(json.dumps(o.body) for o in objects))
            (Path(work) / "kustomization.yaml").write_text(json.dumps(kustomization))
            output = sandbox.run("kustomize", ["build", work], stack=self.release.stack, where=self.where)
        sources = {o.id: o.source for o in objects}
        rendered = parse_objects(output, str(self.release.source.file), self.release.stack, output_of="kustomize")
        return [replace(o, source=sources.get(o.id, self.release.source)) for o in rendered]

    def _labelled(self, obj: RenderedObject, name: str, spec: Mapping[str, Any]) -> RenderedObject:
        """Flux's origin labels (``helm.toolkit.fluxcd.io/name`` and ``/namespace``) and ``commonMetadata``."""
        common = spec.get("commonMetadata") or {}
        meta = dict(obj.body.get("metadata") or {})
        labels = {**(meta.get("labels") or {}), **(common.get("labels") or {})}
        labels.update({f"{HELM_GROUP}/name": name, f"{HELM_GROUP}/namespace": self.namespace})
        meta["labels"] = labels
        if common.get("annotations"):
            meta["annotations"] = {**(meta.get("annotations") or {}), **common["annotations"]}
        return replace(obj, body={**obj.body, "metadata": meta})

    def _dependency(self, dep: Any, i: int) -> ObjectId:
        if not isinstance(dep, dict) or not dep.get("name"):
            raise self.fail(f"spec.dependsOn[{i}] must have a name")
        return ObjectId(HELM_GROUP, "HelmRelease", str(dep.get("namespace") or self.namespace), str(dep["name"]))


def _if_not_present(obj: RenderedObject) -> RenderedObject:
    meta = dict(obj.body.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_SSA: "IfNotPresent"}
    return replace(obj, body={**obj.body, "metadata": meta})


def _from_crds_dir(obj: RenderedObject) -> bool:
    parts = PurePosixPath(obj.source.file).parts
    return obj.id.kind == "CustomResourceDefinition" and "crds" in parts[:-1]


def _has(spec: Mapping[str, Any], dotted: str) -> bool:
    current: Any = spec
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return False
        current = current[part]
    return True


def flux_releases(
    objects: Sequence[RenderedObject],
    flux: FluxBuild,
    root: Path,
    checkout: Path | None = None,
    *,
    target: Target,
    access: charts.ChartAccess,
    on_note: Callable[[str], None] | None = None,
) -> list[RenderedObject]:
    """A Flux Kustomization's build (``objects``, of one stack) with each HelmRelease in it replaced by what it
    renders, in the same stack; a suspended one is skipped with a note. Its sources and valuesFrom are looked up
    among ``objects`` first, then among the Flux repository's (``flux.repository``, as written); a GitRepository
    that is this repository (``flux.this_repository``) is the checkout at ``root``, the Kustomization's own source
    when another repository (``flux.git``) is ``checkout``, where the build was made. Each release's warnings go to
    ``on_note``. Every release is rendered before the first error is raised."""
    say = on_note or (lambda _: None)
    stack = objects[0].stack if objects else ""
    written = {ObjectId.of(w.body): w for w in flux.repository}
    known = {o.id for o in objects}
    found = [*objects, *(RenderedObject(oid, dict(w.body), Source(w.file, w.line), stack) for oid, w in written.items()
                         if oid not in known)]  # fmt: skip
    checkouts = {ObjectId(SOURCE_GROUP, r.kind, r.namespace, r.name): root for r in flux.this_repository}
    if flux.git is not None and checkout is not None:
        g = flux.git.ref
        checkouts[ObjectId(SOURCE_GROUP, g.kind, g.namespace, g.name)] = checkout
    releases = {o.id for o in objects if o.id.group == HELM_GROUP and o.id.kind == "HelmRelease"}

    def expand(obj: RenderedObject) -> list[RenderedObject]:
        if obj.id.group != HELM_GROUP or obj.id.kind != "HelmRelease":
            return [obj]
        release = _as_written(obj, written)
        if (release.body.get("spec") or {}).get("suspend") is True:
            say(f"note: {release.source}: {release.id} is suspended (spec.suspend: true): not rendered, so none of "
                "its objects is applied")  # fmt: skip
            return []
        rendered = render_helmrelease(release, found, target=target, access=access, checkouts=checkouts)
        for warning in rendered.warnings:
            say(f"warning: {warning}")
        for dep in rendered.depends_on:
            if dep not in releases:
                say(f"warning: {release.source}: {release.id}: spec.dependsOn {dep} is not in this Kustomization's "
                    "build: the order between them is only the Kustomizations' dependsOn")  # fmt: skip
        return [*rendered.objects]

    return each(objects, expand)


def _as_written(obj: RenderedObject, written: Mapping[ObjectId, Any]) -> RenderedObject:
    """The HelmRelease with the ``file:line`` it is written at (a kustomize build only knows the kustomization
    file): by its id, else by its name when a Kustomization's targetNamespace moved it."""
    same = written.get(obj.id) or next(
        (w for oid, w in written.items() if oid.kind == obj.id.kind and oid.name == obj.id.name), None
    )
    return obj if same is None else replace(obj, source=Source(same.file, same.line))
