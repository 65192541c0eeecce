"""Paired tests against scipy, brute-force enumeration and hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dorag.experiments.stats import (compare, discordant_needed, holm, mcnemar_exact, needed_in_one_direction,
                                     paired_bootstrap_ci, sign_flip_test)


@pytest.mark.parametrize("b, c", [(21, 8), (0, 5), (3, 3), (10, 0), (1, 2), (40, 25)])
def test_exact_mcnemar_equals_scipy_binomial_test(b, c):
    from scipy.stats import binomtest

    assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-12)


def test_exact_mcnemar_by_hand():
    # b=1, c=4: P[X<=1] = (1 + 5) / 32, two-sided 12/32
    assert mcnemar_exact(1, 4) == pytest.approx(12 / 32)
    assert mcnemar_exact(0, 0) == 1.0


def test_holm_by_hand():
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adj == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})  # 3*0.01, max(0.03, 2*0.03), max(.., 1*0.04)


def brute_force_sign_flip(d: list[float]) -> float:
    """Share of all 2^m sign assignments of the nonzero differences with |sum| >= |observed sum|."""
    nonzero = [v for v in d if v != 0]
    observed = abs(sum(nonzero))
    hits = [abs(sum(s * v for s, v in zip(signs, nonzero))) >= observed - 1e-9
            for signs in itertools.product((-1, 1), repeat=len(nonzero))]
    return float(np.mean(hits)) if nonzero else 1.0


def test_sign_flip_by_hand():
    # d = (1, 1, 1): of the 8 assignments only +++ and --- reach |sum| = 3
    assert sign_flip_test([1, 1, 1]) == (pytest.approx(2 / 8), "sign-flip exact")
    # d = (1, 1, -1, 1), sum 2: with T plus signs the sum is 2T - 4; |2T - 4| >= 2 for T in {0, 1, 3, 4}:
    # C(4,0) + C(4,1) + C(4,3) + C(4,4) = 10 of 16
    assert sign_flip_test([1, 1, -1, 1])[0] == pytest.approx(10 / 16)
    # d = (0.5, 0.25, -0.1), sum 0.65: |+-0.5 +-0.25 +-0.1| is 0.85, 0.65, 0.35 or 0.15, each twice: 4 of 8
    assert sign_flip_test([0.5, 0.25, -0.1])[0] == pytest.approx(4 / 8)
    # zeros carry no sign: (0, 0, 0.3, 0.3) is (0.3, 0.3), p = 2/4; all zero: p = 1
    assert sign_flip_test([0, 0, 0.3, 0.3])[0] == pytest.approx(0.5) and sign_flip_test([0.0, 0.0])[0] == 1.0


@pytest.mark.parametrize("seed", range(40))
def test_sign_flip_exact_equals_brute_force_enumeration(seed):
    rng = np.random.default_rng(seed)
    m, n_a, n_b = int(rng.integers(1, 13)), int(rng.integers(1, 11)), int(rng.choice([1, 5, 10]))
    # scores correct/n of two sampled cells (the subset-sum path), and arbitrary floats (enumeration)
    d = list(rng.integers(0, n_a + 1, m) / n_a - rng.integers(0, n_b + 1, m) / n_b)
    p, how = sign_flip_test(d)
    assert how == "sign-flip exact" and p == pytest.approx(brute_force_sign_flip(d), rel=1e-12)
    floats = list(rng.normal(0.2, 1.0, m))
    assert sign_flip_test(floats)[0] == pytest.approx(brute_force_sign_flip(floats), rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_sign_flip_equals_scipy_permutation_test(seed):
    from scipy.stats import permutation_test

    rng = np.random.default_rng(100 + seed)
    m, n = 14, 10
    x, y = rng.integers(0, n + 1, m) / n, rng.integers(0, n + 1, m) / n  # pass@1 from 10 samples per task
    ref = permutation_test((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), permutation_type="samples",
                           alternative="two-sided", vectorized=True, n_resamples=2 ** m)  # >= 2^m: exact
    # scipy flips every pair, ties included; a tied pair's flip changes nothing, so the shares agree
    assert sign_flip_test(x - y)[0] == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("b, c", [(21, 8), (0, 5), (3, 3), (10, 0), (1, 2), (40, 25), (0, 0)])
def test_sign_flip_on_pass_fail_is_mcnemar(b, c):
    d = [1.0] * b + [-1.0] * c + [0.0] * 7  # 7 concordant tasks
    assert sign_flip_test(d)[0] == pytest.approx(mcnemar_exact(b, c), rel=1e-12)


def test_sign_flip_monte_carlo_when_not_exact():
    rng = np.random.default_rng(5)
    d = list(rng.normal(0.15, 1.0, 40))  # irrational-looking differences, 2^40 assignments: sampled
    p, how = sign_flip_test(d, n_mc=20_000, seed=1)
    assert how == "sign-flip MC" and p == sign_flip_test(d, n_mc=20_000, seed=1)[0]  # seeded
    from scipy.stats import permutation_test

    ref = permutation_test((np.array(d),), np.mean, permutation_type="samples", n_resamples=20_000,
                           alternative="two-sided", rng=np.random.default_rng(2)).pvalue
    assert p == pytest.approx(ref, abs=0.015)  # two Monte Carlo estimates of the same p (SE about 0.004)
    # every sign the same: no sampled assignment beats +++..., the add-one estimate stays above 0
    same_sign = list(np.abs(rng.normal(1.0, 0.1, 30)))
    assert sign_flip_test(same_sign, n_mc=999) == (pytest.approx(1 / 1000), "sign-flip MC")


def test_sign_flip_exact_for_a_full_benchmark():
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 11, 164) / 10, rng.integers(0, 11, 164) / 10  # 164 tasks, 2^(about 150) assignments
    p, how = sign_flip_test(x - y + 0.05)  # shifted by half a sample: every difference nonzero
    assert how == "sign-flip exact" and 0 <= p <= 1
    # (1/20 units) the normal approximation to the permutation distribution is close at this size
    from scipy.stats import norm

    d = x - y + 0.05
    z = abs(d.sum()) / np.sqrt(np.sum(d ** 2))
    assert p == pytest.approx(2 * norm.sf(z), abs=0.01)


def test_discordant_needed_by_hand():
    assert discordant_needed(0.05) == 6  # (5, 0): 2/32 = 0.0625; (6, 0): 2/64 = 0.031
    assert discordant_needed(0.05 / 8) == 9  # 2/2^8 = 0.0078 > 0.00625 >= 2/2^9 = 0.0039
    assert needed_in_one_direction(8) == 8  # (7, 1): 2 * 9/256 = 0.070
    assert needed_in_one_direction(9) == 8  # (8, 1): 2 * 10/512 = 0.039
    assert needed_in_one_direction(10) == 9  # (9, 1): 2 * 11/1024 = 0.021; (8, 2): 2 * 56/1024 = 0.109
    assert needed_in_one_direction(5) is None and needed_in_one_direction(0) is None
    assert needed_in_one_direction(6) == 6


def test_paired_bootstrap_interval_covers_the_difference_and_tracks_numpy():
    rng = np.random.default_rng(1)
    x = (rng.random(200) < 0.6).astype(float)
    y = (rng.random(200) < 0.4).astype(float)
    lo, hi = paired_bootstrap_ci(x, y, n_boot=4000, seed=0)
    d = x - y
    assert lo < d.mean() < hi
    se = d.std(ddof=1) / np.sqrt(len(d))  # the normal approximation agrees to within a few hundredths
    assert lo == pytest.approx(d.mean() - 1.96 * se, abs=0.03) and hi == pytest.approx(d.mean() + 1.96 * se, abs=0.03)
    assert paired_bootstrap_ci(x, x) == (0.0, 0.0)


def test_paired_bootstrap_interval_equals_scipy_with_the_same_draws():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(4)
    x, y = (rng.random(60) < 0.5).astype(float), (rng.random(60) < 0.35).astype(float)
    ref = bootstrap((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), paired=True, vectorized=True,
                    n_resamples=2000, method="percentile", rng=np.random.default_rng(9)).confidence_interval
    assert paired_bootstrap_ci(x, y, n_boot=2000, seed=9) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_compare_counts_rates_and_test():
    a = {"t1": 1, "t2": 1, "t3": 0, "t4": 0, "t5": 1}
    b = {"t1": 1, "t2": 0, "t3": 1, "t4": 0, "t6": 1}
    r = compare(a, b, n_boot=500)
    assert (r.n_tasks, r.both, r.only_a, r.only_b, r.neither) == (4, 1, 1, 1, 1)
    assert r.diff == 0.0 and r.p == 1.0 and r.test == "McNemar exact"
    # 5 of 24 tasks passed only by A: exact p 2/32, whatever a bootstrap would say
    r = compare({f"t{i}": int(i < 5) for i in range(24)}, {f"t{i}": 0 for i in range(24)})
    assert r.p == pytest.approx(0.0625) and r.diff_ci[0] > 0 and not hasattr(r, "bootstrap_p")
    # a sampled cell: correct/10 per task, against pass/fail
    r = compare({"t1": 0.7, "t2": 0.3, "t3": 1.0}, {"t1": 0.0, "t2": 1.0, "t3": 1.0})
    assert r.test == "sign-flip exact" and (r.only_a, r.only_b, r.both) == (1, 1, 1)
    assert r.p == pytest.approx(brute_force_sign_flip([0.7, -0.7, 0.0]))  # = 1: the two cancel
