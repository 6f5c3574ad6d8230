"""Golden files for the plan's text and markdown output (what a terminal and a PR comment show).

The plan below is built by the real engine's pieces: ``display`` normalises, filters and masks exactly as a plan
does, so the golden files show what a reviewer would see. Regenerate after an intended change with
``GITOPS_JOB_UPDATE_GOLDEN=1 pytest tests/test_report_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from gitops_job.escape import printable
from gitops_job.identity import ObjectId
from gitops_job.model import Source
from gitops_job.outcomes import Action
from gitops_job.reconcile.mask import Masker
from gitops_job.reconcile.plan import display
from gitops_job.reconcile.results import FieldConflict, Plan, PlanEntry, PlanFailure
from gitops_job.report.markdown import COMMENT_LIMIT, Page, html_escape, markdown
from gitops_job.report.text import text as plan_text

GOLDEN = Path(__file__).parent / "golden"
SECRET_OLD, SECRET_NEW = "hunter2-old-value", "hunter2-new-value"


def _cm(name: str, data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "shop", **meta},
        "data": data,
    }


def _plan() -> Plan:
    masker = Masker()
    live_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                   "type": "Opaque", "stringData": {"password": SECRET_OLD, "user": "shop"}}  # fmt: skip
    new_secret = {**live_secret, "stringData": {"password": SECRET_NEW, "user": "shop"}}
    masker.learn([live_secret, new_secret])
    live_cm = _cm("settings", {"mode": "slow", "readme": "run ```make``` first"},
                  uid="0b9f", resourceVersion="42", managedFields=[{"manager": "gitops-job"}])  # fmt: skip
    new_cm = _cm("settings", {"mode": "fast", "readme": "run ```make``` first"})

    def show(obj: dict[str, Any]) -> dict[str, Any]:
        return display(obj, [], masker)

    src = Source("apps/shop/settings.yaml", 3)
    entries = (
        PlanEntry(ObjectId("", "Namespace", "", "shop"), "platform", Action.CREATE, Source("platform/ns.yaml", 1),
                  after=show({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})),
        PlanEntry(ObjectId("", "ConfigMap", "shop", "settings"), "shop", Action.UPDATE, src,
                  before=show(live_cm), after=show(new_cm),
                  conflicts=(FieldConflict(".data.mode", "kubectl-edit"),)),
        PlanEntry(ObjectId("", "Secret", "shop", "db"), "shop", Action.UPDATE, Source("apps/shop/secret.yaml", 1),
                  before=show(live_secret), after=show(new_secret)),
        PlanEntry(ObjectId("", "ConfigMap", "shop", "legacy"), "shop", Action.PRUNE,
                  before=show(_cm("legacy", {"a": "1"}))),
        PlanEntry(ObjectId("apps", "Deployment", "shop", "web"), "shop", Action.UNCHANGED,
                  Source("apps/shop/web.yaml", 1), proven=True),
    )  # fmt: skip
    failures = (
        PlanFailure(ObjectId("", "Service", "shop", "web"), "shop", Source("apps/shop/web.yaml", 30),
                    masker.scrub(f'Service "web" is invalid: spec.ports[0].port: Invalid value: "{SECRET_NEW}"')),
    )  # fmt: skip
    return Plan("production", entries, failures, {"GET": 5, "PATCH (dry-run)": 2}, stacks=("platform", "shop"))


@pytest.mark.parametrize(
    ("name", "produce"),
    [
        ("plan.txt", plan_text),
        ("plan.md", markdown),
    ],
)
def test_golden(name: str, produce: Any) -> None:
    out = produce(_plan())
    assert SECRET_OLD not in out and SECRET_NEW not in out  # the planted secret values never reach the output
    path = GOLDEN / name
    if os.environ.get("GITOPS_JOB_UPDATE_GOLDEN"):
        path.write_text(out)
    assert out == path.read_text(), f"{name} differs from the golden file; review, then regenerate (see docstring)"


# -- PR comments -------------------------------------------------------------------------------------------------------
FOOTER = ("head `0123456789ab`", "gitops-job 0.1.0", "kustomize v5.8.1", "helm v3.21.4", "12.3 s",
          "[run](https://github.com/acme/deploy/actions/runs/4242)")  # fmt: skip
DIGEST = "sha256:" + "ab" * 32
ARTIFACT = "the files in the run's artifact (plan.md, plan.json)"


def _page(**changes: Any) -> Page:
    base = Page(marker="<!-- gitops-job:comment target=production -->", footer=FOOTER, digest=DIGEST,
                       artifact=ARTIFACT, target="production")  # fmt: skip
    return Page(**{**base.__dict__, **changes})


def _unchanged() -> Plan:
    entries = tuple(PlanEntry(ObjectId("", "ConfigMap", "shop", f"cm-{i}"), "shop", Action.UNCHANGED, proven=True)
                    for i in range(3))  # fmt: skip
    return Plan("production", entries)


def _small() -> Plan:
    masker = Masker()
    before = display(_cm("settings", {"mode": "slow"}), [], masker)
    after = display(_cm("settings", {"mode": "fast"}), [], masker)
    entry = PlanEntry(ObjectId("", "ConfigMap", "shop", "settings"), "shop", Action.UPDATE,
                      Source("apps/shop/settings.yaml", 3), before=before, after=after)  # fmt: skip
    return Plan("production", (entry, *_unchanged().entries))


def _huge() -> Plan:
    """S6: 100 objects whose diffs add up to about 200 KB, with backtick runs in their content."""
    masker = Masker()
    entries = []
    for i in range(100):
        data = {f"line-{k}": f"value {i}-{k} ``` and ```````` inside" for k in range(40)}
        entries.append(PlanEntry(ObjectId("", "ConfigMap", "shop", f"big-{i:03d}"), "shop", Action.CREATE,
                                 Source("apps/shop/big.yaml", 1 + i), after=display(_cm(f"big-{i:03d}", data), [],
                                                                                     masker)))  # fmt: skip
    return Plan("production", tuple(entries))


COMMENTS = {
    "comment-no-changes.md": lambda: markdown(_unchanged(), _page()),
    "comment-small.md": lambda: markdown(_small(), _page()),
    "comment-prunes-errors.md": lambda: markdown(_plan(), _page(digest="")),
    "comment-unreachable.md": lambda: markdown(None, _page(digest="", error=(
        "The cluster was unreachable. The plan could not be computed, so nothing below is a plan.\n"
        "cluster: GET /api: cannot reach the API server at https://10.0.0.1:6443: connection refused"))),
    "comment-fork.md": lambda: markdown(None, _page(digest="", notice=(
        "This pull request comes from a fork, so it gets no cluster credentials: gitops-job rendered and validated "
        "12 objects in 2 stack(s) but did not compare them with the cluster."))),
    "comment-truncated.md": lambda: markdown(_huge(), _page()),
}  # fmt: skip


def well_formed(body: str) -> None:
    """Every fence is closed by the same fence, <details> are balanced, and nothing is left open at the end."""
    fence = None
    for line in body.splitlines():
        opening = re.fullmatch(r"(`{3,})[a-z]*", line)
        if fence is None and opening:
            fence = opening.group(1)
        elif line == fence:
            fence = None
    assert fence is None, "a fence is left open"
    assert body.count("<details>") == body.count("</details>")


@pytest.mark.parametrize("name", sorted(COMMENTS))
def test_comment_golden(name: str) -> None:
    out = COMMENTS[name]()
    assert SECRET_OLD not in out and SECRET_NEW not in out
    assert len(out) <= COMMENT_LIMIT
    well_formed(out)
    path = GOLDEN / name
    if os.environ.get("GITOPS_JOB_UPDATE_GOLDEN"):
        path.write_text(out)
    assert out == path.read_text(), f"{name} differs from the golden file; review, then regenerate (see docstring)"


def test_s6_huge_diff_is_cut_to_whole_objects_with_a_pointer() -> None:
    """S6. About 200 KB of diffs: the comment stays under GitHub's 65,536 characters, keeps the summary, shows whole
    objects only, says how many were left out and where they are; fences survive backtick runs in the content."""
    plan = _huge()
    full = markdown(plan, _page(limit=10**9))
    assert len(full) > 200_000
    out = markdown(plan, _page())
    assert len(out) <= COMMENT_LIMIT < len(full)
    assert out.startswith("<!-- gitops-job:comment target=production -->\n### gitops-job plan · `production`")
    assert "**100 to create, 0 to update, 0 to prune, 0 unchanged**" in out
    shown = out.count("**`ConfigMap/shop/big-")
    assert 0 < shown < 100
    assert f"{100 - shown} of 100 changed objects are not shown" in out and ARTIFACT in out
    assert out.rstrip().endswith(f"<!-- gitops-job:digest {DIGEST} -->")
    well_formed(out)
    for i in range(shown):  # whole objects: every shown object's diff is complete
        assert f"+  line-39: value {i}-39" in out
    assert "````````` diff" not in out and "`````````diff" in out  # a fence longer than the longest run (8)


def test_readme_shows_the_golden_comment() -> None:
    """README's "Use it in GitHub Actions" shows the small-change comment as the golden test renders it."""
    golden = (GOLDEN / "comment-small.md").read_text()
    shown = "\n".join(line for line in golden.splitlines() if not line.startswith("<!--"))
    assert shown in (Path(__file__).parent.parent / "README.md").read_text()


def test_a_huge_error_or_many_long_failures_still_fit_a_comment() -> None:
    many = tuple(
        PlanFailure(ObjectId("", "ConfigMap", "shop", f"cm-{i}"), "shop", None, "x" * 5000) for i in range(200)
    )
    for body in (
        markdown(None, _page(digest="", error="render: 2000 error(s):\n" + "  bad line\n" * 20_000)),
        markdown(Plan("production", (), many), _page(digest="")),
    ):
        assert len(body) <= COMMENT_LIMIT, len(body)
        well_formed(body)


def test_item17_text_plan_groups_stacks_in_apply_order_with_counts() -> None:
    """The text plan goes stack by stack in the config's dependsOn order (not by name, not by action), each under a
    header with its counts, objects in the order apply writes them and prunes last: never a Service before the
    Namespace it lives in."""
    masker = Masker()

    def entry(stack: str, kind: str, name: str, action: Action, namespace: str = "shop") -> PlanEntry:
        group = "apps" if kind == "Deployment" else ""
        body = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}}
        shown = display(body, [], masker)
        return PlanEntry(ObjectId(group, kind, namespace, name), stack, action,
                         before=shown if action is Action.PRUNE else None,
                         after=None if action is Action.PRUNE else shown)  # fmt: skip

    entries = (
        entry("apps", "Deployment", "web", Action.CREATE),
        entry("apps", "ConfigMap", "old", Action.PRUNE),
        entry("apps", "Service", "web", Action.CREATE),
        entry("apps", "ConfigMap", "settings", Action.CREATE),
        entry("apps", "ConfigMap", "same", Action.UNCHANGED),
        entry("zz-platform", "Namespace", "shop", Action.CREATE, namespace=""),
    )
    out = plan_text(Plan("production", entries, stacks=("zz-platform", "apps")))

    lines = [line for line in out.splitlines() if line.startswith(("stack ", "Namespace/", "Service/", "Deployment/",
                                                                   "ConfigMap/"))]  # fmt: skip
    assert lines == [
        "stack zz-platform: 1 to create, 0 to update, 0 to prune, 0 unchanged",
        "Namespace/shop (create)",
        "stack apps: 3 to create, 0 to update, 1 to prune, 1 unchanged",
        "ConfigMap/shop/settings (create)",
        "Service/shop/web (create)",
        "Deployment/shop/web (create)",
        "ConfigMap/shop/old (prune)",
    ]
    assert out.startswith("4 to create, 0 to update, 1 to prune, 1 unchanged\n")


RAW_CONTROLS = ("\u202e", "\x1b", "\x07", "\x00", "\u2066")


def test_item18_control_characters_are_escaped_in_every_printed_line() -> None:
    """A name or message carrying U+202E (right-to-left override) or an ANSI escape is printed escaped in the text
    plan, the PR comment and the apply report, never raw."""
    evil = "evil\u202eyxt.exe \x1b[2J\x1b[31mred\x07\x00\u2066"
    oid = ObjectId("", "ConfigMap", "shop", "settings")
    failure = PlanFailure(oid, "shop", Source("apps/x.yaml", 1), f"admission webhook said: {evil}")
    entry = PlanEntry(ObjectId("", "ConfigMap", "shop", "other"), "shop", Action.CREATE, note=evil,
                      conflicts=(FieldConflict(".data.a", evil),), after={"data": {"a": evil}})  # fmt: skip
    p = Plan("production", (entry,), (failure,))
    outputs = {"text": plan_text(p), "color": plan_text(p, color=True), "markdown": markdown(p)}

    for name, out in outputs.items():
        raw = [c for c in RAW_CONTROLS if c in out.replace("\x1b[1m", "").replace("\x1b[0m", "").replace("\x1b[3", "")]
        assert not raw, (name, raw)
        assert "evil\\u202eyxt.exe \\x1b[2J" in out, name
    assert printable("tab\tand\nnewline stay") == "tab\tand\nnewline stay"


#: What a proxy in front of the API server answers with: an HTML page, where nearly every character grows when escaped.
HTML_ERROR_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body>\n"
    + "<p>upstream said: <b>&lt;connection reset&gt;</b> & gave up</p>\n" * 300
    + "```\n</details>\n</body></html>"
)


def test_item12_4_everything_in_the_comment_is_budgeted_after_escaping() -> None:
    """Item 12.4. 50 failures carrying an HTML error page (and a long error, sections and 100 changed objects): the
    text is escaped before it is cut and counted, so the body stays under GitHub's 65,536 characters with its footer
    and digest, nothing is cut inside an escape, and no failure's text can open a fence."""
    failures = tuple(PlanFailure(ObjectId("", "ConfigMap", "shop", f"cm-{i:02d}"), "shop",
                                 Source("apps/shop/cm.yaml", i), HTML_ERROR_PAGE) for i in range(50))  # fmt: skip
    plans = [Plan("production", (), failures), Plan("production", _huge().entries, failures)]
    row = html_escape(HTML_ERROR_PAGE.splitlines()[1])
    table = "\n".join(["| stack | result |", "|---|---|", *(f"| stack-{i} | {row} |" for i in range(400))])
    pages = [_page(), _page(error=HTML_ERROR_PAGE * 3, sections=["Applied exactly the plan reviewed here.", table])]
    for plan in plans:
        for page in pages:
            body = markdown(plan, page)
            assert len(body) < COMMENT_LIMIT, len(body)
            well_formed(body)
            assert body.rstrip().endswith(f"plan `{DIGEST}`</sub>\n<!-- gitops-job:digest {DIGEST} -->"), body[-300:]
            assert "cut: control characters" not in body  # the last-resort cut is never needed
            assert "<html>" not in body and "<b>&lt;" not in body  # escaped, not raw
            assert not re.search(r"&(a|am|l|g)? …", body), "a cut broke an escape"
            items = [line for line in body.splitlines() if line.startswith("- `ConfigMap/shop/cm-")]
            assert items, "failures come before objects"
            assert all(len(line) < 1_300 for line in items)  # each message cut to about 1,000 characters
            if len(items) < 50:
                assert f"- … and {50 - len(items)} more (see the full plan)" in body
            if plan.entries:
                assert "**`ConfigMap/shop/big-000`**" in body  # objects still get what is left
                assert "changed objects are not shown" in body
    # The full plan (the artifact) keeps everything.
    full = markdown(plans[0], _page(limit=10**12))
    assert full.count("- `ConfigMap/shop/cm-") == 50
