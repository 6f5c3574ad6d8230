"""A Flux repository read as it is: every ``kustomize.toolkit.fluxcd.io/v1`` Kustomization reachable from an entry path
(``gitops.yaml`` ``flux: {path: …}``, or ``--flux PATH``) becomes a :class:`~gitops_job.config.load.Stack`.

The entry path is walked the way Flux's own sync Kustomization would apply it: a directory with a kustomization file
by its ``resources`` (files and directories), one without by Flux's generated-kustomization rule (every ``.yaml`` and
``.yml`` file below it, recursively; a subdirectory that has a kustomization file is taken whole, not descended
into). Each Kustomization found is walked the same way from its own ``path``, so a Kustomization that applies
Kustomizations (apps of apps) is followed too. The entry path itself is a stack (named after the sync Kustomization
whose path it is, else ``flux-system``): it applies what sits there besides Flux's own objects.

What the Kustomization asks for is kept as a :class:`FluxBuild` on its stack; the kustomize renderer merges it into
the path's kustomization (generated when there is none) exactly where kustomize-controller does. Fields gitops-job
does not do are a warning naming ``file:line`` and the field, never silently dropped: see docs/flux.md.

Pure apart from reading files inside the repository (each through :mod:`gitops_job.config.paths`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gitops_job.config import paths
from gitops_job.errors import ConfigError
from gitops_job.yamlio import load_documents

KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
HELM_GROUP = "helm.toolkit.fluxcd.io"
TOOLKIT_SUFFIX = ".toolkit.fluxcd.io"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: The files ``flux bootstrap`` writes: the installation (skipped) and the sync objects (read, never applied).
INSTALL_FILE = "gotk-components.yaml"
SYNC_FILE = "gotk-sync.yaml"
ENTRY_STACK = "flux-system"
#: What gitops-job does with each field of a Kustomization's spec (docs/flux.md has the table).
SUPPORTED = frozenset({
    "path", "sourceRef", "prune", "wait", "timeout", "interval", "retryInterval", "dependsOn", "targetNamespace",
    "namePrefix", "nameSuffix", "patches", "images", "components", "commonMetadata", "postBuild",
    "serviceAccountName", "suspend", "healthChecks", "force",
})  # fmt: skip
UNSUPPORTED = {
    "decryption": "SOPS decryption is not done: encrypted values would be applied as they are",
    "kubeConfig": "a remote cluster is not reconciled: this Kustomization is skipped",
    "deletionPolicy": "prune follows spec.prune only",
    "healthCheckExprs": "custom health expressions are not evaluated (the built-in health checks are)",
    "ignoreMissingComponents": "a missing component is an error",
}
_VARIABLE = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_WORTH_PARSING = re.compile(r"toolkit\.fluxcd\.io|\bConfigMap\b|\bSecret\b")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Ref:
    """A Flux object by kind, namespace and name, as messages name it: ``Kind/namespace/name``."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ClusterValues:
    """A ``postBuild.substituteFrom`` ConfigMap or Secret the repository does not hold: read from the cluster."""

    ref: Ref
    optional: bool = False


@dataclass(frozen=True)
class Written:
    """One object of the Flux repository as its file holds it (before any Kustomization's build)."""

    body: Mapping[str, Any]
    file: str  # repo-relative
    line: int


@dataclass(frozen=True)
class GitSource:
    """A Flux ``GitRepository`` that is another repository: cloned at its ``spec.ref`` (docs/flux.md#sources)."""

    ref: Ref
    url: str
    where: str  # its file:line
    commit: str | None = None
    name: str | None = None
    semver: str | None = None
    tag: str | None = None
    branch: str | None = None


#: What gitops-job does with each field of a GitRepository that is another repository (docs/flux.md#sources).
GIT_FIELDS = frozenset({"url", "ref", "interval", "timeout", "suspend", "provider"})
GIT_UNSUPPORTED = {
    "secretRef": "not read (the Secret would have to be in git): credentials come from gitops.yaml "
    "sources.credentials, by the URL",
    "include": "the included repositories are not copied into this checkout",
    "ignore": "not applied: every file of the checkout is read",
    "recurseSubmodules": "submodules are not cloned",
    "verify": "commit signatures are not verified",
    "proxySecretRef": "not read: git connects directly",
    "sparseCheckout": "the whole tree is checked out",
}


def git_source(body: Mapping[str, Any], ref: Ref, where: str, text: str = "") -> tuple[GitSource, list[str]]:
    """A GitRepository as a :class:`GitSource`, and a warning for each field it has that is not honoured (each
    naming ``file:line``: the field's own line when ``text``, the file's text, is given)."""
    spec: Mapping[str, Any] = body.get("spec") or {}
    raw = spec.get("ref") or {}
    raw = raw if isinstance(raw, Mapping) else {}
    file, _, line = where.rpartition(":")
    doc = _Doc(body, file, int(line) if line.isdigit() else 1, text)
    warnings = []
    for key in spec:
        if key in GIT_UNSUPPORTED:
            warnings.append(f"warning: {doc.at(key)}: {ref}: spec.{key} is not supported: {GIT_UNSUPPORTED[key]}")
        elif key == "provider" and spec[key] != "generic":
            warnings.append(f"warning: {doc.at(key)}: {ref}: spec.provider {spec[key]} is not supported: "
                            "git authenticates with sources.credentials")  # fmt: skip
        elif key not in GIT_FIELDS:
            warnings.append(f"warning: {doc.at(key)}: {ref}: spec.{key} is not a field gitops-job knows; ignored")
    refs = {k: str(raw[k]) for k in ("commit", "name", "semver", "tag", "branch") if raw.get(k)}
    return GitSource(ref, str(spec.get("url") or ""), where, **refs), warnings


@dataclass(frozen=True)
class FluxBuild:
    """What a Flux Kustomization adds to kustomize's build of its path (see :func:`overlay`)."""

    origin: Ref  # the Kustomization
    source: str  # its file:line
    kustomization: Mapping[str, Any] = field(default_factory=dict)  # fields merged into the path's kustomization
    skip: tuple[str, ...] = ()  # repo-relative directories a generated kustomization leaves out (Flux's install)
    labels: Mapping[str, str] = field(default_factory=dict)  # commonMetadata
    annotations: Mapping[str, str] = field(default_factory=dict)
    force: bool = False  # recreate on an immutable-field change, every object
    cluster_values: tuple[ClusterValues, ...] = ()  # substituteFrom entries to read from the cluster
    health_checks: tuple[Ref, ...] = ()
    #: The Flux repository's sources, HelmReleases, ConfigMaps and Secrets as written (what a HelmRelease rendered
    #: in this stack may read: its chart's source, its valuesFrom), and the GitRepositories that are this repository.
    repository: tuple[Written, ...] = ()
    this_repository: tuple[Ref, ...] = ()
    #: The Kustomization's source when it is another Git repository (its path is in that checkout); None: this one.
    git: GitSource | None = None


@dataclass(frozen=True)
class Discovered:
    """The stacks a Flux entry path makes (not yet in dependsOn order), and what the run should say about it."""

    stacks: tuple[Any, ...]  # load.Stack
    notes: tuple[str, ...] = ()  # "note: …" and "warning: …" lines


@dataclass(frozen=True)
class _Doc:
    body: Mapping[str, Any]
    file: str  # repo-relative
    line: int
    text: str = field(default="", repr=False, compare=False)  # the file's text: where a field is written

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def at(self, key: str) -> str:
        """``file:line`` of the first ``key:`` this document writes (a field of its spec), else of the document."""
        pattern = re.compile(rf"^\s*(?:-\s+)?[\"']?{re.escape(key)}[\"']?\s*:")
        lines = self.text.splitlines()[self.line - 1 :]
        for n, line in enumerate(lines):
            if n and line.startswith(("---", "apiVersion:")):
                break  # the next document
            if pattern.match(line):
                return f"{self.file}:{self.line + n}"
        return self.where

    @property
    def group(self) -> str:
        api = str(self.body.get("apiVersion") or "")
        return api.rpartition("/")[0] if "/" in api else ""

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "")

    def ref(self, default_namespace: str = "default") -> Ref:
        meta = self.body.get("metadata") or {}
        return Ref(self.kind, str(meta.get("namespace") or default_namespace), str(meta.get("name") or ""))


def _is_kustomization_file(path: Path) -> bool:
    return path.name in KUSTOMIZATION_FILES


@dataclass
class _Walker:
    """Reads the documents Flux would apply from one path: followed through kustomization ``resources``, or by
    the generated-kustomization rule."""

    root: Path
    notes: list[str]
    others: int = 0  # documents of the last walk that are not Flux's (what the path's own stack would apply)

    def documents(self, directory: Path) -> list[_Doc]:
        found: list[_Doc] = []
        self.others = 0
        self._directory(directory, found, set())
        return found

    def _directory(self, directory: Path, found: list[_Doc], seen: set[Path]) -> None:
        if directory in seen:
            return
        seen.add(directory)
        kfile = next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)
        if kfile is not None:
            self._kustomization(kfile, found, seen)
            return
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith(".") or (entry.is_symlink() and not self._allowed(entry)):
                continue
            if entry.is_dir():
                self._directory(entry, found, seen)  # a kustomization below is taken whole; else recurse (generated)
            elif entry.suffix in (".yaml", ".yml"):
                self._file(entry, found)

    def _kustomization(self, kfile: Path, found: list[_Doc], seen: set[Path]) -> None:
        docs = load_documents(kfile.read_text(encoding="utf-8"), self._rel(kfile), error=ConfigError)
        data = docs[0][0] if docs and isinstance(docs[0][0], dict) else {}
        for ref in data.get("resources") or ():
            if not isinstance(ref, str):
                continue
            try:
                target = paths.resolve(self.root, ref, base=kfile.parent)
            except paths.PathRefused:
                continue  # the kustomize renderer reports it, with the stack that reads it
            if target.is_dir():
                self._directory(target, found, seen)
            elif target.is_file():
                self._file(target, found)

    def _file(self, file: Path, found: list[_Doc]) -> None:
        if file.name == INSTALL_FILE:
            self.notes.append(f"note: {self._rel(file)}: the Flux installation (gotk-components) is skipped")
            return
        text = file.read_text(encoding="utf-8")
        if not _WORTH_PARSING.search(text):
            self.others += bool(text.strip())
            return  # neither a Flux object nor substitution values: the stack's renderer reads it
        for body, line in load_documents(text, self._rel(file), error=ConfigError):
            if isinstance(body, dict):
                found.append(_Doc(body, self._rel(file), line, text))
                self.others += not _Doc(body, "", 0).group.endswith(TOOLKIT_SUFFIX)

    def _allowed(self, entry: Path) -> bool:
        return paths.refusal_of(paths.real(self.root), paths.real(entry)) is None

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def discover(
    root: Path,
    entry: str,
    this_repository: str | None,
    make_stack: Callable[..., Any],
    seconds: Callable[[str], float],
) -> Discovered:
    """The stacks of the Flux repository at ``root`` whose entry path is ``entry`` (repo-relative).

    ``this_repository``: the checkout's canonical remote (:func:`gitops_job.git.canonical_remote`), what a
    GitRepository's URL is matched against; ``make_stack``: ``load.Stack``; ``seconds``: Go durations. Raises a
    :class:`ConfigError` naming ``file:line`` for what cannot be a stack (a missing path, an unknown dependsOn, a
    source that is not this repository)."""
    root = paths.real(root)
    where = f"--flux {entry}"
    try:
        top = paths.resolve(root, entry)
    except paths.PathRefused as e:
        raise ConfigError(e.reason, where=where) from None
    if not top.is_dir():
        raise ConfigError(f"the Flux entry path {entry!r} is not a directory", where=where)
    entry_rel = top.relative_to(root).as_posix() or "."
    notes: list[str] = []
    walker = _Walker(root, notes)
    kustomizations: dict[Ref, _Doc] = {}
    sources: dict[Ref, _Doc] = {}
    values: dict[Ref, _Doc] = {}
    pending: list[tuple[str, list[_Doc]]] = [(entry_rel, walker.documents(top))]
    entry_objects = walker.others
    walked = {entry_rel}
    while pending:
        _, docs = pending.pop(0)
        for doc in docs:
            _index(doc, kustomizations, sources, values, notes)
        for ref, doc in list(kustomizations.items()):
            path = _path_of(doc)
            if path in walked or doc.body.get("spec", {}).get("suspend") is True:
                continue
            if _source_of(doc, ref, doc.body.get("spec") or {}, sources, this_repository)[1] is not None:
                continue  # its path is in another repository's checkout: rendered there, not walked here
            walked.add(path)
            found = _directory_of(root, doc, ref)
            if found is not None:  # else: another source's path, or a problem its stack reports
                pending.append((path, walker.documents(found)))
    sync = next((d for d in kustomizations.values() if _path_of(d) == entry_rel), None)
    names = _stack_names(kustomizations)
    stacks: list[Any] = []
    install_dirs = tuple(sorted({d.file.rpartition("/")[0] for d in sources.values() if d.file.endswith(SYNC_FILE)}))
    if not entry_objects:
        notes.append(f"note: {entry_rel}: holds only Flux objects, so it is no stack of its own")
    elif sync is None:
        stacks.append(make_stack(name=ENTRY_STACK, path=entry_rel, render="kustomize", prune=True, wait=False,
                                 flux=FluxBuild(Ref("Kustomization", "flux-system", ENTRY_STACK), where,
                                                skip=install_dirs)))  # fmt: skip
    for ref, doc in sorted(kustomizations.items(), key=lambda item: item[1] is not sync):  # the entry path first
        if doc is sync and not entry_objects:
            continue
        stack = _stack(root, doc, ref, names, sources, values, this_repository, notes, make_stack, seconds,
                       skip=install_dirs if doc is sync else ())  # fmt: skip
        if stack is not None:
            stacks.append(stack)
    _check_dependencies(stacks, kustomizations, names)
    written = tuple(Written(d.body, d.file, d.line) for d in (*sources.values(), *values.values()))
    mine = tuple(r for r, d in sources.items() if r.kind == "GitRepository" and _is_this(r, d, this_repository))
    stacks = [replace(s, flux=replace(s.flux, repository=written, this_repository=mine)) for s in stacks]
    return Discovered(tuple(stacks), tuple(notes))


def _index(
    doc: _Doc, kustomizations: dict[Ref, _Doc], sources: dict[Ref, _Doc], values: dict[Ref, _Doc], notes: list[str]
) -> None:
    group, kind = doc.group, doc.kind
    if group == KUSTOMIZE_GROUP and kind == "Kustomization":
        api = str(doc.body.get("apiVersion"))
        if api != f"{KUSTOMIZE_GROUP}/v1":
            notes.append(f"warning: {doc.where}: {doc.ref('flux-system')} is {api}: read as {KUSTOMIZE_GROUP}/v1")
        kustomizations.setdefault(doc.ref("flux-system"), doc)
    elif group == SOURCE_GROUP:
        sources.setdefault(doc.ref("flux-system"), doc)
        if kind != "GitRepository":
            notes.append(f"note: {doc.where}: {doc.ref('flux-system')} is a Flux source: read, never applied")
    elif group == HELM_GROUP and kind == "HelmRelease":
        values.setdefault(doc.ref("flux-system"), doc)  # rendered where a Kustomization's build holds it
    elif group.endswith(TOOLKIT_SUFFIX):
        notes.append(f"warning: {doc.where}: {doc.ref('flux-system')} ({group}) is not applied (no Flux controller "
                     "runs)")  # fmt: skip
    elif group == "" and kind in ("ConfigMap", "Secret"):
        values.setdefault(doc.ref(), doc)


def _path_of(doc: _Doc) -> str:
    raw = str((doc.body.get("spec") or {}).get("path") or "./")
    normal = Path(raw.removeprefix("./")).as_posix()
    return "." if normal in ("", ".") else normal.rstrip("/")


def _stack_names(kustomizations: Mapping[Ref, _Doc]) -> dict[Ref, str]:
    """Each Kustomization's stack name: its name; ``<namespace>-<name>`` when two namespaces use the name."""
    count: dict[str, int] = {}
    for ref in kustomizations:
        count[ref.name] = count.get(ref.name, 0) + 1
    return {ref: ref.name if count[ref.name] == 1 else f"{ref.namespace}-{ref.name}" for ref in kustomizations}


def _stack(
    root: Path,
    doc: _Doc,
    ref: Ref,
    names: Mapping[Ref, str],
    sources: Mapping[Ref, _Doc],
    values: Mapping[Ref, _Doc],
    this_repository: str | None,
    notes: list[str],
    make_stack: Callable[..., Any],
    seconds: Callable[[str], float],
    *,
    skip: tuple[str, ...] = (),
) -> Any | None:
    spec: Mapping[str, Any] = doc.body.get("spec") or {}
    name = names[ref]
    for key in spec:
        if key in UNSUPPORTED:
            notes.append(f"warning: {doc.at(key)}: {ref}: spec.{key} is not supported: {UNSUPPORTED[key]}")
        elif key not in SUPPORTED:
            notes.append(f"warning: {doc.at(key)}: {ref}: spec.{key} is not a field gitops-job knows; ignored")
    if spec.get("suspend") is True:
        where = doc.at("suspend")
        notes.append(f"note: {where}: {ref} is suspended (spec.suspend: true): skipped, nothing applied or pruned")
        return None
    if "kubeConfig" in spec:
        return None
    if not _DNS_LABEL.fullmatch(name):
        raise ConfigError(f"{ref}: the stack name {name!r} is not a DNS label", where=doc.where)
    problem, git = _source_of(doc, ref, spec, sources, this_repository)
    if problem:
        notes.append(f"warning: {doc.at('sourceRef')}: {ref}: {problem}: this Kustomization is skipped")
        return None
    if git is not None:
        found = sources[git.ref]
        notes.extend(w for w in git_source(found.body, git.ref, found.where, found.text)[1] if w not in notes)
    elif _directory_of(root, doc, ref, strict=True) is None:
        return None
    post = spec.get("postBuild") or {}
    substitute, cluster = _substitutions(doc, ref, post, values)
    kustomization: dict[str, Any] = {}
    if spec.get("targetNamespace"):
        kustomization["namespace"] = spec["targetNamespace"]
    for key in ("namePrefix", "nameSuffix"):
        if spec.get(key):
            kustomization[key] = spec[key]
    for key in ("patches", "images", "components"):
        if spec.get(key):
            kustomization[key] = list(spec[key])
    meta = spec.get("commonMetadata") or {}
    checks = tuple(
        Ref(str(c.get("kind")), str(c.get("namespace") or ref.namespace), str(c.get("name")))
        for c in spec.get("healthChecks") or ()
        if isinstance(c, Mapping)
    )
    timeout = spec.get("timeout") or spec.get("interval")
    extra: dict[str, Any] = {"timeout": seconds(str(timeout))} if timeout else {}
    if spec.get("serviceAccountName"):
        extra["service_account_name"] = spec["serviceAccountName"]
        extra["service_account_namespace"] = ref.namespace
    return make_stack(
        name=name,
        path=_path_of(doc),
        render="kustomize",
        namespace=spec.get("targetNamespace") or None,
        depends_on=tuple(names.get(_dependency(d, ref), _dependency(d, ref).name) for d in spec.get("dependsOn") or ()),
        prune=spec.get("prune") is True,
        wait=spec.get("wait") is True or bool(checks),
        substitute=substitute if post else None,
        flux=FluxBuild(
            origin=ref,
            source=doc.where,
            kustomization=kustomization,
            skip=skip,
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            force=spec.get("force") is True,
            cluster_values=cluster,
            health_checks=checks,
            git=git,
        ),
        **extra,
    )


def _dependency(raw: Any, of: Ref) -> Ref:
    raw = raw if isinstance(raw, Mapping) else {"name": str(raw)}
    return Ref("Kustomization", str(raw.get("namespace") or of.namespace), str(raw.get("name")))


def _check_dependencies(stacks: Sequence[Any], kustomizations: Mapping[Ref, _Doc], names: Mapping[Ref, str]) -> None:
    known = {s.name for s in stacks}
    suspended = {names[r] for r, d in kustomizations.items() if (d.body.get("spec") or {}).get("suspend") is True}
    for ref, doc in kustomizations.items():
        for dep in (doc.body.get("spec") or {}).get("dependsOn") or ():
            target = _dependency(dep, ref)
            name = names.get(target)
            if name is None:
                raise ConfigError(f"{ref}: spec.dependsOn names {target}, which the Flux repository does not hold",
                                  where=doc.where)  # fmt: skip
            if name in suspended and names[ref] in known:
                raise ConfigError(f"{ref}: spec.dependsOn names {target}, which is suspended: Flux would not apply "
                                  f"{ref} either; suspend it too or drop the dependency", where=doc.where)  # fmt: skip
            if name not in known and names[ref] in known:
                reason = f"{ref}: spec.dependsOn names {target}, which is skipped (see its warning): drop it"
                raise ConfigError(reason, where=doc.where)


def _directory_of(root: Path, doc: _Doc, ref: Ref, *, strict: bool = False) -> Path | None:
    """The Kustomization's ``spec.path`` in this repository; None when it is not a directory here (``strict``: a
    ConfigError naming the Kustomization instead)."""
    path = _path_of(doc)
    try:
        found = paths.resolve(root, path)
    except paths.PathRefused as e:
        if strict:
            raise ConfigError(f"{ref}: spec.path {e.reason}", where=doc.at("path")) from None
        return None
    if not found.is_dir():
        if strict:
            reason = f"{ref}: spec.path {path!r} is not a directory in this repository"
            raise ConfigError(reason, where=doc.at("path"))
        return None
    return found


def _source_of(
    doc: _Doc, ref: Ref, spec: Mapping[str, Any], sources: Mapping[Ref, _Doc], this_repository: str | None
) -> tuple[str | None, GitSource | None]:
    """The Kustomization's source: ``(None, None)`` for this repository — the bootstrap's ``flux-system``
    GitRepository (the one the sync Kustomization reads), or a GitRepository whose URL is this checkout's remote;
    ``(None, GitSource)`` for another Git repository (cloned when it renders); else ``(why it is not supported,
    None)``."""
    raw = spec.get("sourceRef") or {}
    source = Ref(str(raw.get("kind") or "GitRepository"), str(raw.get("namespace") or ref.namespace),
                 str(raw.get("name") or ""))  # fmt: skip
    found = sources.get(source)
    if source.kind != "GitRepository":
        at = f" ({found.where})" if found is not None else ""
        return (f"spec.sourceRef {source}{at}: a {source.kind} source is not supported (only Git repositories are "
                "read): vendor its manifests into a Git repository", None)  # fmt: skip
    if found is None:
        if source.name == ENTRY_STACK:
            return None, None  # the bootstrap's own GitRepository: this repository, gotk-sync.yaml here or not
        return f"spec.sourceRef {source} is not in the Flux repository", None
    if _is_this(source, found, this_repository):
        return None, None
    if not (found.body.get("spec") or {}).get("url"):
        return f"spec.sourceRef {source} ({found.where}) has no spec.url", None
    return None, git_source(found.body, source, found.where)[0]


def _url(doc: _Doc) -> str:
    from gitops_job.git import canonical_remote  # the URL rule is git's

    return canonical_remote(str((doc.body.get("spec") or {}).get("url") or ""))


def _is_this(source: Ref, doc: _Doc, this_repository: str | None) -> bool:
    """Whether the GitRepository ``doc`` is this repository: the bootstrap's (in gotk-sync.yaml), or one whose URL
    is this checkout's remote."""
    if source.name == ENTRY_STACK and doc.file.endswith(SYNC_FILE):
        return True
    return this_repository is not None and _url(doc) == this_repository


def _substitutions(
    doc: _Doc, ref: Ref, post: Mapping[str, Any], values: Mapping[Ref, _Doc]
) -> tuple[dict[str, str], tuple[ClusterValues, ...]]:
    """postBuild's variables as Flux merges them: each substituteFrom in order (a later one wins), then
    ``substitute`` over all of them; a ConfigMap or Secret the repository does not hold is read from the cluster."""
    merged: dict[str, str] = {}
    cluster: list[ClusterValues] = []
    for item in post.get("substituteFrom") or ():
        kind, name, optional = str(item.get("kind")), str(item.get("name")), item.get("optional") is True
        source = Ref(kind, ref.namespace, name)
        found = values.get(source)
        if found is None:
            cluster.append(ClusterValues(source, optional))
            continue
        merged.update(data_of(found.body, f"{found.where}: {source}"))
    merged.update({str(k): str(v) for k, v in (post.get("substitute") or {}).items()})
    for key in merged:
        if not _VARIABLE.fullmatch(key):
            raise ConfigError(f"{ref}: postBuild variable {key!r} is not a valid name ([_a-zA-Z][_a-zA-Z0-9]*)",
                              where=doc.where)  # fmt: skip
    return merged, tuple(cluster)


def data_of(body: Mapping[str, Any], where: str) -> dict[str, str]:
    """A ConfigMap's ``data`` or a Secret's ``data`` (base64-decoded) and ``stringData``, as substitution values."""
    if body.get("kind") == "Secret":
        out: dict[str, str] = {}
        for key, value in (body.get("data") or {}).items():
            try:
                out[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ConfigError(f"data.{key} is not base64 of UTF-8 text", where=where) from None
        out.update({str(k): str(v) for k, v in (body.get("stringData") or {}).items()})
        return out
    return {str(k): str(v) for k, v in (body.get("data") or {}).items()}
