"""Real Helm chart repositories for the tests: charts packaged by ``helm package``, an ``index.yaml`` made by ``helm
repo index``, served over HTTP on loopback (optional basic auth; every request recorded), and OCI charts pushed by
``helm push`` to Debian's ``docker-registry`` on loopback.

The registry is ``tests/registries.py``'s ``docker_registry`` (its counting ``front`` sees our client's requests).

Race-free: the HTTP server binds port 0 before it serves.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.registries import RegistryServer
from tests.serving import http_thread
from tools.localcluster import build

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.demo.example.com
spec:
  group: demo.example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  version: {{ .Chart.Version | quote }}
  {{- with .Values.extra }}
  extra: {{ toJson . | quote }}
  {{- end }}
"""


def helm(*args: str, cwd: Path | None = None, home: Path | None = None) -> str:
    """Run the pinned helm with its homes in ``home`` (a fresh directory by default)."""
    with tempfile.TemporaryDirectory() as fresh:
        where = str(home or fresh)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": where,
            **dict.fromkeys(("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"), where),
        }
        done = subprocess.run(
            [str(build.binary("helm")), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    if done.returncode:
        raise AssertionError(f"helm {' '.join(args)} failed: {done.stderr}")
    return done.stdout + done.stderr


def chart_dir(root: Path, name: str = "demo", version: str = "1.0.0", *, crds: bool = True) -> Path:
    """A small chart ``name`` at ``version`` under ``root``: a ConfigMap from ``greeting`` (and ``extra``), and a
    CRD in ``crds/``."""
    chart = root / f"{name}-{version}" / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(CONFIGMAP)
    if crds:
        (chart / "crds").mkdir()
        (chart / "crds" / "widgets.yaml").write_text(CRD)
    return chart


def package(chart: Path, into: Path) -> Path:
    """``helm package`` of ``chart`` into ``into``; the archive's path."""
    into.mkdir(parents=True, exist_ok=True)
    helm("package", str(chart), "--destination", str(into))
    version = (chart / "Chart.yaml").read_text().split("version: ")[1].strip()
    return into / f"{chart.name}-{version}.tgz"


@dataclass
class ChartServer:
    root: Path  # what is served: index.yaml and the archives
    port: int = 0
    auth: tuple[str, str] | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # path, Authorization
    redirects: dict[str, str] = field(default_factory=dict)  # path → Location

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def publish(self, charts: Mapping[str, list[str]], *, crds: bool = True) -> None:
        """Package chart ``name`` at each version and index them all (``helm repo index``)."""
        with tempfile.TemporaryDirectory() as work:
            for name, versions in charts.items():
                for version in versions:
                    package(chart_dir(Path(work), name, version, crds=crds), self.root)
        helm("repo", "index", str(self.root), "--url", self.url)


@contextmanager
def chart_server(root: Path, auth: tuple[str, str] | None = None) -> Iterator[ChartServer]:
    """An HTTP chart repository serving ``root``; with ``auth``, basic auth ``user:password`` is required."""
    root.mkdir(parents=True, exist_ok=True)
    server = ChartServer(root, auth=auth)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            header = self.headers.get("Authorization")
            server.requests.append((self.path, header))
            if server.auth is not None:
                wanted = "Basic " + base64.b64encode(":".join(server.auth).encode()).decode()
                if header != wanted:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                    self.end_headers()
                    return
            if self.path in server.redirects:
                self.send_response(302)
                self.send_header("Location", server.redirects[self.path])
                self.end_headers()
                return
            file = server.root / self.path.lstrip("/")
            if not file.is_file() or ".." in self.path:
                self.send_response(404)
                self.end_headers()
                return
            data = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with http_thread(Handler) as server.port:
        yield server


def helm_push(registry: RegistryServer, archive: Path, repository: str = "charts") -> str:
    """``helm push`` of ``archive`` to ``oci://<registry>/<repository>`` (plain HTTP, no auth); helm's output."""
    return helm("push", str(archive), f"oci://{registry.host}/{repository}", "--plain-http")
