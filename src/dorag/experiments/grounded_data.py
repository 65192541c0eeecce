"""The doc-grounded and mixture data tasks of `dorag data prepare`: the data layer's RAFT builder wired to a real
retriever (the RAG conditions' own index, or an in-memory BM25 of the sources) and tokenizer, decontaminated
against every registered benchmark, with whole modules held out.

A mixture (issue 19's recipe) takes its shares of three kinds of example from config: without documents (the
shipped self-generated set, stdlib docstring->code pairs or any problem-form JSONL), with the oracle among
distractors, and with distractors only. The same adapter then serves both the X_only and the X_rag condition.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.data.ast_extract import extract_from_tree, extract_stdlib
from dorag.experiments.prepare import Benchmarks
from dorag.data.docgrounded import build_examples
from dorag.data.sft_data import load_examples, pairs_from_functions

log = logging.getLogger(__name__)
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "shipped"
SHIPPED_SELFGEN = SHIPPED_DIR / "selfgen-stdlib.jsonl"


def _records(sources: tuple[str, ...]) -> list[Any]:
    """The functions of the sources (the standard library's 14k take ~35 s to parse: read once per process)."""
    return list(_records_cached(tuple(sources)))


@functools.lru_cache(maxsize=4)
def _records_cached(sources: tuple[str, ...]) -> tuple[Any, ...]:
    from dorag.experiments.prepare import _package_dir

    records: list[Any] = []
    for src in sources:
        if src == "stdlib":
            records += list(extract_stdlib())
        elif src.startswith("package:"):
            records += list(extract_from_tree(_package_dir(src.split(":", 1)[1]), exclude=("tests", "test")))
        elif Path(src).is_dir():
            records += list(extract_from_tree(src, exclude=("tests", "test")))
        else:
            raise DataError(f"doc-grounded source {src!r}: give stdlib, package:NAME or a source directory")
    # never the Unseen-API library or a benchmark's own files, whatever directory was given
    return tuple(r for r in records if "unseen_api" not in Path(r.path).parts and "zorbel" not in r.module)


def _retriever(cfg: Any) -> tuple[list[dict[str, Any]], Callable[[dict, int], list[dict]]]:
    from dorag.retrieval.index import RetrievalIndex

    if cfg.index:
        index = RetrievalIndex.load(cfg.index)
    else:  # the corpus the RAG index of these sources would hold, indexed by BM25 in memory
        from dorag.data.corpus import build_corpus
        from dorag.retrieval.index import IndexConfig, build_index

        index, _ = build_index(build_corpus(tuple(cfg.sources)), IndexConfig(method="bm25"))
    docstring = cfg.query == "docstring"

    def retrieve(problem: dict[str, Any], k: int) -> list[dict[str, Any]]:
        from dorag.experiments.generate import query_text

        hits = index.search([query_text(problem, docstring)], k)[0]
        return [{"id": h.id, "text": h.text, "meta": h.meta} for h in hits]

    return list(index.docs), retrieve


def _doc_tokens(tokenizer_name: str | None) -> Callable[[dict[str, Any]], int]:
    from dorag.retrieval.assemble import format_document

    count: Callable[[str], int] = lambda text: int(len(text) / 3.5) + 1  # noqa: E731 - without a tokenizer
    if tokenizer_name:
        from dorag.models.loading import load_tokenizer

        tok = load_tokenizer(tokenizer_name)
        count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return lambda doc: count(format_document(doc))


def _no_docs_examples(sources: tuple[str, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for src in sources:
        if src == "selfgen":
            if not SHIPPED_SELFGEN.is_file():
                raise DataError(f"no shipped self-generated set at {SHIPPED_SELFGEN}; build one with dorag data selfgen "
                                "and pass its train.jsonl in no_docs_sources")
            out += load_examples(SHIPPED_SELFGEN)
        elif src == "stdlib" or src.startswith("package:") or Path(src).is_dir():
            out += pairs_from_functions(_records((src,)), "code")[0]
        else:
            out += load_examples(src)
    bad = [ex["id"] for ex in out if "problem" not in ex]
    if bad:
        raise DataError(f"no_docs_sources: {len(bad)} example(s) are not in problem form (first: {bad[0]}); the "
                        "mixture renders every example with the evaluation prompt")
    return out


def _sandbox_check(programs: list[str]) -> list[bool]:
    """Run each program in the sandbox (untrusted: a model wrote the tasks); True where it passed."""
    from dorag.evaluation.sandbox import Sandbox

    with Sandbox() as box:
        return [r.passed for r in box.run_many(programs)]


def _bucket(key: str) -> float:
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32


def grounded_and_mixture(cfg: Any, progress: Callable[[str], None] = lambda m: None
                         ) -> tuple[list[dict], list[dict], dict[str, int], dict[str, Any]]:
    """(train, held out, dropped counts, report fields) for task doc-grounded or mixture."""
    from dorag.experiments.prepare import decontaminate

    records = _records(tuple(cfg.sources))
    progress(f"doc-grounded: {len(records)} functions from {', '.join(cfg.sources)}")
    docs, retrieve = _retriever(cfg)
    gcfg = cfg.grounded
    if cfg.task == "mixture":
        share = cfg.mix.get("oracle", 0.0) + cfg.mix.get("distractors", 0.0)
        gcfg = dataclasses.replace(gcfg, oracle_p=cfg.mix.get("oracle", 0.0) / share if share else 1.0)
    tasks = _no_docs_examples(tuple(cfg.grounded_tasks)) if cfg.grounded_tasks else []
    train, held, rep = build_examples(records, docs, retrieve, _doc_tokens(cfg.tokenizer), gcfg, progress=progress,
                                      tasks=tasks, check=_sandbox_check if tasks else None)
    benchmarks = Benchmarks.load(cfg.decontaminate, cfg.benchmark_paths, cfg.ngram)
    dropped: dict[str, int] = {f"doc-grounded:{k}": v for k, v in (rep.dropped or {}).items()}
    train, counts = decontaminate(train, benchmarks)
    held, counts_held = decontaminate(held, benchmarks)
    for k, v in counts.items():
        dropped[f"doc-grounded:{k}"] = v + counts_held.get(k, 0)
    grounded = {**rep.to_dict(), "decontaminated_against": benchmarks.names}
    if benchmarks.skipped:
        grounded["decontamination_skipped"] = benchmarks.skipped
    extra: dict[str, Any] = {"doc_grounded": grounded}
    if cfg.task == "mixture":
        plain = _no_docs_examples(tuple(cfg.no_docs_sources))
        plain, counts_plain = decontaminate(plain, benchmarks)
        for k, v in counts_plain.items():
            dropped[f"no-docs:{k}"] = v
        plain_held = [ex for ex in plain if _bucket("heldout:" + ex["id"]) < cfg.eval_fraction]
        plain = [ex for ex in plain if _bucket("heldout:" + ex["id"]) >= cfg.eval_fraction]
        train = mix(plain, train, cfg.mix, cfg.limit)
        held = held + plain_held
    kinds = {k: sum(1 for ex in train if kind_of(ex) == k) for k in ("no-docs", "oracle", "distractors")}
    extra["mixture"] = {"train": kinds, "eval": {k: sum(1 for ex in held if kind_of(ex) == k)
                                                  for k in ("no-docs", "oracle", "distractors")},
                        "renamed": sum(1 for ex in train if (ex.get("meta") or {}).get("renamed"))}
    if cfg.task == "mixture":
        short = mixture_shortfall(kinds, cfg.mix, cfg.limit)
        if short:
            extra["mixture"]["short"] = short
            for k, (have, want) in short.items():
                fix = (" (grow the self-generated pool: dorag data selfgen -c configs/selfgen-stdlib.yaml, see "
                       "docs/training-data.md)" if k == "no-docs" else "")
                progress(f"warning: the mixture has {have} {k} examples of the {want} its share of {cfg.limit} asks; "
                         f"it is {have / max(1, len(train)):.0%} {k}, not {cfg.mix.get(k, 0) / sum(cfg.mix.values()):.0%}"
                         + fix)
    progress(f"{cfg.task}: {len(train)} train ({kinds}), {len(held)} held out")
    return train, held, dropped, extra


def mixture_shortfall(kinds: dict[str, int], shares: dict[str, float], limit: int | None,
                      tolerance: float = 0.05) -> dict[str, tuple[int, int]]:
    """kind -> (examples taken, examples its share of `limit` asks) for each kind more than `tolerance` short."""
    if not limit:
        return {}
    total = sum(shares.values())
    out = {}
    for k, share in shares.items():
        want = round(share / total * limit)
        if want and kinds.get(k, 0) < (1 - tolerance) * want:
            out[k] = (kinds.get(k, 0), want)
    return out


def kind_of(ex: dict[str, Any]) -> str:
    if not ex.get("docs"):
        return "no-docs"
    return "oracle" if (ex.get("meta") or {}).get("oracle") else "distractors"


def mix(plain: list[dict], grounded: list[dict], shares: dict[str, float], limit: int | None) -> list[dict]:
    """Take each kind's share of `limit` examples (or of as many as the scarcest kind allows), chosen by a hash of
    the id so the choice is stable; a kind that runs short is reported by its count, not padded."""
    pools = {"no-docs": plain, "oracle": [e for e in grounded if kind_of(e) == "oracle"],
             "distractors": [e for e in grounded if kind_of(e) == "distractors"]}
    total = sum(shares.values())
    wanted = {k: shares.get(k, 0.0) / total for k in pools}
    if limit is None:  # the largest set whose every kind is in proportion
        limit = int(min(len(pools[k]) / w for k, w in wanted.items() if w > 0))
    out = []
    for k, w in wanted.items():
        pool = sorted(pools[k], key=lambda e: _bucket("mix:" + e["id"]))
        out += pool[: round(w * limit)]
    return sorted(out, key=lambda e: _bucket("order:" + e["id"]))
