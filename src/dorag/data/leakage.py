"""Leakage check: find retrieval-corpus documents that hold a benchmark's solutions or its prompts.

A RAG score means nothing if the retriever can hand the model the answer. Each problem contributes two
texts: its canonical solution (with the signature, so one-line bodies are still specific) and its prompt.
A document is flagged for a problem when it contains at least `threshold` of that text's word n-grams
(exact n-gram containment through an inverted index: no sampling error, unlike MinHash, and linear in
the corpus size), or the whole text verbatim after whitespace normalisation ("exact").
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from dorag.data.decontam import tokens

_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _signature(problem: dict[str, Any]) -> str:
    entry = problem.get("entry_point") or ""
    for line in problem.get("prompt", "").splitlines():
        if line.lstrip().startswith(f"def {entry}(") or (entry and f"def {entry}" in line):
            return line.strip()
    return ""


class LeakageChecker:
    """An inverted index from word n-grams to (problem, text kind); `scan(docs)` returns the findings."""

    def __init__(self, problems: Sequence[dict[str, Any]], n: int = 8, threshold: float = 0.5) -> None:
        self.n, self.threshold = n, threshold
        self.targets: list[tuple[str, str, int, str]] = []  # (task_id, kind, n-gram count, normalised text)
        self.short: list[tuple[str, str, tuple[str, ...], str]] = []  # texts with fewer than n tokens
        self.index: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for p in problems:
            solution = p.get("canonical_solution") or ""
            texts = []
            if solution.strip():
                sig = _signature(p)
                texts.append(("solution", f"{sig}\n{solution}" if sig and sig not in solution else solution))
            if p.get("prompt", "").strip():
                texts.append(("prompt", p["prompt"]))
            for kind, text in texts:
                toks = tokens(text)
                if len(toks) < n:
                    if len(toks) >= 4:  # shorter still is too generic to call a leak
                        self.short.append((p["task_id"], kind, tuple(toks), _norm(text)))
                    continue
                grams = {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}
                t = len(self.targets)
                self.targets.append((p["task_id"], kind, len(grams), _norm(text)))
                for g in grams:
                    self.index[g].append(t)

    def check(self, text: str) -> list[dict[str, Any]]:
        """Findings for one document: [{task_id, kind, score, exact}]."""
        toks = tokens(text)
        hits: dict[int, int] = defaultdict(int)
        for g in {tuple(toks[i : i + self.n]) for i in range(len(toks) - self.n + 1)}:
            for t in self.index.get(g, ()):
                hits[t] += 1
        found = []
        norm = None
        for t, count in hits.items():
            task_id, kind, total, target = self.targets[t]
            score = count / total
            if score >= self.threshold:
                norm = norm if norm is not None else _norm(text)
                found.append({"task_id": task_id, "kind": kind, "score": round(score, 4), "exact": target in norm})
        if self.short:
            joined = " " + " ".join(toks) + " "
            for task_id, kind, seq, target in self.short:
                if " " + " ".join(seq) + " " in joined:
                    found.append({"task_id": task_id, "kind": kind, "score": 1.0, "exact": target in _norm(text)})
        return found

    def scan(self, docs: Sequence[dict[str, Any]], on_progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
        """Every (document, problem) pair over the threshold, with a reason, best matches first."""
        findings = []
        for i, d in enumerate(docs):
            for f in self.check(d["text"]):
                reason = f"{'verbatim ' if f['exact'] else ''}{f['kind']} ({f['score']:.0%} of its {self.n}-grams)"
                findings.append({"doc_id": d["id"], **f, "reason": reason})
            if on_progress and (i + 1) % 1000 == 0:
                on_progress(i + 1, len(docs))
        if on_progress:
            on_progress(len(docs), len(docs))
        findings.sort(key=lambda f: (-f["score"], f["doc_id"], f["task_id"]))
        return findings


def drop_leaking(docs: Sequence[dict[str, Any]], findings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The corpus without the flagged documents."""
    bad = {f["doc_id"] for f in findings}
    return [d for d in docs if d["id"] not in bad]
