"""Decontamination: drop training or corpus items that overlap a benchmark's prompts or solutions.

Overlap is measured on word n-grams of normalised text (lower case, identifiers and numbers kept,
punctuation dropped), the method of the GPT-3 and Codex papers (13-grams there; code is denser, so the
default here is 10). An item is contaminated when any of its n-grams occurs in a benchmark text, or,
for short texts, when it equals one after normalisation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


def tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def ngrams(toks: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


@dataclass
class Decontaminator:
    """An index of a benchmark's n-grams; `contaminated(text)` says whether `text` overlaps it."""

    n: int = 10
    grams: set[tuple[str, ...]] = field(default_factory=set)
    shorts: set[tuple[str, ...]] = field(default_factory=set)

    def add(self, texts: Iterable[str]) -> Decontaminator:
        for text in texts:
            toks = tokens(text)
            if len(toks) < self.n:
                if toks:
                    self.shorts.add(tuple(toks))
            else:
                self.grams |= ngrams(toks, self.n)
        return self

    def contaminated(self, text: str) -> bool:
        toks = tokens(text)
        if len(toks) < self.n:
            return tuple(toks) in self.shorts
        return any(tuple(toks[i : i + self.n]) in self.grams for i in range(len(toks) - self.n + 1))


def benchmark_texts(problems: Iterable[dict]) -> Iterator[str]:
    """The texts of a problem set that training data must not contain: prompts and solutions."""
    for p in problems:
        yield p.get("prompt", "")
        if p.get("canonical_solution"):
            yield p["canonical_solution"]


