"""The repo config (``gitops.yaml``): targets and stacks, as frozen dataclasses. Loading and checking it against the
shipped JSON Schema (``gitops_job/config/schemas/config.schema.json``) is :func:`load_config`'s job.

Over 400 lines on purpose: the config's types, its schema check and its semantic checks (references, cycles, paths,
dependsOn order) are one contract, read together; each part is short.
"""

from __future__ import annotations

import difflib
import heapq
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from gitops_job import memo
from gitops_job.config import images, notifications, paths, sources
from gitops_job.config.images import Images
from gitops_job.config.notifications import Receiver
from gitops_job.config.sources import RemoteChart, Sources
from gitops_job.errors import ConfigError, ErrorGroup
from gitops_job.yamlio import load_documents

if TYPE_CHECKING:
    import jsonschema
    from jsonschema import Draft202012Validator

    from gitops_job.config.flux import FluxBuild

RENDERERS = ("auto", "plain", "jinja", "kustomize", "helm")
DEFAULT_KUBE_VERSION = "v1.36.0"


@dataclass(frozen=True)
class Target:
    """A cluster the stacks are reconciled into."""

    name: str
    context: str | None = None  # kubeconfig context; None = the current context
    vars: Mapping[str, Any] = field(default_factory=dict)
    kube_version: str = DEFAULT_KUBE_VERSION  # for `helm template --kube-version` (render is offline)
    inventory_namespace: str = "gitops-job-system"  # where inventories and lock Leases live


@dataclass(frozen=True)
class AllowPolicy:
    """Where a stack may put objects."""

    namespaces: tuple[str, ...] | None = None  # None = any namespace
    cluster_scoped: bool = True  # may the stack contain cluster-scoped kinds?
    # The cluster-scoped kinds a namespaced stack (one with ``namespaces``) may hold besides its own Namespaces, each
    # ``Kind`` or ``Kind.group`` (``ClusterRole``, ``ClusterIssuer.cert-manager.io``). None: none.
    cluster_kinds: tuple[str, ...] | None = None


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
    chart: RemoteChart | None = None  # helm: a remote chart (path then holds only the values files)
    # Flux-style ${VAR} substitution after rendering: None = off; else on, with these variables over the vars
    substitute: Mapping[str, Any] | None = None
    service_account_namespace: str | None = None  # default: the stack's namespace, else the inventory namespace
    flux: FluxBuild | None = None  # a Flux Kustomization's stack: what it adds to kustomize's build (config.flux)


@dataclass(frozen=True)
class RepoConfig:
    root: Path  # the repository root (absolute)
    file: Path  # the config file that was loaded
    targets: tuple[Target, ...]
    stacks: tuple[Stack, ...]  # in dependsOn order: every stack after the stacks it depends on
    name: str | None = None  # the repository's name (inventories record it); default: its git remote
    receivers: tuple[Receiver, ...] = ()  # notifications.receivers: told how each run went (gitops_job.notify)
    notes: tuple[str, ...] = ()  # what reading the config has to say (a Flux repository's notes and warnings)
    sources: Sources = field(default_factory=Sources)  # what a run may fetch (remote charts)
    images: Images = field(default_factory=Images)  # images: policies and automation (gitops_job.images)


CONFIG_FILE = "gitops.yaml"
DEFAULT_TARGET = "default"
SCHEMA = "schemas/config.schema.json"

KeyPath = tuple[str | int, ...]  # a key's place in the config: ("stacks", 2, "dependsOn") is stacks[2].dependsOn
Problem = tuple[KeyPath, str]  # where in the config, and what is wrong there

_T = TypeVar("_T")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "a boolean",
    "number": "a number",
    "integer": "an integer",
    "null": "null",
}


def load_config(repo_root: Path, config_file: Path | None = None, flux: str | None = None) -> RepoConfig:
    """Load, check and order the repo config: ``config_file`` or ``<repo_root>/gitops.yaml``.

    ``flux`` (``--flux PATH``): a Flux repository's entry path, over the config's ``flux.path``; with no config
    file at all, the Flux repository is the whole config (one target, ``default``). See :mod:`gitops_job.config.flux`.

    Every problem is reported at once (one :class:`ConfigError`, or an :class:`ErrorGroup` of them), each naming the
    file, line and key path (``gitops.yaml:12: stacks[2].dependsOn[0]``): first the schema's, then the checks that
    need more than one value (unique names, references, dependsOn cycles, paths inside the repository).
    """
    root = paths.real(repo_root)
    file = config_file.resolve() if config_file is not None else root / CONFIG_FILE
    name = _file_name(root, file)
    if flux is not None and config_file is None and not file.is_file():
        stacks, notes = _flux_stacks(root, flux)
        return RepoConfig(root, file, (Target(DEFAULT_TARGET),), stacks, notes=notes)
    if not file.is_file():
        raise ConfigError(f"expected the repo config at {file}; pass --config FILE to read another file", where=name)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e.reason}", where=name) from None
    documents = load_documents(text, name, error=ConfigError)
    if len(documents) != 1:
        raise ConfigError(f"expected one YAML document (a mapping with 'stacks'), found {len(documents)}", where=name)
    data, line = documents[0]
    doc = _Doc(name, text, line)
    _raise_all(doc.errors(_schema_problems(data, text)))
    _raise_all(doc.errors(_semantic_problems(data, root)))
    targets = tuple(_target(t) for t in data.get("targets", ())) or (Target(DEFAULT_TARGET),)
    native = [_stack(s, root) for s in data.get("stacks", ())]
    entry = flux if flux is not None else data.get("flux", {}).get("path")
    flux_stacks, notes = _flux_stacks(root, entry, native) if entry is not None else ((), ())
    stacks = flux_stacks if entry is not None else _dependency_order(native)
    receivers = notifications.receivers(data, _seconds)
    return RepoConfig(
        root,
        file,
        targets,
        stacks,
        data.get("name"),
        receivers,
        notes,
        sources.sources(data),
        images.images(data, doc.where, _seconds),
    )


def _flux_stacks(root: Path, entry: str, native: Sequence[Stack] = ()) -> tuple[tuple[Stack, ...], tuple[str, ...]]:
    """The stacks of the Flux repository at ``entry`` (and the config's own ``native`` stacks), in dependsOn order;
    what discovery noted. A name both use, or a dependsOn cycle, is a ConfigError."""
    from gitops_job import git
    from gitops_job.config import flux as fluxrepo  # here: only a Flux repository needs it

    remote = git.repository(root)
    found = fluxrepo.discover(root, entry, remote, Stack, _seconds)
    stacks = [*native, *found.stacks]
    seen: dict[str, Stack] = {}
    for s in stacks:
        if seen.setdefault(s.name, s) is not s:
            raise ConfigError(f"two stacks are named {s.name!r} (a gitops.yaml stack and a Flux Kustomization, or two "
                              "Kustomizations): rename one", where=f"--flux {entry}")  # fmt: skip
    known = set(seen)
    for cycle in _cycles({s.name: [d for d in s.depends_on if d in known] for s in stacks}):
        closing = seen[cycle[-2]]
        raise ConfigError(f"dependsOn cycle: {' → '.join(cycle)}; remove one of these dependencies",
                          where=closing.flux.source if closing.flux else f"--flux {entry}")  # fmt: skip
    return _dependency_order(stacks), found.notes


def target(config: RepoConfig, name: str | None) -> Target:
    """The target called ``name``; ``None`` is the first one."""
    if name is None:
        return config.targets[0]
    for candidate in config.targets:
        if candidate.name == name:
            return candidate
    known = ", ".join(t.name for t in config.targets)
    raise ConfigError(f"unknown target {name!r}; targets: {known}", where=_file_name(config.root, config.file))


def stacks_for(config: RepoConfig, target: str, only: Sequence[str] = ()) -> tuple[Stack, ...]:
    """The stacks that apply to ``target``, in dependsOn order; with ``only``, just the stacks named there."""
    applies = tuple(s for s in config.stacks if not s.targets or target in s.targets)
    names = {s.name for s in applies}
    errors = [_not_applicable(config, target, n) for n in dict.fromkeys(only) if n not in names]
    _raise_all(errors)
    return tuple(s for s in applies if s.name in only) if only else applies


def _not_applicable(config: RepoConfig, target: str, name: str) -> ConfigError:
    stack = next((s for s in config.stacks if s.name == name), None)
    if stack is None:
        reason = f"unknown stack {name!r}; stacks: {', '.join(s.name for s in config.stacks)}"
    else:
        reason = f"stack {name!r} does not apply to target {target!r} (its targets: {', '.join(stack.targets)})"
    return ConfigError(reason, where=_file_name(config.root, config.file))


def _file_name(root: Path, file: Path) -> str:
    """The config file as messages name it: repo-relative when it is inside the repository."""
    return file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)


def _raise_all(errors: Sequence[ConfigError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup([*errors])


@dataclass(frozen=True)
class _Doc:
    """The config file's name and YAML node tree: enough to say on which line a key path is."""

    file: str
    text: str
    line: int  # where the document starts

    @cached_property
    def root(self) -> yaml.Node:  # composed only when a problem must be placed
        nodes = yaml.compose_all(self.text, Loader=yaml.CSafeLoader)
        return next(n for n in nodes if n.start_mark.line + 1 == self.line)

    def position(self, path: KeyPath) -> tuple[int, int]:
        """Line (1-based) and column of the deepest key (or list item) of ``path`` that the file has."""
        node, mark = self.root, self.root.start_mark
        for part in path:
            if isinstance(node, yaml.MappingNode):
                pair = next((p for p in node.value if isinstance(p[0], yaml.ScalarNode) and p[0].value == part), None)
                if pair is None:
                    break
                mark, node = pair[0].start_mark, pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                mark = node.start_mark
            else:
                break
        return mark.line + 1, mark.column

    def where(self, path: KeyPath) -> str:
        """``<file>:<line>: <key path>``, as errors name a place."""
        return f"{self.file}:{self.position(path)[0]}: {_key_path(path)}"

    def errors(self, problems: Iterable[Problem]) -> list[ConfigError]:
        """One error per distinct problem, in file order, each at ``<file>:<line>: <key path>``."""
        ordered = sorted(dict.fromkeys(problems), key=lambda p: (self.position(p[0]), _key_path(p[0])))
        return [ConfigError(reason, where=self.where(path)) for path, reason in ordered]


def _key_path(path: KeyPath) -> str:
    """``("stacks", 2, "dependsOn")`` as ``stacks[2].dependsOn``; the empty path is ``(top level)``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "(top level)"


# --- the schema ----------------------------------------------------------------------------------------------------


def _schema_problems(data: Any, text: str) -> list[Problem]:
    """What the shipped schema says about the config ``text`` (parsed: ``data``); a text that passed it in an earlier
    run with the same state dir passes without the checker being imported (:mod:`gitops_job.memo`)."""
    kept, checked = memo.current(), _schema_text() + "\0" + text
    if kept.get("schema", checked):
        return []
    problems = [problem for error in _validator().iter_errors(data) for problem in _explain(error)]
    if not problems:
        kept.put("schema", checked, True)
    return problems


@cache
def _schema_text() -> str:
    return resources.files("gitops_job.config").joinpath(SCHEMA).read_text(encoding="utf-8")


@cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # here: `--version` and `--help` need none of it

    return Draft202012Validator(json.loads(_schema_text()))


def _explain(error: jsonschema.ValidationError) -> list[Problem]:
    """The schema error in plain words, at the key path it is about (one per unknown key)."""
    path: KeyPath = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance: Any = error.instance
    expected: Any = error.validator_value
    got = _show(instance)
    if error.validator == "additionalProperties":
        known = list(schema.get("properties", {}))
        return [((*path, str(key)), _unknown_key(str(key), known)) for key in instance if key not in known]
    if error.validator == "required":
        return [(path, f"missing required key {key!r}") for key in expected if key not in instance]
    if "propertyNames" in error.relative_schema_path:
        return [(path, f"keys must be strings, got {got}")]
    if "errorMessage" in schema:
        return [(path, f"expected {schema['errorMessage']}, got {got}")]
    if error.validator == "type":
        words = [_TYPE_WORDS[t] for t in ([expected] if isinstance(expected, str) else expected)]
        wanted = f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else words[0]
        return [(path, f"expected {wanted}, got {got}")]
    if error.validator == "enum":
        return [(path, f"expected one of {', '.join(map(str, expected))}, got {got}")]
    if error.validator == "minItems":
        return [(path, "must not be empty")]
    return [(path, error.message)]


def _unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown key {key!r}; " + (f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}")


def _show(value: Any) -> str:
    """A YAML value as a person wrote it: strings quoted, booleans lowercase, containers by kind."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value) if isinstance(value, str) else str(value)


# --- checks that need more than one value (run on the schema-valid data) ---------------------------------------------


def _semantic_problems(data: Mapping[str, Any], root: Path) -> list[Problem]:
    targets = data.get("targets") or [{"name": DEFAULT_TARGET}]
    stacks = data.get("stacks", [])
    return [
        *_duplicate_names("targets", targets),
        *_duplicate_names("stacks", stacks),
        *_reference_problems(stacks, [t["name"] for t in targets]),
        *_cycle_problems(stacks),
        *_path_problems(stacks, root),
        *_namespace_problems(stacks),
        *notifications.problems(data),
        *sources.problems(data),
        *images.problems(data),
    ]


def _duplicate_names(section: str, items: Sequence[Mapping[str, Any]]) -> list[Problem]:
    first: dict[str, int] = {}
    problems: list[Problem] = []
    for i, item in enumerate(items):
        j = first.setdefault(item["name"], i)
        if j != i:
            problems.append(
                ((section, i, "name"), f"duplicate {section[:-1]} name {item['name']!r} (also {section}[{j}])")
            )
    return problems


def _reference_problems(stacks: Sequence[Mapping[str, Any]], targets: Sequence[str]) -> list[Problem]:
    names = [s["name"] for s in stacks]
    known = set(names)
    problems: list[Problem] = []
    for i, stack in enumerate(stacks):
        for j, dep in enumerate(stack.get("dependsOn", ())):
            if dep == stack["name"]:
                problems.append((("stacks", i, "dependsOn", j), f"stack {dep!r} cannot depend on itself"))
            elif dep not in known:
                problems.append((("stacks", i, "dependsOn", j), f"unknown stack {dep!r}; stacks: {', '.join(names)}"))
        for j, name in enumerate(stack.get("targets", ())):
            if name not in targets:
                problems.append(
                    (("stacks", i, "targets", j), f"unknown target {name!r}; targets: {', '.join(targets)}")
                )
    return problems


def _cycle_problems(stacks: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Each dependsOn cycle, named in full and reported at the dependency that closes it."""
    index: dict[str, int] = {}
    for i, stack in enumerate(stacks):
        index.setdefault(stack["name"], i)
    graph = {name: [d for d in stacks[i].get("dependsOn", ()) if d in index and d != name] for name, i in index.items()}
    problems: list[Problem] = []
    for cycle in _cycles(graph):
        closing = index[cycle[-2]]
        path = ("stacks", closing, "dependsOn", list(stacks[closing]["dependsOn"]).index(cycle[-1]))
        problems.append((path, f"dependsOn cycle: {' → '.join(cycle)}; remove one of these dependencies"))
    return problems


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk in declaration order closes, each as ``[a, b, c, a]``.

    Iterative (a chain of thousands of stacks needs no recursion) and linear in stacks + dependencies."""
    done: set[str] = set()
    path: list[str] = []
    on_path: dict[str, int] = {}  # name -> its index in path
    cycles: list[list[str]] = []
    walk: list[Iterator[str]] = []  # the dependencies left to visit of each stack on the path

    def enter(name: str) -> None:
        on_path[name] = len(path)
        path.append(name)
        walk.append(iter(graph[name]))

    for start in graph:
        if start in done:
            continue
        enter(start)
        while walk:
            dep = next(walk[-1], None)
            if dep is None:
                walk.pop()
                name = path.pop()
                del on_path[name]
                done.add(name)
            elif dep in on_path:
                cycles.append([*path[on_path[dep] :], dep])
            elif dep not in done:
                enter(dep)
    return cycles


def _path_problems(stacks: Sequence[Mapping[str, Any]], root: Path) -> list[Problem]:
    problems: list[Problem] = []
    for i, stack in enumerate(stacks):
        problem = _path_problem(root, stack["path"], directory=True)
        if problem:
            problems.append((("stacks", i, "path"), problem))
        for j, values in enumerate(stack.get("values", ())):
            problem = _path_problem(root, values, directory=False)
            if problem:
                problems.append((("stacks", i, "values", j), problem))
    return problems


def _path_problem(root: Path, raw: str, *, directory: bool) -> str | None:
    """Why ``raw`` is not a directory (or file) the rule of :mod:`gitops_job.config.paths` lets us read, or None."""
    try:
        found = paths.resolve(root, raw)
    except paths.PathRefused as e:
        return e.reason
    if not found.exists():
        return f"{raw!r} does not exist"
    if directory and not found.is_dir():
        return f"{raw!r} is not a directory"
    if not directory and not found.is_file():
        return f"{raw!r} is not a file"
    return None


def _namespace_problems(stacks: Sequence[Mapping[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    for i, stack in enumerate(stacks):
        allowed = stack.get("allow", {}).get("namespaces")
        if "namespace" in stack and allowed is not None and stack["namespace"] not in allowed:
            reason = f"{stack['namespace']!r} is not in allow.namespaces ({', '.join(allowed) or 'none'})"
            problems.append((("stacks", i, "namespace"), reason))
    return problems


def _dependency_order(stacks: Sequence[Stack]) -> tuple[Stack, ...]:
    """Every stack after the stacks it depends on; among stacks that are ready, declaration order (stable).

    Kahn's algorithm with the ready stacks in a heap by declaration index: O((stacks + dependencies) log stacks).
    The config was checked first: every dependency exists and there is no cycle."""
    index = {s.name: i for i, s in enumerate(stacks)}
    waiting = [len(set(s.depends_on)) for s in stacks]  # dependencies not placed yet
    dependents: dict[str, list[int]] = {}
    for i, s in enumerate(stacks):
        for dep in set(s.depends_on):
            dependents.setdefault(dep, []).append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    placed: list[Stack] = []
    while ready:
        i = heapq.heappop(ready)
        placed.append(stacks[i])
        for j in dependents.get(stacks[i].name, ()):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    assert len(placed) == len(stacks) == len(index), "dependsOn was checked for cycles and unknown stacks"
    return tuple(placed)


# --- from checked YAML to the dataclasses: camelCase keys become snake_case fields; absent keys keep the defaults ---


def _target(raw: Mapping[str, Any]) -> Target:
    return _build(Target, raw, {"vars": dict, "kubeVersion": lambda v: v if v.startswith("v") else f"v{v}"})


def _stack(raw: Mapping[str, Any], root: Path) -> Stack:
    def repo_relative(path: str) -> str:
        return paths.resolve(root, path).relative_to(root).as_posix()

    convert: dict[str, Callable[[Any], Any]] = {
        "path": repo_relative,
        "vars": dict,
        "targets": tuple,
        "dependsOn": tuple,
        "timeout": _seconds,
        "allow": lambda a: _build(AllowPolicy, a, {"namespaces": tuple, "clusterKinds": tuple}),
        "ignoreDifferences": lambda ds: tuple(_build(IgnoreDifference, d, {"jsonPointers": tuple}) for d in ds),
        "values": lambda vs: tuple(repo_relative(v) for v in vs),
        "substitute": lambda v: dict(v) if isinstance(v, dict) else {} if v else None,
        "chart": sources.remote_chart,
    }
    return _build(Stack, raw, convert)


def _build(cls: Callable[..., _T], raw: Mapping[str, Any], convert: Mapping[str, Callable[[Any], Any]]) -> _T:
    return cls(**{_snake(key): convert.get(key, _same)(value) for key, value in raw.items()})


def _same(value: Any) -> Any:
    return value


def _snake(key: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), key)


def _seconds(duration: str) -> float:
    """A Go-style duration (``90s``, ``5m``, ``1h30m``, ``1.5h``, ``500ms``) in seconds."""
    return sum(float(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(duration))
