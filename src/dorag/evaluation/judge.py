"""LLM-as-judge: a 1-5 quality score with a rubric, through any OpenAI-compatible chat endpoint.

The endpoint is a callable passed in (``chat(messages) -> str``), so this module needs no HTTP client;
the CLI builds one from ``models.openai_backend`` when a base URL is configured, and skips the judge
with a one-line message when none is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RUBRIC = """Rate the candidate answer to the task from 1 to 5:
5 - correct, complete and idiomatic; nothing to change.
4 - correct with minor issues of style, naming or documentation.
3 - mostly correct; a bug or omission that a reviewer would catch quickly.
2 - the right idea, but wrong in a way that matters.
1 - wrong, irrelevant or empty.
Reply with the score on the first line as `Score: N`, then one sentence of justification."""

_SCORE = re.compile(r"score\s*[:=]\s*([1-5])", re.IGNORECASE)


@dataclass
class Judgement:
    score: int | None  # None when the judge's reply had no parsable score
    rationale: str


def parse_score(reply: str) -> int | None:
    m = _SCORE.search(reply)
    if m:
        return int(m.group(1))
    lone = re.match(r"\s*([1-5])\b", reply)
    return int(lone.group(1)) if lone else None


def judge(tasks: Sequence[str], answers: Sequence[str], chat: Callable[[list[dict[str, str]]], str],
          references: Sequence[str | None] | None = None, rubric: str = RUBRIC) -> list[Judgement]:
    """Score each (task, answer) pair; a reference answer, when given, is shown to the judge."""
    out = []
    refs = references or [None] * len(tasks)
    for task, answer, ref in zip(tasks, answers, refs):
        user = f"Task:\n{task}\n\nCandidate answer:\n{answer}\n"
        if ref:
            user += f"\nReference answer:\n{ref}\n"
        reply = chat([{"role": "system", "content": rubric}, {"role": "user", "content": user}])
        out.append(Judgement(parse_score(reply), reply.strip()))
    return out


def mean_score(judgements: Sequence[Judgement]) -> float | None:
    scores = [j.score for j in judgements if j.score is not None]
    return sum(scores) / len(scores) if scores else None
