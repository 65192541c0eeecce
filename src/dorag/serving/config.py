"""`dorag serve` settings: the model and its adapters, the indexes, limits, auth and the feedback store."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from dorag.core.config import at_least_one, option
from dorag.models.loading import ModelConfig


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


@dataclass
class ServeConfig:
    """One server: a base model loaded once, its adapters switched per request, optional RAG indexes."""

    model: ModelConfig = field(default_factory=ModelConfig)
    indexes: dict[str, str] = option(help="named retrieval indexes, e.g. {stdlib: indexes/stdlib}", default_factory=dict)
    host: str = option("127.0.0.1", "address to bind; a non-loopback one needs api_key or allow_remote")
    port: int = option(8000, "TCP port")
    api_key: str | None = option(None, "bearer key required on /v1/* and /metrics (the CLI reads DORAG_API_KEY)")
    allow_remote: bool = option(False, "bind a non-loopback host without an API key")
    feedback_db: str = option("feedback.sqlite", "SQLite file for ratings and corrections (WAL mode)")
    record_responses: bool = option(True, "keep each answer under its response id in the feedback store, so a "
                                          "rating that names the id is checked against the answer it rates")
    feedback_requires_response: bool = option(False, "refuse ratings without the response_id of an answer this "
                                                      "server gave (needs record_responses)")
    max_tokens: int = option(1024, "most tokens one request may generate; larger max_tokens is a 400")
    default_max_tokens: int | None = option(None, "max_tokens when a request gives none (default: 256 or max_tokens)")
    default_temperature: float = option(0.0, "temperature when a request gives none (0: greedy, reproducible)")
    max_body_bytes: int = option(1_000_000, "larger request bodies are refused with 413 before parsing")
    max_batch: int = option(8, "queued greedy requests for one adapter decoded together (1: no batching)")
    max_queue: int = option(256, "requests waiting for the model; more are refused with 503")
    disconnect_poll_s: float = option(0.5, "how often a waiting request checks that its client is still there "
                                           "(a gone client's job is dropped or stopped mid-decode)")
    rag_top_k: int = option(3, "documents retrieved when a request names an index but no top_k")
    rag_max_top_k: int = option(20, "most documents a request may ask for")
    rag_budget_tokens: int = option(1024, "most prompt tokens the retrieved documents may take")
    snippet_chars: int = option(4000, "characters of each retrieved document returned to the client")

    def check(self) -> list[str]:
        problems = []
        if self.model.merge:
            problems.append("model.merge: the server switches adapters per request; to serve a folded adapter, "
                            "merge it first (dorag adapters merge) and serve the merged checkpoint as model.name")
        if self.feedback_requires_response and not self.record_responses:
            problems.append("feedback_requires_response needs record_responses: without recorded answers no "
                            "response_id can be checked")
        if self.disconnect_poll_s <= 0:
            problems.append(f"disconnect_poll_s: {self.disconnect_poll_s} must be a positive number of seconds")
        if self.model.backend == "transformers":
            missing = [n for n, p in self.model.adapters.items() if not p]
            if missing:
                problems.append(f"model.adapters: {', '.join(missing)} need a PEFT directory (NAME=PATH)")
        bad = [n for n in [*self.model.adapters, *self.indexes] if not n or "+" in n or ":" in n or n == "base"]
        if bad:
            problems.append(f"names {', '.join(map(repr, bad))}: adapter and index names may not be 'base' or "
                            "contain '+' or ':' (they form model names like code+rag:stdlib)")
        if self.port < 0:  # 0: any free port
            problems.append(f"port: must be at least 0, got {self.port}")
        problems += at_least_one(self, ("max_tokens", "max_body_bytes", "max_batch", "max_queue",
                                        "rag_top_k", "rag_max_top_k", "rag_budget_tokens", "snippet_chars"))
        if self.default_max_tokens is not None and not 1 <= self.default_max_tokens <= self.max_tokens:
            problems.append(f"default_max_tokens: must be 1..max_tokens ({self.max_tokens}), got {self.default_max_tokens}")
        if self.default_temperature < 0:
            problems.append(f"default_temperature: must be >= 0, got {self.default_temperature}")
        if not self.api_key and not self.allow_remote and not is_loopback(self.host):
            problems.append(f"host: refusing to serve {self.host} without an API key; set one (--api-key or "
                            "DORAG_API_KEY) or pass --allow-remote")
        return problems
