"""dorag's batched decoder against what a user would write instead: batched `model.generate`.

The anchor is `model.generate` on the same batches: prompts sorted by length, left-padded, greedy, with
`stop_strings` and the model's EOS, `batch_size` at a time. One-prompt-at-a-time `model.generate` is shown
as well (the weaker reference an earlier version of this script used). Every row runs on the same HumanEval
prompts, for plain prompts and for RAG prompts that carry `--rag-tokens` tokens of stdlib documents (BM25,
assembled as the ablation does), in each dtype asked for. Rows are interleaved and repeated; each figure is
the best of `--repeats`. A row gives generated tokens/s, prompt tokens/s (prompt tokens over the same wall
time) and how many outputs are identical to the anchor's.

    python bench/generation.py                                  # bf16 + fp32, plain + RAG, 32 prompts, 384 tokens
    python bench/generation.py --dtypes bfloat16 --kinds plain --n-prompts 8 --max-new-tokens 64
    python bench/generation.py --methods dorag,generate_batched --json bench/out/generation.json
    python bench/generation.py --methods dorag,dorag_prealloc --dtypes bfloat16 --kinds plain,rag   # the in-place KV cache
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dorag.core.seed import seed_everything
from dorag.data.prompts import PromptConfig, build_prompt, stops_for
from dorag.evaluation.benchmarks import load_problems
from dorag.models.generator import GenerationParams, cut_at_stop
from dorag.models.hf import TransformersGenerator
from dorag.models.loading import ModelConfig, load_transformers

METHODS = ("dorag", "dorag_prealloc", "generate_batched", "generate_sequential")  # dorag_prealloc: the in-place KV cache


def _finish(tok: Any, gen: list[int], eos: list[int], stop: tuple[str, ...]) -> tuple[str, int]:
    """Text and token count of one `model.generate` row, cut as dorag cuts its own: at EOS and the first stop."""
    pad = tok.pad_token_id
    while gen and gen[-1] == pad and pad not in eos:  # right padding of a row that ended before the longest
        gen = gen[:-1]
    n = len(gen)
    for i, t in enumerate(gen):
        if t in eos:
            gen, n = gen[:i], i + 1
            break
    return cut_at_stop(tok.decode(gen, skip_special_tokens=True), stop)[0], n


def generate_batched(model: Any, tok: Any, texts: list[str], params: GenerationParams, eos: list[int]
                     ) -> tuple[list[str], int, int]:
    """The anchor: `model.generate` on length-sorted, left-padded batches of `batch_size`."""
    import torch

    tok.padding_side = "left"
    order = sorted(range(len(texts)), key=lambda i: -len(tok(texts[i], add_special_tokens=False)["input_ids"]))
    outs: list[str] = [""] * len(texts)
    n_tokens = n_prompt = 0
    for start in range(0, len(order), params.batch_size):
        idx = order[start:start + params.batch_size]
        enc = tok([texts[i] for i in idx], add_special_tokens=False, return_tensors="pt", padding=True)
        n_prompt += int(enc["attention_mask"].sum())
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=params.max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, eos_token_id=eos, pad_token_id=tok.pad_token_id,
                                 stop_strings=list(params.stop), tokenizer=tok)
        for row, i in enumerate(idx):
            outs[i], n = _finish(tok, ids[row, enc["input_ids"].shape[1]:].tolist(), eos, params.stop)
            n_tokens += n
    return outs, n_tokens, n_prompt


def generate_sequential(model: Any, tok: Any, texts: list[str], params: GenerationParams, eos: list[int]
                        ) -> tuple[list[str], int, int]:
    """`model.generate`, one prompt at a time."""
    import torch

    outs, n_tokens, n_prompt = [], 0, 0
    for text in texts:
        enc = tok(text, add_special_tokens=False, return_tensors="pt")
        n_prompt += enc["input_ids"].shape[1]
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=params.max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, eos_token_id=eos, pad_token_id=tok.pad_token_id,
                                 stop_strings=list(params.stop), tokenizer=tok)
        text_out, n = _finish(tok, ids[0, enc["input_ids"].shape[1]:].tolist(), eos, params.stop)
        outs.append(text_out)
        n_tokens += n
    return outs, n_tokens, n_prompt


def rag_texts(gen: TransformersGenerator, problems: list[dict], budget: int, k: int = 8) -> list[str]:
    """Each problem's chat prompt with the stdlib documents BM25 ranks first for it, in `budget` tokens."""
    from dorag.data.corpus import build_corpus
    from dorag.experiments.generate import query_text
    from dorag.retrieval.assemble import assemble_context
    from dorag.retrieval.index import IndexConfig, build_index

    index, _ = build_index(build_corpus(("stdlib",)), IndexConfig(method="bm25"))
    count = lambda text: len(gen.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    hits = index.search([query_text(p, False) for p in problems], k)
    out = []
    for p, row in zip(problems, hits):
        context = assemble_context([{"id": h.id, "text": h.text, "meta": h.meta} for h in row], count, budget)
        out.append(gen.render(build_prompt(p, PromptConfig(), "chat", context=context)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--n-prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--kinds", default="plain,rag", help="plain and/or rag prompts")
    ap.add_argument("--rag-tokens", type=int, default=1024, help="document tokens in each RAG prompt")
    ap.add_argument("--methods", default="dorag,generate_batched,generate_sequential")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best of each row is kept")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if "generate_batched" not in methods:
        methods.insert(0, "generate_batched")  # the anchor every row is compared with
    problems = load_problems("humaneval", limit=args.n_prompts)
    params = GenerationParams(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, stop=stops_for("chat"))
    rows: list[dict[str, Any]] = []
    for dtype in args.dtypes.split(","):
        seed_everything(0)
        model, tok = load_transformers(ModelConfig(name=args.model, dtype=dtype))
        gen = TransformersGenerator(model, tok, name=args.model)
        eos = sorted(gen.eos_ids)
        prompts = {"plain": [gen.render(build_prompt(p, PromptConfig(), "chat")) for p in problems]}
        if "rag" in args.kinds:
            prompts["rag"] = rag_texts(gen, problems, args.rag_tokens)
        runs: dict[str, Callable[[list[str]], tuple[list[str], int, int]]] = {
            "dorag": lambda texts: _dorag(gen, texts, params),
            "dorag_prealloc": lambda texts: _dorag(gen, texts, params, kv_cache="preallocated"),
            "generate_batched": lambda texts: generate_batched(model, tok, texts, params, eos),
            "generate_sequential": lambda texts: generate_sequential(model, tok, texts, params, eos),
        }
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for _ in range(args.repeats):
            for kind in [k for k in args.kinds.split(",") if k in prompts]:
                for method in methods:
                    t0 = time.perf_counter()
                    outs, n_tokens, n_prompt = runs[method](prompts[kind])
                    wall = time.perf_counter() - t0
                    key = (kind, method)
                    print(f"  {dtype} {kind} {method}: {n_tokens} tokens in {wall:.1f} s ({n_tokens / wall:.1f} tok/s)",
                          file=sys.stderr, flush=True)
                    if key not in best or wall < best[key]["wall_s"]:
                        best[key] = {"outs": outs, "tokens": n_tokens, "prompt_tokens": n_prompt, "wall_s": wall}
        for (kind, method), r in best.items():
            anchor = best[(kind, "generate_batched")]
            same = sum(a == b for a, b in zip(r["outs"], anchor["outs"]))
            rows.append({"dtype": dtype, "prompts": kind, "method": method, "tokens": r["tokens"],
                         "wall_s": round(r["wall_s"], 2), "tokens_per_s": round(r["tokens"] / r["wall_s"], 1),
                         "prompt_tokens_per_s": round(r["prompt_tokens"] / r["wall_s"], 1),
                         "vs_anchor": round((r["tokens"] / r["wall_s"]) / (anchor["tokens"] / anchor["wall_s"]), 2),
                         "identical_to_anchor": f"{same}/{len(r['outs'])}"})
        del model, gen
    print(f"{args.n_prompts} HumanEval prompts, {args.max_new_tokens} new tokens, batch {args.batch_size}, "
          f"best of {args.repeats}; RAG prompts carry {args.rag_tokens} tokens of documents")
    print("| dtype | prompts | method | tokens/s | prompt tokens/s | vs anchor | identical to anchor | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['prompts']} | {r['method']} | {r['tokens_per_s']} | {r['prompt_tokens_per_s']} | "
              f"{r['vs_anchor']}x | {r['identical_to_anchor']} | {r['wall_s']} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


def _dorag(gen: TransformersGenerator, texts: list[str], params: GenerationParams,
           kv_cache: str = "dynamic") -> tuple[list[str], int, int]:
    """dorag's decoder; kv_cache="preallocated" is the same decoder on the in-place cache."""
    gen.kv_cache = kv_cache
    try:
        out = gen.generate_text(texts, params)
    finally:
        gen.kv_cache = "dynamic"
    n_prompt = sum(len(gen.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return [c[0].text for c in out], sum(c[0].n_tokens for c in out), n_prompt


if __name__ == "__main__":
    sys.exit(main())
