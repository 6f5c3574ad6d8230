"""Workflows and action.yml, linted as tests (no cluster): actionlint, zizmor and our own policy (row P1).

actionlint (pinned, built from its Go module into the cache by ``tools.localcluster build``) checks workflow files only:
given action.yml it reports a workflow without ``on:``/``jobs:``. So action.yml gets (a) our structural checks
(``tools.workflow_policy.action_problems``) and (b) actionlint on a synthetic workflow that carries the action's
steps, inputs and outputs, so expressions, step outputs and known actions' inputs are still type-checked. The run-step
script itself is executed with a stand-in gitops-job to pin its argument and kubeconfig handling.

The action's shell scripts are linted by shellcheck (``make test`` installs it: tools/system-tools); actionlint runs
with shellcheck disabled so that its verdict does not depend on which shellcheck it finds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import workflow_policy
from tools.localcluster import build

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted([*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("examples/workflows/*.yml")])
ACTION = ROOT / "action.yml"
# The regular persona hides code smells; pedantic adds them (e.g. missing concurrency limits) and we keep it at zero
# findings of any severity. The auditor persona is documented as "false positives OK" and is not a gate.
ZIZMOR_ARGS = ["--offline", "--no-config", "--persona", "pedantic", "--format", "json"]


def test_the_files_exist() -> None:
    names = {str(p.relative_to(ROOT)) for p in WORKFLOWS}
    assert {
        ".github/workflows/ci.yml",
        "examples/workflows/plan.yml",
        "examples/workflows/apply.yml",
        "examples/workflows/drift.yml",
    } <= names
    assert ACTION.is_file()


def test_ci_caches_every_built_component() -> None:
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    cache = next(s for s in ci["jobs"]["test"]["steps"] if str(s.get("uses", "")).startswith("actions/cache@"))
    paths = set(cache["with"]["path"].split())
    assert paths == {f"~/.cache/gitops-job/{c.name}-*" for c in build.COMPONENTS}
    assert "hashFiles('tools/localcluster/versions.py', 'tools/localcluster/build.py')" in cache["with"]["key"]


# --- actionlint ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """The pinned actionlint from the cache, built now if the cache lacks it (``make build`` builds it already)."""
    build.build_all(["actionlint"])
    return build.binary("actionlint")


def run_actionlint(binary: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


# `uses: owner/repo@<40 hex> # v5.0.1`: actionlint knows the inputs of popular actions only by tag, not by SHA.
_PINNED = re.compile(r"(uses:\s*)([\w.-]+/[\w./-]+)@[0-9a-f]{40}(\s*#\s*(v\d+)\S*)")


def by_major_tag(text: str) -> str:
    """The same file with each SHA pin replaced by the major tag of its version comment (lines stay where they are)."""
    return _PINNED.sub(lambda m: f"{m[1]}{m[2]}@{m[4]}{m[3]}", text)


def test_actionlint_passes_every_workflow(actionlint: Path) -> None:
    result = run_actionlint(actionlint, *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_checks_the_inputs_of_pinned_actions(actionlint: Path, tmp_path: Path) -> None:
    copies = []
    for path in WORKFLOWS:
        text = path.read_text()
        assert by_major_tag(text).count("\n") == text.count("\n")
        copies.append(tmp_path / path.parent.parent.name / path.name)
        copies[-1].parent.mkdir(exist_ok=True)
        copies[-1].write_text(by_major_tag(text))
    assert "actions/checkout@v7 # v7.0.1" in copies[0].read_text()
    result = run_actionlint(actionlint, *copies)
    assert result.returncode == 0, result.stdout + result.stderr
    # ... and that check bites: a misspelt input of a pinned action it knows. (actionlint 1.7.12 knows the inputs of
    # upload-artifact@v7 but not yet those of checkout@v7, setup-python@v7, setup-go@v7 or cache@v6.)
    plan = next(c for c in copies if c.name == "plan.yml")
    plan.write_text(plan.read_text().replace("if-no-files-found:", "if-no-file-found:"))
    result = run_actionlint(actionlint, plan)
    assert result.returncode == 1
    assert 'input "if-no-file-found" is not defined in action "actions/upload-artifact@v7"' in result.stdout


def test_actionlint_fails_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "permissions: {}\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    permissions: {}\n"
        "    needs: [lint]\n"
        "    steps:\n"
        "      - run: echo ${{ steps.nope.outputs.x }}\n"
    )
    result = run_actionlint(actionlint, broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'property "nope" is not defined' in result.stdout
    assert 'needs job "lint" which does not exist' in result.stdout


def action_as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """A workflow that runs the composite action's steps, so actionlint can type-check them.

    ``inputs.*`` becomes workflow_call inputs (strings, as an action's are), the outputs become job outputs over the
    same ``steps.*`` expressions; steps are copied as they are (a composite step is a subset of a workflow step).
    """
    inputs = {name: {"type": "string", "required": False} for name in action.get("inputs") or {}}
    outputs = {name: spec["value"] for name, spec in (action.get("outputs") or {}).items()}
    return {
        "on": {"workflow_call": {"inputs": inputs}},
        "permissions": {},
        "jobs": {
            "action": {
                "runs-on": "ubuntu-latest",
                "permissions": {},
                "outputs": outputs,
                "steps": action["runs"]["steps"],
            }
        },
    }


def load_action() -> dict[str, Any]:
    doc = yaml.safe_load(ACTION.read_text())
    assert isinstance(doc, dict)
    return doc


def test_actionlint_passes_the_action_steps(actionlint: Path, tmp_path: Path) -> None:
    action = yaml.safe_load(by_major_tag(ACTION.read_text()))  # so the pinned actions' inputs are checked too
    assert any(str(s.get("uses", "")).endswith("@v7") for s in action["runs"]["steps"])
    synthetic = tmp_path / "action-as-workflow.yml"
    synthetic.write_text(yaml.safe_dump(action_as_workflow(action), sort_keys=False))
    result = run_actionlint(actionlint, synthetic)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_on_the_synthetic_workflow_can_fail(actionlint: Path, tmp_path: Path) -> None:
    action = load_action()
    action["runs"]["steps"][-1]["env"]["BAD"] = "${{ inputs.no-such-input }}"
    synthetic = tmp_path / "action-as-workflow.yml"
    synthetic.write_text(yaml.safe_dump(action_as_workflow(action), sort_keys=False))
    result = run_actionlint(actionlint, synthetic)
    assert result.returncode == 1
    assert 'property "no-such-input" is not defined' in result.stdout


# --- zizmor -------------------------------------------------------------------------------------------------------


def zizmor(*files: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "zizmor"
    assert exe.exists(), "zizmor is a test dependency: pip install -e '.[test]'"
    return subprocess.run([str(exe), *ZIZMOR_ARGS, *map(str, files)], capture_output=True, text=True, cwd=ROOT)


def test_zizmor_finds_nothing() -> None:
    result = zizmor(*WORKFLOWS, ACTION)
    findings = json.loads(result.stdout or "[]")
    summary = [f"{f['ident']}: {f['desc']} ({f['locations'][0]['symbolic']['key']})" for f in findings]
    assert result.returncode == 0 and not findings, "\n".join(summary) or result.stderr


def test_zizmor_flags_template_injection_in_an_action(tmp_path: Path) -> None:
    bad = tmp_path / "action.yml"
    bad.write_text(
        "name: bad\n"
        "description: interpolates an input into a script\n"
        "inputs:\n"
        "  target:\n"
        "    description: a target\n"
        "runs:\n"
        "  using: composite\n"
        "  steps:\n"
        "    - shell: bash\n"
        '      run: echo "${{ inputs.target }}"\n'
    )
    result = zizmor(bad)
    assert result.returncode != 0
    assert "template-injection" in {f["ident"] for f in json.loads(result.stdout)}


# --- our own policy (P1) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: str(p.relative_to(ROOT)))
def test_policy_passes_our_files(path: Path) -> None:
    assert workflow_policy.file_problems(path) == []


GOOD_JOB = """
  test:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
      - uses: ./local-action
      - uses: docker://alpine@sha256:{digest}
      - run: true
""".replace("{digest}", "a" * 64)

BAD_WORKFLOWS = {
    "no-permissions": (
        "on: push\njobs:" + GOOD_JOB + "  lint:\n    runs-on: ubuntu-latest\n    steps:\n      - run: true\n",
        "job lint: no `permissions:` of its own",
    ),
    "unpinned": (
        "on: push\njobs:" + GOOD_JOB.replace("08c6903cd8c0fde910a37f88322edcfb5dd907a8", "v5"),
        "`actions/checkout@v5` is not pinned by a full 40-hex commit SHA",
    ),
    "pull-request-target": (
        "on:\n  pull_request_target:\n    types: [opened]\njobs:" + GOOD_JOB,
        "pull_request_target",
    ),
}


@pytest.mark.parametrize("case", BAD_WORKFLOWS)
def test_policy_fails_a_bad_workflow(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BAD_WORKFLOWS[case]
    path = tmp_path / f"{case}.yml"
    path.write_text(text)
    problems = workflow_policy.file_problems(path)
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert workflow_policy.main([str(path)]) == 1
    assert expected in capsys.readouterr().out


def test_policy_accepts_the_good_job_alone(tmp_path: Path) -> None:
    path = tmp_path / "good.yml"
    path.write_text("on: [push, pull_request]\njobs:" + GOOD_JOB)
    assert workflow_policy.file_problems(path) == []


@pytest.mark.parametrize(
    ("uses", "ok"),
    [
        ("actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8", True),
        ("owner/repo/path/to/action@" + "0" * 40, True),
        ("./.github/actions/local", True),
        ("docker://alpine@sha256:" + "b" * 64, True),
        ("actions/checkout@v5", False),
        ("actions/checkout@08c6903", False),  # short SHAs can collide with a branch or tag name
        ("actions/checkout@main", False),
        ("docker://alpine:3.20", False),
        ("owner/repo/.github/workflows/reusable.yml@" + "A" * 40, False),  # not lowercase hex: a tag can be named so
    ],
)
def test_uses_pinning(uses: str, ok: bool) -> None:
    assert (workflow_policy.uses_problem(uses) is None) == ok


def test_reusable_workflow_jobs_are_checked_too() -> None:
    doc = {"on": "push", "jobs": {"call": {"uses": "owner/repo/.github/workflows/x.yml@main", "permissions": {}}}}
    assert workflow_policy.workflow_problems(doc) == [
        "job call: `owner/repo/.github/workflows/x.yml@main` is not pinned by a full 40-hex commit SHA"
    ]


def test_action_policy_fails_interpolation_in_run_and_a_missing_shell() -> None:
    action = load_action()
    action["runs"]["steps"].append({"id": "bad", "run": "echo ${{ inputs.target }}"})
    assert workflow_policy.action_problems(action) == [
        "step bad: a composite `run:` step must name its `shell:`",
        "step bad: `${{ }}` inside `run:` (pass the value through `env:` instead)",
    ]


def test_action_declares_the_documented_interface() -> None:
    action = load_action()
    assert set(action["inputs"]) == {
        "command",
        "config",
        "target",
        "stack",
        "kubeconfig",
        "github-token",
        "comment",
        "exit-code",
        "require-reviewed-plan",
        "allow-branch",
        "working-directory",
    }
    assert set(action["outputs"]) == {"compared", "has-changes", "created", "updated", "pruned", "plan-digest",
                                      "artifact-dir"}  # fmt: skip
    defaults = {name: spec.get("default") for name, spec in action["inputs"].items()}
    assert defaults["command"] == "plan"
    assert defaults["config"] == "gitops.yaml"
    assert defaults["github-token"] == "${{ github.token }}"
    assert (defaults["comment"], defaults["exit-code"], defaults["require-reviewed-plan"]) == ("true", "false", "false")
    # The action installs its own copy, never the checked-out repository's.
    install = next(s for s in action["runs"]["steps"] if s.get("id") == "install")
    assert '"$GITHUB_ACTION_PATH"' in install["run"]


# --- the action's run step, executed with a stand-in gitops-job ---------------------------------------------------

FAKE_GITOPS_JOB = """#!/usr/bin/env bash
# Records its arguments and, for --kubeconfig, the file's mode and content; exits with $FAKE_RC.
out="$FAKE_LOG"
printf '%s\\n' "$@" >"$out.args"
prev=""
for a in "$@"; do
  if [[ "$prev" == --kubeconfig ]]; then stat -c '%a' -- "$a" >"$out.mode"; cat -- "$a" >"$out.kubeconfig"; fi
  prev="$a"
done
printf '%s' "$GITHUB_TOKEN" >"$out.token"
exit "${FAKE_RC:-0}"
"""


def step_script(step_id: str) -> str:
    step = next(s for s in load_action()["runs"]["steps"] if s.get("id") == step_id)
    assert step["shell"] == "bash"
    return str(step["run"])


class RunStep:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.workdir = tmp_path / "repo"
        self.workdir.mkdir()
        (tmp_path / "runner-temp").mkdir()
        fake = tmp_path / "gitops-job"
        fake.write_text(FAKE_GITOPS_JOB)
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
        self.log = tmp_path / "log"
        self.output = tmp_path / "github-output"
        self.output.write_text("")

    def __call__(self, rc: int = 0, **inputs: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "RUNNER_TEMP": str(self.tmp / "runner-temp"),
            "GITHUB_OUTPUT": str(self.output),
            "GITOPS_JOB": str(self.tmp / "gitops-job"),
            "FAKE_LOG": str(self.log),
            "FAKE_RC": str(rc),
            "GITHUB_TOKEN": "t0ken",
            "INPUT_COMMAND": "plan",
            "INPUT_CONFIG": "gitops.yaml",
            "INPUT_TARGET": "",
            "INPUT_STACK": "",
            "INPUT_KUBECONFIG": "",
            "INPUT_COMMENT": "true",
            "INPUT_EXIT_CODE": "false",
            "INPUT_REQUIRE_REVIEWED_PLAN": "false",
            "INPUT_ALLOW_BRANCH": "false",
            "INPUT_WORKING_DIRECTORY": str(self.workdir),
        }
        env.update({"INPUT_" + k.upper(): v for k, v in inputs.items()})
        return subprocess.run(["bash", "-c", step_script("run")], env=env, capture_output=True, text=True)

    def args(self) -> list[str]:
        return (self.tmp / "log.args").read_text().splitlines()

    def artifact_dir(self) -> str:
        return self.output.read_text().split("artifact-dir=", 1)[1].splitlines()[0]


@pytest.fixture
def run_step(tmp_path: Path) -> RunStep:
    return RunStep(tmp_path)


def test_run_step_defaults(run_step: RunStep) -> None:
    result = run_step()
    assert result.returncode == 0, result.stderr
    artifacts = run_step.artifact_dir()
    assert artifacts.startswith(str(run_step.tmp / "runner-temp")) and Path(artifacts).is_dir()
    assert run_step.args() == [
        *("plan", "--repo", ".", "--config", "gitops.yaml", "--github", "--artifact-dir", artifacts, "--comment"),
    ]
    assert "--kubeconfig" not in run_step.args()  # the runner's KUBECONFIG is left alone
    assert (run_step.tmp / "log.token").read_text() == "t0ken"


def test_run_step_flags_and_stacks_are_split_not_globbed(run_step: RunStep) -> None:
    (run_step.workdir / "apps-x").mkdir()  # a glob `apps*` would match this
    result = run_step(
        command="apply", target="prod", stack="apps*  infra\nplatform\n", comment="false", require_reviewed_plan="true"
    )
    assert result.returncode == 0, result.stderr
    args = run_step.args()
    assert args[:2] == ["apply", "--repo"]
    assert args[args.index("--target") + 1] == "prod"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--stack"] == ["apps*", "infra", "platform"]
    assert "--no-comment" in args and "--require-reviewed-plan" in args and "--exit-code" not in args
    assert "--allow-branch" not in args
    assert run_step(command="apply", allow_branch="true").returncode == 0
    assert "--allow-branch" in run_step.args()


def test_run_step_exit_code_is_for_plan_and_propagates(run_step: RunStep) -> None:
    result = run_step(rc=3, exit_code="true")
    assert result.returncode == 3
    assert "--exit-code" in run_step.args()
    result = run_step(command="apply", exit_code="true")
    assert result.returncode == 0
    assert "--exit-code" not in run_step.args()
    assert "exit-code applies to plan only" in result.stdout


def test_run_step_writes_kubeconfig_content_to_a_private_file_and_removes_it(run_step: RunStep) -> None:
    content = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {token: s3cret-value}\n"
    result = run_step(kubeconfig=content)
    assert result.returncode == 0, result.stderr
    assert (run_step.tmp / "log.mode").read_text().strip() == "600"
    assert (run_step.tmp / "log.kubeconfig").read_text().rstrip("\n") == content.rstrip("\n")
    written = Path(run_step.args()[run_step.args().index("--kubeconfig") + 1])
    assert written.parent == run_step.tmp / "runner-temp"
    assert not written.exists()  # removed when the step ends
    assert "s3cret" not in result.stdout + result.stderr


def test_run_step_uses_a_kubeconfig_path_as_it_is(run_step: RunStep) -> None:
    (run_step.workdir / "kc.yaml").write_text("apiVersion: v1\nkind: Config\n")
    result = run_step(kubeconfig="kc.yaml")
    assert result.returncode == 0, result.stderr
    assert run_step.args()[run_step.args().index("--kubeconfig") + 1] == "kc.yaml"
    assert (run_step.workdir / "kc.yaml").exists()  # a user's file is never removed


def test_run_step_refuses_a_kubeconfig_that_is_neither_and_does_not_print_it(run_step: RunStep) -> None:
    result = run_step(kubeconfig="no/such/file-or-s3cret")
    assert result.returncode == 1
    assert "neither an existing file" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
    assert not (run_step.tmp / "log.args").exists()  # gitops-job never ran


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"INPUT_COMMAND": "destroy"}, "input command must be plan or apply"),
        ({"INPUT_COMMENT": "yes"}, "input comment must be true or false"),
        ({"INPUT_EXIT_CODE": "1"}, "input exit-code must be true or false"),
        ({"INPUT_ALLOW_BRANCH": "yes"}, "input allow-branch must be true or false"),
    ],
)
def test_prepare_step_refuses_bad_inputs(inputs: dict[str, str], message: str, tmp_path: Path) -> None:
    output = tmp_path / "out"
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_OUTPUT": str(output),
        "INPUT_COMMAND": "plan",
        "INPUT_COMMENT": "true",
        "INPUT_EXIT_CODE": "false",
        "INPUT_REQUIRE_REVIEWED_PLAN": "false",
        "INPUT_ALLOW_BRANCH": "false",
        **inputs,
    }
    result = subprocess.run(["bash", "-c", step_script("prepare")], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert message in result.stdout


@pytest.mark.parametrize("step_id", ["prepare", "paths", "install", "tools", "run"])
def test_action_scripts_pass_shellcheck(step_id: str) -> None:
    assert shutil.which("shellcheck"), "shellcheck is not on PATH: `make test` installs it (tools/system-tools)"
    result = subprocess.run(
        ["shellcheck", "--shell=bash", "-"], input=step_script(step_id), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


# --- issue 12, item 8: the example workflows ----------------------------------------------------------------------

#: The current major version of every action the workflows and action.yml pin (December 2026).
CURRENT_MAJOR = {
    "actions/checkout": "v7",
    "actions/upload-artifact": "v7",
    "actions/setup-python": "v7",
    "actions/setup-go": "v7",
    "actions/cache": "v6",
    "aws-actions/configure-aws-credentials": "v6",
    "google-github-actions/auth": "v3",
    "azure/login": "v3",
}
EXAMPLES = ROOT / "examples/workflows"


def _jobs(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    return dict(doc["jobs"])


def _steps(path: Path) -> list[dict[str, Any]]:
    return [step for job in _jobs(path).values() for step in job.get("steps", [])]


def test_item12_8_pinned_actions_are_at_their_current_major_version() -> None:
    seen = {}
    for path in [*WORKFLOWS, ACTION]:
        for m in _PINNED.finditer(path.read_text()):
            name, major = m[2], m[4]
            if name.startswith("owner/"):
                continue  # the placeholder for gitops-job itself
            assert name in CURRENT_MAJOR, f"{path.name}: {name} has no known current major"
            assert major == CURRENT_MAJOR[name], f"{path.name}: {name}@{major}, current is {CURRENT_MAJOR[name]}"
            seen[name] = major
    assert set(seen) == set(CURRENT_MAJOR)


def test_item12_8_plan_runs_in_the_merge_queue_and_apply_and_drift_share_one_group() -> None:
    plan = yaml.safe_load((EXAMPLES / "plan.yml").read_text())
    assert "merge_group" in plan[True] and "pull_request" in plan[True]  # PyYAML reads `on:` as True
    assert "github.ref" in plan["concurrency"]["group"]  # a merge group has no pull request number
    groups = set()
    for name in ("apply.yml", "drift.yml", "apply-eks.yml", "apply-gke.yml", "apply-aks.yml"):
        concurrency = yaml.safe_load((EXAMPLES / name).read_text())["concurrency"]
        assert concurrency["cancel-in-progress"] is False, name  # never cancels an apply of the group
        groups.add(concurrency["group"])
    assert groups == {"gitops-job-production"}


def test_item12_8_every_artifact_upload_overwrites_on_a_re_run() -> None:
    uploads = [s for p in WORKFLOWS for s in _steps(p) if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(uploads) >= 6
    assert all(s["with"].get("overwrite") is True for s in uploads)


def test_item12_8_the_apply_credential_lives_only_in_the_protected_environment() -> None:
    """The plan credential (a pull request can edit its own workflow, so it must be read-only by construction) and
    the apply credential have different names; only jobs in the `production` environment name the apply one."""
    for path in EXAMPLES.glob("*.yml"):
        for job in _jobs(path).values():
            text = yaml.safe_dump(job)
            if "KUBECONFIG_APPLY" in text or "id-token" in json.dumps(job.get("permissions", {})):
                assert job.get("environment") == "production", path.name
            if job.get("environment") != "production":
                assert "secrets.KUBECONFIG_APPLY" not in text
    assert "secrets.KUBECONFIG_PLAN" in (EXAMPLES / "plan.yml").read_text()
    assert "secrets.KUBECONFIG_APPLY" in (EXAMPLES / "apply.yml").read_text()
    assert "secrets.KUBECONFIG " not in "".join(p.read_text() for p in EXAMPLES.glob("*.yml"))


@pytest.mark.parametrize(
    ("cloud", "login"),
    [("eks", "aws-actions/configure-aws-credentials@"), ("gke", "google-github-actions/auth@"),
     ("aks", "azure/login@")],
)  # fmt: skip
def test_item12_8_oidc_examples_store_no_cluster_credential(cloud: str, login: str) -> None:
    path = EXAMPLES / f"apply-{cloud}.yml"
    (job,) = _jobs(path).values()
    assert job["permissions"]["id-token"] == "write" and job["environment"] == "production"
    assert "secrets." not in path.read_text()
    names = [str(s.get("uses", "")) for s in job["steps"]]
    assert any(n.startswith(login) for n in names)
    run = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("owner/gitops-job@"))
    assert run["with"]["kubeconfig"] == "${{ runner.temp }}/kubeconfig"
