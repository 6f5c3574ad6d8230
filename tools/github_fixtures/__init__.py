"""GitHub's published contracts for the tests, installed from npm at the versions pinned in ``package-lock.json``.

* ``@octokit/openapi`` — GitHub's REST API description (``generated/api.github.com.json``, OpenAPI 3.0.3); the local
  GitHub stand-in (``tests/githubstub.py``) validates every request and response against it.
* ``@octokit/webhooks-examples`` — real event payloads (``api.github.com/index.json``: one entry per event name with
  its ``examples``), which drive ``ActionsContext`` and seed the stand-in's pull requests.

They are installed with ``npm ci`` into the cache outside the repo (next to the control-plane binaries, see
``tools/localcluster/build.py``), in a directory keyed by the lockfile's hash: ``<cache>/npm-<sha12>/node_modules``.
The install goes to a temporary directory renamed into place, so a killed install leaves nothing a later run trusts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.localcluster.build import cache_dir

HERE = Path(__file__).resolve().parent
LOCKFILE = HERE / "package-lock.json"
OPENAPI_PATH = "@octokit/openapi/generated/api.github.com.json"
WEBHOOK_EXAMPLES_PATH = "@octokit/webhooks-examples/api.github.com/index.json"


class FixturesError(RuntimeError):
    """``npm ci`` failed or is missing; the message says what to do."""


def install_dir() -> Path:
    """``<cache>/npm-<first 12 hex of sha256(package-lock.json)>``: a new lockfile gets a new directory."""
    digest = hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()[:12]
    return cache_dir() / f"npm-{digest}"


def fixtures_dir() -> Path:
    """The ``node_modules`` directory holding the pinned packages; installs them first when absent."""
    final = install_dir()
    modules = final / "node_modules"
    if modules.is_dir():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise FixturesError("npm is not on PATH: install Node.js >= 18 (the GitHub contract fixtures come from npm)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(HERE / name, tmp / name)
        env = {
            **os.environ,
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
        }
        proc = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=tmp, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
            raise FixturesError(f"npm ci in {tmp} exited {proc.returncode}:\n{tail}")
        try:
            tmp.rename(final)
        except OSError:
            if not modules.is_dir():  # not a concurrent install that won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return modules


def openapi_file() -> Path:
    """GitHub's REST API description for api.github.com (OpenAPI 3.0, ``$ref``s not inlined)."""
    return fixtures_dir() / OPENAPI_PATH


def webhook_examples_file() -> Path:
    """Real webhook payloads: a list of ``{"name": <event>, "examples": [<payload>, ...], ...}``."""
    return fixtures_dir() / WEBHOOK_EXAMPLES_PATH
