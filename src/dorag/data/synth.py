"""Synthetic (query, positive) pairs for retriever training, mined from Python code or written by an LLM.

Four task categories, the families of code retrieval benchmarks (CodeSearchNet, CoIR):

- text2code: a docstring's summary -> the function with its docstring removed
- code2text: the function without its docstring -> the docstring's summary
- code2code: a call site (the caller's signature and the calling statement) -> the callee's definition,
  resolved inside one module (top-level functions, and ``self.m``/``cls.m`` inside a class); or a
  signature -> its body
- hybrid: summary and signature -> the body (the statements after the docstring)

Source "mined" reads these relations off the AST, no model needed. Source "llm" has a
``generate(prompts) -> texts`` callable (the CLI passes the local model or an OpenAI-compatible endpoint)
write the query (the summary, for code2text) for any function, documented or not.

Queries stay out of the retrieval corpus (REPLUG sec. 4: training queries are disjoint from the
datastore, else the retriever learns to find the query itself). Each function plays one role: a
function whose text becomes a query never also supplies a positive (a callee may be the positive of
several call sites), and a positive never contains its own query. Every pair names the document its
query was cut from (``query_doc_id``). `query_overlap` then measures each query's word n-gram containment
in every corpus document; above `max_query_in_corpus` of the queries that is an error, below it the
flagged pairs are dropped.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dorag.core.config import at_least_one, option
from dorag.core.errors import DataError
from dorag.core.io import iter_jsonl_numbered
from dorag.data.ast_extract import FunctionRecord, dedupe_key, is_useful_docstring
from dorag.data.corpus import Document
from dorag.data.decontam import tokens
from dorag.data.synth_candidates import CATEGORIES, Candidate, clean_llm, llm_candidates, mined_candidates

Generate = Callable[[list[str]], list[str]]  # prompts -> one completion each
_WS = re.compile(r"\s+")
_FROM_DOCSTRING = ("docstring->code", "code->docstring", "docstring+signature->body")
_TRIVIAL_BODY = re.compile(r"^(pass|\.\.\.|return|return None|raise NotImplementedError(\(.*\))?)$")


@dataclass
class SynthConfig:
    """`dorag data synth`: which pairs to build, how to filter them and what to hold out."""

    sources: tuple[str, ...] = option(("stdlib",), "stdlib, package:NAME, a source directory or .py file, "
                                      "or a corpus JSONL/CSV (id, text) of code documents")
    out: str = option("data/synth", "output directory: train.jsonl, heldout.jsonl, corpus.jsonl, queries.jsonl, "
                      "qrels/test.tsv (the files `dorag index evaluate` reads) and report.json")
    categories: tuple[str, ...] = option(CATEGORIES, "task categories: text2code, code2text, code2code, hybrid")
    source: Literal["mined", "llm"] = option("mined", "mined: relations read off the AST; llm: a model writes the queries")
    max_pairs: int = option(20_000, "stop after this many pairs (taken round-robin over the categories)")
    held_out: float = option(0.1, "share of pairs held out as queries + qrels, split by positive document")
    seed: int = option(0, "seed of the shuffles and the split")
    min_query_words: int = option(4, "queries with fewer word tokens are dropped")
    max_query_chars: int = option(1500, "longer queries are dropped")
    min_positive_tokens: int = option(5, "positives with fewer word tokens (`pass`, `return x`) are dropped")
    max_positive_chars: int = option(4000, "longer positives are dropped")
    ngram: int = option(8, "n-gram size of the overlap tests (shorter queries use their whole token sequence)")
    overlap_threshold: float = option(0.5, "n-gram containment at which a query counts as inside a document")
    max_query_in_corpus: float = option(0.1, "error when more than this share of queries occurs in the corpus")
    check_corpus: tuple[str, ...] = option((), "further corpora the queries must stay out of (e.g. the RAG index's "
                                            "corpus): a corpus source, JSONL, or an index directory")
    llm_batch_size: int = option(32, "prompts per generate() call (source llm)")

    def check(self) -> list[str]:
        problems = []
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown or not self.categories:
            problems.append(f"categories: choose from {', '.join(CATEGORIES)}, got {', '.join(self.categories) or 'none'}")
        if not 0 <= self.held_out < 1:
            problems.append(f"held_out: must be in [0, 1), got {self.held_out}")
        if not 0 <= self.max_query_in_corpus <= 1 or not 0 < self.overlap_threshold <= 1:
            problems.append("max_query_in_corpus and overlap_threshold: must be fractions in [0, 1]")
        problems += at_least_one(self, ("max_pairs", "min_query_words", "ngram", "llm_batch_size"))
        if not self.sources:
            problems.append("sources: give at least one source")
        return problems


@dataclass
class SynthResult:
    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    corpus: list[Document]  # every distinct positive: the held-out queries' retrieval corpus
    queries: list[dict[str, Any]]  # held-out queries, BEIR style {_id, text}
    qrels: dict[str, dict[str, int]]
    dropped: dict[str, int] = field(default_factory=dict)
    in_corpus_fraction: float = 0.0
    query_doc_ids: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- filters and overlap

def norm(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()


def _grams(toks: Sequence[str], n: int) -> set[tuple[str, ...]]:
    n = min(n, len(toks))
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)} if n else set()


def side_problem(c: Candidate, cfg: SynthConfig, side: Literal["query", "positive"]) -> str | None:
    """Why one side of a pair is unusable on its own (too short, too long, trivial), or None."""
    if side == "query":
        if len(tokens(c.query)) < cfg.min_query_words:
            return "short_query"
        return "long_query" if len(c.query) > cfg.max_query_chars else None
    if c.pos_kind == "summary" and not is_useful_docstring(c.positive, c.pos_rec.name):
        return "trivial_docstring"
    if len(tokens(c.positive)) < cfg.min_positive_tokens or _TRIVIAL_BODY.match(c.positive.strip()):
        return "trivial_positive"
    return "long_positive" if len(c.positive) > cfg.max_positive_chars else None


def pair_problem(c: Candidate, cfg: SynthConfig) -> str | None:
    """Why a pair is unusable (a drop reason), or None."""
    if c.relation in _FROM_DOCSTRING and not is_useful_docstring(c.query_rec.docstring, c.query_rec.name):
        return "trivial_docstring"  # empty, placeholder, auto-generated or just the function's name
    reason = side_problem(c, cfg, "query") or side_problem(c, cfg, "positive")
    if reason:
        return reason
    nq, np_ = norm(c.query), norm(c.positive)
    if np_ in nq:
        return "query_contains_positive"
    if nq in np_:
        return "positive_contains_query"
    q_toks = tokens(c.query)
    q_grams = _grams(q_toks, cfg.ngram)
    p_grams = _grams(tokens(c.positive), min(cfg.ngram, len(q_toks)))
    if q_grams and len(q_grams & p_grams) / len(q_grams) >= cfg.overlap_threshold:
        return "query_copies_positive"
    return None


def query_overlap(queries: Sequence[str], docs: Iterable[Document], n: int = 8) -> list[tuple[float, str | None]]:
    """For each query, its highest word n-gram containment in any one document and that document's id.

    An inverted index over the queries' n-grams (a query shorter than n tokens is one gram of its own
    length), then one pass over the documents: linear in the corpus, exact (no MinHash sampling error).
    """
    index: dict[int, dict[tuple[str, ...], list[int]]] = defaultdict(lambda: defaultdict(list))  # length -> gram -> queries
    sizes = []
    for i, q in enumerate(queries):
        toks = tokens(q)
        grams = _grams(toks, n)
        sizes.append(len(grams))
        for g in grams:
            index[len(g)][g].append(i)
    best: list[tuple[float, str | None]] = [(0.0, None)] * len(queries)
    for doc in docs:
        toks = tokens(doc["text"])
        hits: Counter[int] = Counter()
        for length, grams in index.items():
            for g in (_grams(toks, length) if len(toks) >= length else ()):
                for i in grams.get(g, ()):
                    hits[i] += 1
        for i, count in hits.items():
            score = count / sizes[i]
            if score > best[i][0]:
                best[i] = (score, doc["id"])
    return best


# ---------------------------------------------------------------- the pipeline

def _round_robin(lists: Sequence[list[Candidate]]) -> Iterator[Candidate]:
    iters = [iter(x) for x in lists]
    while iters:
        for it in list(iters):
            c = next(it, None)
            if c is None:
                iters.remove(it)
            else:
                yield c


def select(candidates: dict[str, list[Candidate]], cfg: SynthConfig, generate: Generate | None = None,
           dropped: Counter[str] | None = None) -> list[Candidate]:
    """Filter, deduplicate and assign roles, taking the categories in turn until `max_pairs`."""
    dropped = dropped if dropped is not None else Counter()
    role: dict[str, str] = {}  # function id -> "used" (all its texts taken) or "callee" (a positive only)
    seen_q: set[str] = set()
    seen_pair: set[str] = set()
    seen_pos: dict[str, str] = {}  # positive text key -> positive id: one text, one corpus document
    kept: list[Candidate] = []
    stream = _round_robin([candidates[c] for c in cfg.categories if c in candidates])

    def free(c: Candidate) -> bool:
        if c.relation == "callsite->definition":
            return c.query_rec.id not in role and role.get(c.pos_rec.id, "callee") == "callee"
        return c.query_rec.id not in role

    while len(kept) < cfg.max_pairs:
        batch: list[tuple[Candidate, list[str]]] = []  # each with the function ids it newly reserved
        size = cfg.llm_batch_size if generate else 512
        for c in stream:
            # An llm candidate whose given side is already unusable is dropped before it costs a generation.
            early = side_problem(c, cfg, "positive" if c.fill == "query" else "query") if c.fill else None
            if early or not free(c):
                dropped[early or "function_already_used"] += 1
                continue
            new = [i for i in dict.fromkeys((c.query_rec.id, c.pos_rec.id)) if i not in role]
            role[c.query_rec.id] = "used"
            if c.pos_rec.id != c.query_rec.id:
                role.setdefault(c.pos_rec.id, "callee")
            batch.append((c, new))
            if len(batch) >= min(size, cfg.max_pairs - len(kept)):
                break
        if not batch:
            break
        if generate is not None:
            fill_llm([c for c, _ in batch], generate)
        in_use: set[str] = set()
        released: list[str] = []
        for c, new in batch:
            reason = pair_problem(c, cfg)
            if reason is None:
                kq, kp, kpos = dedupe_key(c.query), dedupe_key(c.query + "\x00" + c.positive), dedupe_key(c.positive)
                reason = ("duplicate_pair" if kp in seen_pair else "duplicate_query" if kq in seen_q
                          else "duplicate_positive" if seen_pos.get(kpos, positive_id(c)) != positive_id(c)
                          else "query_is_a_positive" if kq in seen_pos or kpos in seen_q else None)
            if reason:
                dropped[reason] += 1
                released += new
                continue
            seen_q.add(kq)
            seen_pair.add(kp)
            seen_pos[kpos] = positive_id(c)
            kept.append(c)
            in_use.update((c.query_rec.id, c.pos_rec.id))
        for i in released:  # a dropped pair gives its functions back, unless a kept one of this batch uses them
            if i not in in_use:
                role.pop(i, None)
    return kept


def fill_llm(batch: Sequence[Candidate], generate: Generate) -> None:
    """Ask the model for each candidate's missing side, in one generate() call."""
    texts = generate([c.prompt or "" for c in batch])
    if len(texts) != len(batch):
        raise DataError(f"the LLM returned {len(texts)} completions for {len(batch)} prompts; "
                        "check the endpoint (it must answer every prompt)")
    for c, t in zip(batch, texts):
        t = clean_llm(t or "", code=c.category == "code2code")
        if c.fill == "positive":
            c.positive = t
        elif c.category == "hybrid":
            c.query = f"{t}\n{c.query_rec.signature}" if t else ""
        else:
            c.query = t


def positive_id(c: Candidate) -> str:
    return c.pos_rec.id if c.pos_kind == "code" else f"{c.pos_rec.id}#{c.pos_kind}"


def to_pair(c: Candidate, source: str) -> dict[str, Any]:
    return {"query": c.query, "positive": c.positive, "category": c.category, "source": source,
            "doc_id": c.pos_rec.id, "positive_id": positive_id(c), "query_doc_id": c.query_rec.id,
            "relation": c.relation}


def split_pairs(pairs: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out) with every pair of one positive document on the same side."""
    if fraction <= 0:
        return pairs, []
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pairs:
        groups[p["positive_id"]].append(p)
    keys = sorted(groups)
    if len(keys) < 2:
        raise DataError(f"only {len(pairs)} pair(s) on {len(keys)} positive document(s): too few to hold out "
                        f"{fraction:.0%}; add sources or set held_out=0")
    random.Random(seed).shuffle(keys)
    want = max(1, math.floor(fraction * len(pairs)))
    held: set[str] = set()
    n = 0
    for k in keys[:-1]:  # the last group always trains
        if n >= want:
            break
        held.add(k)
        n += len(groups[k])
    return [p for p in pairs if p["positive_id"] not in held], [p for p in pairs if p["positive_id"] in held]


def _empty_error(n_candidates: int, dropped: Counter[str], cfg: SynthConfig) -> DataError:
    if not n_candidates:
        cause = (f"the sources {list(cfg.sources)} hold no function usable for {', '.join(cfg.categories)}"
                 + (" (mined pairs need documented functions or calls between functions)" if cfg.source == "mined" else ""))
        return DataError(f"no pairs: {cause}; give a larger source (e.g. stdlib) or use --source llm")
    reasons = ", ".join(f"{k}={v}" for k, v in dropped.most_common())
    return DataError(f"no pairs: all {n_candidates} candidates were dropped ({reasons}); loosen the filter that "
                     "dropped most (e.g. min_query_words) or give a larger source")


def synthesize(records: Sequence[FunctionRecord], cfg: SynthConfig, generate: Generate | None = None,
               check_docs: Sequence[Document] = (), progress: Callable[[str], None] = lambda m: None) -> SynthResult:
    """Pairs, split and evaluation files from `records`; `check_docs` are further corpora to stay out of."""
    if cfg.source == "llm" and generate is None:
        raise DataError("source llm needs a generate() callable (the CLI builds one from --llm-model / --llm-base-url)")
    make = llm_candidates if cfg.source == "llm" else mined_candidates
    rng = random.Random(cfg.seed)
    candidates = {}
    for cat in cfg.categories:
        candidates[cat] = make(records, cat)
        rng.shuffle(candidates[cat])
    n_candidates = sum(map(len, candidates.values()))
    progress(f"{n_candidates} candidate pairs from {len(records)} functions")
    dropped: Counter[str] = Counter()
    kept = select(candidates, cfg, generate if cfg.source == "llm" else None, dropped)
    if not kept:
        raise _empty_error(n_candidates, dropped, cfg)
    pairs = [to_pair(c, cfg.source) for c in kept]
    corpus = positives_corpus(pairs)
    flagged = queries_found_in(pairs, list(corpus) + list(check_docs), cfg.ngram, cfg.overlap_threshold,
                               cfg.max_query_in_corpus, "queries", "the retrieval corpus",
                               "remove the query documents (query_doc_id) from that corpus, "
                               "or raise max_query_in_corpus")
    fraction = len(flagged) / len(pairs)
    if flagged:
        dropped["query_in_corpus"] += len(flagged)
        bad = set(flagged)
        pairs = [p for i, p in enumerate(pairs) if i not in bad]
        if not pairs:
            raise _empty_error(n_candidates, dropped, cfg)
        corpus = positives_corpus(pairs)
    train, heldout = split_pairs(pairs, cfg.held_out, cfg.seed)
    queries = [{"_id": f"q{i}", "text": p["query"], "category": p["category"]} for i, p in enumerate(heldout)]
    qrels = {q["_id"]: {p["positive_id"]: 1} for q, p in zip(queries, heldout)}
    return SynthResult(train, heldout, corpus, queries, qrels, dict(dropped), round(fraction, 6),
                       sorted({p["query_doc_id"] for p in pairs}))


def queries_found_in(pairs: Sequence[dict[str, Any]], docs: Sequence[Any], ngram: int, threshold: float,
                     limit: float, noun: str, where: str, fix: str) -> list[int]:
    """Indices of the pairs whose query sits in `docs` (n-gram containment >= `threshold`); above `limit`
    of them a DataError naming `where` and the `fix` (REPLUG sec. 4: queries and datastore are disjoint)."""
    scores = query_overlap([p["query"] for p in pairs], docs, ngram)
    flagged = [i for i, (s, _) in enumerate(scores) if s >= threshold]
    fraction = len(flagged) / len(pairs)
    if fraction > limit:
        examples = ", ".join(f"{pairs[i].get('query_doc_id', f'pair {i}')} in {scores[i][1]}" for i in flagged[:3])
        raise DataError(f"{len(flagged)} of {len(pairs)} {noun} ({fraction:.1%}) occur in {where} (>= {threshold:.0%} "
                        f"of their {ngram}-grams, e.g. {examples}); the limit is {limit:.0%}: {fix}")
    return flagged


def positives_corpus(pairs: Iterable[dict[str, Any]]) -> list[Document]:
    docs: dict[str, Document] = {}
    for p in pairs:
        docs.setdefault(p["positive_id"], {"id": p["positive_id"], "text": p["positive"],
                                           "meta": {"category": p["category"], "doc_id": p["doc_id"]}})
    return sorted(docs.values(), key=lambda d: d["id"])


def read_pairs(path: str | Path, categories: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Pairs JSONL (`query`, `positive`; `anchor` is accepted for `query`), optionally of some categories."""
    pairs = []
    for line, row in iter_jsonl_numbered(path):
        q, pos = row.get("query", row.get("anchor")), row.get("positive")
        if not isinstance(q, str) or not q.strip() or not isinstance(pos, str) or not pos.strip():
            raise DataError(f"{path}:{line}: a pair needs non-empty 'query' and 'positive' strings")
        if categories and row.get("category") not in categories:
            continue
        pairs.append({**row, "query": q, "positive": pos})
    if not pairs:
        raise DataError(f"{path}: no pairs" + (f" of categories {', '.join(categories)}" if categories else "")
                        + "; build some with `dorag data synth`")
    return pairs


def records_from_sources(sources: Sequence[str]) -> list[FunctionRecord]:
    """Functions of every source, spelled as for `dorag data corpus`: stdlib, package:NAME, a directory or
    .py file, or a corpus JSONL/CSV of code documents (whole functions; chunks and class summaries skipped)."""
    from dorag.data.ast_extract import extract_from_tree, extract_functions, extract_stdlib
    from dorag.data.corpus import SOURCE_HELP, from_table, package_dir

    records: list[FunctionRecord] = []
    for src in sources:
        path = Path(src)
        if src == "stdlib":
            records += extract_stdlib()
        elif src.startswith("package:"):
            records += extract_from_tree(package_dir(src.split(":", 1)[1]), exclude=("test", "tests"))
        elif path.is_dir() or (path.is_file() and path.suffix == ".py"):
            records += extract_from_tree(path, exclude=("test", "tests"))
        elif path.is_file() and path.suffix in (".jsonl", ".csv", ".gz"):
            for doc in from_table(path):
                meta = doc.get("meta") or {}
                if "chunk" in meta or meta.get("kind") == "class":
                    continue
                module = meta.get("module") or doc["id"].split(":", 1)[0]
                records += extract_functions(doc["text"], str(path), module)
        else:
            raise DataError(f"synth source {src!r} not found or not recognised; give {SOURCE_HELP}")
    unique: dict[str, FunctionRecord] = {}
    for r in records:
        unique.setdefault(r.id, r)  # a property's setter shares its getter's id: keep the first
    return list(unique.values())


def check_documents(sources: Sequence[str]) -> list[Document]:
    """Corpora the queries must stay out of: corpus sources, or index directories (their docs.jsonl)."""
    from dorag.data.corpus import build_corpus, from_table

    docs: list[Document] = []
    for src in sources:
        index_docs = Path(src) / "docs.jsonl"
        docs += from_table(index_docs) if index_docs.is_file() else build_corpus([src])
    return docs


def write_synth(result: SynthResult, cfg: SynthConfig) -> dict[str, Any]:
    """Write the pairs, the held-out BEIR files and report.json under cfg.out (each file atomically)."""
    from dorag.core.io import write_json, write_jsonl
    from dorag.data.qrels import write_beir

    out = Path(cfg.out)
    write_jsonl(out / "train.jsonl", result.train)
    write_jsonl(out / "heldout.jsonl", result.heldout)
    if result.queries:
        write_beir(out, result.corpus, [{"_id": q["_id"], "text": q["text"]} for q in result.queries], result.qrels)
    report = {
        "source": cfg.source, "sources": list(cfg.sources), "seed": cfg.seed,
        "train": dict(Counter(p["category"] for p in result.train)),
        "heldout": dict(Counter(p["category"] for p in result.heldout)),
        "n_train": len(result.train), "n_heldout": len(result.heldout), "n_corpus": len(result.corpus),
        "dropped": dict(sorted(result.dropped.items(), key=lambda kv: -kv[1])),
        "query_in_corpus": {"fraction": result.in_corpus_fraction, "limit": cfg.max_query_in_corpus,
                            "ngram": cfg.ngram, "threshold": cfg.overlap_threshold, "checked": list(cfg.check_corpus)},
        "query_doc_ids": result.query_doc_ids,
        "files": {"train": str(out / "train.jsonl"), "heldout": str(out / "heldout.jsonl")}
        | ({"corpus": str(out / "corpus.jsonl"), "queries": str(out / "queries.jsonl"),
            "qrels": str(out / "qrels" / "test.tsv")} if result.queries else {}),
    }
    write_json(out / "report.json", report)
    return report
