"""Batched generation (dorag) vs one-prompt-at-a-time `model.generate`, on the same HumanEval prompts.

Prints both throughputs in generated tokens/s, their ratio, and whether the greedy outputs are identical.

    python bench/generation.py                      # 32 prompts, default model
    python bench/generation.py --n-prompts 8 --max-new-tokens 64 --model smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from dorag.core.seed import seed_everything
from dorag.data.prompts import PromptConfig, build_prompt, stops_for
from dorag.evaluation.benchmarks import load_problems
from dorag.models.generator import GenerationParams, cut_at_stop
from dorag.models.hf import TransformersGenerator
from dorag.models.loading import ModelConfig, load_transformers


def sequential(model, tok, texts: list[str], params: GenerationParams, eos: list[int]) -> tuple[list[str], int, float]:
    """The reference: plain `model.generate`, one prompt at a time, greedy, stop strings checked by HF."""
    import torch

    outs, n_tokens = [], 0
    t0 = time.perf_counter()
    for text in texts:
        enc = tok(text, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=params.max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, eos_token_id=eos, pad_token_id=tok.pad_token_id,
                                 stop_strings=list(params.stop), tokenizer=tok)
        gen = ids[0, enc["input_ids"].shape[1]:].tolist()
        n_tokens += len(gen)
        body = gen[:-1] if gen and gen[-1] in eos else gen
        outs.append(cut_at_stop(tok.decode(body, skip_special_tokens=True), params.stop)[0])
    return outs, n_tokens, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--n-prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    seed_everything(0)
    model, tok = load_transformers(ModelConfig(name=args.model, dtype=args.dtype))
    gen = TransformersGenerator(model, tok, name=args.model)
    problems = load_problems("humaneval", limit=args.n_prompts)
    texts = [gen.render(build_prompt(p, PromptConfig(), "chat")) for p in problems]
    params = GenerationParams(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, stop=stops_for("chat"))

    t0 = time.perf_counter()
    batched = gen.generate_text(texts, params)
    t_batched = time.perf_counter() - t0
    tokens_batched = sum(c[0].n_tokens for c in batched)
    ref, tokens_ref, t_ref = sequential(model, tok, texts, params, sorted(gen.eos_ids))

    same = [b[0].text == r for b, r in zip(batched, ref)]
    tps_b, tps_r = tokens_batched / t_batched, tokens_ref / t_ref
    figures = {
        "model": args.model, "prompts": len(texts), "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "dtype": str(model.dtype),
        "dorag_batched": {"tokens": tokens_batched, "wall_s": round(t_batched, 2), "tokens_per_s": round(tps_b, 2)},
        "hf_sequential": {"tokens": tokens_ref, "wall_s": round(t_ref, 2), "tokens_per_s": round(tps_r, 2)},
        "throughput_ratio": round(tps_b / tps_r, 2),
        "identical_outputs": f"{sum(same)}/{len(same)}",
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    for i, ok in enumerate(same):
        if not ok:
            print(f"DIFF {problems[i]['task_id']}:\n--- batched\n{batched[i][0].text}\n--- sequential\n{ref[i]}", file=sys.stderr)
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
