"""The repo config loader: gitops.yaml into dataclasses, every schema and cross-reference error named by file, line and
key path, dependsOn order, and the target/stack selection helpers. Pure logic: no cluster."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from gitops_job.config.load import (
    RENDERERS,
    AllowPolicy,
    IgnoreDifference,
    RepoConfig,
    Stack,
    Target,
    load_config,
    stacks_for,
    target,
)
from gitops_job.config.sources import RemoteChart
from gitops_job.errors import ConfigError, ErrorGroup, GitopsJobError
from tests.helpers import EXAMPLES

SCHEMA_FILE = Path(__file__).parent.parent / "gitops_job/config/schemas/config.schema.json"

FULL = """\
targets:
  - name: staging
    context: kind-staging
    vars: {region: eu, replicas: 2, debug: true}
    kubeVersion: "1.35"
    inventoryNamespace: gitops-state
  - name: prod
stacks:
  - name: app
    path: ./apps/app/
    render: helm
    namespace: apps
    vars: {flags: [search, checkout]}
    targets: [staging]
    dependsOn: [base]
    prune: false
    wait: false
    timeout: 1h30m
    allow: {namespaces: [apps, apps-extra], clusterScoped: false, clusterKinds: [ClusterRole]}
    serviceAccountName: deployer
    ignoreDifferences:
      - {group: apps, kind: Deployment, name: web, namespace: apps, jsonPointers: [/spec/replicas]}
    values: [apps/app/values.yaml]
    releaseName: my-app
    chart: {repository: "oci://ghcr.io/example/charts", name: app, version: "^1.2", insecure: false}
    substitute: {REGION: eu-1, REPLICAS: 3}
  - name: base
    path: base
"""


def make_repo(root: Path, config: str, dirs: tuple[str, ...] = ("a", "b", "c")) -> Path:
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "gitops.yaml").write_text(textwrap.dedent(config))
    return root


def errors_of(root: Path, config: str) -> list[str]:
    with pytest.raises(GitopsJobError) as info:
        load_config(make_repo(root, config))
    return messages(info.value)


def messages(error: GitopsJobError) -> list[str]:
    assert isinstance(error, ConfigError | ErrorGroup)
    return [str(e) for e in error.errors] if isinstance(error, ErrorGroup) else [str(error)]


def test_full_config_round_trips_every_key(tmp_path: Path) -> None:
    make_repo(tmp_path, FULL, dirs=("apps/app", "base"))
    (tmp_path / "apps/app/values.yaml").write_text("replicas: 2\n")

    config = load_config(tmp_path)

    app = Stack(
        name="app",
        path="apps/app",
        render="helm",
        namespace="apps",
        vars={"flags": ["search", "checkout"]},
        targets=("staging",),
        depends_on=("base",),
        prune=False,
        wait=False,
        timeout=5400.0,
        allow=AllowPolicy(namespaces=("apps", "apps-extra"), cluster_scoped=False, cluster_kinds=("ClusterRole",)),
        service_account_name="deployer",
        ignore_differences=(IgnoreDifference("Deployment", ("/spec/replicas",), "apps", "web", "apps"),),
        values=("apps/app/values.yaml",),
        release_name="my-app",
        substitute={"REGION": "eu-1", "REPLICAS": 3},
        chart=RemoteChart("oci://ghcr.io/example/charts", "app", "^1.2"),
    )
    targets = (
        Target("staging", "kind-staging", {"region": "eu", "replicas": 2, "debug": True}, "v1.35", "gitops-state"),
        Target("prod"),
    )
    assert config == RepoConfig(
        tmp_path.resolve(), tmp_path.resolve() / "gitops.yaml", targets, (Stack("base", "base"), app)
    )


def test_full_config_uses_every_key_of_the_schema() -> None:
    """Guards the round trip above: a key added to the schema must be added to FULL (and so be loaded)."""
    defs = json.loads(SCHEMA_FILE.read_text())["$defs"]
    full = yaml.safe_load(FULL)
    stack = full["stacks"][0]
    assert set(full) == {"targets", "stacks"}
    assert set(full["targets"][0]) == set(defs["target"]["properties"])
    assert set(stack) == set(defs["stack"]["properties"])
    assert set(stack["allow"]) == set(defs["stack"]["properties"]["allow"]["properties"])
    assert set(stack["ignoreDifferences"][0]) == set(
        defs["stack"]["properties"]["ignoreDifferences"]["items"]["properties"]
    )


def test_defaults(tmp_path: Path) -> None:
    config = load_config(make_repo(tmp_path, "stacks: [{name: a, path: a}]"))

    assert config.targets == (Target("default", context=None, vars={}, kube_version="v1.36.0"),)
    assert config.stacks == (Stack("a", "a"),)
    stack = config.stacks[0]
    assert (stack.render, stack.prune, stack.wait, stack.timeout) == ("auto", True, True, 300.0)
    assert stack.allow == AllowPolicy(namespaces=None, cluster_scoped=True, cluster_kinds=None)


@pytest.mark.parametrize(
    ("value", "expected"), [("true", {}), ("false", None), ("{A: x, _b2: 1}", {"A": "x", "_b2": 1})]
)
def test_item16_substitute_is_off_by_default_and_turned_on_per_stack(
    tmp_path: Path, value: str, expected: dict[str, Any] | None
) -> None:
    config = load_config(
        make_repo(tmp_path, f"stacks: [{{name: a, path: a}}, {{name: b, path: b, substitute: {value}}}]")
    )
    assert [s.substitute for s in config.stacks] == [None, expected]


@pytest.mark.parametrize("value", ["{a-b: x}", "{1a: x}", "{A: [1]}", "[A]", "'yes'"])
def test_item16_substitute_variables_are_checked(tmp_path: Path, value: str) -> None:
    (error,) = errors_of(tmp_path, f"stacks:\n  - name: a\n    path: a\n    substitute: {value}\n")
    assert error.startswith("config: gitops.yaml:4: stacks[0].substitute: expected true, false, or a mapping of")


def test_schema_file_is_valid_draft_2020_12() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())

    Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["stack"]["properties"]["render"]["enum"] == list(RENDERERS)


def test_shipped_example_loads() -> None:
    config = load_config(EXAMPLES)

    assert config.stacks[0].name == "platform"
    assert target(config, None).name == "local"


STACK_A = "stacks:\n  - name: a\n    path: a\n"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            "stacks: [{name: a, path: a}]\nstack: []\n",
            "gitops.yaml:2: stack: unknown key 'stack'; did you mean 'stacks'?",
            id="unknown-top-level-key",
        ),
        pytest.param(
            STACK_A + "    prunee: true\n",
            "gitops.yaml:4: stacks[0].prunee: unknown key 'prunee'; did you mean 'prune'?",
            id="unknown-stack-key",
        ),
        pytest.param(
            STACK_A + "    xyzzy: 1\n",
            "stacks[0].xyzzy: unknown key 'xyzzy'; known keys: name, path, render,",
            id="unknown-key-lists-known-keys",
        ),
        pytest.param(
            STACK_A + "    allow: {clusterscoped: false}\n",
            "stacks[0].allow.clusterscoped: unknown key 'clusterscoped'; did you mean 'clusterScoped'?",
            id="unknown-nested-key",
        ),
        pytest.param(
            STACK_A + '    wait: "yes"\n',
            "gitops.yaml:4: stacks[0].wait: expected a boolean, got 'yes'",
            id="not-a-bool",
        ),
        pytest.param(STACK_A + "    dependsOn: b\n", "stacks[0].dependsOn: expected a list, got 'b'", id="not-a-list"),
        pytest.param(
            STACK_A + "    allow: [x]\n", "stacks[0].allow: expected a mapping, got a list", id="not-a-mapping"
        ),
        pytest.param(
            "- a\n", "gitops.yaml:1: (top level): expected a mapping, got a list", id="top-level-not-a-mapping"
        ),
        pytest.param(
            "targets: [{name: t, vars: {x: [1]}}]\n" + STACK_A,
            "gitops.yaml:1: targets[0].vars.x: expected a string, a number or a boolean, got a list",
            id="target-var-not-scalar",
        ),
        pytest.param(
            STACK_A + "    vars: {1: x}\n", "stacks[0].vars: keys must be strings, got 1", id="var-name-not-a-string"
        ),
        pytest.param(
            STACK_A + "    render: helmm\n",
            "stacks[0].render: expected one of auto, plain, jinja, kustomize, helm, got 'helmm'",
            id="render-not-in-enum",
        ),
        pytest.param(
            STACK_A + "    timeout: 300\n",
            "stacks[0].timeout: expected a duration like 90s, 5m or 1h30m, got 300",
            id="timeout-not-a-duration",
        ),
        pytest.param(
            STACK_A + "    timeout: 5 minutes\n",
            "stacks[0].timeout: expected a duration like 90s, 5m or 1h30m, got '5 minutes'",
            id="timeout-bad-unit",
        ),
        pytest.param(
            "stacks: [{name: Bad_Name, path: a}]\n",
            "stacks[0].name: expected a DNS label: lowercase letters, digits and '-', starting and ending with a letter"
            " or digit, at most 63 characters, got 'Bad_Name'",
            id="stack-name-not-a-dns-label",
        ),
        pytest.param(
            f"stacks: [{{name: {'a' * 64}, path: a}}]\n",
            "stacks[0].name: expected a DNS label",
            id="stack-name-too-long",
        ),
        pytest.param(
            "targets: [{name: t, kubeVersion: latest}]\n" + STACK_A,
            "targets[0].kubeVersion: expected a Kubernetes version like v1.36.0 or 1.36, got 'latest'",
            id="kube-version",
        ),
        pytest.param(
            STACK_A + "    ignoreDifferences: [{kind: Deployment, jsonPointers: [spec/replicas]}]\n",
            "stacks[0].ignoreDifferences[0].jsonPointers[0]: expected a JSON pointer starting with '/'",
            id="json-pointer-without-slash",
        ),
        pytest.param(
            STACK_A + "    ignoreDifferences: [{kind: Deployment}]\n",
            "stacks[0].ignoreDifferences[0]: missing required key 'jsonPointers'",
            id="ignore-differences-without-pointers",
        ),
        pytest.param(
            "stacks:\n  - name: a\n", "gitops.yaml:2: stacks[0]: missing required key 'path'", id="stack-without-path"
        ),
        pytest.param("targets: [{name: t}]\n", "(top level): missing required key 'stacks'", id="no-stacks"),
        pytest.param("stacks: []\n", "gitops.yaml:1: stacks: must not be empty", id="empty-stacks"),
        pytest.param(
            STACK_A + "    allow: {namespaces: [Apps]}\n",
            "stacks[0].allow.namespaces[0]: expected a DNS label",
            id="allowed-namespace-not-a-dns-label",
        ),
    ],
)
def test_schema_error_names_file_line_and_key_path(tmp_path: Path, config: str, expected: str) -> None:
    errors = errors_of(tmp_path, config)

    assert len(errors) == 1, errors
    assert errors[0].startswith("config: gitops.yaml:")
    assert expected in errors[0]


def test_every_schema_error_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        """\
        stacks:
          - name: a
            path: a
            render: kustomise
            wait: maybe
          - name: b
            prunee: false
        """,
    )

    assert errors == [
        "config: gitops.yaml:4: stacks[0].render: expected one of auto, plain, jinja, kustomize, helm, got 'kustomise'",
        "config: gitops.yaml:5: stacks[0].wait: expected a boolean, got 'maybe'",
        "config: gitops.yaml:6: stacks[1]: missing required key 'path'",
        "config: gitops.yaml:7: stacks[1].prunee: unknown key 'prunee'; did you mean 'prune'?",
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            """\
            stacks:
              - {name: a, path: a, dependsOn: [b]}
              - {name: b, path: b, dependsOn: [c]}
              - {name: c, path: c, dependsOn: [a]}
            """,
            "gitops.yaml:4: stacks[2].dependsOn[0]: dependsOn cycle: a → b → c → a; remove one of these dependencies",
            id="depends-on-cycle",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, dependsOn: [platfrom]}]\n",
            "stacks[0].dependsOn[0]: unknown stack 'platfrom'; stacks: a",
            id="depends-on-unknown-stack",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, dependsOn: [a]}]\n",
            "stacks[0].dependsOn[0]: stack 'a' cannot depend on itself",
            id="depends-on-itself",
        ),
        pytest.param(
            "targets: [{name: prod}]\nstacks: [{name: a, path: a, targets: [prd]}]\n",
            "gitops.yaml:2: stacks[0].targets[0]: unknown target 'prd'; targets: prod",
            id="unknown-target",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, targets: [prod]}]\n",
            "stacks[0].targets[0]: unknown target 'prod'; targets: default",
            id="unknown-target-with-the-default-target",
        ),
        pytest.param(
            "stacks:\n  - {name: a, path: a}\n  - {name: a, path: b}\n",
            "gitops.yaml:3: stacks[1].name: duplicate stack name 'a' (also stacks[0])",
            id="duplicate-stack-name",
        ),
        pytest.param(
            "targets: [{name: t}, {name: t}]\n" + STACK_A,
            "targets[1].name: duplicate target name 't' (also targets[0])",
            id="duplicate-target-name",
        ),
        pytest.param(
            "stacks: [{name: a, path: x/../../etc}]\n",
            "stacks[0].path: 'x/../../etc' escapes the repository; give a path inside it",
            id="path-escapes-with-dotdot",
        ),
        pytest.param(
            "stacks: [{name: a, path: /etc}]\n",
            "stacks[0].path: '/etc' is absolute; give a path relative to the repository root",
            id="path-absolute",
        ),
        pytest.param(
            "stacks: [{name: a, path: 'https://github.com/org/repo'}]\n",
            "stacks[0].path: 'https://github.com/org/repo' is a URL; gitops-job reads only files inside the repository",
            id="path-url",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, values: ['oci://registry/values.yaml']}]\n",
            "stacks[0].values[0]: 'oci://registry/values.yaml' is a URL",
            id="values-url",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, values: [../values.yaml]}]\n",
            "stacks[0].values[0]: '../values.yaml' escapes the repository; give a path inside it",
            id="values-escapes",
        ),
        pytest.param(
            "stacks: [{name: a, path: .git/hooks}]\n",
            "stacks[0].path: '.git/hooks' is inside .git (refused: it may hold credentials)",
            id="path-in-dot-git",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, values: [.git/config]}]\n",
            "stacks[0].values[0]: '.git/config' is inside .git (refused: it may hold credentials)",
            id="values-in-dot-git",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, values: [a/missing.yaml]}]\n",
            "stacks[0].values[0]: 'a/missing.yaml' does not exist",
            id="values-missing",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, values: [a]}]\n",
            "stacks[0].values[0]: 'a' is not a file",
            id="values-not-a-file",
        ),
        pytest.param(
            "stacks: [{name: a, path: nowhere}]\n", "stacks[0].path: 'nowhere' does not exist", id="path-missing"
        ),
        pytest.param(
            "stacks: [{name: a, path: gitops.yaml}]\n",
            "stacks[0].path: 'gitops.yaml' is not a directory",
            id="path-not-a-directory",
        ),
        pytest.param(
            "stacks: [{name: a, path: a, namespace: b, allow: {namespaces: [a]}}]\n",
            "stacks[0].namespace: 'b' is not in allow.namespaces (a)",
            id="namespace-not-allowed",
        ),
    ],
)
def test_semantic_error_names_file_line_and_key_path(tmp_path: Path, config: str, expected: str) -> None:
    errors = errors_of(tmp_path, config)

    assert len(errors) == 1, errors
    assert expected in errors[0]


def test_path_escaping_through_a_symlink(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (tmp_path / "outside").mkdir()
    repo.mkdir()
    (repo / "link").symlink_to(tmp_path / "outside", target_is_directory=True)

    errors = errors_of(repo, "stacks: [{name: a, path: link/}]\n")

    assert errors == [
        "config: gitops.yaml:1: stacks[0].path: 'link/' escapes the repository through a symlink; point the symlink "
        "inside the repository"
    ]


def test_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    make_repo(tmp_path, "stacks: [{name: a, path: ./current}]\n", dirs=("apps/v2",))
    (tmp_path / "current").symlink_to(tmp_path / "apps/v2", target_is_directory=True)

    assert load_config(tmp_path).stacks[0].path == "apps/v2"


def test_all_cross_reference_errors_are_reported_at_once(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        """\
        stacks:
          - {name: a, path: a, dependsOn: [b, zz]}
          - {name: b, path: ../b, dependsOn: [a]}
        """,
    )

    assert [e.split(": ")[1:3] for e in errors] == [
        ["gitops.yaml:2", "stacks[0].dependsOn[1]"],
        ["gitops.yaml:3", "stacks[1].path"],
        ["gitops.yaml:3", "stacks[1].dependsOn[0]"],
    ]
    assert "dependsOn cycle: a → b → a" in errors[2]


@pytest.mark.parametrize(
    ("stacks", "order"),
    [
        pytest.param("[{name: a, path: a}, {name: b, path: b}, {name: c, path: c}]", "abc", id="declaration-order"),
        pytest.param(
            "[{name: c, path: c, dependsOn: [b]}, {name: a, path: a}, {name: b, path: b, dependsOn: [a]}]",
            "abc",
            id="chain-declared-backwards",
        ),
        pytest.param(
            "[{name: c, path: c, dependsOn: [a]}, {name: b, path: b}, {name: a, path: a}]",
            "bac",
            id="ties-keep-declaration-order",
        ),
        pytest.param(
            "[{name: c, path: c, dependsOn: [a, b]}, {name: b, path: b, dependsOn: [a]}, {name: a, path: a}]",
            "abc",
            id="diamond",
        ),
    ],
)
def test_stacks_are_in_depends_on_order(tmp_path: Path, stacks: str, order: str) -> None:
    config = load_config(make_repo(tmp_path, f"stacks: {stacks}\n"))

    assert "".join(s.name for s in config.stacks) == order


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("500ms", 0.5), ("1m30s", 90.0)],
)
def test_timeout_is_a_go_duration(tmp_path: Path, timeout: str, seconds: float) -> None:
    config = load_config(make_repo(tmp_path, f"stacks: [{{name: a, path: a, timeout: {timeout}}}]\n"))

    assert config.stacks[0].timeout == seconds


@pytest.mark.parametrize(("given", "normalised"), [("1.36", "v1.36"), ("v1.35.2", "v1.35.2"), ("1.34.0", "v1.34.0")])
def test_kube_version_gets_a_leading_v(tmp_path: Path, given: str, normalised: str) -> None:
    config = load_config(make_repo(tmp_path, f"targets: [{{name: t, kubeVersion: '{given}'}}]\n" + STACK_A))

    assert config.targets[0].kube_version == normalised


SELECTION = """\
targets: [{name: staging}, {name: prod}]
stacks:
  - {name: a, path: a}
  - {name: b, path: b, targets: [prod], dependsOn: [c]}
  - {name: c, path: c}
"""


def test_target_helper(tmp_path: Path) -> None:
    config = load_config(make_repo(tmp_path, SELECTION))

    assert target(config, None).name == "staging"
    assert target(config, "prod").name == "prod"
    with pytest.raises(ConfigError, match=r"unknown target 'qa'; targets: staging, prod"):
        target(config, "qa")


def test_stacks_for_helper(tmp_path: Path) -> None:
    config = load_config(make_repo(tmp_path, SELECTION))

    def names(stacks: tuple[Stack, ...]) -> list[str]:
        return [s.name for s in stacks]

    assert names(stacks_for(config, "staging")) == ["a", "c"]
    assert names(stacks_for(config, "prod")) == ["a", "c", "b"]
    assert names(stacks_for(config, "prod", ["b", "a"])) == ["a", "b"]


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        pytest.param(["zz"], ["config: gitops.yaml: unknown stack 'zz'; stacks: a, c, b"], id="unknown-stack"),
        pytest.param(
            ["b", "zz"],
            [
                "config: gitops.yaml: stack 'b' does not apply to target 'staging' (its targets: prod)",
                "config: gitops.yaml: unknown stack 'zz'; stacks: a, c, b",
            ],
            id="every-bad-name-reported",
        ),
    ],
)
def test_stacks_for_refuses_names_it_cannot_select(tmp_path: Path, only: list[str], expected: list[str]) -> None:
    config = load_config(make_repo(tmp_path, SELECTION))

    with pytest.raises(GitopsJobError) as info:
        stacks_for(config, "staging", only)

    assert messages(info.value) == expected


def test_missing_config_file_says_which_file_and_that_config_overrides(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)

    assert str(info.value) == (
        f"config: gitops.yaml: expected the repo config at {tmp_path.resolve() / 'gitops.yaml'};"
        " pass --config FILE to read another file"
    )


def test_config_file_option_reads_another_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", STACK_A)
    other = tmp_path / "clusters.yaml"
    other.write_text("stacks: [{name: b, path: b}]\n")

    config = load_config(repo, other)

    assert (config.file, config.stacks[0].name) == (other, "b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            STACK_A + "---\n" + STACK_A,
            "config: gitops.yaml: expected one YAML document (a mapping with 'stacks'), found 2",
            id="two-documents",
        ),
        pytest.param(
            "", "config: gitops.yaml: expected one YAML document (a mapping with 'stacks'), found 0", id="empty"
        ),
        pytest.param(
            STACK_A + "    path: b\n", "config: gitops.yaml:4: invalid YAML: duplicate key 'path'", id="duplicate-key"
        ),
        pytest.param("stacks: !!python/object:os.system {}\n", "config: gitops.yaml:1: invalid YAML", id="unsafe-tag"),
    ],
)
def test_yaml_problems_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(make_repo(tmp_path, text))

    assert str(info.value).startswith(expected)


def test_key_lines_found_in_flow_and_block_style(tmp_path: Path) -> None:
    config: dict[str, Any] = {"stacks": [{"name": "a", "path": "a"}, {"name": "b", "path": "b", "wiat": True}]}
    errors = errors_of(tmp_path, yaml.safe_dump(config, default_flow_style=False, sort_keys=False))

    assert errors == ["config: gitops.yaml:6: stacks[1].wiat: unknown key 'wiat'; did you mean 'wait'?"]


def test_docs_example_loads(tmp_path: Path) -> None:
    """The complete example in docs/config.md stays a valid config."""
    docs = (Path(__file__).parent.parent / "docs/config.md").read_text()
    example = docs.split("```yaml\n")[-1].split("```")[0]
    stacks = yaml.safe_load(example)["stacks"]
    make_repo(tmp_path, example, dirs=tuple(s["path"] for s in stacks))
    for values in (v for s in stacks for v in s.get("values", ())):
        (tmp_path / values).write_text("{}\n")

    config = load_config(tmp_path)

    assert [s.name for s in stacks_for(config, "production")] == ["platform", "shop-production", "settings", "cache"]


def test_item18_a_dependson_chain_of_a_thousand_stacks_loads_in_order(tmp_path: Path) -> None:
    """No recursion (the cycle check walks iteratively, so Python's limit of 1,000 frames is never met): a chain of
    1,000 stacks declared backwards is ordered, and a cycle through 2,000 stacks is reported whole. (How fast is
    for a benchmark, not a timed test: this one ran 11 s on a machine at load 12.)"""
    n = 1000
    chain = "".join(f"  - {{name: s{i}, path: a, dependsOn: [s{i + 1}]}}\n" for i in range(n - 1))
    config = load_config(make_repo(tmp_path, f"stacks:\n{chain}  - {{name: s{n - 1}, path: a}}\n"))

    assert [s.name for s in config.stacks] == [f"s{i}" for i in reversed(range(n))]
    cycle = "".join(f"  - {{name: s{i}, path: a, dependsOn: [s{(i + 1) % (2 * n)}]}}\n" for i in range(2 * n))
    errors = errors_of(tmp_path, f"stacks:\n{cycle}")
    assert len(errors) == 1 and errors[0].count(" → ") == 2 * n, errors[0][:200]
