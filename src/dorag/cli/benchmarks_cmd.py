"""`dorag benchmarks list|export`."""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(help="Benchmark registry: list them, export their problems as JSONL.", no_args_is_help=True)


@app.command("list")
def list_benchmarks() -> None:
    """Registered benchmarks and where their data comes from."""
    from dorag.evaluation.benchmarks import BENCHMARKS

    for b in BENCHMARKS.values():
        print(f"{b.name:16} {b.description}  [{b.source}]")


@app.command("export")
def export(
    name: str = typer.Argument(..., help="benchmark name"),
    out: str = typer.Option(..., "--out", help="output JSONL (HumanEval format, with canonical solutions)"),
    limit: int = typer.Option(None, help="only the first N problems"),
) -> None:
    """Write a benchmark's problems, with canonical solutions, as HumanEval-format JSONL."""
    from dorag.core.io import write_jsonl
    from dorag.evaluation.benchmarks import load_problems

    n = write_jsonl(out, load_problems(name, None, limit))
    print(f"wrote {n} problems to {out}")


@app.command("qrels")
def qrels(
    name: str = typer.Argument(..., help="unseen-api, unseen-api-shift, spider or gretel-sql"),
    out: str = typer.Option(..., "--out", help="directory for queries.jsonl and qrels/test.tsv (BEIR layout)"),
    query: str = typer.Option("prompt", help="what each query is: the task's prompt or only its docstring"),
    benchmark_path: Optional[str] = typer.Option(None, help="local copy of the benchmark's files (gretel-sql: a "
                                                 ".parquet/.jsonl/.json file or the hub id)"),
) -> None:
    """Write a benchmark's task -> API-document relevance judgements, to score retrieval with
    `dorag index evaluate` against an index over the benchmark's corpus."""
    from dorag.experiments.indexing import benchmark_qrels
    from dorag.data.qrels import write_beir

    queries, rels = benchmark_qrels(name, query, benchmark_path)
    write_beir(out, [], queries, rels)
    print(f"wrote {len(queries)} queries and {sum(len(v) for v in rels.values())} judgements to {out}")
