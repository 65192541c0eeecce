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
    out: str = typer.Option(..., "--out", help="directory for corpus.jsonl, queries.jsonl and qrels/test.tsv (the BEIR "
                            "layout that beir's GenericDataLoader reads)"),
    query: str = typer.Option("prompt", help="what each query is: the task's prompt or only its docstring"),
    benchmark_path: Optional[str] = typer.Option(None, help="local copy of the benchmark's files (gretel-sql: a "
                                                 ".parquet/.jsonl/.json file or the hub id)"),
) -> None:
    """Write a benchmark's task -> API-document relevance judgements, to score retrieval with
    `dorag index evaluate` against an index over the benchmark's corpus."""
    from dorag.data.qrels import write_beir
    from dorag.experiments.indexing import benchmark_qrels, corpus_from_sources, qrels_corpus_source

    queries, rels = benchmark_qrels(name, query, benchmark_path)
    # the documents the judgements name, with the ids an index built from the same source gives them
    source = qrels_corpus_source(name, benchmark_path)
    corpus = [{"_id": d["id"], "title": d.get("title") or "", "text": d["text"]} for d in corpus_from_sources([source])]
    missing = {d for docs in rels.values() for d in docs} - {d["_id"] for d in corpus}
    if missing:
        from dorag.core.errors import DataError

        raise DataError(f"{len(missing)} judged document(s) are not in corpus {source} (e.g. {sorted(missing)[0]}); "
                        "this is a bug in dorag's qrels, please report it")
    write_beir(out, corpus, queries, rels)
    print(f"wrote {len(corpus)} documents, {len(queries)} queries and {sum(len(v) for v in rels.values())} judgements "
          f"to {out}")
