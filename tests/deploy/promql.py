"""PromQL held against the metric catalogue: every name exists, every label it uses is there.

`LabelChecker` walks a parsed expression and works out, node by node, which labels
its series are sure to carry (a selector: its metric's catalogued labels plus the
target labels; `sum by (a)`: just `a`; `x / on (a) y`: just `a`; ...). Each label an
expression names (a matcher, `by`/`without`, `on`/`ignoring`, `group_left`,
`label_replace`'s source) must be among the labels of what it applies to, and each
matcher on a label with a bounded set of values must name values of that set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import promql_parser as pp

from outagewatch.detect import SIGNALS
from outagewatch.detect.disruption import REASONS, STATES
from outagewatch.detect.tracker import LEAD_OUTCOMES
from outagewatch.lenses.registry import CATALOGUE
from outagewatch.observations import (
    BUDGET_RESOURCES,
    CHAT_OUTCOMES,
    COMPONENT_STATUSES,
    HTTP_FAILURE_REASONS,
    IMPACT_LEVELS,
    PHASES,
    RATELIMIT_RESOURCES,
    SUB_REASONS,
)

# Labels Prometheus attaches to every scraped series (region and the like are
# deployment-specific: rules and dashboards must not depend on them).
TARGET_LABELS = frozenset({"job", "instance"})
# Series Prometheus makes itself, or that the default collectors export.
OTHER_METRICS = re.compile(r"up|scrape_[a-z_]+|process_[a-z_]+")
# Label values the daemon can export, where the set is bounded and known: by label
# name, or by (metric, label) where the label means different things on different
# metrics (`reason`).
VALUES: dict[str | tuple[str, str], frozenset[str]] = {
    "outcome": frozenset(CHAT_OUTCOMES),
    "status": frozenset(COMPONENT_STATUSES),
    "impact": frozenset(IMPACT_LEVELS),
    "phase": frozenset(PHASES),
    "resource": frozenset(RATELIMIT_RESOURCES) | set(BUDGET_RESOURCES),
    "signal": frozenset(SIGNALS),
    "state": frozenset(STATES),
    ("outagewatch_disruption_reason", "reason"): frozenset(REASONS),
    ("outagewatch_detection_incidents_total", "outcome"): frozenset(LEAD_OUTCOMES),
    ("outagewatch_probe_failure_reasons_total", "reason"): (
        frozenset(HTTP_FAILURE_REASONS) | set(CHAT_OUTCOMES) | {"unknown"}
    )
    - {"ok"},
    ("outagewatch_probe_failure_reasons_total", "sub_reason"): frozenset(
        {"", *(sub for subs in SUB_REASONS.values() for sub in subs)}
    ),
}
# Labels a metric carried in earlier versions: rules may drop them with `without` (a
# no-op on this version's series) so they hold through a rolling upgrade; nothing
# else may name them.
RETIRED: dict[str, frozenset[str]] = {
    "outagewatch_probe_failures_total": frozenset({"reason", "sub_reason"}),
}
SCALAR = None  # a number, not a vector: it has no labels


def catalogue_labels() -> dict[str, frozenset[str]]:
    """Every series name the daemon exports, with the labels its samples carry."""
    known: dict[str, frozenset[str]] = {}
    for spec in CATALOGUE.values():
        labels = TARGET_LABELS | set(spec.labels)
        if spec.type == "histogram":
            known[f"{spec.name}_bucket"] = labels | {"le"}
            known[f"{spec.name}_count"] = labels
            known[f"{spec.name}_sum"] = labels
        else:
            known[spec.name] = labels
    return known


@dataclass
class LabelChecker:
    """Checks expressions against known series; recording rules become known as recorded."""

    known: dict[str, frozenset[str]] = field(default_factory=catalogue_labels)
    values: Mapping[str | tuple[str, str], frozenset[str]] = field(
        default_factory=lambda: dict(VALUES)
    )

    def check(self, expr: str) -> list[str]:
        """Every problem with ``expr`` (empty when it is sound)."""
        problems: list[str] = []
        self._labels(pp.parse(expr), problems)
        return problems

    def record(self, name: str, expr: str, extra: Iterable[str] = ()) -> list[str]:
        """Check a recording rule and learn the labels of the series it records."""
        problems: list[str] = []
        labels = self._labels(pp.parse(expr), problems)
        self.known[name] = frozenset(labels or ()) | set(extra)
        return problems

    def _selector(self, node: Any, problems: list[str]) -> frozenset[str] | None:
        name = node.name
        if name in self.known:
            labels = self.known[name]
        elif OTHER_METRICS.fullmatch(name or ""):
            labels = TARGET_LABELS
        else:
            problems.append(f"unknown metric {name}")
            return None  # its labels are unknown too: no further complaints about them
        for matcher in node.matchers.matchers:
            if matcher.name == "__name__":
                continue
            if matcher.name not in labels:
                problems.append(f"{name} has no label {matcher.name} (has {sorted(labels)})")
            else:
                allowed = self.values.get((name, matcher.name), self.values.get(matcher.name))
                if allowed is not None:
                    self._values(name, matcher, allowed, problems)
        return labels

    def _values(
        self, name: str, matcher: Any, allowed: frozenset[str], problems: list[str]
    ) -> None:
        value = matcher.value
        # A regex of plain alternatives names values; any other regex is left alone.
        named = value.split("|") if re.fullmatch(r"[a-z_]+(\|[a-z_]+)*", value) else []
        if matcher.op in (pp.MatchOp.Equal, pp.MatchOp.NotEqual):
            named = [value]
        for item in named:
            if item not in allowed:
                problems.append(f"{name}: {matcher.name}={item!r} is never exported")

    def _need(
        self, labels: Iterable[str], have: frozenset[str] | None, where: str, problems: list[str]
    ) -> None:
        for label in labels:
            if have is not None and label not in have:
                problems.append(f"{where}: no label {label} in {sorted(have)}")

    def _labels(self, node: Any, problems: list[str]) -> frozenset[str] | None:
        """The labels every series of ``node`` carries (None for a scalar)."""
        if isinstance(node, pp.VectorSelector):
            return self._selector(node, problems)
        if isinstance(node, pp.MatrixSelector):
            return self._selector(node.vector_selector, problems)
        if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
            return self._labels(node.expr, problems)
        if isinstance(node, pp.NumberLiteral | pp.StringLiteral):
            return SCALAR
        if isinstance(node, pp.Call):
            return self._call(node, problems)
        if isinstance(node, pp.AggregateExpr):
            return self._aggregate(node, problems)
        if isinstance(node, pp.BinaryExpr):
            return self._binary(node, problems)
        raise TypeError(f"unexpected PromQL node {type(node).__name__}")

    def _call(self, node: Any, problems: list[str]) -> frozenset[str] | None:
        name = node.func.name
        args = [self._labels(arg, problems) for arg in node.args]
        vectors = [labels for labels in args if labels is not None]
        if name in ("time", "scalar", "pi"):
            return SCALAR
        if name == "vector":
            return frozenset()
        if name == "absent":
            return frozenset(
                m.name
                for m in node.args[0].matchers.matchers
                if m.op == pp.MatchOp.Equal and m.name != "__name__"
            )
        if name == "histogram_quantile":
            self._need(["le"], vectors[0], "histogram_quantile", problems)
            return vectors[0] - {"le"}
        if name == "label_replace":
            source = node.args[3].val
            if source:
                self._need([source], vectors[0], "label_replace", problems)
            return vectors[0] | {node.args[1].val}
        return vectors[0] if vectors else SCALAR

    def _aggregate(self, node: Any, problems: list[str]) -> frozenset[str] | None:
        inner = self._labels(node.expr, problems)
        if node.param is not None:
            self._labels(node.param, problems)
        op = str(node.op)
        modifier = node.modifier
        grouping = list(modifier.labels) if modifier is not None else []
        needed = grouping
        if modifier is not None and modifier.type == pp.AggModifierType.Without:
            retired = {label for name in _names(node.expr) for label in RETIRED.get(name, ())}
            needed = [label for label in grouping if label not in retired]
        self._need(needed, inner, f"{op} by/without", problems)
        if modifier is None:
            labels: frozenset[str] = frozenset()
        elif modifier.type == pp.AggModifierType.By:
            labels = frozenset(grouping)
        else:
            labels = (inner or frozenset()) - set(grouping)
        if op == "count_values":
            labels |= {node.param.val}
        return labels

    def _binary(self, node: Any, problems: list[str]) -> frozenset[str] | None:
        left = self._labels(node.lhs, problems)
        right = self._labels(node.rhs, problems)
        if left is None or right is None:
            return left if right is None else right
        op = str(node.op)
        modifier = node.modifier
        matching = modifier.matching if modifier is not None else None
        on = matching is not None and matching.type == pp.LabelModifierType.Include
        listed = list(matching.labels) if matching is not None else []
        if on:
            self._need(listed, left, f"{op} on (left side)", problems)
            self._need(listed, right, f"{op} on (right side)", problems)
        else:
            self._need(listed, left | right, f"{op} ignoring", problems)
        card = modifier.card if modifier is not None else None
        extra = list(modifier.group_labels or []) if modifier is not None else []
        if card == pp.VectorMatchCardinality.ManyToOne:
            self._need(extra, right, f"{op} group_left", problems)
            return left | set(extra)
        if card == pp.VectorMatchCardinality.OneToMany:
            self._need(extra, left, f"{op} group_right", problems)
            return right | set(extra)
        if op == "or":
            return left & right  # either side's series: only what both carry is sure
        if op in ("and", "unless"):
            return left
        # One-to-one arithmetic or comparison: on() keeps only those labels.
        return frozenset(listed) if on else left - set(listed)


def _names(node: Any) -> Iterable[str]:
    """The metric names an expression selects."""
    if isinstance(node, pp.VectorSelector):
        yield node.name or ""
    elif isinstance(node, pp.MatrixSelector):
        yield from _names(node.vector_selector)
    elif isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr | pp.AggregateExpr):
        yield from _names(node.expr)
    elif isinstance(node, pp.Call):
        for arg in node.args:
            yield from _names(arg)
    elif isinstance(node, pp.BinaryExpr):
        yield from _names(node.lhs)
        yield from _names(node.rhs)
