"""`dorag report`'s paired tests against scipy, on the same per-task outcomes.

For each comparison the report makes (each condition against baseline, dora_rag against each single method):

- pass/fail outcomes (greedy cells): dorag's `compare` (exact McNemar, and the paired-bootstrap interval of the
  difference with 10,000 resamples) against scipy's `binomtest(b, b + c, 0.5)` and
  `scipy.stats.bootstrap(paired=True, method="percentile")` with the same number of resamples. The intervals
  should be identical with the same seed (both draw the resampled task indices the same way from numpy's
  Generator) and differ by Monte Carlo error only (about 0.01) with another seed for scipy.
- sampled outcomes (pass@1 as correct/10 per task): dorag's exact sign-flip test (`sign_flip_test`, subset-sum
  counting) against `scipy.stats.permutation_test(permutation_type="samples")`. On a 16-task benchmark scipy
  enumerates all 2^16 sign assignments, so the p-values should be identical; on 164 tasks (2^164 assignments)
  scipy can only sample (10,000 resamples), so they agree within Monte Carlo error, while dorag stays exact.

It prints wall times, their ratios and the largest gaps.

    python bench/stats.py --ablation runs/full          # the pass/fail comparisons of a finished ablation
    python bench/stats.py                               # synthetic: 6 conditions x 2 benchmarks of 164 tasks
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from timing import best_of

from dorag.core.io import read_json
from dorag.experiments.report import _per_task, comparisons
from dorag.experiments.stats import compare, holm, paired_outcomes, sign_flip_test

CONDITIONS = ["baseline", "lora_only", "dora_only", "rag_only", "lora_rag", "dora_rag"]
SHIFTS = (0.0, -0.1, -0.09, 0.05, 0.08, 0.1)  # each condition's pass-rate shift against baseline

Outcomes = dict[str, dict[str, dict[str, float]]]  # {benchmark: {condition: {task: score}}}


def from_ablation(path: Path) -> Outcomes:
    """{benchmark: {condition: {task: pass rate}}} from an ablation directory."""
    ablation = read_json(path / "ablation.json")
    out: Outcomes = {}
    for cell in ablation["cells"]:
        summary = Path(cell["summary"])
        if not summary.is_file():  # the ablation moved: cells sit beside ablation.json
            summary = path / "cells" / summary.parent.name / summary.name
        out.setdefault(cell["benchmark"], {})[cell["condition"]] = _per_task(read_json(summary))
    return out


def synthetic(n_tasks: int = 164, seed: int = 0, samples: int = 1) -> Outcomes:
    """Correlated outcomes of the six conditions on two benchmarks: pass/fail (`samples` 1) or
    correct/`samples` per task."""
    rng = np.random.default_rng(seed)
    out = {}
    for bench, base in (("bench-a", 0.55), ("bench-b", 0.1)):
        ease = rng.random(n_tasks)  # shared task difficulty makes the conditions correlated, as real ones are
        out[bench] = {}
        for cond, shift in zip(CONDITIONS, SHIFTS):
            if samples == 1:
                scores = (ease < base + shift + 0.1 * (rng.random(n_tasks) - 0.5)).astype(float)
            else:
                rate = np.clip(1.2 * (base + shift) + 0.6 * (0.5 - ease), 0.0, 1.0)
                scores = rng.binomial(samples, rate) / samples
            out[bench][cond] = {f"T/{i}": float(scores[i]) for i in range(n_tasks)}
    return out


def pairs_of(data: Outcomes) -> list[tuple[str, str, str]]:
    return [(bench, a, b) for bench, conds in data.items() for a, b in comparisons([c for c in CONDITIONS if c in conds])]


def reference(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    from scipy.stats import binomtest, bootstrap

    pa, pb = x >= 0.5, y >= 0.5
    b, c = int(np.sum(pa & ~pb)), int(np.sum(~pa & pb))
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    res = bootstrap((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), paired=True, vectorized=True,
                    n_resamples=n_boot, method="percentile", rng=np.random.default_rng(seed))
    return float(p), float(res.confidence_interval.low), float(res.confidence_interval.high)


def scipy_sign_flip(x: np.ndarray, y: np.ndarray, n_resamples: int, seed: int = 0) -> float:
    from scipy.stats import permutation_test

    res = permutation_test((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), permutation_type="samples",
                           alternative="two-sided", vectorized=True, n_resamples=n_resamples,
                           rng=np.random.default_rng(seed))
    return float(res.pvalue)


def pass_fail_figures(data: Outcomes, n_boot: int, repeat: int) -> tuple[dict, bool]:
    pairs = pairs_of(data)

    def ours() -> list:
        rows = [compare(data[bench][a], data[bench][b], n_boot=n_boot) for bench, a, b in pairs]
        holm({f"{i}": r.p for i, r in enumerate(rows)})
        return rows

    def theirs(seed: int = 0) -> list:
        return [reference(*paired_outcomes(data[bench][a], data[bench][b])[1:], n_boot, seed) for bench, a, b in pairs]

    (t_ours, rows), (t_ref, refs) = best_of(ours, repeat), best_of(theirs, repeat)
    p_gap = max((abs(r.p - p) for r, (p, _, _) in zip(rows, refs) if r.test == "McNemar exact"), default=0.0)

    def ci_gap(refs: list) -> float:
        return max(max(abs(r.diff_ci[0] - lo), abs(r.diff_ci[1] - hi)) for r, (_, lo, hi) in zip(rows, refs))

    same_seed, other_seed = ci_gap(refs), ci_gap(theirs(seed=12345))
    figures = {"comparisons": len(pairs), "tasks": sorted({r.n_tasks for r in rows}),
               "tests": sorted({r.test for r in rows}), "resamples": n_boot,
               "dorag_s": round(t_ours, 3), "scipy_s": round(t_ref, 3), "speedup": round(t_ref / t_ours, 2),
               "max_mcnemar_p_difference": float(f"{p_gap:.3g}"),
               "max_bootstrap_ci_endpoint_gap_same_seed": round(same_seed, 4),
               "max_bootstrap_ci_endpoint_gap_other_seed": round(other_seed, 4)}
    return figures, p_gap < 1e-9 and same_seed < 1e-9 and other_seed < 0.03


def sampled_figures(data: Outcomes, n_resamples: int | None, repeat: int) -> tuple[dict, float]:
    """dorag's exact sign-flip p-values against scipy's permutation_test; `n_resamples` None: as many as
    there are sign assignments (scipy then enumerates them all: exact)."""
    outcomes = [paired_outcomes(data[bench][a], data[bench][b])[1:] for bench, a, b in pairs_of(data)]
    resamples = n_resamples or 2 ** max(len(x) for x, _ in outcomes)
    t_ours, ours = best_of(lambda: [sign_flip_test(x - y) for x, y in outcomes], repeat)
    t_ref, refs = best_of(lambda: [scipy_sign_flip(x, y, resamples) for x, y in outcomes], repeat)
    gap = max(abs(p - q) for (p, _), q in zip(ours, refs))
    figures = {"comparisons": len(outcomes), "tasks": sorted({len(x) for x, _ in outcomes}),
               "nonzero_differences": [min(int(np.sum(x != y)) for x, y in outcomes), max(int(np.sum(x != y)) for x, y in outcomes)],
               "dorag_methods": sorted({how for _, how in ours}), "scipy_resamples": resamples,
               "dorag_s": round(t_ours, 4), "scipy_s": round(t_ref, 3), "speedup": round(t_ref / t_ours, 1),
               "max_p_difference": float(f"{gap:.3g}"), "smallest_p": float(f"{min(p for p, _ in ours):.3g}")}
    return figures, gap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablation", help="an ablation directory (default: synthetic outcomes)")
    ap.add_argument("--n-boot", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings for each side")
    args = ap.parse_args()

    data = from_ablation(Path(args.ablation)) if args.ablation else synthetic()
    pass_fail, pass_fail_ok = pass_fail_figures(data, args.n_boot, args.repeat)
    exact, exact_gap = sampled_figures(synthetic(16, seed=1, samples=10), None, args.repeat)
    full, full_gap = sampled_figures(synthetic(164, seed=2, samples=10), 10_000, 1)
    figures = {"source": args.ablation or "synthetic", "pass_fail": pass_fail,
               "sampled_16_tasks_scipy_exact": exact, "sampled_164_tasks_scipy_monte_carlo": full}
    print(json.dumps(figures, indent=2))
    # scipy's 10,000 resamples: standard error at most 0.005, so 0.03 is six of them
    return 0 if pass_fail_ok and exact_gap < 1e-9 and full_gap < 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
