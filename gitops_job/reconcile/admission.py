"""Which admission webhooks and policies may change an object on apply (so the fast path may not prove it
unchanged): their registrations read once per plan, their rules matched per resource type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops_job.kube import Forbidden, Kube, NotFound, ResourceType


@dataclass(frozen=True)
class AdmissionRule:
    """What one rule of a mutating webhook or policy intercepts (admissionregistration's RuleWithOperations)."""

    operations: frozenset[str]
    groups: frozenset[str]
    versions: frozenset[str]
    resources: frozenset[str]
    scope: str = "*"
    exact: bool = False  # matchPolicy Exact; Equivalent (the default) also catches the same resource elsewhere

    def may_mutate(self, rt: ResourceType) -> bool:
        """Could a server-side apply of an existing ``rt`` object be changed by what this rule sends to a webhook?
        Conservative: namespace and object selectors are taken to match everything."""
        if not self.operations & {"UPDATE", "*"}:
            return False
        if self.scope not in ("*", "Namespaced" if rt.namespaced else "Cluster"):
            return False
        if not self.resources & {rt.plural, "*", "*/*"}:
            return False
        if not self.exact:  # an equivalent resource may be served under another group or version
            return True
        return bool(self.groups & {rt.group, "*"}) and bool(self.versions & {rt.version, "*"})


def admission_rules(config: Mapping[str, Any]) -> list[AdmissionRule]:
    """The rules of a MutatingWebhookConfiguration (every webhook's) or of a MutatingAdmissionPolicy."""
    spec_rules: list[tuple[Any, Any]] = []
    for hook in config.get("webhooks") or []:
        spec_rules += [(rule, hook.get("matchPolicy")) for rule in hook.get("rules") or []]
    constraints = (config.get("spec") or {}).get("matchConstraints") or {}
    spec_rules += [(rule, constraints.get("matchPolicy")) for rule in constraints.get("resourceRules") or []]
    return [
        AdmissionRule(
            frozenset(rule.get("operations") or []),
            frozenset(rule.get("apiGroups") or []),
            frozenset(rule.get("apiVersions") or []),
            frozenset(rule.get("resources") or []),
            rule.get("scope") or "*",
            policy == "Exact",
        )
        for rule, policy in spec_rules
    ]


def mutating_rules(kube: Kube, types: Mapping[tuple[str, str], ResourceType]) -> list[AdmissionRule] | None:
    """Every rule of every mutating webhook and policy in the cluster; None when they cannot be read (then every
    kind counts as possibly mutated, and the fast path is off)."""
    rules: list[AdmissionRule] = []
    for kind in ("MutatingWebhookConfiguration", "MutatingAdmissionPolicy"):
        for (_, k), rt in types.items():
            if k == kind:
                try:
                    rules += [r for item in kube.list(rt) for r in admission_rules(item)]
                except (Forbidden, NotFound):
                    return None  # cannot tell: be safe
                break
    return rules
