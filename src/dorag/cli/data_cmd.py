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


@app.command("corpus")
def corpus(
    source: Optional[List[str]] = typer.Option(None, help="stdlib (default), package:NAME, apidoc:PACKAGE, "
                                               "codesearchnet:DIR|LANG, unseen-api, a directory or a JSONL/CSV file; repeatable"),
    out: str = typer.Option(..., "--out", "-o", help="corpus JSONL to write (id, text, meta)"),
    max_units: int = typer.Option(400, help="chunk documents longer than this many words"),
    classes: bool = typer.Option(True, help="add one document per class"),
    exclude_leaking: Optional[str] = typer.Option(None, help="drop documents that leak this benchmark (e.g. humaneval)"),
) -> None:
    """Build a retrieval corpus from code or text sources (chunked, deduplicated, unique ids)."""
    from dorag.core.io import write_jsonl
    from dorag.experiments.indexing import corpus_from_sources

    docs = corpus_from_sources(source or ["stdlib"], max_units, classes)
    if exclude_leaking:
        from dorag.data.leakage import LeakageChecker, drop_leaking
        from dorag.evaluation.benchmarks import load_problems

        findings = LeakageChecker(load_problems(exclude_leaking, None, None, None)).scan(docs)
        kept = drop_leaking(docs, findings)
        echo(f"dropped {len(docs) - len(kept)} documents that leak {exclude_leaking}")
        docs = kept
    n = write_jsonl(out, docs)
    print(f"{out}: {n} documents")
