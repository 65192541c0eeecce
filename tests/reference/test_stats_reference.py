"""Paired tests against scipy and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from dorag.experiments.stats import compare, holm, mcnemar_exact, paired_bootstrap


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


def test_paired_bootstrap_interval_covers_the_difference_and_tracks_numpy():
    rng = np.random.default_rng(1)
    x = (rng.random(200) < 0.6).astype(float)
    y = (rng.random(200) < 0.4).astype(float)
    lo, hi, p = paired_bootstrap(x, y, n_boot=4000, seed=0)
    d = x - y
    assert lo < d.mean() < hi and p < 0.01
    se = d.std(ddof=1) / np.sqrt(len(d))  # the normal approximation agrees to within a few hundredths
    assert lo == pytest.approx(d.mean() - 1.96 * se, abs=0.03) and hi == pytest.approx(d.mean() + 1.96 * se, abs=0.03)
    assert paired_bootstrap(x, x)[2] == 1.0
    # every resample on one side: the add-one estimate 2 (0 + 1) / (B + 1), never 0
    assert paired_bootstrap([1.0] * 30, [0.0] * 30, n_boot=999)[2] == pytest.approx(2 / 1000)
    # hand count: d = (1, 0, 0), mean > 0; resamples with mean <= 0 are those drawing no 1: (2/3)^3 of them
    lo, hi, p = paired_bootstrap([1.0, 0.0, 0.0], [0.0, 0.0, 0.0], n_boot=200_000, seed=3)
    assert p == pytest.approx(2 * (8 / 27), abs=0.01)


def test_compare_counts_and_rates():
    a = {"t1": 1, "t2": 1, "t3": 0, "t4": 0, "t5": 1}
    b = {"t1": 1, "t2": 0, "t3": 1, "t4": 0, "t6": 1}
    r = compare(a, b, n_boot=500)
    assert (r.n_tasks, r.both, r.only_a, r.only_b, r.neither) == (4, 1, 1, 1, 1)
    assert r.diff == 0.0 and r.mcnemar_p == 1.0
