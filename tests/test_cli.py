"""The installed command line: version, help that teaches, documented exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitops_job import __version__
from gitops_job.exitcodes import ExitCode
from tests.helpers import EXAMPLES, SCRIPT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    result = run(flag)
    assert result.returncode == ExitCode.OK
    assert result.stdout.strip() == f"gitops-job, version {__version__}"


def test_module_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "gitops_job", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert __version__ in result.stdout


HEAVY = ("kubernetes", "urllib3", "jsonschema", "jinja2", "deepdiff", "github", "prometheus_client", "requests")
LOADED = """
import sys
from gitops_job.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def loaded_by(*args: str) -> set[str]:
    """The top-level packages a process has imported by the end of ``gitops-job <args>``."""
    done = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, timeout=60)
    return set(done.stdout.splitlines()[-1].split())


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("reconcile", "--help"), ("apply", "--help")])
def test_version_and_help_import_no_heavy_library(args: tuple[str, ...]) -> None:
    """Startup: the heavy libraries are imported only where a command uses them (the command modules and kube.py
    import them inside the functions that need them); ``--version`` loads no command module at all."""
    loaded = loaded_by(*args)
    assert "click" in loaded and "gitops_job" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_version_loads_no_command_module() -> None:
    done = subprocess.run([sys.executable, "-c", LOADED.replace('m.split(".")[0] ', "m "), "--version"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    modules = done.stdout.splitlines()[-1].split()
    assert "gitops_job.cli.main" in modules
    assert not [m for m in modules if m.startswith(("gitops_job.cli.", "gitops_job.reconcile", "gitops_job.kube"))
                and m != "gitops_job.cli.main"]  # fmt: skip


def test_help_lists_every_command_with_its_short_help() -> None:
    from gitops_job.cli.main import COMMANDS, cli

    result = run("--help")
    for name in COMMANDS:
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.name == name
        if not command.hidden:
            assert f"  {name} " in result.stdout and command.get_short_help_str(80)[:30] in result.stdout


def test_help_explains_the_tool_and_every_exit_code() -> None:
    result = run("--help")
    assert result.returncode == ExitCode.OK
    assert "GitOps for Kubernetes without a resident operator" in result.stdout
    assert "CronJob" in result.stdout
    for code in ExitCode:
        assert f"{code.value}  {code.meaning}" in result.stdout


def test_break_lease_is_listed_and_unlock_without_a_workload_is_its_deprecated_alias(tmp_path: Path) -> None:
    listed = run("--help").stdout
    assert "break-lease" in listed and "unlock" in listed  # `unlock WORKLOAD` is the workload control

    new, old = (run(verb, "--repo", str(tmp_path)) for verb in ("break-lease", "unlock"))  # no gitops.yaml there

    assert new.returncode == old.returncode != ExitCode.OK  # the same command behind both names
    assert old.stderr.startswith("warning: `gitops-job unlock` is deprecated; use `gitops-job break-lease`\n")
    assert old.stderr.removeprefix(old.stderr.splitlines()[0] + "\n") == new.stderr
    assert "deprecated" not in new.stderr


def test_unknown_option_is_a_usage_error() -> None:
    result = run("--no-such-flag")
    assert result.returncode == ExitCode.USAGE
    assert "No such option" in result.stderr


def test_exit_codes_are_the_documented_contract() -> None:
    assert [(c.name, c.value) for c in ExitCode] == [("OK", 0), ("ERROR", 1), ("USAGE", 2), ("CHANGES", 3)]
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | {code.meaning} |" in readme


def test_render_and_validate_examples_offline() -> None:
    rendered = run("render", "--repo", str(EXAMPLES))
    assert rendered.returncode == ExitCode.OK, rendered.stderr
    assert "# stack: cache, source: charts/cache/templates/deployment.yaml" in rendered.stdout
    assert "example-password-change-me" not in rendered.stdout  # Secrets masked in every output
    assert "password: '<secret #" in rendered.stdout
    valid = run("validate", "--repo", str(EXAMPLES), "--offline")
    assert valid.returncode == ExitCode.OK
    assert valid.stdout.strip() == "12 objects in 6 stack(s) of target local: valid (offline)"


def test_plan_examples_json_and_exit_codes(kubeconfig: Path) -> None:
    import json

    import jsonschema

    args = ("plan", "--repo", str(EXAMPLES), "--kubeconfig", str(kubeconfig), "-s", "platform", "-s", "settings")
    result = run(*args, "-o", "json", "--exit-code")
    assert result.returncode in (ExitCode.OK, ExitCode.CHANGES), result.stderr
    doc = json.loads(result.stdout)
    schema = json.loads((Path(__file__).parent.parent / "gitops_job/report/schemas/plan.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["requests"].get("PATCH", 0) == 0  # planning never writes
    expected = ExitCode.CHANGES if doc["summary"]["create"] + doc["summary"]["update"] else ExitCode.OK
    assert result.returncode == expected


def test_bad_var_is_a_usage_error() -> None:
    result = run("render", "--repo", str(EXAMPLES), "--var", "novalue")
    assert result.returncode == ExitCode.USAGE
    assert "expected KEY=VALUE" in result.stderr


def test_custom_resource_in_another_stack_than_its_crd_is_known(kubeconfig: Path, tmp_path: Path) -> None:
    """A PR adding a CRD in one stack and its custom resources in another validates before the CRD exists."""
    group = "crossstack.example.com"
    (tmp_path / "crds").mkdir()
    (tmp_path / "apps").mkdir()
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"things.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object"}}}],
        },
    }  # fmt: skip
    import json

    (tmp_path / "crds/crd.yaml").write_text(json.dumps(crd))
    (tmp_path / "apps/thing.yaml").write_text(f"apiVersion: {group}/v1\nkind: Thing\nmetadata:\n  name: t1\n")
    (tmp_path / "gitops.yaml").write_text(
        "stacks:\n  - name: crds\n    path: crds\n"
        "  - name: apps\n    path: apps\n    namespace: default\n    dependsOn: [crds]\n"
    )
    result = run("validate", "--repo", str(tmp_path), "--kubeconfig", str(kubeconfig))
    assert result.returncode == ExitCode.OK, result.stderr
    assert "2 objects in 2 stack(s)" in result.stdout
    alone = run("validate", "--repo", str(tmp_path), "--kubeconfig", str(kubeconfig), "-s", "apps")
    assert alone.returncode == ExitCode.ERROR  # without the CRD's stack the kind is unknown (V2)
    assert "Thing" in alone.stderr and "unknown kind" in alone.stderr


def test_plan_progress_bar_only_on_a_tty(kubeconfig: Path, namespace: str, tmp_path: Path) -> None:
    """On a terminal the dry-runs get a progress bar on stderr; piped, stderr stays clean for logs."""
    import os
    import pty

    # Objects not yet in the cluster: each one is dry-run (planning never creates them), whatever ran before.
    (tmp_path / "gitops.yaml").write_text(
        f"targets: [{{name: t}}]\nstacks:\n  - {{name: s, path: s, namespace: {namespace}}}\n"
    )
    (tmp_path / "s").mkdir()
    for i in range(5):
        (tmp_path / "s" / f"cm{i}.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i}\n")
    args = [SCRIPT, "plan", "--repo", str(tmp_path), "--kubeconfig", str(kubeconfig)]
    piped = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert "dry-runs" not in piped.stderr

    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    drawn = b"".join(chunks).decode()
    assert "dry-runs" in drawn and "#" in drawn, drawn


@pytest.mark.parametrize(
    ("value", "line", "reason"),
    [
        ("2024-01-01", 6, "2024-01-01 is a YAML date/time, which JSON cannot carry; quote it: '2024-01-01'"),
        ("2024-01-01T10:00:00Z", 6, "is a YAML date/time, which JSON cannot carry; quote it"),
        ("!!binary aGVsbG8=", 6, "!!binary is a YAML type JSON cannot carry"),
        ("!!set {a, b}", 6, "!!set is a YAML type JSON cannot carry; write a list instead"),
        ("!!float .inf", 6, ".inf is a YAML number JSON cannot carry; quote it"),
    ],
)
def test_item09_yaml_types_json_cannot_carry_are_errors_at_file_line(
    kubeconfig: Path, tmp_path: Path, value: str, line: int, reason: str
) -> None:
    """An unquoted date, !!binary, !!set: render -o json, validate and plan fail at file:line with the fix, never a
    traceback, and validate never says valid."""
    (tmp_path / "gitops.yaml").write_text("stacks:\n  - {name: s, path: s, namespace: default}\n")
    (tmp_path / "s").mkdir()
    (tmp_path / "s/cm.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dated\ndata:\n  when: {value}\n"
    )
    repo = ("--repo", str(tmp_path))
    kube = ("--kubeconfig", str(kubeconfig))
    for args in (("render", "-o", "json"), ("validate", "--offline"), ("validate", *kube), ("plan", *kube)):
        result = run(*args, *repo)
        assert result.returncode == ExitCode.ERROR, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert f"render: s/cm.yaml:{line}: " in result.stderr, (args, result.stderr)
        assert reason in result.stderr, (args, result.stderr)
        assert "valid" not in result.stdout


def test_item09_helm_output_date_names_the_template(tmp_path: Path) -> None:
    """kustomize's and helm's output is YAML too: an unquoted date a chart renders names the chart's template."""
    (tmp_path / "gitops.yaml").write_text("stacks:\n  - {name: c, path: chart, namespace: default}\n")
    (tmp_path / "chart/templates").mkdir(parents=True)
    (tmp_path / "chart/Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (tmp_path / "chart/values.yaml").write_text("when: '2024-01-01'\n")
    (tmp_path / "chart/templates/cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dated\ndata:\n  when: {{ .Values.when }}\n"
    )
    result = run("render", "-o", "json", "--repo", str(tmp_path))
    assert result.returncode == ExitCode.ERROR, result.stdout
    assert "Traceback" not in result.stderr
    assert "render: chart/templates/cm.yaml: 2024-01-01 is a YAML date/time" in result.stderr
    assert "of helm's output" in result.stderr


def _run_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def test_item18_a_missing_kubeconfig_names_every_path_tried_and_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config"
    explicit = run("plan", "--repo", str(EXAMPLES), "--kubeconfig", str(missing))
    from_env = _run_env({"KUBECONFIG": f"{missing}:{tmp_path / 'also-missing'}", "KUBERNETES_SERVICE_HOST": ""},
                        "plan", "--repo", str(EXAMPLES))  # fmt: skip
    home = _run_env({"HOME": str(tmp_path), "KUBECONFIG": "", "KUBERNETES_SERVICE_HOST": ""},
                    "plan", "--repo", str(EXAMPLES))  # fmt: skip

    assert explicit.returncode == ExitCode.ERROR
    assert f"no kubeconfig found; tried {missing} (does not exist): pass --kubeconfig FILE" in explicit.stderr
    assert f"tried {missing} (does not exist), {tmp_path / 'also-missing'} (does not exist)" in from_env.stderr
    assert f"tried {tmp_path}/.kube/config (does not exist), the in-cluster service account (" in home.stderr
    assert "pass --kubeconfig FILE (or set KUBECONFIG)" in home.stderr
    for result in (explicit, from_env, home):
        assert "No configuration found" not in result.stderr, result.stderr


def test_item18_a_failing_exec_credential_plugin_stops_the_run_naming_it_without_its_stderr(tmp_path: Path) -> None:
    """The plugin fails, printing a token on stderr: the run stops (it never goes on as system:anonymous), names the
    plugin's command and user, and prints nothing of what the plugin printed."""
    leaked = "ghp_planted-token-0123456789"
    plugin = tmp_path / "get-token"
    plugin.write_text(f"#!/bin/sh\necho 'refresh failed for {leaked}' >&2\nexit 7\n")
    plugin.chmod(0o755)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: robot}}]\n"
        f"users: [{{name: robot, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1, command: {plugin},"
        " interactiveMode: Never}}}]\n"
    )

    result = run("plan", "--repo", str(EXAMPLES), "--kubeconfig", str(kubeconfig))

    assert result.returncode == ExitCode.ERROR
    assert f"the exec credential plugin '{plugin}' of kubeconfig user 'robot' failed (exec: process returned 7;" in (
        result.stderr
    ), result.stderr
    assert "stopping rather than going on unauthenticated" in result.stderr
    assert leaked not in result.stdout + result.stderr
    assert "127.0.0.1:1" not in result.stderr  # no request was tried
