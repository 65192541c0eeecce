"""`dorag docstring PATH`."""

from __future__ import annotations

from typing import Optional

import typer

from dorag.cli.common import echo


def docstring(
    path: str = typer.Argument(..., help="a Python file or a directory"),
    style: str = typer.Option("google", help="google or numpy"),
    in_place: bool = typer.Option(False, "--in-place", help="rewrite the files (default: print a diff)"),
    model: str = typer.Option("qwen2.5-coder-0.5b-instruct", help="base model"),
    adapter: Optional[str] = typer.Option(None, help="docstring adapter directory"),
    max_new_tokens: int = typer.Option(200, help="tokens per docstring"),
) -> None:
    """Write docstrings into functions that lack them; only docstrings change (checked by AST)."""
    from pathlib import Path

    from dorag.core.errors import DataError
    from dorag.experiments.docstring import document_path
    from dorag.models.generator import GenerationParams
    from dorag.models.loading import ModelConfig, load_generator

    if style not in ("google", "numpy"):
        raise DataError(f"--style must be google or numpy, got {style!r}")
    if not Path(path).exists():
        raise DataError(f"{path}: no such file or directory")
    cfg = ModelConfig(name=model, adapters={"docstring": adapter} if adapter else {},
                      adapter="docstring" if adapter else None)
    gen = load_generator(cfg, progress=echo)
    changes = document_path(path, gen, style=style, in_place=in_place,  # type: ignore[arg-type]
                            params=GenerationParams(max_new_tokens=max_new_tokens, batch_size=8), progress=echo)
    for ch in changes:
        if not in_place:
            print(ch.diff, end="")
    echo(f"{sum(c.n_added for c in changes)} docstring(s) in {len(changes)} file(s)"
         + (" written" if in_place else " (diff only; --in-place to write)"))
