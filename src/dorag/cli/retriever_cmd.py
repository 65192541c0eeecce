"""`dorag train-retriever`: fine-tune the retrieval embedder on (query, positive) pairs."""

from __future__ import annotations

import json
import os
from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo, renamed


def train_retriever(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. training.learning_rate=1e-5"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config (configs/retriever-*.yaml)"),
    method: Optional[str] = typer.Option(None, help="training method: contrastive or replug-lsr (REPLUG LSR, an LM teacher)"),
    data: Optional[str] = typer.Option(None, help="pairs JSONL or a `dorag data synth` directory"),
    eval_dir: Optional[str] = typer.Option(None, help="held-out corpus.jsonl, queries.jsonl, qrels/test.tsv (default: beside the pairs)"),
    embedder: Optional[str] = typer.Option(None, help="base embedder: all-minilm-l6-v2 (default), a path or Hub id"),
    hard_negatives: Optional[bool] = typer.Option(None, "--hard-negatives/--no-hard-negatives",
                                                  help="mine hard negatives with the base embedder"),
    max_steps: Optional[int] = typer.Option(None, help="optimizer steps (overrides epochs)"),
    epochs: Optional[float] = typer.Option(None, help="epochs"),
    batch_size: Optional[int] = typer.Option(None, help="pairs per step: contrastive, the in-batch negatives; replug-lsr, the queries"),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning rate"),
    output_dir: Optional[str] = typer.Option(None, help="run directory (the model goes to <dir>/model)"),
    seed: Optional[int] = typer.Option(None, help="seed"),
    datastore: Optional[List[str]] = typer.Option(None, help="replug-lsr: documents retrieved from (corpus JSONL, "
                                                  "index directory or corpus source; repeatable)"),
    teacher: Optional[str] = typer.Option(None, help="replug-lsr: local (a transformers model) or openai (a server)"),
    teacher_model: Optional[str] = typer.Option(None, help="replug-lsr: teacher model (default qwen2.5-coder-0.5b-instruct)"),
    teacher_base_url: Optional[str] = typer.Option(None, help="replug-lsr: OpenAI-compatible server returning prompt "
                                                   "log-probs (vLLM), e.g. http://localhost:8000/v1"),
    rag_k: Optional[int] = typer.Option(None, "--rag-k", help="replug-lsr: documents retrieved per query"),
    top_n_old: Optional[int] = typer.Option(None, "--top-n", hidden=True, help="deprecated spelling of --rag-k"),
) -> None:
    """Contrastive or REPLUG LSR training of the embedder; a re-run resumes from the last checkpoint."""
    from dorag.training.retriever import train_retriever as run_training
    from dorag.training.retriever_config import RetrieverTrainConfig

    rag_k = renamed(rag_k, top_n_old, "--rag-k", "--top-n")
    cfg = build_config(RetrieverTrainConfig, config, {
        "method": method, "data.train": data, "data.eval_dir": eval_dir, "embedder": embedder,
        "hard_negatives.enabled": hard_negatives, "training.max_steps": max_steps, "training.num_train_epochs": epochs,
        "training.batch_size": batch_size, "training.learning_rate": lr, "output_dir": output_dir, "seed": seed,
        "replug.datastore": datastore or None, "replug.teacher": teacher, "replug.teacher_model": teacher_model,
        "replug.teacher_base_url": teacher_base_url, "replug.top_n": rag_k,
        "replug.teacher_api_key": os.environ.get("OPENAI_API_KEY")},  # the CLI, not the library, reads the environment
        overrides or [])
    res = run_training(cfg, progress=echo)

    def fmt(m: dict | None) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in m.items()) if m else "n/a"

    if "batch_sampler" in res.summary:
        echo(f"{res.steps} steps in {res.wall_s:.0f}s, batch sampler {res.summary['batch_sampler']}")
    else:
        s_step = res.summary.get("s_per_step")
        echo(f"{res.steps} steps in {res.wall_s:.0f}s ({s_step if s_step is not None else 'n/a'} s/step), "
             f"{len(res.summary.get('refreshes', []))} datastore refreshes, loss {res.summary.get('first_loss')} -> "
             f"{res.summary.get('last_loss')}")
    echo(f"held-out before: {fmt(res.before)}")
    echo(f"held-out after:  {fmt(res.after)}")
    print(json.dumps({"model_dir": str(res.model_dir), "before": res.before, "after": res.after, "steps": res.steps}))
