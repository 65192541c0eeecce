"""Paired significance tests for per-task pass/fail outcomes of two conditions on one benchmark.

- McNemar's exact test: only discordant tasks carry information; under H0 each discordant task is
  equally likely to favour either condition, so b ~ Binomial(b + c, 1/2) and the two-sided p-value is
  min(1, 2 * P[X <= min(b, c)]).
- Paired bootstrap of the difference in pass rate: tasks are resampled with replacement (the pairing is
  kept); the 95% interval is the percentile interval and the two-sided p-value is twice the share of
  resampled differences on the other side of 0 (Efron & Tibshirani's percentile test).
- Holm's step-down correction for a family of p-values.
Pure Python and numpy: scoring works on a bare install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` tasks passed only by A and `c` only by B."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass
class PairedComparison:
    n_tasks: int
    rate_a: float
    rate_b: float
    both: int
    only_a: int
    only_b: int
    neither: int
    mcnemar_p: float
    diff: float  # rate_a - rate_b
    diff_ci: tuple[float, float]
    bootstrap_p: float

    def to_dict(self) -> dict:
        return {**self.__dict__, "diff_ci": list(self.diff_ci)}


def paired_outcomes(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-task scores (pass@1 or pass/fail) of two conditions over the tasks both have."""
    tasks = sorted(set(a) & set(b))
    return tasks, np.array([a[t] for t in tasks], dtype=float), np.array([b[t] for t in tasks], dtype=float)


def compare(a: Mapping[str, float], b: Mapping[str, float], *, n_boot: int = 10_000, seed: int = 0) -> PairedComparison:
    """Condition A against condition B on the tasks both were scored on (per-task pass@1 in [0, 1];
    McNemar counts use pass = score >= 0.5)."""
    tasks, x, y = paired_outcomes(a, b)
    if not tasks:
        raise ValueError("the two conditions share no tasks")
    pa, pb = x >= 0.5, y >= 0.5
    both, only_a, only_b = int(np.sum(pa & pb)), int(np.sum(pa & ~pb)), int(np.sum(~pa & pb))
    diff = float(x.mean() - y.mean())
    lo, hi, p_boot = paired_bootstrap(x, y, n_boot=n_boot, seed=seed)
    return PairedComparison(len(tasks), float(x.mean()), float(y.mean()), both, only_a, only_b,
                            len(tasks) - both - only_a - only_b, mcnemar_exact(only_a, only_b), diff, (lo, hi), p_boot)


def paired_bootstrap(x: Sequence[float], y: Sequence[float], *, n_boot: int = 10_000, seed: int = 0,
                     alpha: float = 0.05) -> tuple[float, float, float]:
    """Percentile CI of mean(x - y) over tasks resampled in pairs, and the two-sided bootstrap p-value."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    means = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    if not d.any():
        return float(lo), float(hi), 1.0
    beyond = int(np.sum(means <= 0) if d.mean() > 0 else np.sum(means >= 0))
    # (k + 1) / (B + 1) (Davison & Hinkley 1997, eq. 4.11): never 0, and 2 / (B + 1) at the smallest
    share = (beyond + 1) / (n_boot + 1)
    return float(lo), float(hi), float(min(1.0, 2 * share))


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1), keyed as given."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[key]))
        adjusted[key] = running
    return adjusted
