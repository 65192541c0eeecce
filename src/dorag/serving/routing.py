"""Model names to (adapter, index), and retrieval from the named indexes.

Names follow vLLM's multi-LoRA serving: ``base`` (or the base model's own name) is the bare model, an
adapter's name selects that adapter. dorag adds a RAG suffix, ``code+rag:stdlib``, equivalent to the body
field ``"rag": {"index": "stdlib"}``; ``+rag`` alone picks the only index when exactly one is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dorag.core.errors import ConfigError
from dorag.serving.schemas import APIError, RagOptions

BASE = "base"


@dataclass
class Target:
    model: str  # the name as the client gave it
    adapter: str  # "base" or a loaded adapter
    index: str | None = None
    top_k: int = 3
    mode: str | None = None


def resolve_model(model: str, rag: RagOptions | None, adapters: Collection[str], aliases: Collection[str],
                  indexes: Collection[str], default_top_k: int, max_top_k: int) -> Target:
    """The adapter and index a request asks for; unknown names are a 404 (OpenAI's model_not_found)."""
    head, plus, suffix = model.partition("+")
    adapter = BASE if head in aliases or head == BASE else head
    if adapter != BASE and adapter not in adapters:
        raise APIError(404, f"The model `{model}` does not exist; served models: "
                            f"{', '.join([BASE, *adapters])} (append +rag:INDEX for retrieval)",
                       code="model_not_found", param="model")
    index = None
    if plus:
        kind, _, index = suffix.partition(":")
        if kind != "rag":
            raise APIError(404, f"The model `{model}` does not exist; the only suffix is +rag:INDEX",
                           code="model_not_found", param="model")
        if not index:
            if len(indexes) != 1:
                raise APIError(404, f"`{model}`: name the index, e.g. {head}+rag:INDEX (indexes: "
                                    f"{', '.join(indexes) or 'none'})", code="index_not_found", param="model")
            index = next(iter(indexes))
    if rag is not None:
        if index and rag.index != index:
            raise APIError(400, f"the model name asks for index {index!r} and the rag field for {rag.index!r}",
                           param="rag.index")
        index = rag.index
    if index is not None and index not in indexes:
        raise APIError(404, f"unknown index {index!r}; indexes: {', '.join(indexes) or 'none (start the server with --index NAME=DIR)'}",
                       code="index_not_found", param="rag.index")
    top_k = rag.top_k if rag is not None and rag.top_k else default_top_k
    if top_k > max_top_k:
        raise APIError(400, f"rag.top_k: at most {max_top_k} on this server, got {top_k}", param="rag.top_k")
    return Target(model, adapter, index, top_k, rag.mode if rag is not None else None)


class Retrievers:
    """The loaded indexes; searches on one index are serialised (FAISS and bm25s objects are not
    documented as thread-safe, and the dense embedder is a torch model)."""

    def __init__(self, paths: dict[str, str]) -> None:
        from dorag.retrieval.index import RetrievalIndex

        self.indexes = {name: RetrievalIndex.load(Path(path)) for name, path in paths.items()}
        self._locks = {name: threading.Lock() for name in paths}

    def names(self) -> list[str]:
        return list(self.indexes)

    def describe(self) -> list[dict[str, Any]]:
        return [{"id": name, "object": "index", "method": idx.method, "n_docs": len(idx)}
                for name, idx in self.indexes.items()]

    def search(self, name: str, query: str, k: int, mode: str | None = None) -> list[dict[str, Any]]:
        """The top-k documents for `query`, best first, as ``{id, score, rank, text, meta}``."""
        try:
            with self._locks[name]:
                hits = self.indexes[name].search([query], k, mode=mode)[0]  # type: ignore[arg-type]
        except ConfigError as exc:  # e.g. mode=dense on a BM25 index
            raise APIError(400, f"rag: {exc}", param="rag.mode") from exc
        return [h.to_dict() for h in hits]
