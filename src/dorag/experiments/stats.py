"""Paired significance tests for two conditions' per-task scores on one benchmark.

- McNemar's exact test, for pass/fail outcomes (every per-task score 0 or 1, as in greedy cells): only
  discordant tasks carry information; under H0 each is equally likely to favour either condition, so
  b ~ Binomial(b + c, 1/2) and the two-sided p-value is min(1, 2 * P[X <= min(b, c)]).
- The exact paired permutation (sign-flip) test, for sampled cells (per-task score correct/n): under H0
  the two conditions are exchangeable within a task, so each nonzero difference d_i = x_i - y_i is
  equally likely to carry either sign; p is the share of the 2^m sign assignments (m nonzero d_i) whose
  |sum| is at least the observed one (Fisher 1935, The Design of Experiments, sec. 21). On 0/1 outcomes
  it is McNemar's test exactly, so a table can mix the two.
- The paired bootstrap percentile interval of the difference in pass rate (tasks resampled in pairs).
  No bootstrap p-value: with few discordant tasks it is anti-conservative (5 of 24 tasks passed only by
  A, none only by B: bootstrap p 0.0064 against the exact 0.0625).
- Holm's step-down correction for a family of p-values.
Pure Python and numpy: scoring works on a bare install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

MCNEMAR = "McNemar exact"
SIGN_FLIP_EXACT = "sign-flip exact"
SIGN_FLIP_MC = "sign-flip MC"


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` tasks passed only by A and `c` only by B."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def discordant_needed(alpha: float = 0.05) -> int:
    """The fewest discordant tasks d whose most lopsided split (d, 0) reaches McNemar p < `alpha`
    (6 at 0.05: 2 / 2^6 = 0.031, while 5 gives 0.0625)."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    d = 1
    while mcnemar_exact(d, 0) >= alpha:
        d += 1
    return d


def needed_in_one_direction(discordant: int, alpha: float = 0.05) -> int | None:
    """The fewest of `discordant` tasks that must favour one condition for McNemar p < `alpha`;
    None when no split of that many reaches it."""
    for w in range((discordant + 1) // 2, discordant + 1):
        if mcnemar_exact(w, discordant - w) < alpha:
            return w
    return None


# ------------------------------------------------------------------ the sign-flip test

_EXACT_ENUMERATION_MAX_TERMS = 20  # 2^20 sums of float differences: 8 MB, well under a second
_MAX_DENOMINATOR = 10_000  # per-task scores are correct/n; n (and the lcm of two cells' n) stays far below
_MAX_POLY_BITS = 1 << 27  # 16 MB for the subset-sum generating function


def _integer_steps(d: Sequence[float]) -> list[int] | None:
    """The differences as integers on a common grid 1/L (scores correct/n differ by multiples of
    1/lcm(n_a, n_b)), or None when they are not such fractions."""
    fracs = [Fraction(v).limit_denominator(_MAX_DENOMINATOR) for v in d]
    if any(abs(float(f) - v) > 1e-12 for f, v in zip(fracs, d)):
        return None
    scale = math.lcm(*(f.denominator for f in fracs)) if fracs else 1
    return [int(f * scale) for f in fracs]


def _exact_integer_p(steps: list[int]) -> float | None:
    """Exact sign-flip p-value for nonzero integer differences by counting subset sums.

    With T the sum of the |d_i| given a + sign, the signed sum is 2T - A (A = sum |d_i|), so the
    assignments at least as extreme as the observed sum S are those with T <= (A - |S|) / 2 and, by
    symmetry, as many at the other end. The counts of T are the coefficients of prod_i (1 + x^|d_i|),
    computed exactly as one Python integer with a (m + 2)-bit slot per power of x (no coefficient
    exceeds 2^m); the sum of the low slots is that integer modulo 2^(m + 2) - 1, as casting out nines
    sums decimal digits. None when the polynomial would be too large (then enumerate or sample).
    """
    sizes = [abs(s) for s in steps]
    m, total, observed = len(sizes), sum(sizes), abs(sum(steps))
    if observed == 0:
        return 1.0
    slot = m + 2
    if (total + 1) * slot > _MAX_POLY_BITS:
        return None
    poly = 1
    for a in sizes:
        poly += poly << (a * slot)
    t_max = (total - observed) // 2  # observed has the parity of total, so this is exact
    low = poly & ((1 << ((t_max + 1) * slot)) - 1)
    count = low % ((1 << slot) - 1)
    return min(1.0, 2 * count / 2 ** m)


def sign_flip_test(d: Sequence[float], *, n_mc: int = 100_000, seed: int = 0) -> tuple[float, str]:
    """Two-sided paired permutation (sign-flip) test of mean(d) = 0 for per-task differences `d`.

    Returns the p-value and how it was computed: ``"sign-flip exact"`` (subset-sum counting when the
    differences are fractions with a common denominator, as correct/n scores are, for any number of
    tasks; otherwise enumeration of every sign assignment up to 2^20) or ``"sign-flip MC"`` (`n_mc`
    seeded random assignments, p = (k + 1) / (n_mc + 1), Davison & Hinkley 1997, eq. 4.11).
    """
    nonzero = [float(v) for v in d if v != 0]
    if not nonzero:
        return 1.0, SIGN_FLIP_EXACT
    steps = _integer_steps(nonzero)
    if steps is not None:
        p = _exact_integer_p(steps)
        if p is not None:
            return p, SIGN_FLIP_EXACT
    arr = np.abs(np.array(nonzero))
    observed = abs(float(np.sum(nonzero)))
    tol = 1e-9 * max(1.0, float(arr.sum()))  # float ties: sums equal to the observed one count as extreme
    if len(arr) <= _EXACT_ENUMERATION_MAX_TERMS:
        sums = np.zeros(1)
        for a in arr:
            sums = np.concatenate([sums + a, sums - a])  # (2^i,)
        return float(np.mean(np.abs(sums) >= observed - tol)), SIGN_FLIP_EXACT
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < n_mc:
        size = min(10_000, n_mc - done)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, len(arr)))  # (size, m)
        hits += int(np.sum(np.abs(signs @ arr) >= observed - tol))
        done += size
    return (hits + 1) / (n_mc + 1), SIGN_FLIP_MC


# ------------------------------------------------------------------ one comparison

@dataclass
class PairedComparison:
    n_tasks: int
    rate_a: float
    rate_b: float
    both: int  # ties with a nonzero score (pass/fail: passed by both)
    only_a: int  # tasks A scored higher on (pass/fail: passed only by A)
    only_b: int  # tasks B scored higher on
    neither: int  # ties at 0
    test: str  # MCNEMAR, SIGN_FLIP_EXACT or SIGN_FLIP_MC
    p: float  # two-sided p-value of that test
    diff: float  # rate_a - rate_b
    diff_ci: tuple[float, float]  # paired-bootstrap percentile interval

    def to_dict(self) -> dict:
        return {**self.__dict__, "diff_ci": list(self.diff_ci)}


def paired_outcomes(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-task scores (pass@1 or pass/fail) of two conditions over the tasks both have."""
    tasks = sorted(set(a) & set(b))
    return tasks, np.array([a[t] for t in tasks], dtype=float), np.array([b[t] for t in tasks], dtype=float)


def compare(a: Mapping[str, float], b: Mapping[str, float], *, n_boot: int = 10_000, seed: int = 0) -> PairedComparison:
    """Condition A against condition B on the tasks both were scored on (per-task score in [0, 1]):
    McNemar's exact test when every score is 0 or 1, else the sign-flip test on the differences."""
    tasks, x, y = paired_outcomes(a, b)
    if not tasks:
        raise ValueError("the two conditions share no tasks")
    only_a, only_b = int(np.sum(x > y)), int(np.sum(x < y))
    both = int(np.sum((x == y) & (x > 0)))
    binary = bool(np.all(np.isin(x, (0.0, 1.0))) and np.all(np.isin(y, (0.0, 1.0))))
    if binary:
        p, test = mcnemar_exact(only_a, only_b), MCNEMAR
    else:
        p, test = sign_flip_test(x - y, seed=seed)
    lo, hi = paired_bootstrap_ci(x, y, n_boot=n_boot, seed=seed)
    return PairedComparison(len(tasks), float(x.mean()), float(y.mean()), both, only_a, only_b,
                            len(tasks) - both - only_a - only_b, test, p, float(x.mean() - y.mean()), (lo, hi))


def paired_bootstrap_ci(x: Sequence[float], y: Sequence[float], *, n_boot: int = 10_000, seed: int = 0,
                        alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of mean(x - y) over tasks resampled in pairs."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))  # (B, T)
    means = d[idx].mean(axis=1)  # (B,)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


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
