"""The Generator seam: prompts in, completions out, whatever engine runs the model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from dorag.core.config import option
from dorag.core.types import Prompt

__all__ = ["Completion", "GenerationParams", "Generator", "Prompt", "cut_at_stop"]


@dataclass
class GenerationParams:
    """Decoding settings shared by every backend."""

    max_new_tokens: int = option(512, "maximum tokens generated per sample")
    temperature: float = option(0.0, "0 means greedy decoding; > 0 samples")
    top_p: float = option(1.0, "nucleus sampling mass (sampling only)")
    n: int = option(1, "samples per prompt (for pass@k); greedy ignores n > 1 duplicates")
    stop: tuple[str, ...] = option((), "extra stop sequences, checked during decoding")
    batch_size: int = option(16, "prompts decoded together (transformers backend)")
    seed: int = option(0, "sampling seed")

    def check(self) -> list[str]:
        problems = []
        if self.n < 1:
            problems.append(f"n: must be at least 1, got {self.n}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens: must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            problems.append(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p: must be in (0, 1], got {self.top_p}")
        if self.batch_size < 1:
            problems.append(f"batch_size: must be at least 1, got {self.batch_size}")
        return problems

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Completion:
    text: str  # the generated text after the prompt (and after response_prefix), cut before any stop
    n_tokens: int  # tokens generated, up to and including the stop or EOS
    finish_reason: Literal["stop", "eos", "length", "cancelled"] = "length"
    latency_s: float = 0.0  # wall time from the start of the call (or batch) to this sample's last token
    prompt_tokens: int = 0  # tokens of the rendered prompt this sample continued (0: not known)
    meta: dict = field(default_factory=dict)


ProgressFn = Callable[[int], None]
TextFn = Callable[[int, int, str], None]  # (prompt index, sample index, the answer's text so far): streaming
CancelFn = Callable[[int], bool]  # whether prompt i's answer is no longer wanted (its client went away)


class Generator(Protocol):
    """Anything that turns prompts into `params.n` completions each."""

    name: str

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, progress: ProgressFn | None = None
    ) -> list[list[Completion]]:
        ...


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop sequence; return (text, whether a stop was found)."""
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1 and i < cut:
                cut = i
    return text[:cut], cut < len(text)
