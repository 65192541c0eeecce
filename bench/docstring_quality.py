"""Docstring generation quality, base model vs docstring adapter, on held-out standard-library functions.

Both conditions see the exact prompt of the training pairs (code without its docstring, with imports and
class context) and are scored against the real docstrings with BLEU (sacrebleu) and CodeBLEU.

    python bench/docstring_quality.py --adapter runs/train-docstring-lora/adapter --eval data/docstring.eval.jsonl --n 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dorag.core.io import read_jsonl
from dorag.core.types import Prompt
from dorag.data.docinsert import clean_docstring
from dorag.evaluation.text_metrics import bleu, codebleu, exact_match
from dorag.models.generator import GenerationParams
from dorag.models.loading import ModelConfig, load_generator


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--eval", required=True, help="held-out docstring pairs (dorag data prepare --task docstring)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json", help="also write figures (and the generations) here")
    args = ap.parse_args()

    pairs = read_jsonl(args.eval)[: args.n]
    prompts = [Prompt(messages=(("user", p["messages"][0]["content"]),)) for p in pairs]
    refs = [p["messages"][1]["content"] for p in pairs]
    gen = load_generator(ModelConfig(name=args.model, adapters={"docstring": args.adapter}))
    params = GenerationParams(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    figures: dict = {"model": args.model, "adapter": args.adapter, "n": len(pairs)}
    outputs = {}
    for cond in ("base", "docstring"):
        gen.use_adapter(cond)
        t0 = time.perf_counter()
        hyps = [clean_docstring(c[0].text) for c in gen.generate(prompts, params)]
        wall = time.perf_counter() - t0
        cb = codebleu(hyps, refs)
        figures[cond] = {"bleu": round(bleu(hyps, refs), 2), "codebleu": round(cb["codebleu"], 4),
                         "exact_match": round(exact_match(hyps, refs), 4), "wall_s": round(wall, 1)}
        outputs[cond] = hyps
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "examples": [
            {"ref": r, "base": b, "adapter": a} for r, b, a in zip(refs[:20], outputs["base"], outputs["docstring"])]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
