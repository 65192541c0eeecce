"""`dorag report`'s paired tests against scipy, on the same per-task outcomes.

For each comparison the report makes (each condition against baseline, dora_rag against each single method),
this script runs dorag's `compare` (exact McNemar and a paired bootstrap with 10,000 resamples) and the
reference: scipy's `binomtest(b, b + c, 0.5)` for McNemar and `scipy.stats.bootstrap(paired=True,
method="percentile")` for the interval of the difference, with the same number of resamples. It prints
both wall times, their ratio, the largest McNemar p-value difference, and the largest gap between the
two bootstrap intervals: with the same seed (both draw the resampled task indices the same way from numpy's
Generator, so the intervals should be identical) and with another seed for scipy (Monte Carlo error only,
about 0.01).

    python bench/stats.py --ablation runs/full          # the comparisons of a finished ablation
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
from dorag.experiments.stats import compare, holm, paired_outcomes

CONDITIONS = ["baseline", "lora_only", "dora_only", "rag_only", "lora_rag", "dora_rag"]


def from_ablation(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{benchmark: {condition: {task: pass rate}}} from an ablation directory."""
    ablation = read_json(path / "ablation.json")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cell in ablation["cells"]:
        summary = Path(cell["summary"])
        if not summary.is_file():  # the ablation moved: cells sit beside ablation.json
            summary = path / "cells" / summary.parent.name / summary.name
        out.setdefault(cell["benchmark"], {})[cell["condition"]] = _per_task(read_json(summary))
    return out


def synthetic(n_tasks: int = 164, seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    rng = np.random.default_rng(seed)
    out = {}
    for bench, base in (("bench-a", 0.55), ("bench-b", 0.1)):
        ease = rng.random(n_tasks)  # shared task difficulty makes the conditions correlated, as real ones are
        out[bench] = {cond: {f"T/{i}": float(ease[i] < base + shift + 0.1 * (rng.random() - 0.5))
                             for i in range(n_tasks)}
                      for cond, shift in zip(CONDITIONS, (0.0, -0.1, -0.09, 0.05, 0.08, 0.1))}
    return out


def reference(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    from scipy.stats import binomtest, bootstrap

    pa, pb = x >= 0.5, y >= 0.5
    b, c = int(np.sum(pa & ~pb)), int(np.sum(~pa & pb))
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    res = bootstrap((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), paired=True, vectorized=True,
                    n_resamples=n_boot, method="percentile", rng=np.random.default_rng(seed))
    return float(p), float(res.confidence_interval.low), float(res.confidence_interval.high)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablation", help="an ablation directory (default: synthetic outcomes)")
    ap.add_argument("--n-boot", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings for each side")
    args = ap.parse_args()

    data = from_ablation(Path(args.ablation)) if args.ablation else synthetic()
    pairs = [(bench, a, b) for bench, conds in data.items() for a, b in comparisons([c for c in CONDITIONS if c in conds])]

    def ours() -> list:
        rows = [compare(data[bench][a], data[bench][b], n_boot=args.n_boot) for bench, a, b in pairs]
        holm({f"{i}": r.mcnemar_p for i, r in enumerate(rows)})
        return rows

    def theirs(seed: int = 0) -> list:
        return [reference(*paired_outcomes(data[bench][a], data[bench][b])[1:], args.n_boot, seed) for bench, a, b in pairs]

    timings = {name: best_of(fn, args.repeat) for name, fn in (("dorag", ours), ("scipy", theirs))}
    (t_ours, rows), (t_ref, refs) = timings["dorag"], timings["scipy"]
    p_gap = max(abs(r.mcnemar_p - p) for r, (p, _, _) in zip(rows, refs))

    def ci_gap(refs: list) -> float:
        return max(max(abs(r.diff_ci[0] - lo), abs(r.diff_ci[1] - hi)) for r, (_, lo, hi) in zip(rows, refs))

    same_seed, other_seed = ci_gap(refs), ci_gap(theirs(seed=12345))
    figures = {
        "source": args.ablation or "synthetic",
        "comparisons": len(pairs),
        "tasks": sorted({r.n_tasks for r in rows}),
        "resamples": args.n_boot,
        "dorag_s": round(t_ours, 3),
        "scipy_s": round(t_ref, 3),
        "speedup": round(t_ref / t_ours, 2),
        "max_mcnemar_p_difference": float(f"{p_gap:.3g}"),
        "max_bootstrap_ci_endpoint_gap_same_seed": round(same_seed, 4),
        "max_bootstrap_ci_endpoint_gap_other_seed": round(other_seed, 4),
    }
    print(json.dumps(figures, indent=2))
    return 0 if p_gap < 1e-9 and same_seed < 1e-9 and other_seed < 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
