"""One prompt path: a training example renders to the very prompt tokens that inference sends for the same
problem (plain and with retrieved documents), and the target ends where the harness stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from dorag.data.prompts import PromptConfig
from dorag.data.sft_data import make_problem_example
from dorag.evaluation.benchmarks import load_problems
from dorag.experiments.generate import GenerateConfig, RagContexts, run_generate, token_counter
from dorag.models.generator import Completion, GenerationParams
from dorag.retrieval.assemble import RagConfig, format_document
from dorag.retrieval.index import Hit
from dorag.training.encoding import IGNORE, encode_example, render_example

pytest.importorskip("transformers")

DOCS = [
    {"id": "statistics:mean", "text": "def mean(data):\n    \"\"\"Return the sample arithmetic mean of data.\"\"\"\n"
                                      "    return sum(data) / len(data)\n",
     "meta": {"module": "statistics", "qualname": "mean"}},
    {"id": "math:fabs", "text": "def fabs(x):\n    \"\"\"Return the absolute value of the float x.\"\"\"\n",
     "meta": {"module": "math", "qualname": "fabs"}},
    {"id": "itertools:combinations", "text": "def combinations(iterable, r):\n    \"\"\"r-length subsequences.\"\"\"\n"
                                             + "    pass\n" * 40, "meta": {"module": "itertools", "qualname": "combinations"}},
]


def _tokenizers(tiny_model_dir: Path) -> list:
    from transformers import AutoTokenizer

    toks = [AutoTokenizer.from_pretrained(tiny_model_dir)]
    real = Path.home() / ".cache" / "dorag" / "models" / "qwen2.5-coder-0.5b-instruct"
    if (real / "tokenizer.json").is_file():  # the default model's own template and BPE, when it is provisioned
        toks.append(AutoTokenizer.from_pretrained(real))
    return toks


class _Recorder:
    """A generator that records the exact token ids `TransformersGenerator.generate` would decode from."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[list[int]] = []

    def generate(self, prompts, params):
        from dorag.models.hf import TransformersGenerator

        texts = [TransformersGenerator.render(self, p) for p in prompts]  # the generator's own renderer
        # encoded as TransformersGenerator.generate_text encodes them
        self.ids += [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        return [[Completion("    return 0\n", 1, "stop", 0.0)] for _ in prompts]


class _FakeIndex:
    def __init__(self, docs):
        self.docs = docs

    def search(self, queries, k, mode=None):
        return [[Hit(d["id"], 1.0 / (r + 1), r, d["text"], d["meta"]) for r, d in enumerate(self.docs[:k])]
                for _ in queries]


def _inference_ids(tok, problem, tmp_path: Path, docs=None, rag: RagConfig | None = None) -> list[int]:
    cfg = GenerateConfig(problems=None, benchmark="humaneval", out=str(tmp_path / f"s{len(list(tmp_path.iterdir()))}.jsonl"),
                         generation=GenerationParams(max_new_tokens=8), prompt=PromptConfig(), rag=rag or RagConfig())
    gen = _Recorder(tok)
    contexts = None
    if docs:
        contexts = RagContexts(cfg, _FakeIndex(docs), {"n_flagged": 0})
        contexts.count_tokens = token_counter(gen)
    run_generate(cfg, gen, [problem], contexts=contexts)
    assert len(gen.ids) == 1
    return gen.ids[0]


def _training_prompt_ids(tok, ex, rag: RagConfig | None = None) -> tuple[list[int], list[int]]:
    enc = encode_example(tok, ex, 100_000, PromptConfig(), rag or RagConfig())
    n_prompt = sum(1 for label in enc["labels"] if label == IGNORE)
    return enc["input_ids"][:n_prompt], enc["input_ids"][n_prompt:]


@pytest.mark.parametrize("with_docs", [False, True], ids=["plain", "rag"])
def test_training_and_inference_prompts_are_token_identical(tiny_model_dir, tmp_path, with_docs):
    problem = load_problems("humaneval", limit=1)[0]
    target = problem["prompt"] + problem["canonical_solution"]
    ex = make_problem_example("t", problem, target, docs=DOCS if with_docs else None)
    for tok in _tokenizers(tiny_model_dir):
        # a budget that holds the first two documents and part of the third: it is cut to fit, as at inference
        count = token_counter(_Recorder(tok))
        rag = RagConfig(top_k=3, budget_tokens=sum(count(format_document(d)) + 1 for d in DOCS[:2]) + 80)
        infer = _inference_ids(tok, problem, tmp_path, DOCS if with_docs else None, rag)
        train, answer = _training_prompt_ids(tok, ex, rag)
        assert train == infer
        # the answer continues the pre-fill: the solution, the closing fence the harness stops at, the end of turn
        assert tok.decode(answer) == target.rstrip() + "\n```<|im_end|>\n"
        prompt_text, _ = render_example(tok, ex, PromptConfig(), rag)
        assert ("Relevant code and documentation:" in prompt_text) == with_docs
        if with_docs:
            assert "# statistics.mean" in prompt_text and "(truncated)" in prompt_text


def test_the_rag_prompt_differs_from_the_plain_one(tiny_model_dir, tmp_path):
    """Guards the guard: documents change the prompt ids, so the RAG case above is not the plain case twice."""
    problem = load_problems("humaneval", limit=1)[0]
    tok = _tokenizers(tiny_model_dir)[0]
    plain = _inference_ids(tok, problem, tmp_path)
    rag = _inference_ids(tok, problem, tmp_path, DOCS, RagConfig(top_k=3))
    assert plain != rag and len(rag) > len(plain)
