"""The leakage check on planted solutions and on clean corpora: recall, false flags and time.

Planted: every canonical solution of HumanEval, Unseen-API and Unseen-API-shift as its own document, without its
`def` line, in four variants (verbatim, re-indented and re-wrapped, locals renamed, inside a markdown answer). A
problem counts as caught in a variant when its document is flagged for that problem. Clean: the standard
library, the Unseen-API documentation and the numpy API docs, which hold no benchmark solution, so every flagged
document there is a false flag. The reference is the text test alone (word 8-grams of the signature-bearing
solution and of the prompt), which is what `dorag index leakage` ran before the code and statement tests.

    python bench/leakage.py                      # stdlib corpus built in memory (~1 min)
    python bench/leakage.py --stdlib runs/idx-stdlib-bm25/docs.jsonl
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stdlib", help="a stdlib corpus JSONL (an index's docs.jsonl); default: built now")
    args = ap.parse_args()

    from dorag.core.io import read_jsonl
    from dorag.data.corpus import build_corpus
    from dorag.data.leakage import LeakageChecker
    from dorag.data.planted import VARIANTS, planted_docs
    from dorag.experiments.indexing import benchmark_corpus
    from dorag.evaluation.benchmarks import load_problems

    benchmarks = {b: load_problems(b) for b in ("humaneval", "unseen-api", "unseen-api-shift")}
    problems = [p for ps in benchmarks.values() for p in ps]
    t0 = time.perf_counter()
    checkers = {"dorag": LeakageChecker(problems), "text test only": LeakageChecker(problems, code_n=10**6)}
    checkers["text test only"].units.clear()
    print(f"index of {len(problems)} problems: {time.perf_counter() - t0:.1f} s for both checkers")

    planted = list(planted_docs(problems))
    print(f"\nplanted: {len(planted)} documents ({len(VARIANTS)} variants)")
    print("| checker | benchmark | " + " | ".join(VARIANTS) + " | s |")
    print("|---|---|" + "---|" * (len(VARIANTS) + 1))
    for name, checker in checkers.items():
        t = time.perf_counter()
        caught: dict[tuple[str, str], set[str]] = defaultdict(set)
        for d in planted:
            own = d["meta"]["task_id"]
            if any(f["task_id"] == own and f["kind"] == "solution" for f in checker.check(d["text"])):
                caught[(d["id"].split("/")[1], own.split("/")[0])].add(own)
        dt = time.perf_counter() - t
        for bname, ps in benchmarks.items():
            prefix = ps[0]["task_id"].split("/")[0]
            cells = [f"{len(caught[(v, prefix)])}/{len(ps)}" for v in VARIANTS]
            print(f"| {name} | {bname} | " + " | ".join(cells) + f" | {dt:.1f} |")

    t = time.perf_counter()
    clean = {"stdlib": list(read_jsonl(args.stdlib)) if args.stdlib else build_corpus(["stdlib"]),
             "unseen-api docs": list(benchmark_corpus("unseen-api")), "numpy apidoc": build_corpus(["apidoc:numpy"])}
    print(f"\nclean corpora loaded in {time.perf_counter() - t:.1f} s")
    print("| checker | corpus | documents | flagged | s | examples |")
    print("|---|---|---|---|---|---|")
    for name, checker in checkers.items():
        for cname, docs in clean.items():
            t = time.perf_counter()
            findings = checker.scan(docs)
            dt = time.perf_counter() - t
            flagged = sorted({f["doc_id"] for f in findings})
            ex = "; ".join(f"{f['doc_id']} ~ {f['task_id']} ({f['reason']})" for f in findings[:3])
            print(f"| {name} | {cname} | {len(docs)} | {len(flagged)} | {dt:.1f} | {ex} |")


if __name__ == "__main__":
    main()
