"""The render stage with the real renderers (jinja2, kustomize and helm binaries), offline: plain YAML, Jinja2,
Kustomize, Helm, ${VAR} substitution, and the reliability rows M1-M6, M9 and V3. No cluster is needed."""

from __future__ import annotations

import http.server
import io
import json
import resource
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gitops_job.config.load import RepoConfig, Stack, Target
from gitops_job.errors import ErrorGroup, RenderError
from gitops_job.identity import ObjectId
from gitops_job.model import RenderedObject, Source
from gitops_job.render import jinja as jinja_module
from gitops_job.render import sandbox
from gitops_job.render.stack import detect_renderer, render_stack
from gitops_job.render.substitute import SubstitutionError, expand
from tests.serving import http_thread

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
# What the path rule (gitops_job.config.paths) says after a refused path, the same in the config and every renderer
ESCAPES = "escapes the repository; give a path inside it"
SYMLINK_ESCAPES = "escapes the repository through a symlink; point the symlink inside the repository"
URL = "is a URL; gitops-job reads only files inside the repository"


def make_repo(tmp_path: Path, files: Mapping[str, str]) -> Path:
    """A repository in ``tmp_path/repo`` holding ``files`` (repo-relative path → text)."""
    root = tmp_path / "repo"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def render(
    root: Path,
    path: str,
    *,
    target: Target | None = None,
    extra_vars: Mapping[str, str] | None = None,
    **stack: Any,
) -> list[RenderedObject]:
    """Render one stack called ``s`` at ``path`` of the repository ``root``."""
    target = target or Target("test")
    the_stack = Stack(name=stack.pop("name", "s"), path=path, **stack)
    config = RepoConfig(root, root / "gitops.yaml", (target,), (the_stack,))
    return render_stack(config, the_stack, target, extra_vars)


def render_error(root: Path, path: str, **kw: Any) -> str:
    """The message of the error rendering the stack raises."""
    with pytest.raises(RenderError) as info:
        render(root, path, **kw)
    return str(info.value)


def names(objects: list[RenderedObject]) -> list[str]:
    return [o.body["metadata"]["name"] for o in objects]


# --- plain -----------------------------------------------------------------------------------------------------------


def test_plain_multi_document_files_in_path_order_with_lines(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            "app/b.yaml": CONFIGMAP.format(name="b1")
            + "---\n---\n# only a comment\n---\n"
            + CONFIGMAP.format(name="b2"),
            "app/a/z.yml": CONFIGMAP.format(name="a") + "  namespace: ns\n",
            "app/notes.txt": "not: yaml: at all",
        },
    )
    objects = render(root, "app", render="plain")
    assert names(objects) == ["a", "b1", "b2"]
    assert [o.source for o in objects] == [Source("app/a/z.yml", 1), Source("app/b.yaml", 1), Source("app/b.yaml", 9)]
    assert objects[0].id == ObjectId("", "ConfigMap", "ns", "a")
    assert objects[1].id == ObjectId("", "ConfigMap", "", "b1")  # the namespace is defaulted later, not here
    assert {o.stack for o in objects} == {"s"}


def test_plain_lists_are_flattened_and_items_keep_the_list_source(tmp_path: Path) -> None:
    items = "items:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n"
    root = make_repo(
        tmp_path,
        {
            "app/list.yaml": CONFIGMAP.format(name="first")
            + "---\napiVersion: v1\nkind: List\n"
            + items
            + "  - {apiVersion: v1, kind: Secret, metadata: {name: y}}\n"
            + "---\napiVersion: v1\nkind: ConfigMapList\n"
            + items.replace("x", "z"),
        },
    )
    objects = render(root, "app")
    assert [(o.id.kind, o.id.name, o.source.line) for o in objects] == [
        ("ConfigMap", "first", 1),
        ("ConfigMap", "x", 6),
        ("Secret", "y", 6),
        ("ConfigMap", "z", 12),
    ]


def test_plain_document_that_is_not_a_mapping_names_file_and_line(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app/x.yaml": CONFIGMAP.format(name="ok") + "---\n- a list\n"})
    assert render_error(root, "app") == "render: app/x.yaml:6: expected a mapping (a Kubernetes object), got list"


def test_plain_errors_of_several_files_are_reported_together(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app/a.yaml": "a: [", "app/b.yaml": "just a string", "app/c.yaml": "kind: X\n"})
    with pytest.raises(ErrorGroup) as info:
        render(root, "app")
    assert [e.where for e in info.value.errors] == ["app/a.yaml:2", "app/b.yaml:1"]


def test_v3_duplicate_key_names_file_and_line(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app/dup.yaml": CONFIGMAP.format(name="a") + "data:\n  k: 1\n  k: 2\n"})
    message = render_error(root, "app")
    assert "app/dup.yaml:7" in message
    assert "duplicate key 'k'" in message


def test_m5_billion_laughs_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    root = make_repo(tmp_path, {"app/bomb.yaml": "\n".join(lines) + "\n"})
    assert "billion laughs" in render_error(root, "app")


def test_m6_python_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    root = make_repo(tmp_path, {"app/evil.yaml": f'x: !!python/object/apply:os.system ["touch {marker}"]\n'})
    message = render_error(root, "app")
    assert "app/evil.yaml:1" in message
    assert "python/object/apply" in message
    assert not marker.exists()


def test_m3_symlink_to_a_file_outside_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("not: [valid")  # read, it would fail differently
    root = make_repo(tmp_path, {"app/ok.yaml": CONFIGMAP.format(name="ok")})
    (root / "app/leak.yaml").symlink_to(outside / "secret.yaml")
    (root / "app/dir").symlink_to(outside)
    with pytest.raises(ErrorGroup) as info:
        render(root, "app")
    assert [e.reason for e in info.value.errors] == [
        f"'app/dir' {SYMLINK_ESCAPES}",
        f"'app/leak.yaml' {SYMLINK_ESCAPES}",
    ]


def test_symlinks_inside_the_repository_are_followed_once(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path, {"shared/cm.yaml": CONFIGMAP.format(name="shared"), "app/own.yaml": CONFIGMAP.format(name="own")}
    )
    (root / "app/shared").symlink_to(root / "shared")
    (root / "app/loop").symlink_to(root / "app")
    objects = render(root, "app")
    assert [(o.id.name, o.source.file) for o in objects] == [("own", "app/own.yaml"), ("shared", "app/shared/cm.yaml")]


def test_stack_path_outside_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    root = make_repo(tmp_path, {"app/x.yaml": CONFIGMAP.format(name="x")})
    (root / "link").symlink_to(tmp_path / "outside")
    assert render_error(root, "link") == f"render: link: 'link' {SYMLINK_ESCAPES}"
    assert render_error(root, "../outside") == f"render: ../outside: '../outside' {ESCAPES}"


# --- jinja -----------------------------------------------------------------------------------------------------------


def test_jinja_variables_target_then_stack_then_extra_vars(tmp_path: Path) -> None:
    template = CONFIGMAP.format(name="{{ stack }}-{{ target }}") + (
        "data:\n  a: {{ a }}\n  b: {{ b }}\n  c: {{ c }}\n  list: {{ items | join(',') }}\n"
    )
    root = make_repo(
        tmp_path,
        {
            "app/cm.yaml.j2": template,
            "app/plain.yaml": CONFIGMAP.format(name="plain"),
            "app/_partial.j2": "not: {{ rendered_alone }}",
        },
    )
    objects = render(
        root,
        "app",
        target=Target("prod", vars={"a": "target", "b": "target", "c": "target", "items": ["x", "y"]}),
        vars={"b": "stack", "c": "stack"},
        extra_vars={"c": "extra"},
    )
    assert names(objects) == ["s-prod", "plain"]
    assert objects[0].body["data"] == {"a": "target", "b": "stack", "c": "extra", "list": "x,y"}
    assert objects[0].source == Source("app/cm.yaml.j2", 1)


def test_jinja_includes_partials_from_the_stack_and_the_repository_root(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            "app/cm.yaml.j2": CONFIGMAP.format(name="cm")
            + "  labels:\n{% include 'common/labels.j2' %}data:\n{% include '_data.j2' %}",
            "app/_data.j2": "  key: {{ value }}\n",
            "common/labels.j2": "    team: {{ team }}\n",
        },
    )
    (obj,) = render(root, "app", vars={"value": "v", "team": "t"})
    assert obj.body["metadata"]["labels"] == {"team": "t"}
    assert obj.body["data"] == {"key": "v"}


def test_jinja_source_line_is_the_line_in_the_rendered_output(tmp_path: Path) -> None:
    template = "{# a comment line #}\n{% for n in names %}\n---\n" + CONFIGMAP.format(name="{{ n }}") + "{% endfor %}\n"
    root = make_repo(tmp_path, {"app/many.yaml.j2": template})
    objects = render(root, "app", vars={"names": ["a", "b"]})
    # rendered: "\n" "\n---\n" + 4 lines, "\n---\n" + 4 lines: documents start on lines 4 and 10
    assert [(o.id.name, o.source.line) for o in objects] == [("a", 4), ("b", 10)]


def test_jinja_strict_undefined_names_the_template_and_line(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {"app/cm.yaml.j2": CONFIGMAP.format(name="{{ name }}") + "data:\n  x: {{ missing }}\n", "app/ok.yaml": "{}"},
    )
    message = render_error(root, "app", vars={"name": "n"})
    assert message.startswith("render: app/cm.yaml.j2:6: undefined: 'missing' is undefined")


def test_jinja_error_inside_an_include_names_the_partial_and_the_template(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app/cm.yaml.j2": "{% include '_p.j2' %}", "app/_p.j2": "\n{{ nope }}"})
    assert render_error(root, "app") == (
        "render: app/_p.j2:2: undefined: 'nope' is undefined (set it in the target's or the stack's vars, "
        "or with --var) (rendering app/cm.yaml.j2)"
    )


def test_jinja_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app/cm.yaml.j2": "a: 1\n{% if %}\n"})
    assert render_error(root, "app").startswith("render: app/cm.yaml.j2:2: template syntax error:")


@pytest.mark.parametrize(
    "expression",
    ["{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}", "{{ ''|attr('__class__') }}"],
)
def test_m1_jinja_ssti_is_refused(tmp_path: Path, expression: str) -> None:
    root = make_repo(tmp_path, {"app/cm.yaml.j2": CONFIGMAP.format(name="x") + f"data:\n  leak: {expression}\n"})
    with pytest.raises(RenderError) as info:
        objects = render(root, "app")
        pytest.fail(f"rendered {objects}")
    assert str(info.value).startswith("render: app/cm.yaml.j2:6: refused by the template sandbox: access to attribute")
    assert "<class" not in str(info.value)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{% for i in range(10**9) %}x{% endfor %}", "Range too big"),
        ("{{ 'x' * 10**9 }}", "'*' would build a value larger than 10,485,760 bytes"),
        ("{{ [1] * 10**8 }}", "'*' would build a value larger than"),
        ("{{ 7 ** 1000000000 }}", "'**' would build a value larger than"),
        ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "renders more than 10,485,760 characters"),
    ],
)
def test_m2_jinja_resource_bombs_are_refused_quickly(tmp_path: Path, template: str, reason: str) -> None:
    root = make_repo(tmp_path, {"bomb/x.yaml.j2": template, "fine/cm.yaml.j2": CONFIGMAP.format(name="{{ stack }}")})
    started = time.monotonic()
    assert reason in render_error(root, "bomb")
    assert time.monotonic() - started < 5
    assert names(render(root, "fine", name="fine")) == ["fine"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ '%*s' % (1500000000, 'x') }}",  # a format width: no operator the sandbox counts
        "{{ '{:>1500000000}'.format('x') }}",
        "{{ 'x' | center(1500000000) }}",
        "{{ 'a\nb' | indent(1500000000) }}",
    ],
)
def test_m2_jinja_memory_bombs_fail_in_the_child_not_here(tmp_path: Path, template: str) -> None:
    """What the sandbox cannot size in advance runs into the template child's memory cap: a clear error at the
    template, within seconds, and this process never holds the value (its peak RSS stays far below 1.5 GB)."""
    root = make_repo(tmp_path, {"bomb/x.yaml.j2": template, "fine/cm.yaml.j2": CONFIGMAP.format(name="{{ stack }}")})
    started = time.monotonic()
    message = render_error(root, "bomb")
    assert message.startswith("render: bomb/x.yaml.j2"), message
    assert message.endswith(": the templates need more than 512 MiB of memory; refused"), message
    assert time.monotonic() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 1_000_000  # KiB: under 1 GB
    assert names(render(root, "fine", name="fine")) == ["fine"]


def test_m2_jinja_time_limit_per_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jinja_module, "JINJA_TIMEOUT", 0.5)
    root = make_repo(
        tmp_path, {"app/x.yaml.j2": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"}
    )
    started = time.monotonic()
    assert render_error(root, "app") == "render: app/x.yaml.j2:1: templates ran longer than 0.5 s (the limit per stack)"
    assert time.monotonic() - started < 5


def test_m3_jinja_include_through_a_symlink_outside_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret")
    root = make_repo(tmp_path, {"app/cm.yaml.j2": "{% include 'partials/leak.j2' %}", "partials/ok.j2": ""})
    (root / "partials/leak.j2").symlink_to(tmp_path / "secret.txt")
    assert render_error(root, "app") == f"render: app/cm.yaml.j2:1: 'partials/leak.j2' {SYMLINK_ESCAPES}"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../etc/passwd", f"'../../etc/passwd' {ESCAPES}"),
        ("/etc/passwd", "'/etc/passwd' is absolute; give a relative path"),
        (".git/config", "'.git/config' is inside .git (refused: it may hold credentials)"),
    ],
)
def test_m4_jinja_include_outside_the_repository_is_refused(tmp_path: Path, name: str, reason: str) -> None:
    root = make_repo(tmp_path, {"app/cm.yaml.j2": f"data: {{% include '{name}' %}}", ".git/config": "token"})
    assert render_error(root, "app") == f"render: app/cm.yaml.j2:1: {reason}"


# --- kustomize -------------------------------------------------------------------------------------------------------

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: registry.example/web:1}]}
"""


def kustomize_repo(tmp_path: Path, overlay: str) -> Path:
    return make_repo(
        tmp_path,
        {
            "apps/web/base/kustomization.yaml": "resources: [deployment.yaml, configmap.yaml]\n",
            "apps/web/base/deployment.yaml": DEPLOYMENT,
            "apps/web/base/configmap.yaml": CONFIGMAP.format(name="settings"),
            "apps/web/overlays/prod/kustomization.yaml": overlay,
            "apps/web/overlays/prod/replicas.yaml": "- {op: replace, path: /spec/replicas, value: 3}\n",
        },
    )


def test_kustomize_overlay_with_name_prefix_and_patch(tmp_path: Path) -> None:
    root = kustomize_repo(
        tmp_path,
        "resources: [../../base]\nnamePrefix: prod-\nnamespace: web\n"
        "patches:\n  - path: replicas.yaml\n    target: {kind: Deployment, name: web}\n",
    )
    objects = render(root, "apps/web/overlays/prod")
    assert sorted(str(o.id) for o in objects) == ["ConfigMap/web/prod-settings", "Deployment/web/prod-web"]
    assert next(o for o in objects if o.id.kind == "Deployment").body["spec"]["replicas"] == 3
    assert {o.source for o in objects} == {Source("apps/web/overlays/prod/kustomization.yaml", None)}


@pytest.mark.parametrize(
    "resource",
    [
        "https://raw.githubusercontent.com/example/repo/main/deploy.yaml",
        "github.com/example/repo//deploy?ref=v1",
        "git::https://example.com/repo.git//deploy",
        "ssh://git@example.com/repo.git",
        "gitlab.example.com/team/repo/deploy?ref=main",  # not local: kustomize would try to clone it
    ],
)
def test_kustomize_remote_resource_is_refused(tmp_path: Path, resource: str) -> None:
    root = kustomize_repo(tmp_path, f"resources: [../../base, '{resource}']\n")
    message = render_error(root, "apps/web/overlays/prod")
    assert message.startswith("render: apps/web/overlays/prod/kustomization.yaml: ")
    assert "render is offline" in message


def test_kustomize_resource_outside_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/kustomization.yaml").write_text("resources: []\n")  # kustomize itself would accept it
    root = kustomize_repo(tmp_path, "resources: [../../base, ../../../../../outside]\n")
    message = render_error(root, "apps/web/overlays/prod")
    assert message == (f"render: apps/web/overlays/prod/kustomization.yaml: '../../../../../outside' {ESCAPES}")


def test_kustomize_checks_every_reachable_kustomization(tmp_path: Path) -> None:
    (tmp_path / "secret.env").write_text("TOKEN=s3cret\n")
    root = kustomize_repo(tmp_path, "resources: [../../base]\n")
    (root / "apps/web/base/kustomization.yaml").write_text(
        "resources: [deployment.yaml]\nsecretGenerator:\n  - name: s\n    envs: [../../../../secret.env]\n"
        "    files: [key=/etc/hostname]\n"
    )
    with pytest.raises(ErrorGroup) as info:
        render(root, "apps/web/overlays/prod")
    assert [(e.where, e.reason) for e in info.value.errors] == [
        ("apps/web/base/kustomization.yaml", "'/etc/hostname' is absolute; give a relative path"),
        ("apps/web/base/kustomization.yaml", f"'../../../../secret.env' {ESCAPES}"),
    ]


def test_kustomize_exec_functions_stay_disabled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    function = (
        "apiVersion: example.com/v1\nkind: Marker\nmetadata:\n  name: m\n  annotations:\n"
        f"    config.kubernetes.io/function: |\n      exec:\n        path: /bin/touch\n        args: ['{marker}']\n"
    )
    root = kustomize_repo(tmp_path, "resources: [../../base]\ntransformers: [fn.yaml]\n")
    (root / "apps/web/overlays/prod/fn.yaml").write_text(function)
    message = render_error(root, "apps/web/overlays/prod")
    assert message.startswith("render: apps/web/overlays/prod: kustomize failed (exit 1):")
    assert "external plugins disabled" in message
    assert not marker.exists()


def test_kustomize_failure_reports_its_stderr(tmp_path: Path) -> None:
    root = kustomize_repo(tmp_path, "resources: [../../base]\npatches:\n  - path: replicas.yaml\n")
    message = render_error(root, "apps/web/overlays/prod")  # a JSON patch needs a target
    assert message.startswith("render: apps/web/overlays/prod: kustomize failed (exit 1):\nError:")
    assert "replicas.yaml" in message


def test_kustomize_binary_missing_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_JOB_KUSTOMIZE", str(tmp_path / "no-such-kustomize"))
    root = kustomize_repo(tmp_path, "resources: [../../base]\n")
    message = render_error(root, "apps/web/overlays/prod")
    assert "cannot run kustomize" in message
    assert "set GITOPS_JOB_KUSTOMIZE" in message


# --- helm ------------------------------------------------------------------------------------------------------------

CHART = {
    "charts/cache/Chart.yaml": "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
    "charts/cache/values.yaml": "size: small\n",
    "charts/cache/templates/configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  namespace: {{ .Release.Namespace }}
data:
  size: {{ .Values.size }}
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
  kubeSystem: {{ if lookup "v1" "Namespace" "" "kube-system" }}"found"{{ else }}"empty"{{ end }}
""",
    "charts/cache/templates/hook.yaml": """\
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {"helm.sh/hook": pre-install}
spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: busybox}]}}}
""",
    "charts/cache/templates/tests/test.yaml": """\
apiVersion: v1
kind: Pod
metadata:
  name: test
  annotations: {"helm.sh/hook": test}
spec: {containers: [{name: t, image: busybox}]}
""",
    "charts/cache/crds/widget.yaml": """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
""",
    "config/cache-prod.yaml": "size: large\n",
}


def test_helm_chart_renders_offline_with_values_kube_version_and_sources(tmp_path: Path) -> None:
    root = make_repo(tmp_path, CHART)
    objects = render(
        root,
        "charts/cache",
        name="cache",
        namespace="apps",
        values=("config/cache-prod.yaml",),
        target=Target("prod", kube_version="v1.31.4"),
    )
    assert [str(o.id) for o in objects] == [
        "CustomResourceDefinition/widgets.example.com",
        "ConfigMap/apps/cache-settings",
    ]
    settings = objects[1].body["data"]
    assert settings["size"] == "large"
    assert settings["kubeVersion"] == "v1.31.4"
    assert [o.source for o in objects] == [
        Source("charts/cache/crds/widget.yaml"),
        Source("charts/cache/templates/configmap.yaml"),
    ]


def test_helm_release_name_and_default_namespace(tmp_path: Path) -> None:
    root = make_repo(tmp_path, CHART)
    objects = render(root, "charts/cache", release_name="redis")
    assert str(objects[1].id) == "ConfigMap/default/redis-settings"
    assert objects[1].body["data"]["size"] == "small"


def test_m9_helm_lookup_finds_nothing(tmp_path: Path) -> None:
    root = make_repo(tmp_path, CHART)
    objects = render(root, "charts/cache")
    assert objects[1].body["data"]["kubeSystem"] == "empty"


def test_helm_vendored_subchart_renders_and_names_its_template(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            **CHART,
            "charts/cache/Chart.yaml": CHART["charts/cache/Chart.yaml"]
            + "dependencies:\n  - name: sub\n    version: 0.1.0\n",
            "charts/cache/charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            "charts/cache/charts/sub/templates/cm.yaml": CONFIGMAP.format(name="from-sub"),
        },
    )
    objects = render(root, "charts/cache")
    sub = next(o for o in objects if o.id.name == "from-sub")
    assert sub.source == Source("charts/cache/charts/sub/templates/cm.yaml")


def test_helm_missing_dependency_is_not_fetched(tmp_path: Path) -> None:
    dependency = "dependencies:\n  - name: redis\n    version: 1.0.0\n    repository: https://charts.example.com\n"
    root = make_repo(tmp_path, {**CHART, "charts/cache/Chart.yaml": CHART["charts/cache/Chart.yaml"] + dependency})
    message = render_error(root, "charts/cache")
    assert message.startswith("render: charts/cache: helm failed (exit 1):")
    assert "missing in charts/ directory: redis" in message


def test_helm_values_schema_with_local_references_still_validates(tmp_path: Path) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"size": {"enum": ["small", "large"]}},
        "properties": {"size": {"$ref": "#/$defs/size"}},
    }
    root = make_repo(tmp_path, {**CHART, "charts/cache/values.schema.json": json.dumps(schema)})
    assert render(root, "charts/cache")[1].body["data"]["size"] == "small"
    (root / "charts/cache/values.yaml").write_text("size: huge\n")
    message = render_error(root, "charts/cache")
    assert message.startswith("render: charts/cache: helm failed (exit 1):")
    assert "size" in message and "values don't meet the specifications of the schema" in message


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ("/etc/passwd", "values file '/etc/passwd' is absolute; give a path relative to the repository root"),
        ("file:///etc/passwd", f"values file 'file:///etc/passwd' {URL}"),
        ("http://example.com/v.yaml", f"values file 'http://example.com/v.yaml' {URL}"),
        ("../outside.yaml", f"values file '../outside.yaml' {ESCAPES}"),
        ("config/missing.yaml", "values file 'config/missing.yaml' is not a file"),
    ],
)
def test_m4_helm_values_outside_the_repository_are_refused_before_helm_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: str, reason: str
) -> None:
    monkeypatch.setenv("GITOPS_JOB_HELM", str(tmp_path / "no-such-helm"))  # had helm run, the error would say so
    (tmp_path / "outside.yaml").write_text("size: stolen\n")
    root = make_repo(tmp_path, CHART)
    assert render_error(root, "charts/cache", values=(values,)) == f"render: charts/cache: {reason}"


def test_m3_helm_chart_symlink_outside_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "leak.yaml").write_text(CONFIGMAP.format(name="leak"))
    root = make_repo(tmp_path, CHART)
    (root / "charts/cache/templates/leak.yaml").symlink_to(tmp_path / "leak.yaml")
    message = render_error(root, "charts/cache")
    assert message == f"render: charts/cache: 'charts/cache/templates/leak.yaml' {SYMLINK_ESCAPES}"


# --- substitution ----------------------------------------------------------------------------------------------------


def test_substitution_values_defaults_escapes_and_types(tmp_path: Path) -> None:
    manifest = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-${ENV}
spec:
  replicas: ${N}
  template:
    spec:
      containers:
        - name: web
          image: "registry.example/web:${TAG:=latest}"
          args: ["${LEVEL:=info}", "$${HOME}", "${FLAGS}", "${REGION}"]
"""
    root = make_repo(tmp_path, {"app/web.yaml": manifest})
    (obj,) = render(
        root,
        "app",
        target=Target("t", vars={"ENV": "target", "N": 1, "LEVEL": "debug", "FLAGS": ["a", "b"], "REGION": "x"}),
        vars={"ENV": "stack", "N": 3},
        substitute={"REGION": "eu-1"},
        extra_vars={"ENV": "prod"},
    )
    assert obj.id == ObjectId("apps", "Deployment", "", "web-prod")
    assert obj.body["spec"]["replicas"] == 3
    container = obj.body["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/web:latest"
    assert container["args"] == ["debug", "${HOME}", ["a", "b"], "eu-1"]
    assert obj.source == Source("app/web.yaml", 1)


def test_substitution_undefined_variable_names_file_line_and_variable(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app/cm.yaml": CONFIGMAP.format(name="a") + "---\n" + CONFIGMAP.format(name="${NAME}")})
    message = render_error(root, "app", substitute={})
    assert message.startswith("render: app/cm.yaml:6: ${VAR} substitution: undefined variable NAME: set NAME in")
    assert "${NAME:=value}" in message


def test_substitution_that_changes_the_structure_is_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app/cm.yaml": "apiVersion: v1\nkind: Config${X}\nmetadata:\n  name: a\n"})
    message = render_error(root, "app", vars={"X": "Map"}, substitute={})
    assert message.startswith("render: app/cm.yaml:1: ${VAR} substitution changed the object's structure")


def test_substitution_strips_newlines_from_values_like_flux(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app/cm.yaml": CONFIGMAP.format(name="a") + "data:\n  x: ${X}\n"})
    (obj,) = render(root, "app", substitute={"X": "1\n---\nkind Secret"})
    assert obj.body["data"] == {"x": "1---kind Secret"}


def test_substitution_runs_after_every_renderer(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {**CHART, "charts/cache/values.yaml": "size: ${SIZE:=medium}\n"})
    objects = render(root, "charts/cache", substitute={})
    assert objects[1].body["data"]["size"] == "medium"


SCRIPT = """\
#!/bin/sh
: "${FRONTEND_URL:-http://frontend}"
exec nginx -g "daemon off; env BACKEND=$${BACKEND};"
"""


def script_repo(tmp_path: Path) -> Path:
    """A kustomize stack whose configMapGenerator ships a shell script holding shell ${...} syntax."""
    return make_repo(
        tmp_path,
        {
            "app/kustomization.yaml": "configMapGenerator:\n  - name: script\n    files: [start.sh]\n"
            "generatorOptions: {disableNameSuffixHash: true}\nresources: [rules.yaml]\n",
            "app/start.sh": SCRIPT,
            "app/rules.yaml": CONFIGMAP.format(name="rules")
            + "  labels: {kustomize.toolkit.fluxcd.io/substitute: disabled}\ndata:\n  rule: 'sum(${X}) > ${Y:-1}'\n",
        },
    )


def test_item16_substitution_is_off_unless_the_stack_turns_it_on(tmp_path: Path) -> None:
    """Shell syntax in a generated script renders as written: substitution runs only with ``substitute:``."""
    objects = render(script_repo(tmp_path), "app")
    script = next(o for o in objects if o.id.name == "script")
    assert script.body["data"]["start.sh"] == SCRIPT  # no ${...} and no $$ touched
    rules = next(o for o in objects if o.id.name == "rules")
    assert rules.body["data"]["rule"] == "sum(${X}) > ${Y:-1}"


def test_item16_substitution_on_follows_flux(tmp_path: Path) -> None:
    """With ``substitute:`` on: Flux's forms expand, ``$$`` is a literal ``$``, and objects labelled or annotated
    ``kustomize.toolkit.fluxcd.io/substitute: disabled`` (or ours, gitops-job.io/substitute) are left alone."""
    root = script_repo(tmp_path)
    objects = render(root, "app", substitute={"FRONTEND_URL": "https://shop.example"})
    script = next(o for o in objects if o.id.name == "script")
    assert script.body["data"]["start.sh"] == (
        '#!/bin/sh\n: "https://shop.example"\nexec nginx -g "daemon off; env BACKEND=${BACKEND};"\n'
    )
    assert next(o for o in objects if o.id.name == "rules").body["data"]["rule"] == "sum(${X}) > ${Y:-1}"
    (root / "app/rules.yaml").write_text(
        CONFIGMAP.format(name="rules") + "  annotations: {gitops-job.io/substitute: disabled}\ndata:\n  x: ${UNSET}\n"
    )
    rules = next(o for o in render(root, "app", substitute={}) if o.id.name == "rules")
    assert rules.body["data"] == {"x": "${UNSET}"}


def test_item16_substitution_on_is_strict(tmp_path: Path) -> None:
    """An undefined variable without a default fails the stack (Flux's strict mode), naming it and the fixes."""
    root = script_repo(tmp_path)
    (root / "app/start.sh").write_text('exec app --url "${FRONTEND_URL}"\n')
    message = render_error(root, "app", substitute={})
    assert message.startswith(
        "render: app/kustomization.yaml: ${VAR} substitution: undefined variable FRONTEND_URL: set FRONTEND_URL in "
        "the stack's substitute"
    )
    assert "$${...} for a literal ${...}" in message
    assert "gitops-job.io/substitute: disabled" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x ${A} y", "x hello y"),
        ("$${A}", "${A}"),
        ("$$x $y $", "$x $y $"),
        ("${A:=d}", "hello"),
        ("${UNSET:=d-${A}}", "d-hello"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY:=dflt}", "dflt"),
        ("${UNSET=z}", "z"),
        ("${FRONTEND_URL:-http://frontend}", "http://frontend"),
        ("${#A}", "5"),
        ("${A^}", "Hello"),
        ("${A^^}", "HELLO"),
        ("${UP,}", "hELLO"),
        ("${UP,,}", "hello"),
        ("${A:1}", "ello"),
        ("${A:1:2}", "el"),
        ("${A: -3}", "llo"),
        ("${A:1:-1}", "ell"),
        ("${P#*/}", "b/c.tar.gz"),
        ("${P##*/}", "b/c.tar.gz"),  # Go's path.Match: * never matches '/'
        ("${P%.*}", "a/b/c.tar"),
        ("${P%%.*}", "a/b/c"),
        ("${P/\\//_}", "a_b/c.tar.gz"),
        ("${P//\\//_}", "a_b_c.tar.gz"),
        ("${A/#he/HE}", "HEllo"),
        ("${A/%lo/LO}", "helLO"),
        ("${A//l/}", "heo"),
    ],
)
def test_item16_substitution_forms_match_fluxcd_envsubst(text: str, expected: str) -> None:
    values = {"A": "hello", "UP": "HELLO", "EMPTY": "", "P": "a/b/c.tar.gz"}
    assert expand(text, values.get) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("${UNSET}", "undefined variable UNSET"),
        ("${UNSET^^}", "undefined variable UNSET"),
        ("${A-x}", "bad substitution ${A-x}"),
        ("${A:+x}", "':+' is not supported"),
        ("${A:?x}", "':?' is not supported"),
        ("${A", "missing closing brace"),
        ("${}", "expected a variable name"),
        ("${a.b}", "bad substitution ${a.b}"),
        ("${A/x}", "expected ${A/text/repl}"),
    ],
)
def test_item16_substitution_errors(text: str, reason: str) -> None:
    with pytest.raises(SubstitutionError) as info:
        expand(text, {"A": "hello"}.get)
    assert reason in info.value.reason


# --- auto ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["kustomization.yaml", "Chart.yaml", "x.yaml.j2"], "kustomize"),
        (["kustomization.yml"], "kustomize"),
        (["Kustomization"], "kustomize"),
        (["Chart.yaml", "templates/x.yaml"], "helm"),
        (["sub/dir/x.yaml.j2", "y.yaml"], "jinja"),
        (["x.yaml", "sub/y.yml"], "plain"),
        ([], "plain"),
    ],
)
def test_detect_renderer(tmp_path: Path, files: list[str], expected: str) -> None:
    root = make_repo(tmp_path, dict.fromkeys(files, ""))
    assert detect_renderer(root) == expected


# --- confinement and limits of kustomize and helm ---------------------------------------------------------------

TOKEN = "ghp_PlantedCheckoutToken0123456789abcdef"
GIT_CONFIG = f'[http "https://github.com/"]\n\textraheader = AUTHORIZATION: basic {TOKEN}\n'


def root_stack_repo(tmp_path: Path) -> Path:
    """A repository whose root is a kustomize stack and a Helm chart at once, with a checkout token in .git/config."""
    return make_repo(
        tmp_path,
        {
            ".git/config": GIT_CONFIG,
            "gitops.yaml": "stacks:\n  - {name: k, path: ., render: kustomize, namespace: default}\n"
            "  - {name: h, path: ., render: helm, namespace: default}\n",
            # kustomize: a builtin generator's config file names .git/config (its root is the repository root)
            "kustomization.yaml": "generators: [gen.yaml]\n",
            "gen.yaml": "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: leak\n"
            "files: [.git/config]\n",
            # helm: the chart is the repository root; .Files reads any file of the chart
            "Chart.yaml": "apiVersion: v2\nname: root\nversion: 0.1.0\n",
            "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: files\ndata:\n"
            '  config: {{ .Files.Get ".git/config" | quote }}\n'
            '  globbed: {{ range $path, $_ := .Files.Glob ".git/**" }}{{ $path }} {{ end }}""\n',
            "app/cm.yaml": CONFIGMAP.format(name="app"),
        },
    )


def test_item11_renderers_never_see_git_at_the_repository_root(tmp_path: Path) -> None:
    """A kustomize generator config and Helm's .Files at a root stack find no .git: the token is in no output."""
    root = root_stack_repo(tmp_path)
    message = render_error(root, ".", name="k", render="kustomize")
    assert message.startswith("render: .: kustomize failed (exit 1):")
    assert ".git/config" in message and "gitops-job-tree" not in message  # paths in the copy shown repo-relative
    assert TOKEN not in message
    (obj,) = render(root, ".", name="h", render="helm")
    assert obj.body["data"] == {"config": "", "globbed": ""}
    assert TOKEN not in str(obj.body)


def test_item11_the_token_appears_in_no_output_of_the_cli(tmp_path: Path) -> None:
    root = root_stack_repo(tmp_path)
    for args in (["render"], ["render", "-s", "h", "-o", "json"], ["validate", "--offline"]):
        result = subprocess.run(
            [str(Path(sys.executable).parent / "gitops-job"), *args, "--repo", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert TOKEN not in result.stdout + result.stderr, args
        assert "Traceback" not in result.stderr


def test_item11_the_copy_keeps_symlinks_inside_the_repository_and_drops_the_rest(tmp_path: Path) -> None:
    """Only what the renderer may read is copied: a symlink to a shared directory of the repository still works
    (its target is copied too); one into .git or out of the repository finds nothing."""
    (tmp_path / "outside.txt").write_text("outside-the-repository")
    root = make_repo(
        tmp_path,
        {
            **CHART,
            ".git/config": GIT_CONFIG,
            "shared/labels.tpl": '{{ define "labels" }}app: cache{{ end }}\n',
            "charts/cache/templates/configmap.yaml": CHART["charts/cache/templates/configmap.yaml"]
            + '  labels: {{ include "labels" . | quote }}\n'
            '  shared: {{ .Files.Get "files/shared/labels.tpl" | len | quote }}\n'
            '  git: {{ .Files.Get "files/git/config" | quote }}\n'
            '  outside: {{ .Files.Get "files/outside.txt" | quote }}\n'
            '  sibling: {{ .Files.Get "files/sibling.yaml" | quote }}\n',
        },
    )
    (root / "charts/cache/templates/_labels.tpl").symlink_to("../../../shared/labels.tpl")
    (root / "charts/cache/files").mkdir()
    (root / "charts/cache/files/shared").symlink_to("../../../shared")
    (root / "charts/cache/files/git").symlink_to("../../../.git")
    (root / "charts/cache/files/outside.txt").symlink_to(tmp_path / "outside.txt")
    (root / "charts/cache/files/sibling.yaml").symlink_to("../../../config/cache-prod.yaml")
    # the symlinks that leave the repository or enter .git are errors of the stack's own files (M3) ...
    with pytest.raises(ErrorGroup) as info:
        render(root, "charts/cache")
    message = str(info.value)
    assert f"'charts/cache/files/outside.txt' {SYMLINK_ESCAPES}" in message
    assert "'charts/cache/files/git' is inside .git (refused: it may hold credentials)" in message
    # ... and, without them, the copy holds what the others point to
    (root / "charts/cache/files/git").unlink()
    (root / "charts/cache/files/outside.txt").unlink()
    data = render(root, "charts/cache")[1].body["data"]
    assert data["labels"] == "app: cache"
    assert data["shared"] == str(len((root / "shared/labels.tpl").read_text()))
    assert (data["git"], data["outside"]) == ("", "")
    assert data["sibling"] == "size: large\n"


def test_item11_kustomize_reads_only_the_directories_its_kustomizations_reach(tmp_path: Path) -> None:
    """A base reached through ../../base is copied; a directory no kustomization names is not (a generator's files
    are limited to its kustomization's root by kustomize itself)."""
    root = kustomize_repo(tmp_path, "resources: [../../base]\nnamePrefix: prod-\n")
    (root / "unrelated").mkdir()
    (root / "unrelated/secret.txt").write_text("not-for-kustomize")
    objects = render(root, "apps/web/overlays/prod")
    assert sorted(str(o.id) for o in objects) == ["ConfigMap/prod-settings", "Deployment/prod-web"]


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Recorder.hits.append(self.path)
        body = b'{"type": "object"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[str]:
    """A real HTTP server on loopback that records every request it gets."""
    _Recorder.hits = []
    with http_thread(_Recorder) as port:
        yield f"{port}"


def _tgz(files: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_item12_helm_values_schema_references_are_refused_before_helm_runs(
    tmp_path: Path, loopback_server: str
) -> None:
    """Remote and file: references in the chart's, a subchart's and an archived subchart's values.schema.json are
    refused, each named with its file; the loopback server is never asked and the planted file is never read."""
    port = loopback_server
    planted = tmp_path / "outside.json"
    planted.write_text('{"properties": {"size": {"const": "PLANTED-outside-value"}}}')
    dependencies = "dependencies:\n  - {name: sub, version: 0.1.0}\n  - {name: packed, version: 0.1.0}\n"
    root = make_repo(
        tmp_path,
        {
            **CHART,
            "charts/cache/Chart.yaml": CHART["charts/cache/Chart.yaml"] + dependencies,
            "charts/cache/values.schema.json": json.dumps(
                {"$schema": f"http://127.0.0.1:{port}/meta", "$ref": f"http://localhost:{port}/values.json"}
            ),
            "charts/cache/charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            "charts/cache/charts/sub/values.schema.json": json.dumps(
                {
                    "properties": {"a": {"$ref": "#/$defs/a"}, "b": {"$ref": f"http://127.0.0.1:{port}/b.json"}},
                    "$defs": {"a": {"type": "string"}},
                }
            ),
        },
    )
    (root / "charts/cache/charts/packed-0.1.0.tgz").write_bytes(
        _tgz(
            {
                "packed/Chart.yaml": "apiVersion: v2\nname: packed\nversion: 0.1.0\n",
                "packed/values.schema.json": json.dumps({"$ref": f"file://{planted}"}),
            }
        )
    )
    with pytest.raises(ErrorGroup) as info:
        render(root, "charts/cache")
    assert [(e.where, e.reason.split(" refused")[0]) for e in info.value.errors] == [
        ("charts/cache/charts/packed-0.1.0.tgz:packed/values.schema.json", f"$ref 'file://{planted}'"),
        ("charts/cache/charts/sub/values.schema.json", f"$ref 'http://127.0.0.1:{port}/b.json'"),
        ("charts/cache/values.schema.json", f"$schema 'http://127.0.0.1:{port}/meta'"),
        ("charts/cache/values.schema.json", f"$ref 'http://localhost:{port}/values.json'"),
    ]
    assert "render is offline and reads no file outside the chart" in info.value.errors[0].reason
    assert _Recorder.hits == []
    assert "PLANTED" not in str(info.value)


def test_item12_a_schema_that_is_not_json_is_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {**CHART, "charts/cache/values.schema.json": '{"$ref": NaN'})
    message = render_error(root, "charts/cache")
    assert message.startswith("render: charts/cache/values.schema.json: not valid JSON")


TPL_BOMB = {
    "charts/bomb/Chart.yaml": "apiVersion: v2\nname: bomb\nversion: 0.1.0\n",
    "charts/bomb/values.yaml": 'a: "{{ tpl .Values.a . }}{{ tpl .Values.a . }}"\n',
    "charts/bomb/templates/cm.yaml": CONFIGMAP.format(name="bomb") + "data:\n  a: {{ tpl .Values.a . | quote }}\n",
}


def test_item15_helm_memory_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `tpl` self-recursion grows until the address-space cap stops it: the stack fails, naming helm and the
    limit. (The cap is lowered here so the test is quick; what matters is that one exists.)"""
    monkeypatch.setattr(sandbox, "TOOL_MEMORY", 1600 * 2**20)
    monkeypatch.setattr(sandbox, "TOOL_GOMEMLIMIT", "off")
    root = make_repo(tmp_path, TPL_BOMB)
    started = time.monotonic()
    message = render_error(root, "charts/bomb", name="bomb")
    assert message == (
        "render: charts/bomb: stack bomb: helm needed more than 1.5625 GiB of memory (address space; the limit per "
        "run); refused"
    )
    assert time.monotonic() - started < 30


def test_item15_the_default_caps_let_real_renders_through(tmp_path: Path) -> None:
    """Go reserves much address space before its heap grows: the real caps must not break an ordinary run."""
    assert sandbox.TOOL_MEMORY >= 2 * 2**30
    root = make_repo(tmp_path, CHART)
    assert len(render(root, "charts/cache")) == 2
    assert len(render(kustomize_repo(tmp_path, "resources: [../../base]\n"), "apps/web/overlays/prod")) == 2


def test_item15_helm_time_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "TOOL_TIMEOUT", 2.0)
    slow = "{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}"
    root = make_repo(tmp_path, {**CHART, "charts/cache/templates/slow.yaml": slow})
    started = time.monotonic()
    message = render_error(root, "charts/cache", name="cache")
    assert message == "render: charts/cache: stack cache: helm did not finish within 2 s (the limit per run); refused"
    assert time.monotonic() - started < 10


def test_item15_helm_output_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart that writes more manifests than the cap fails instead of passing as valid."""
    monkeypatch.setattr(sandbox, "MAX_TOOL_OUTPUT", 2**20)
    big = CONFIGMAP.format(name="big") + 'data:\n  x: {{ repeat 3000000 "a" | quote }}\n'
    root = make_repo(tmp_path, {**CHART, "charts/cache/templates/big.yaml": big})
    message = render_error(root, "charts/cache", name="cache")
    assert message == (
        "render: charts/cache: stack cache: helm wrote more than 1 MiB of manifests (the limit per run); refused"
    )


def test_item15_kustomize_output_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_TOOL_OUTPUT", 2**20)
    root = kustomize_repo(tmp_path, "resources: [../../base]\nconfigMapGenerator:\n  - {name: big, files: [big.txt]}\n")
    (root / "apps/web/overlays/prod/big.txt").write_text("a" * 3 * 2**20)
    message = render_error(root, "apps/web/overlays/prod", name="web")
    assert message == (
        "render: apps/web/overlays/prod: stack web: kustomize wrote more than 1 MiB of manifests (the limit per run); "
        "refused"
    )


def test_item15_tool_stderr_cannot_issue_workflow_commands(tmp_path: Path) -> None:
    failing = '{{ fail "boom\\n::add-mask::x\\n  ::error title=pwned::owned\\n##[set-output name=a;]b" }}'
    root = make_repo(tmp_path, {**CHART, "charts/cache/templates/fail.yaml": failing})
    message = render_error(root, "charts/cache")
    assert message.startswith("render: charts/cache: helm failed (exit 1):")
    assert "boom" in message
    lines = message.splitlines()
    assert not any(line.lstrip().startswith(("::", "##[")) for line in lines), message
    assert "> ::add-mask::x" in message and "  > ::error title=pwned::owned" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("::error::x", "> ::error::x"),
        ("a\n::add-mask::s\nb", "a\n> ::add-mask::s\nb"),
        ("\t  ::warning::w", "\t  > ::warning::w"),
        ("##[set-output name=a;]b", "> ##[set-output name=a;]b"),
        ("Error: a::b ::c", "Error: a::b ::c"),
    ],
)
def test_item15_neutralise_workflow_commands(text: str, expected: str) -> None:
    assert sandbox.neutralise_workflow_commands(text) == expected


def test_item11_the_copy_has_no_git_at_any_depth_and_links_files(tmp_path: Path) -> None:
    """The copy the renderers get: no `.git` directory or file (a submodule's) anywhere, files hard-linked where the
    file system allows, a symlink loop inside the repository kept as it is."""
    root = make_repo(
        tmp_path,
        {
            ".git/config": GIT_CONFIG,
            "app/.git": "gitdir: ../.git/modules/app\n",
            "app/sub/.git/config": GIT_CONFIG,
            "app/a.yaml": CONFIGMAP.format(name="a"),
            "app/sub/b.yaml": CONFIGMAP.format(name="b"),
        },
    )
    (root / "app/sub/loop").symlink_to("..")
    with sandbox.tree(root.resolve(), [root.resolve() / "app"]) as copy:
        found = sorted(p.relative_to(copy.root).as_posix() for p in copy.root.rglob("*"))
        assert found == ["app", "app/a.yaml", "app/sub", "app/sub/b.yaml", "app/sub/loop"]
        assert (copy.root / "app/sub/loop/a.yaml").read_text() == CONFIGMAP.format(name="a")
        assert (copy.root / "app/a.yaml").stat().st_ino == (root / "app/a.yaml").stat().st_ino
    assert not copy.root.exists()


def test_item12_a_symlinked_subchart_is_checked_too(tmp_path: Path, loopback_server: str) -> None:
    """helm follows a symlinked subchart directory; so does the check."""
    root = make_repo(
        tmp_path,
        {
            **CHART,
            "charts/cache/Chart.yaml": CHART["charts/cache/Chart.yaml"]
            + "dependencies:\n  - {name: sub, version: 0.1.0}\n",
            "shared/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            "shared/sub/values.schema.json": json.dumps({"$ref": f"http://localhost:{loopback_server}/s.json"}),
        },
    )
    (root / "charts/cache/charts").mkdir()
    (root / "charts/cache/charts/sub").symlink_to("../../../shared/sub")
    message = render_error(root, "charts/cache")
    assert message.startswith(
        f"render: charts/cache/charts/sub/values.schema.json: $ref 'http://localhost:{loopback_server}/s.json' refused"
    )
    assert _Recorder.hits == []
