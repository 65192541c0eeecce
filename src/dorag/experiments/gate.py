"""`dorag gate`: compare a metrics file with a baseline; a regression beyond tolerance blocks publishing.

Metrics files are JSON (nested objects are flattened to dotted keys, e.g. ``pass@1.value``). Each rule
names a metric (or a pattern: ``*.dora_rag.pass@1``), the direction that is better, and a tolerance: an absolute amount (``tolerance``) and/or
a fraction of the baseline (``relative``); the larger allowance wins. A metric a rule names that is
missing from the current file is a failure; one missing from the baseline is reported as new.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dorag.core.config import option
from dorag.core.errors import ConfigError, DataError
from dorag.core.io import read_json, write_json


@dataclass
class Rule:
    """How one metric is judged."""

    higher_is_better: bool = option(True, "direction: true when a larger value is better (pass@1), false for time, loss")
    tolerance: float = option(0.0, "absolute worsening allowed")
    relative: float = option(0.0, "worsening allowed as a fraction of the baseline value")

    def check(self) -> list[str]:
        problems = []
        if self.tolerance < 0 or self.relative < 0:
            problems.append("tolerance and relative must be >= 0")
        return problems


@dataclass
class GateConfig:
    """Which metrics must not regress, and by how much they may."""

    metrics: str | None = option(None, "the new metrics JSON")
    baseline: str | None = option(None, "the baseline metrics JSON")
    rules: dict[str, Rule] = field(default_factory=dict)
    promote: bool = option(False, "write the new metrics as the baseline when the gate passes")

    def check(self) -> list[str]:
        problems = []
        if not self.rules:
            problems.append("rules: name at least one metric to gate: -c configs/gate.yaml, or --set rules.pass@1.value.tolerance=0.02")
        return problems


def flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    return out


@dataclass
class Row:
    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    allowed: float | None
    status: Literal["ok", "improved", "regressed", "missing", "new"]


def expand_rules(rules: dict[str, Rule], names: set[str]) -> dict[str, Rule]:
    """A rule whose name has shell wildcards (``*.dora_rag.pass@1``) applies to every metric it matches;
    an exact name wins over a pattern."""
    out: dict[str, Rule] = {}
    for name, rule in rules.items():
        if any(ch in name for ch in "*?["):
            for metric in sorted(names):
                if fnmatch.fnmatchcase(metric, name) and metric not in rules:
                    out.setdefault(metric, rule)
        else:
            out[name] = rule
    return out


def evaluate_gate(current: dict[str, float], baseline: dict[str, float], rules: dict[str, Rule]) -> list[Row]:
    rows = []
    for name, rule in expand_rules(rules, set(current) | set(baseline)).items():
        cur, base = current.get(name), baseline.get(name)
        if cur is None or math.isnan(cur):
            rows.append(Row(name, base, None, None, None, "missing"))
            continue
        if base is None:
            rows.append(Row(name, None, cur, None, None, "new"))
            continue
        allowed = max(rule.tolerance, rule.relative * abs(base))
        worse = (base - cur) if rule.higher_is_better else (cur - base)
        status = "regressed" if worse > allowed + 1e-12 else "improved" if worse < 0 else "ok"
        rows.append(Row(name, base, cur, cur - base, allowed, status))
    return rows


def passed(rows: list[Row]) -> bool:
    return not any(r.status in ("regressed", "missing") for r in rows)


def table(rows: list[Row]) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    lines = [f"{'metric':28} {'baseline':>10} {'current':>10} {'delta':>10} {'allowed':>10}  status"]
    for r in rows:
        delta = "-" if r.delta is None else f"{r.delta:+.4f}"
        lines.append(f"{r.metric:28} {f(r.baseline):>10} {f(r.current):>10} {delta:>10} {f(r.allowed):>10}  {r.status}")
    return "\n".join(lines)


def run_gate(cfg: GateConfig) -> tuple[list[Row], bool, bool]:
    """(rows, passed, promoted)."""
    missing = [n for n in ("metrics", "baseline") if not getattr(cfg, n)]
    if missing:
        raise ConfigError(f"give the {' and the '.join(missing)} file (dorag gate METRICS --baseline FILE)")
    current_raw = read_json(cfg.metrics)
    if not Path(cfg.baseline).is_file():
        if not cfg.promote:
            raise DataError(f"{cfg.baseline}: baseline not found; create it with --promote (the first run passes)")
        baseline: dict[str, float] = {}
    else:
        baseline = flatten(read_json(cfg.baseline))
    current = flatten(current_raw)
    if not current:
        raise DataError(f"{cfg.metrics}: no numeric metrics found")
    names = set(current) | set(baseline)
    unknown = [m for m in cfg.rules if m not in names and not any(fnmatch.fnmatchcase(n, m) for n in names)]
    if unknown and baseline:
        raise ConfigError(f"rules: metric(s) {', '.join(unknown)} appear in neither file; known: "
                          f"{', '.join(sorted(current)[:12])}")
    rows = evaluate_gate(current, baseline, cfg.rules)
    ok = passed(rows)
    promoted = False
    if ok and cfg.promote:
        write_json(cfg.baseline, current_raw)
        promoted = True
    return rows, ok, promoted
