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



@dataclass
class Benchmarks:
    """Every benchmark that training data must avoid, loaded once: its n-gram index and entry-point signatures.

    `load(("offline", ...))` expands 'offline' to every registered benchmark whose data ships with an installed
    package. One of those that does not load here (Spider without its data packages) is recorded in `skipped`;
    a benchmark named explicitly must load.
    """

    grams: dict[str, Decontaminator] = field(default_factory=dict)
    signatures: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, names: Sequence[str], paths: dict[str, str] | None = None, n: int = 10) -> Benchmarks:
        from dorag.core.errors import DoragError
        from dorag.data.selfgen import signature_key
        from dorag.evaluation.benchmarks import BENCHMARKS, load_problems

        paths = paths or {}
        out = cls()
        wanted = [b.name for b in BENCHMARKS.values() if b.offline] if "offline" in names else []
        wanted += [b.lower() for b in names if b != "offline" and b.lower() not in wanted]
        for name in wanted:
            try:
                problems = load_problems(name, benchmark_path=paths.get(name))
            except (DoragError, ImportError, OSError) as exc:  # includes a missing optional data package
                if name in names:
                    raise
                out.skipped[name] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                continue
            out.grams[name] = Decontaminator(n=n).add(benchmark_texts(problems))
            out.signatures[name] = {key for p in problems if p.get("entry_point")
                                    and (key := signature_key(p.get("prompt", ""), p["entry_point"]))}
        return out

    @property
    def names(self) -> list[str]:
        return list(self.grams)

    def leak(self, text: str, signature: tuple[str, str] | None = None) -> str | None:
        """Why `text` may not be used ('contaminated:humaneval', 'signature:humaneval'), or None."""
        for name, index in self.grams.items():
            if signature is not None and signature in self.signatures.get(name, ()):
                return f"signature:{name}"
            if index.contaminated(text):
                return f"contaminated:{name}"
        return None

    def drop(self, texts: Sequence[str]) -> tuple[list[bool], dict[str, int]]:
        """Which of `texts` to keep, and how many each benchmark removed (the first benchmark that overlaps
        a text counts it)."""
        keep, counts = [], {f"contaminated:{name}": 0 for name in self.grams}
        for text in texts:
            hit = next((name for name, index in self.grams.items() if index.contaminated(text)), None)
            keep.append(hit is None)
            if hit is not None:
                counts[f"contaminated:{hit}"] += 1
        return keep, counts
