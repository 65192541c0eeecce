"""BLEU against sacrebleu and CodeBLEU against the codebleu package called directly, to 1e-6."""

from __future__ import annotations

import pytest

from dorag.evaluation.text_metrics import bleu, codebleu, exact_match, score_text

sacrebleu = pytest.importorskip("sacrebleu")
codebleu_pkg = pytest.importorskip("codebleu")

HYPS = [
    "Return the sum of two numbers.",
    "Compute the mean of a list of floats.",
    "def add(a, b):\n    return a + b\n",
    "Open the file and read all lines.",
]
REFS = [
    "Return the sum of a and b.",
    "Compute the arithmetic mean of a list of numbers.",
    "def add(x, y):\n    return x + y\n",
    "Read every line of the file at path.",
]
CODE_H = ["def add(a, b):\n    return a + b\n", "def mean(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s / len(xs)\n"]
CODE_R = ["def add(x, y):\n    return x + y\n", "def mean(values):\n    return sum(values) / len(values)\n"]


def test_bleu_equals_sacrebleu():
    assert bleu(HYPS, REFS) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-6)
    assert bleu(REFS, REFS) == pytest.approx(100.0, abs=1e-6)


def test_codebleu_equals_the_package():
    ours = codebleu(CODE_H, CODE_R)
    ref = codebleu_pkg.calc_codebleu(CODE_R, CODE_H, lang="python", weights=(0.25, 0.25, 0.25, 0.25))
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    assert codebleu(CODE_R, CODE_R)["codebleu"] == pytest.approx(1.0, abs=1e-6)


def test_exact_match_normalises_whitespace():
    assert exact_match(["a  b\n", "c"], ["a b", "d"]) == 0.5
    assert exact_match(["a  b"], ["a b"], normalize=False) == 0.0


def test_score_text_rejects_unknown_metrics():
    from dorag.core.errors import DataError

    with pytest.raises(DataError, match="unknown text metric"):
        score_text(["a"], ["a"], ["rouge"])
    assert set(score_text(["a b c d"], ["a b c d"], ["bleu", "exact_match"])) == {"bleu", "exact_match"}
