"""The one place that pushes metrics: a run's families (:mod:`gitops_job.report.metrics`) to a Prometheus Pushgateway
with ``prometheus_client``, in a registry of their own, as the group ``{job="gitops-job", target="<name>"}``.

An apply that succeeded is pushed with PUT (``push_to_gateway``): the group is replaced by exactly this run's
families. Any other run (one that failed, or only reported drift) is pushed with POST (``pushadd_to_gateway``): the
gateway replaces only the families pushed and keeps the others (``gitops_job_last_applied_info`` and, after a failure,
``gitops_job_last_success_timestamp_seconds``) from the last push, atomically on the gateway (no read-modify-write, so
two runs cannot race). Either way the gateway sets ``push_time_seconds``, so `time() - push_time_seconds` says when
the job last ran and `time() - gitops_job_last_success_timestamp_seconds` when it last succeeded (docs/metrics.md).

A push never fails the run: :func:`push` returns a warning naming the gateway (credentials stripped) and the reason.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from gitops_job.report.metrics import HELP, JOB, RunMetrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

TIMEOUT = 10.0


def registry(metrics: RunMetrics) -> CollectorRegistry:
    """``metrics`` as gauges in a registry of their own (nothing of the process's default registry is pushed)."""
    from prometheus_client import CollectorRegistry, Gauge  # here: only a run that pushes pays for the import

    reg = CollectorRegistry(auto_describe=True)
    gauges: dict[str, Gauge] = {}
    for s in metrics.samples:
        names = tuple(k for k, _ in s.labels)
        if s.name not in gauges:
            gauges[s.name] = Gauge(s.name, HELP[s.name], names, registry=reg)
        gauge = gauges[s.name]
        (gauge.labels(*(v for _, v in s.labels)) if names else gauge).set(s.value)
    return reg


def public_url(url: str) -> str:
    """``url`` without its user and password: how every message names the gateway."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))


def push(url: str, metrics: RunMetrics, timeout: float = TIMEOUT) -> str | None:
    """Push ``metrics`` to the gateway at ``url`` (``http[s]://[user:password@]host:port[/path]``; credentials go in
    a basic-auth header, never in the request URL). ``None`` when pushed; else the warning to show."""
    shown = public_url(url)
    try:
        from prometheus_client import push_to_gateway, pushadd_to_gateway
        from prometheus_client.exposition import basic_auth_handler, default_handler

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
        user, password = unquote(parts.username or ""), unquote(parts.password or "")

        def handler(  # prometheus_client calls it with these keywords
            url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
        ) -> Callable[[], None]:
            if parts.username is None:
                return default_handler(url, method, timeout, headers, data)
            return basic_auth_handler(url, method, timeout, headers, data, user, password)

        send = push_to_gateway if metrics.replace else pushadd_to_gateway
        send(
            shown,
            job=JOB,
            registry=registry(metrics),
            grouping_key={"target": metrics.target},
            timeout=timeout,
            handler=handler,
        )
    except (OSError, ValueError, http.client.HTTPException) as e:
        reason = str(e).replace(url, shown) or type(e).__name__
        return f"warning: metrics not pushed to the Pushgateway {shown}: {reason} (the run itself is not affected)"
    return None
