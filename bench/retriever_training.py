"""dorag's contrastive retriever training against a plain sentence-transformers loop, on the same pairs.

The pairs are stdlib docstring -> function body (docstring removed), deduplicated by dorag's extractor. A
held-out slice of them is ranked among all held-out bodies. dorag (`dorag train-retriever --method
contrastive`) and the reference (SentenceTransformer + SentenceTransformerTrainer +
MultipleNegativesRankingLoss with the library's default batch sampler, nothing else) train the packaged
MiniLM for the same steps, batch size, sequence length and learning rate. The script prints each side's
training time, the ratio, and held-out Recall@5 / nDCG@10 before and after, scored by one evaluator.
dorag's NO_DUPLICATES batches keep one positive from appearing twice in a batch, where it would be
counted as its own negative.

    python bench/retriever_training.py                    # 16 steps of 32 pairs, 128 tokens
    python bench/retriever_training.py --steps 40 --batch 64
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from dorag.core.config import from_dict
from dorag.core.io import write_jsonl
from dorag.data.ast_extract import extract_stdlib
from dorag.data.sft_data import pairs_from_functions
from dorag.retrieval.embedders import resolve_embedder
from dorag.training.retriever import RetrieverTrainConfig, _st, eval_from_pairs, cap_eval, evaluator, ir_metrics, train_retriever


def stdlib_pairs(limit: int) -> list[dict]:
    examples, _ = pairs_from_functions(extract_stdlib(), "docstring")
    out = []
    for ex in examples[:limit]:
        doc = ex["messages"][-1]["content"].strip()
        code = ex["messages"][0]["content"].split("```python", 1)[-1].rsplit("```", 1)[0].strip()
        out.append({"query": doc, "positive": code, "category": "docstring"})
    return out


def plain(model_path: str, train: list[dict], steps: int, batch: int, seq: int, lr: float, out: Path) -> tuple[float, object]:
    import datasets
    import torch

    st = _st()
    torch.manual_seed(0)
    model = st.SentenceTransformer(model_path, device="cpu")
    model.max_seq_length = seq
    data = datasets.Dataset.from_dict({"anchor": [p["query"] for p in train], "positive": [p["positive"] for p in train]})
    args = st.Args(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, learning_rate=lr,
                   warmup_steps=0.1, seed=0, use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True,
                   logging_steps=steps)
    trainer = st.Trainer(model=model, args=args, train_dataset=data, loss=st.MNRLoss(model))
    import transformers

    trainer.remove_callback(transformers.PrinterCallback)  # keep stdout for the figures
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0, model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--pairs", type=int, default=3000, help="stdlib pairs to draw from (10%% held out)")
    args = ap.parse_args()

    pairs = stdlib_pairs(args.pairs)
    train, ev = eval_from_pairs(pairs, 0.1, seed=0)
    ev = cap_eval(ev, 300, 3000, seed=0)
    score = evaluator(ev, 64)
    model_path = str(resolve_embedder("all-minilm-l6-v2"))
    figures: dict = {"train_pairs": len(train), "heldout_queries": len(ev.queries), "heldout_docs": len(ev.corpus),
                     "steps": args.steps, "batch": args.batch, "max_seq_length": args.seq}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = _st().SentenceTransformer(model_path, device="cpu")
        base.max_seq_length = args.seq
        figures["before"] = _pick(ir_metrics(score(base)))

        write_jsonl(tmp / "pairs.jsonl", train)
        cfg = from_dict(RetrieverTrainConfig, {
            "method": "contrastive", "embedder": "all-minilm-l6-v2", "output_dir": str(tmp / "dorag"),
            "data": {"train": str(tmp / "pairs.jsonl"), "eval_fraction": 0},
            "training": {"max_steps": args.steps, "batch_size": args.batch, "max_seq_length": args.seq,
                         "learning_rate": args.lr, "warmup_ratio": 0.1, "save_steps": 10_000, "eval_steps": 10_000,
                         "logging_steps": args.steps}})
        result = train_retriever(cfg)
        tuned = _st().SentenceTransformer(str(result.model_dir), device="cpu")
        tuned.max_seq_length = args.seq
        figures["dorag"] = {"train_s": round(result.wall_s, 2), **_pick(ir_metrics(score(tuned)))}

        wall, model = plain(model_path, train, args.steps, args.batch, args.seq, args.lr, tmp / "plain")
        figures["plain"] = {"train_s": round(wall, 2), **_pick(ir_metrics(score(model)))}
    figures["time_ratio_dorag_over_plain"] = round(figures["dorag"]["train_s"] / figures["plain"]["train_s"], 3)
    print(json.dumps(figures, indent=2))
    return 0


def _pick(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(metrics[k], 4) for k in ("recall@1", "recall@5", "ndcg@10") if k in metrics}


if __name__ == "__main__":
    sys.exit(main())
