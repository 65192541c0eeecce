"""Problem writing for `dorag data selfgen`: how many seeds give a usable stub, per prompt variant.

Step a of self-generation asks the writer for one HumanEval-style stub per seed function. This script runs
that step alone on the first N seeds (the same seeds a run uses) under several variants, and prints for
each: the parse rate, why the rest were rejected, tokens, seconds and tokens/s. A variant is
``<fewshot><view>[n][@temperature]``: fewshot 0-2 worked examples; view ``c`` shows the seed's code, ``s``
only its signature and docstring summary; a trailing ``n`` lets the model write past the docstring (it
then writes a body, which rejects the stub) instead of stopping where the docstring closes.

    python bench/selfgen.py --n-seeds 16 --variants 1c,1s,0s,2s,1cn
    python bench/selfgen.py --writer smollm2-135m-instruct --variants 1s
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from dorag.data import selfgen as sg
from dorag.data.ast_extract import extract_stdlib
from dorag.models.generator import GenerationParams
from dorag.models.loading import ModelConfig, load_generator
from dorag.models.registry import DEFAULT_MODEL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-seeds", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="1c,1s")
    ap.add_argument("--no-examples-ok", action="store_true", help="accept stubs without >>> examples")
    ap.add_argument("--writer", default=DEFAULT_MODEL)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dump", help="write every answer and its verdict to this JSON file")
    args = ap.parse_args()

    seeds = sg.select_seeds(extract_stdlib(), args.n_seeds, args.seed)
    gen = load_generator(ModelConfig(name=args.writer, dtype=args.dtype))
    dump = {}
    for variant in args.variants.split(","):
        spec, _, temp = variant.partition("@")
        fewshot, view, stop = int(spec[0]), {"c": "code", "s": "summary"}[spec[1]], not spec.endswith("n")
        prompts = [sg.problem_prompt(s, fewshot=fewshot, view=view) for s in seeds]
        params = GenerationParams(max_new_tokens=256, temperature=float(temp or 0), top_p=0.95, seed=args.seed,
                                  stop=sg.PROBLEM_STOPS if stop else ("\n```",), batch_size=args.batch_size)
        t0 = time.perf_counter()
        outs = gen.generate(prompts, params)
        wall = time.perf_counter() - t0
        n_tok = sum(c.n_tokens for o in outs for c in o)
        seen, verdicts = set(sg.FEWSHOT_NAMES), Counter()
        rows = []
        for s, p, o in zip(seeds, prompts, outs):
            r = sg.parse_problem(sg.close_docstring(p.response_prefix + o[0].text), seen,
                                 require_examples=not args.no_examples_ok)
            verdicts["parsed" if not isinstance(r, str) else r] += 1
            if not isinstance(r, str):
                seen.add(r.entry_point)
            rows.append({"seed": s.id, "answer": o[0].text, "verdict": r if isinstance(r, str) else r.prompt})
        dump[variant] = rows
        print(f"{variant:>8}: parsed {verdicts['parsed']}/{len(seeds)} ({verdicts['parsed'] / len(seeds):.0%}), "
              f"{n_tok} tokens in {wall:.0f} s ({n_tok / wall:.1f} tok/s); rejected: "
              + ", ".join(f"{k}={v}" for k, v in verdicts.most_common() if k != "parsed"), flush=True)
        if args.dump:  # after each variant: a slow machine may not see the last one
            with open(args.dump, "w", encoding="utf-8") as fh:
                json.dump(dump, fh, indent=1)


if __name__ == "__main__":
    main()
