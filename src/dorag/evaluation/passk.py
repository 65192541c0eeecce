"""pass@k: the unbiased estimator (Codex paper, Chen et al. 2021, eq. 1) and bootstrap intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): the chance that k of n samples, c correct, include a correct one.

    Computed as a running product (Codex paper, Fig. 3) to stay exact and stable for large n.
    """
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def per_task_pass_at_k(counts: Mapping[str, tuple[int, int]], k: int) -> dict[str, float]:
    """pass@k for each task from its (n, c); tasks with fewer than k samples are left out."""
    return {t: pass_at_k(n, c, k) for t, (n, c) in counts.items() if n >= k}


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling tasks with replacement."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))  # (B, T)
    means = arr[idx].mean(axis=1)  # (B,)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def summarize_pass_at_k(counts: Mapping[str, tuple[int, int]], ks: Sequence[int], n_boot: int = 1000,
                        seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean pass@k over tasks with a 95% bootstrap CI, for each k that every task has samples for."""
    out: dict[str, dict[str, float]] = {}
    min_n = min((n for n, _ in counts.values()), default=0)
    for k in ks:
        if k > min_n:
            continue
        values = list(per_task_pass_at_k(counts, k).values())
        lo, hi = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        out[f"pass@{k}"] = {"value": float(np.mean(values)), "ci95_low": lo, "ci95_high": hi}
    return out
