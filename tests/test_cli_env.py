"""Every option can be set as ``GITOPS_JOB_<COMMAND>_<OPTION>`` (the CLI's ``auto_envvar_prefix``), and the command
line wins over the environment. Driven through click's CliRunner with the pipeline replaced by a recorder: what
each command would run with is compared, nothing is rendered or sent. Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gitops_job.cli import main
from gitops_job.exitcodes import ExitCode
from gitops_job.identity import ObjectId
from gitops_job.outcomes import Action
from gitops_job.reconcile import context, state
from gitops_job.reconcile import run as pipeline
from gitops_job.reconcile.results import Plan, PlanEntry

NEW = PlanEntry(ObjectId("", "ConfigMap", "a", "x"), "app", Action.CREATE, after={"apiVersion": "v1",
                "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a"}})  # fmt: skip


class Stop(Exception):
    """Raised by the recorder once it has what a command would run with."""


class Recorder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, plan: Plan) -> None:
        self.settings: Any = None
        self.options: Any = None
        self.plan = plan
        monkeypatch.setattr(context, "select", self._stop)
        monkeypatch.setattr(state, "run_status", self._stop)
        monkeypatch.setattr(pipeline, "run_plan", self._plan)
        monkeypatch.setattr(pipeline, "run_apply", self._apply)

    def _stop(self, settings: Any, *args: Any, **kw: Any) -> Any:
        self.settings = settings
        raise Stop

    def _plan(self, settings: Any, **kw: Any) -> tuple[None, Plan]:
        self.settings = settings
        return None, self.plan

    def _apply(self, settings: Any, options: Any, **kw: Any) -> Any:
        self.settings, self.options = settings, options
        raise Stop


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    for name in ("KUBECONFIG", "GITOPS_JOB_TEST_KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    return Recorder(monkeypatch, Plan("t", ()))


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main.cli, args, env=env)


def stopped(result: Result) -> None:
    assert isinstance(result.exception, Stop), result.output + repr(result.exception)


@pytest.mark.parametrize(
    ("command", "env", "field", "expected"),
    [
        pytest.param("render", {"GITOPS_JOB_RENDER_TARGET": "prod"}, "target", "prod", id="render-target"),
        pytest.param("validate", {"GITOPS_JOB_VALIDATE_TARGET": "prod"}, "target", "prod", id="validate-target"),
        pytest.param("render", {"GITOPS_JOB_RENDER_STACK": "web"}, "stacks", ("web",), id="multiple-one"),
        pytest.param(
            "render",
            {"GITOPS_JOB_RENDER_STACK": "web  api"},
            "stacks",
            ("web", "api"),
            id="multiple-split-on-whitespace",
        ),
        pytest.param(
            "render", {"GITOPS_JOB_RENDER_STACKS": "web api"}, "stacks", ("web", "api"), id="multiple-by-parameter-name"
        ),
        pytest.param("render", {"GITOPS_JOB_RENDER_VAR": "a=1 b=x=y"}, "vars", {"a": "1", "b": "x=y"}, id="var-pairs"),
        pytest.param(
            "render", {"GITOPS_JOB_RENDER_CONFIG": "other.yaml"}, "config_file", Path("other.yaml"), id="config"
        ),
        pytest.param("status", {"GITOPS_JOB_STATUS_CONCURRENCY": "3"}, "concurrency", 3, id="status-int"),
        pytest.param(
            "status", {"GITOPS_JOB_STATUS_KUBECONFIG": "/k/config"}, "kubeconfig", "/k/config", id="status-kubeconfig"
        ),
        pytest.param(
            "status",
            {"KUBECONFIG": "/k/std", "GITOPS_JOB_STATUS_KUBECONFIG": "/k/config"},
            "kubeconfig",
            "/k/std",
            id="kubeconfig-variable-first",
        ),
        pytest.param("plan", {"GITOPS_JOB_PLAN_STACK": "web"}, "stacks", ("web",), id="plan-stack"),
        pytest.param("plan", {"GITOPS_JOB_RENDER_STACK": "web"}, "stacks", (), id="another-commands-variable"),
        pytest.param("plan", {"GITOPS_JOB_STACK": "web"}, "stacks", (), id="no-command-no-effect"),
    ],
)
def test_an_option_from_the_environment(
    recorder: Recorder, repo: Path, command: str, env: dict[str, str], field: str, expected: Any
) -> None:
    result = invoke([command, "--repo", str(repo)], env)
    if command != "plan":
        stopped(result)
    else:
        assert result.exit_code == 0, result.output
    assert getattr(recorder.settings, field) == expected


def test_the_repo_itself_from_the_environment(recorder: Recorder, repo: Path) -> None:
    stopped(invoke(["render"], {"GITOPS_JOB_RENDER_REPO": str(repo)}))
    assert recorder.settings.repo == repo


@pytest.mark.parametrize(
    ("command", "args", "env", "field", "expected"),
    [
        pytest.param("render", ["-t", "dev"], {"GITOPS_JOB_RENDER_TARGET": "prod"}, "target", "dev", id="target"),
        pytest.param(
            "render",
            ["-s", "a"],
            {"GITOPS_JOB_RENDER_STACK": "web api"},
            "stacks",
            ("a",),
            id="multiple-replaced-not-merged",
        ),
        pytest.param("render", ["--var", "a=2"], {"GITOPS_JOB_RENDER_VAR": "a=1 b=1"}, "vars", {"a": "2"}, id="var"),
        pytest.param(
            "status", ["--concurrency", "9"], {"GITOPS_JOB_STATUS_CONCURRENCY": "3"}, "concurrency", 9, id="int"
        ),
        pytest.param(
            "status", ["--kubeconfig", "/cli"], {"KUBECONFIG": "/k/std"}, "kubeconfig", "/cli", id="kubeconfig"
        ),
    ],
)
def test_the_command_line_wins(
    recorder: Recorder, repo: Path, command: str, args: list[str], env: dict[str, str], field: str, expected: Any
) -> None:
    stopped(invoke([command, "--repo", str(repo), *args], env))
    assert getattr(recorder.settings, field) == expected


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        pytest.param(
            {}, [], {"wait": True, "adopt": False, "allow_mass_prune": False, "lock_wait": 300.0}, id="defaults"
        ),
        pytest.param(
            {
                "GITOPS_JOB_APPLY_NO_WAIT": "1",
                "GITOPS_JOB_APPLY_ADOPT": "true",
                "GITOPS_JOB_APPLY_ALLOW_MASS_PRUNE": "yes",
                "GITOPS_JOB_APPLY_LOCK_TIMEOUT": "2.5",
            },
            [],
            {"wait": False, "adopt": True, "allow_mass_prune": True, "lock_wait": 2.5},
            id="flags-and-a-float",
        ),
        pytest.param(
            {"GITOPS_JOB_APPLY_ADOPT": "false", "GITOPS_JOB_APPLY_NO_WAIT": "0"},
            [],
            {"wait": True, "adopt": False},
            id="flags-off",
        ),
        pytest.param(
            {"GITOPS_JOB_APPLY_LOCK_TIMEOUT": "2.5"},
            ["--lock-timeout", "7"],
            {"lock_wait": 7.0},
            id="command-line-wins",
        ),
        pytest.param({"GITOPS_JOB_APPLY_REVISION": "abc123"}, [], {"revision": "abc123"}, id="revision"),
    ],
)
def test_apply_options_from_the_environment(
    recorder: Recorder, repo: Path, env: dict[str, str], args: list[str], expected: dict[str, Any]
) -> None:
    stopped(invoke(["apply", "--repo", str(repo), *args], env))
    assert {k: getattr(recorder.options, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("env", "code"),
    [
        pytest.param({}, ExitCode.OK, id="no-flag"),
        pytest.param({"GITOPS_JOB_PLAN_EXIT_CODE": "1"}, ExitCode.CHANGES, id="flag-on"),
        pytest.param({"GITOPS_JOB_PLAN_EXIT_CODE": "false"}, ExitCode.OK, id="flag-off"),
    ],
)
def test_a_flag_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, repo: Path, env: dict[str, str], code: int
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    Recorder(monkeypatch, Plan("t", (NEW,)))
    result = invoke(["plan", "--repo", str(repo)], env)
    assert result.exit_code == code, result.output
    assert "1 to create" in result.output


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        pytest.param(
            {"GITOPS_JOB_RENDER_OUTPUT": "xml"},
            "Invalid value for '-o' / '--output': 'xml' is not one of",
            id="a-bad-choice",
        ),
        pytest.param(
            {"GITOPS_JOB_STATUS_CONCURRENCY": "0"},
            "Invalid value for '--concurrency': 0 is not in the range",
            id="out-of-range",
        ),
        pytest.param({"GITOPS_JOB_RENDER_VAR": "novalue"}, "expected KEY=VALUE, got 'novalue'", id="bad-var"),
    ],
)
def test_a_bad_value_from_the_environment_is_a_usage_error(recorder: Recorder, repo: Path, env: dict[str, str],
                                                           fragment: str) -> None:  # fmt: skip
    command = next(iter(env)).split("_")[2].lower()
    result = invoke([command, "--repo", str(repo)], env)
    assert result.exit_code == ExitCode.USAGE
    assert fragment in result.output
    assert recorder.settings is None
