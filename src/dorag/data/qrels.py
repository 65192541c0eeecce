"""A retrieval test set from code: docstring -> function pairs (CodeSearchNet's construction).

Documented functions are split into a query (the docstring's first paragraph) and a document (the
function's code with the docstring removed, plus its imports and class header). Every function in the
corpus loses its docstring, so a query can only be matched through the code; the chosen queries' own
functions are the relevant documents, the rest are distractors. Output: corpus, queries and qrels in
BEIR's layout (corpus.jsonl, queries.jsonl, qrels/test.tsv).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dorag.core.io import write_jsonl, write_text_atomic
from dorag.data.ast_extract import FunctionRecord, dedupe_key, is_useful_docstring
from dorag.data.corpus import function_document


def docstring_pairs(records: Iterable[FunctionRecord], n_queries: int = 500, n_docs: int = 3000,
                    seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, int]]]:
    """(corpus, queries, qrels) with `n_queries` judged queries among `n_docs` docstring-free functions."""
    seen: set[str] = set()
    candidates: list[FunctionRecord] = []
    for rec in records:
        key = dedupe_key(rec.code_without_docstring)
        if key in seen or rec.id in seen or len(rec.code_without_docstring.splitlines()) < 2:
            continue  # duplicate code, or a second definition under one name (a property's setter)
        seen.update((key, rec.id))
        candidates.append(rec)
    rng = random.Random(seed)
    rng.shuffle(candidates)
    documented = [r for r in candidates if is_useful_docstring(r.docstring, r.name)]
    chosen = documented[:n_queries]
    chosen_ids = {r.id for r in chosen}
    distractors = [r for r in candidates if r.id not in chosen_ids][: max(0, n_docs - len(chosen))]
    corpus = []
    for rec in chosen + distractors:
        doc = function_document(dataclasses.replace(rec, code=rec.code_without_docstring))
        corpus.append({"id": rec.id, "text": doc["text"], "meta": {"module": rec.module, "qualname": rec.qualname}})
    corpus.sort(key=lambda d: d["id"])
    queries = [{"_id": f"q{i}", "text": r.docstring.split("\n\n")[0].strip()} for i, r in enumerate(chosen)]
    qrels = {q["_id"]: {r.id: 1} for q, r in zip(queries, chosen)}
    return corpus, queries, qrels


def write_beir(out_dir: str | Path, corpus: list[dict[str, Any]], queries: list[dict[str, Any]],
               qrels: dict[str, dict[str, int]]) -> Path:
    out = Path(out_dir)
    if corpus:
        write_jsonl(out / "corpus.jsonl", corpus)
    write_jsonl(out / "queries.jsonl", queries)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q, docs in qrels.items() for d, r in docs.items()]
    write_text_atomic(out / "qrels" / "test.tsv", "\n".join(lines) + "\n")
    return out
