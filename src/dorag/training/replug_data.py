"""REPLUG LSR inputs: the datastore, the training queries kept out of it, and the teacher's prompts.

Training examples come from the synth pairs. What the LM teacher scores (x -> y) is chosen per relation:

- a body pair (``docstring+signature->body``, ``signature->body``; category hybrid and part of code2code) is
  a (context, continuation) split, the LM-teacher form of REPLUG sec. 4 (first part of a text -> the rest):
  x is the pair's query (the summary and the signature) and y is the function body. The teacher sees x
  as a HumanEval-style prompt (signature, then the summary as docstring) and scores the body indented under
  it, i.e. exactly what dorag's RAG generation asks of the model.
- any other pair: x is the query, y the positive, scored as the model's answer to the query.

The retriever's query is always the pair's query text. The prompt around (d, x) is the one dorag builds for
RAG (`retrieval.assemble` for the document block, `data.prompts.build_prompt` for the rest), chat template
and response prefix included, so the teacher judges documents in the setting they will be used in.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.training.retriever_config import ReplugConfig

Document = dict[str, Any]
Render = Callable[["Example", Document], str]  # (example, document) -> the teacher's prompt text
BODY_RELATIONS = ("docstring+signature->body", "llm-request+signature->body", "signature->body")
_SIGNATURE = re.compile(r"^\s*(async\s+)?def\s+\w+\s*\(.*", re.DOTALL)


@dataclass(frozen=True)
class Example:
    """One training query: what the retriever embeds, and what the teacher scores."""

    query: str  # x as the retriever sees it
    problem: str  # x as the teacher sees it (the task part of the RAG prompt)
    lead: str  # chat prompts: teacher-forced answer text after the pre-fill, before y (not scored)
    target: str  # y, the gold continuation whose log-likelihood is scored


def to_example(pair: dict[str, Any]) -> Example:
    """The teacher's (problem, lead, target) for one pair (see the module docstring)."""
    query, positive = pair["query"], pair["positive"]
    if pair.get("relation") in BODY_RELATIONS:
        lines = query.rstrip().splitlines()
        at = next((i for i in range(len(lines)) if _SIGNATURE.match("\n".join(lines[i:]))), None)
        if at is not None:
            signature, prose = "\n".join(lines[at:]).rstrip(), " ".join(l.strip() for l in lines[:at]).strip()
            doc = f'    """{prose}"""\n' if prose else ""
            problem = f"{signature}\n{doc}"
            return Example(query, problem, problem, textwrap.indent(positive.rstrip("\n"), "    ") + "\n")
    return Example(query, query.rstrip(), "", positive.rstrip("\n") + "\n")


def prompt_renderer(style: str, count_tokens: Callable[[str], int], budget_tokens: int,
                    render_chat: Callable[[Any], str] | None) -> Render:
    """The teacher prompt for (x, d): the RAG prompt with d as the one retrieved document, then the lead."""
    from dorag.data.prompts import PromptConfig, build_prompt
    from dorag.retrieval.assemble import assemble_context

    pcfg = PromptConfig()

    def render(ex: Example, doc: Document) -> str:
        context, _ = assemble_context([doc], count_tokens, budget_tokens)
        if style == "chat":
            assert render_chat is not None
            # chat: the whole problem is in the user turn; the assistant's answer restates it (the lead) and
            # continues with y, as the model answers a HumanEval prompt after the ```python pre-fill
            return render_chat(build_prompt({"prompt": ex.problem}, pcfg, "chat", context=context or None)) + ex.lead
        # completion: the problem is the text the model continues; a prose query becomes a comment
        problem = ex.problem if ex.lead else "".join(f"# {line}\n" for line in ex.problem.splitlines())
        text = build_prompt({"prompt": problem}, pcfg, "completion", context=context or None).text or ""
        return text if text.endswith("\n") else text + "\n"

    return render


# ---------------------------------------------------------------- datastore

def load_datastore(sources: Sequence[str], train_file: Path) -> tuple[list[Document], str]:
    """The documents and a description of where they came from."""
    from dorag.data.corpus import build_corpus, from_table

    if not sources:
        beside = train_file.parent / "corpus.jsonl"
        if not beside.is_file():
            raise DataError(f"no datastore: give replug.datastore (a corpus JSONL, an index directory or a corpus "
                            f"source such as stdlib); {beside} does not exist")
        sources = (str(beside),)
    docs: list[Document] = []
    for src in sources:
        index_docs = Path(src) / "docs.jsonl"
        if index_docs.is_file():
            docs += from_table(index_docs)
        elif Path(src).is_file() and Path(src).suffix in (".jsonl", ".gz", ".csv"):
            docs += from_table(src)  # a corpus file is used as it is (build_corpus would re-chunk it)
        else:
            docs += build_corpus([src])
    seen: set[str] = set()
    unique = [d for d in docs if not (d["id"] in seen or seen.add(d["id"]))]  # type: ignore[func-returns-value]
    return unique, ", ".join(sources)


def own_ids(pair: dict[str, Any]) -> set[str]:
    """Ids of the documents holding a pair's query or gold continuation: its own function, and the documents of
    what encloses it (``mod:A`` for ``mod:A.m``: a class document lists each method's signature and summary,
    which is the hybrid query itself; an outer function holds its inner one)."""
    ids = {str(pair[k]) for k in ("query_doc_id", "doc_id", "positive_id") if pair.get(k)}
    for i in list(ids):
        module, sep, qualname = i.partition(":")
        parts = qualname.split("#", 1)[0].split(".")
        ids.update(f"{module}{sep}{'.'.join(parts[:k])}" for k in range(1, len(parts)) if sep)
    return ids


def is_own(doc: Document, own: set[str]) -> bool:
    meta = doc.get("meta") or {}
    base = re.split(r"[#@~]", doc["id"], maxsplit=1)[0]  # chunk (#i) and repeated-id (@line, ~n) suffixes
    return doc["id"] in own or base in own or meta.get("parent") in own or meta.get("doc_id") in own


def disjoint(pairs: list[dict[str, Any]], docs: list[Document], cfg: ReplugConfig,
             progress: Callable[[str], None] = lambda m: None) -> tuple[list[dict[str, Any]], list[Document], dict[str, int]]:
    """Remove the training queries' own documents from the datastore, then test what is left for copies of
    the queries (`dorag data synth`'s n-gram containment): above `max_query_in_datastore` of the queries
    that is an error, below it the flagged queries are dropped."""
    from dorag.data.synth import queries_found_in

    if not pairs:
        raise DataError("no training pairs for replug-lsr; build some with `dorag data synth`")
    own = set().union(*(own_ids(p) for p in pairs))
    kept_docs = [d for d in docs if not is_own(d, own)]
    removed = len(docs) - len(kept_docs)
    if len(kept_docs) < cfg.top_n:
        raise DataError(f"the datastore holds {len(kept_docs)} document(s) once the training queries' own "
                        f"{removed} are removed, fewer than replug.top_n={cfg.top_n}; give a larger datastore "
                        "(replug.datastore=stdlib) or lower replug.top_n")
    flagged = queries_found_in(pairs, kept_docs, cfg.ngram, cfg.overlap_threshold, cfg.max_query_in_datastore,
                               "training queries", "the datastore",
                               "remove those documents from the datastore, or raise replug.max_query_in_datastore")
    bad = set(flagged)
    kept_pairs = [p for i, p in enumerate(pairs) if i not in bad]
    if not kept_pairs:
        raise DataError("no training pairs left for replug-lsr once queries found in the datastore are dropped")
    if removed or bad:
        progress(f"datastore: {len(kept_docs)} documents ({removed} of the training queries' own removed); "
                 f"{len(bad)} queries dropped as found in the datastore")
    return kept_pairs, kept_docs, {"own_documents_removed": removed, "queries_in_datastore": len(bad)}
