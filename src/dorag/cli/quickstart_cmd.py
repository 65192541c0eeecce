"""`dorag quickstart`: the whole main job on the embedded default."""

from __future__ import annotations

from typing import Optional

import typer


def quickstart(
    full: bool = typer.Option(False, "--full", help="full benchmarks and longer training"),
    out: str = typer.Option("runs/quickstart", help="where runs and the report go"),
    model: str = typer.Option("qwen2.5-coder-0.5b-instruct", help="registered name, local path or hub id"),
    limit: Optional[int] = typer.Option(None, help="HumanEval tasks (default 20; --full: all 164)"),
) -> None:
    """The main job on the embedded default model, offline: provision, generate, score, report."""
    from dorag.cli.quickstart_impl import run_quickstart

    run_quickstart(full=full, out=out, model=model, limit=limit)
