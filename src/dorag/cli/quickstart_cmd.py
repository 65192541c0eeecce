"""`dorag quickstart`: the whole main job on the embedded default."""

from __future__ import annotations

from typing import List, Optional

import typer


def quickstart(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides of the profile, e.g. rag.top_k=2"),
    full: bool = typer.Option(False, "--full", help="full benchmarks and longer training (hours on a CPU)"),
    out: Optional[str] = typer.Option(None, help="ablation directory (default runs/quickstart, --full: runs/full)"),
    model: str = typer.Option("qwen2.5-coder-0.5b-instruct", help="registered name, local path or hub id"),
    limit: Optional[int] = typer.Option(None, help="HumanEval tasks (default 16; --full: all 164)"),
    mbpp: Optional[str] = typer.Option(None, help="a local MBPP file (official JSON/JSONL) to add MBPP to the grid"),
) -> None:
    """The main job, offline: provision the model, build corpora and indexes, train LoRA and DoRA adapters,
    run the six conditions on HumanEval and Unseen-API, and write the report with significance tests."""
    from dorag.cli.common import env_defaults
    from dorag.cli.quickstart_impl import run_quickstart

    run_quickstart(full=full, out=out, model=model, limit=limit, mbpp=mbpp,
                   cache_dir=env_defaults().get("model.cache_dir"), overrides=overrides or [])
