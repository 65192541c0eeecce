"""Text metrics for docstrings and code similarity: BLEU (sacrebleu), CodeBLEU (codebleu), exact match.

Both heavy backends are optional (``pip install 'dorag[eval]'``) and imported only when used.
CodeBLEU needs a tree-sitter grammar: ``tree-sitter-python==0.21.0`` works offline with codebleu 0.7.0
(newer grammars break its parser).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dorag.core.errors import DataError
from dorag.core.require import require

CODEBLEU_WEIGHTS = (0.25, 0.25, 0.25, 0.25)  # ngram, weighted ngram, syntax, dataflow (Ren et al. 2020)


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise DataError(f"{len(hyps)} predictions but {len(refs)} references")
    if not hyps:
        raise DataError("no predictions to score")


def bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = "13a") -> float:
    """Corpus BLEU on a 0-100 scale, sacrebleu's defaults (one reference per prediction)."""
    _check(hyps, refs)
    sacrebleu = require("sacrebleu", extra="eval")
    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)], tokenize=tokenize).score)


def sentence_bleu(hyp: str, ref: str) -> float:
    sacrebleu = require("sacrebleu", extra="eval")
    return float(sacrebleu.sentence_bleu(hyp, [ref]).score)


def codebleu(hyps: Sequence[str], refs: Sequence[str], lang: str = "python",
             weights: tuple[float, float, float, float] = CODEBLEU_WEIGHTS) -> dict[str, float]:
    """CodeBLEU and its four components, each in [0, 1], from the codebleu package."""
    _check(hyps, refs)
    codebleu_pkg = require("codebleu", extra="eval")
    try:
        result: dict[str, Any] = codebleu_pkg.calc_codebleu(list(refs), list(hyps), lang=lang, weights=weights)
    except (ImportError, ValueError, TypeError) as exc:
        raise DataError(
            f"CodeBLEU failed ({exc}); it needs tree-sitter-python==0.21.0 with codebleu 0.7.0: "
            "pip install 'dorag[eval]'"
        ) from exc
    return {k: float(v) for k, v in result.items()}


def normalize_ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def exact_match(hyps: Sequence[str], refs: Sequence[str], normalize: bool = True) -> float:
    """Share of predictions equal to their reference (after whitespace normalisation by default)."""
    _check(hyps, refs)
    f = normalize_ws if normalize else (lambda s: s)
    return sum(f(h) == f(r) for h, r in zip(hyps, refs)) / len(hyps)


METRICS = ("bleu", "codebleu", "exact_match")


def score_text(hyps: Sequence[str], refs: Sequence[str], metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Several text metrics at once; unknown names are an error listing the valid ones."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise DataError(f"unknown text metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    out: dict[str, float] = {}
    if "bleu" in metrics:
        out["bleu"] = bleu(hyps, refs)
    if "codebleu" in metrics:
        out.update({("codebleu" if k == "codebleu" else f"codebleu_{k}"): v for k, v in codebleu(hyps, refs).items()})
    if "exact_match" in metrics:
        out["exact_match"] = exact_match(hyps, refs)
    return out
