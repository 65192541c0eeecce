"""`dorag quickstart`: the whole main job on the embedded default."""

from __future__ import annotations

import typer


def quickstart(
    full: bool = typer.Option(False, "--full", help="full benchmarks and longer training"),
    out: str = typer.Option("runs/quickstart", help="where runs and the report go"),
) -> None:
    """The main job on the embedded default model, offline: provision, generate, score, report."""
    from dorag.cli.quickstart_impl import run_quickstart

    run_quickstart(full=full, out=out)
