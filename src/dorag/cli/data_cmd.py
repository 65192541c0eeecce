"""`dorag data prepare`."""

from __future__ import annotations

from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo

app = typer.Typer(help="Build training data (SFT pairs) from code or instruction sets.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. eval_fraction=0.1"),
    task: Optional[str] = typer.Option(None, help="code (docstring->code) or docstring (code->docstring)"),
    source: Optional[List[str]] = typer.Option(None, help="stdlib, package:NAME, a directory, or a JSONL/JSON file; repeatable"),
    out: Optional[str] = typer.Option(None, help="training JSONL (held-out split beside it)"),
    limit: Optional[int] = typer.Option(None, help="at most N training examples"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config"),
) -> None:
    """Extract pairs (default: the standard library), decontaminate against benchmarks, split, write."""
    from dorag.experiments.prepare import PrepareConfig, prepare as run_prepare

    cfg = build_config(PrepareConfig, config, {"task": task, "sources": source or None, "out": out, "limit": limit},
                       overrides or [])
    report = run_prepare(cfg)
    echo("dropped: " + ", ".join(f"{k}={v}" for k, v in report.dropped.items()))
    print(f"train: {report.train} ({report.n_train} examples)\neval:  {report.eval} ({report.n_eval} examples)")
