"""Prompt assembly: retrieved documents into one context block under a token budget.

Documents are deduplicated (the same text, or chunks of one parent beyond the first), kept in rank order
(best first, or best last with `order="ascending"` so the best sits next to the question), and added while
they fit the budget; the first document that does not fit is cut at a line boundary when at least
`min_tokens` of budget remain, and the rest are dropped. Token counts come from the generator's tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dorag.core.config import option
from dorag.data.ast_extract import dedupe_key


@dataclass
class RagConfig:
    """Retrieval-augmented generation: which index, how many documents, how much prompt they may use."""

    index: str | None = option(None, "index directory; empty means no retrieval")
    top_k: int = option(3, "documents retrieved per problem")
    budget_tokens: int = option(1024, "most prompt tokens the retrieved documents may take")
    mode: str | None = option(None, "dense, bm25 or hybrid (default: the index's method)")
    order: Literal["descending", "ascending"] = option("descending", "best document first, or last (next to the task)")
    min_tokens: int = option(48, "cut the first document that does not fit only if this many tokens remain")
    allow_leakage: bool = option(False, "use an index that contains the benchmark's solutions or prompts")
    query: Literal["prompt", "docstring"] = option("prompt", "what is sent to the retriever: the whole prompt, or its docstring")

    def check(self) -> list[str]:
        problems = []
        if self.top_k < 1:
            problems.append(f"top_k: must be at least 1, got {self.top_k}")
        if self.budget_tokens < 1:
            problems.append(f"budget_tokens: must be at least 1, got {self.budget_tokens}")
        if self.mode not in (None, "dense", "bm25", "hybrid"):
            problems.append(f"mode: must be dense, bm25 or hybrid, got {self.mode!r}")
        return problems


def format_document(doc: dict[str, Any]) -> str:
    meta = doc.get("meta") or {}
    where = meta.get("qualname") and f"{meta.get('module', '')}.{meta['qualname']}".lstrip(".")
    head = f"# {where or doc['id']}\n"
    return f"{head}```python\n{doc['text'].rstrip()}\n```"


def assemble_context(docs: Sequence[dict[str, Any]], count_tokens: Callable[[str], int], budget_tokens: int,
                     order: str = "descending", min_tokens: int = 48) -> tuple[str, list[str]]:
    """The context text and the ids of the documents it holds (in prompt order)."""
    seen_text: set[str] = set()
    seen_parent: set[str] = set()
    chosen: list[tuple[str, str]] = []
    used = 0
    for doc in docs:
        key = dedupe_key(doc["text"])
        parent = (doc.get("meta") or {}).get("parent")
        if key in seen_text or (parent and parent in seen_parent):
            continue
        seen_text.add(key)
        if parent:
            seen_parent.add(parent)
        block = format_document(doc)
        sep = 1 if chosen else 0
        n = count_tokens(block) + sep
        if used + n <= budget_tokens:
            chosen.append((doc["id"], block))
            used += n
            continue
        remaining = budget_tokens - used - sep
        if remaining >= min_tokens:
            cut = _cut_to(block, count_tokens, remaining)
            if cut:
                chosen.append((doc["id"], cut))
        break
    if order == "ascending":
        chosen.reverse()
    return "\n".join(b for _, b in chosen), [i for i, _ in chosen]


def _cut_to(block: str, count_tokens: Callable[[str], int], budget: int) -> str | None:
    """The longest line prefix of `block` (closing its code fence) within `budget` tokens."""
    lines = block.splitlines()
    lo, hi = 0, len(lines) - 1  # binary search on the number of kept lines (the fence is re-added)
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        text = "\n".join(lines[:mid] + ["    # ... (truncated)", "```"])
        if count_tokens(text) <= budget:
            best, lo = text, mid + 1
        else:
            hi = mid - 1
    if best is None or best.count("\n") < 4:  # header and fence only: not worth including
        return None
    return best
