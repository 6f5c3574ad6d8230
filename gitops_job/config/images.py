"""The ``images:`` section of ``gitops.yaml``: the image policies that setter markers name, and the automation
settings (whether a run writes the chosen tags to git, pushed to the branch or proposed as a pull request).

A policy is kept as written (its ``policy`` and ``filterTags`` mappings) with the place it was written
(``gitops.yaml:LINE: images.policies[i]``): :mod:`gitops_job.images` compiles it, and a bad range or pattern is an
error naming that place. A marker ``{"$imagepolicy": "NS:NAME"}`` names the policy whose ``name`` is NAME and whose
``namespace`` is NS; a policy that declares no ``namespace`` answers for NAME in every namespace (how a Flux
repository's markers, written for an ImagePolicy in ``flux-system``, keep working unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gitops_job.config.notifications import SecretRef, secret_problems
from gitops_job.git import Author

KeyPath = tuple[str | int, ...]
Problem = tuple[KeyPath, str]

DEFAULT_BRANCH_PREFIX = "gitops-job/images/"
DEFAULT_AUTHOR = Author("gitops-job", "gitops-job@users.noreply.github.com")
#: The commit message when gitops.yaml gives none: a subject naming each policy old → new, then one line per change.
DEFAULT_MESSAGE = """\
images: {% for c in changes %}{{ c.policy }} {{ c.old }} → {{ c.new }}{{ ", " if not loop.last }}{% endfor %}

{% for c in changes -%}
- {{ c.policy }} ({{ c.repository }}): {{ c.old }} → {{ c.new }} in {{ c.files | join(", ") }}
{% endfor %}"""


class Mode(StrEnum):
    """Where the automation's commit goes."""

    PUSH = "push"  # to the branch itself
    PULL_REQUEST = "pullRequest"  # to a bot branch, proposed as one pull request


@dataclass(frozen=True)
class Credentials:
    """How to log in to a policy's registry: exactly one of a docker ``config.json`` path or a Secret's name."""

    docker_config: str | None = None
    secret: str | None = None
    namespace: str | None = None  # the Secret's; None: the target's inventory namespace


@dataclass(frozen=True)
class ImagePolicy:
    name: str
    repository: str
    policy: Mapping[str, Any]  # one of semver / alphabetical / numerical, as written
    where: str  # gitops.yaml:LINE: images.policies[i] (errors in the policy name it)
    namespace: str | None = None  # None: NAME in any namespace
    filter_tags: Mapping[str, Any] | None = None
    credentials: Credentials | None = None

    @property
    def ref(self) -> str:
        """How a marker names it: ``NS:NAME`` (``*:NAME`` without a namespace)."""
        return f"{self.namespace or '*'}:{self.name}"

    def spec(self) -> dict[str, Any]:
        """The ImagePolicy ``spec`` that :func:`gitops_job.images.policy.parse_policy` reads."""
        out: dict[str, Any] = {"policy": dict(self.policy)}
        if self.filter_tags is not None:
            out["filterTags"] = dict(self.filter_tags)
        return out


@dataclass(frozen=True)
class GitHubRepo:
    """The repository pull requests are opened on, and the token's reference (never the token)."""

    repository: str
    token: SecretRef
    api_url: str = "https://api.github.com"


@dataclass(frozen=True)
class Automation:
    enabled: bool = False
    mode: Mode = Mode.PUSH
    branch: str | None = None  # None: the branch the run reconciles
    branch_prefix: str = DEFAULT_BRANCH_PREFIX
    message_template: str = DEFAULT_MESSAGE
    message_where: str = ""  # gitops.yaml:LINE of messageTemplate (a template error names it)
    author: Author = DEFAULT_AUTHOR
    github: GitHubRepo | None = None


@dataclass(frozen=True)
class Images:
    policies: tuple[ImagePolicy, ...] = ()
    automation: Automation = field(default_factory=Automation)
    scan_interval: float = 300.0  # seconds a tag list without an ETag is reused from the state dir

    def resolve(self, namespace: str, name: str) -> ImagePolicy | None:
        """The policy a marker ``NAMESPACE:NAME`` names: the one declared in that namespace, else the one
        declared without a namespace; None when there is neither."""
        exact = next((p for p in self.policies if p.name == name and p.namespace == namespace), None)
        return exact or next((p for p in self.policies if p.name == name and p.namespace is None), None)


def problems(data: Mapping[str, Any]) -> list[Problem]:
    """What is wrong in the (schema-valid) ``images`` section: a policy named twice (or both with and without a
    namespace), credentials with neither or both of ``dockerConfig`` and ``secret``, a pull-request mode without
    ``github``, an inline token, and a commit message template that does not parse."""
    section = data.get("images")
    if section is None:
        return []
    found: list[Problem] = []
    at: KeyPath
    first: dict[tuple[str | None, str], int] = {}
    for i, p in enumerate(section.get("policies", ())):
        at = ("images", "policies", i)
        key = (p.get("namespace"), p["name"])
        j = first.setdefault(key, i)
        if j != i:
            found.append(((*at, "name"), f"duplicate image policy {_ref(*key)} (also images.policies[{j}])"))
        creds = p.get("credentials")
        if creds is not None and ("dockerConfig" in creds) == ("secret" in creds):
            found.append(((*at, "credentials"), "give exactly one of dockerConfig (a path) or secret (a name)"))
        if creds is not None and "namespace" in creds and "secret" not in creds:
            found.append(((*at, "credentials", "namespace"), "namespace is the Secret's: give it with secret"))
    for (namespace, name), i in first.items():
        if namespace is None:
            clash = [j for (ns, n), j in first.items() if n == name and ns is not None]
            if clash:
                why = (f"image policy {name!r} is declared without a namespace (for every namespace) and with one "
                       f"(images.policies[{clash[0]}]): give this one a namespace too, or drop the other")  # fmt: skip
                found.append((("images", "policies", i, "name"), why))
    automation = section.get("automation") or {}
    at = ("images", "automation")
    if automation.get("mode") == Mode.PULL_REQUEST and "github" not in automation:
        found.append((at, "mode pullRequest needs github: {repository: OWNER/NAME, token: {env: VARIABLE}}"))
    if "github" in automation:
        found.extend(((*at, "github", "token"), why) for why in secret_problems("token", automation["github"]["token"]))
    template = _template_problem(automation["messageTemplate"]) if "messageTemplate" in automation else None
    if template:
        found.append(((*at, "messageTemplate"), template))
    return found


def _ref(namespace: str | None, name: str) -> str:
    return f"{namespace}:{name}" if namespace else repr(name)


def _template_problem(text: str) -> str | None:
    from jinja2 import TemplateSyntaxError  # here: only a config that sets a template pays for jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment().parse(text)
    except TemplateSyntaxError as e:
        return f"the commit message template does not parse (line {e.lineno} of it: {e.message}); fix the template"
    return None


def images(data: Mapping[str, Any], where: Callable[[KeyPath], str], seconds: Callable[[str], float]) -> Images:
    """The checked ``images`` section (empty without one); ``where`` names a key path's place in the file,
    ``seconds`` parses a duration."""
    section = data.get("images")
    if section is None:
        return Images()
    policies = tuple(_policy(p, where(("images", "policies", i))) for i, p in enumerate(section.get("policies", ())))
    raw = section.get("automation") or {}
    optional: dict[str, Any] = {}
    if "mode" in raw:
        optional["mode"] = Mode(raw["mode"])
    if "branchPrefix" in raw:
        optional["branch_prefix"] = raw["branchPrefix"]
    if "messageTemplate" in raw:
        optional["message_template"] = raw["messageTemplate"]
        optional["message_where"] = where(("images", "automation", "messageTemplate"))
    if "author" in raw:
        optional["author"] = Author(raw["author"]["name"], raw["author"]["email"])
    if "github" in raw:
        gh = raw["github"]
        token = SecretRef(gh["token"].get("env"), gh["token"].get("file"))
        optional["github"] = GitHubRepo(gh["repository"], token, gh.get("apiUrl", "https://api.github.com"))
    automation = Automation(enabled=bool(raw.get("enabled", False)), branch=raw.get("branch"), **optional)
    interval = seconds(section["scanInterval"]) if "scanInterval" in section else Images.scan_interval
    return Images(policies, automation, interval)


def _policy(raw: Mapping[str, Any], where: str) -> ImagePolicy:
    creds = raw.get("credentials")
    return ImagePolicy(
        name=raw["name"],
        repository=raw["repository"],
        policy=dict(raw["policy"]),
        where=where,
        namespace=raw.get("namespace"),
        filter_tags=dict(raw["filterTags"]) if "filterTags" in raw else None,
        credentials=None
        if creds is None
        else Credentials(creds.get("dockerConfig"), creds.get("secret"), creds.get("namespace")),
    )
