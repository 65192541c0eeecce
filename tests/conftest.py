"""Shared fixtures: a tiny random causal LM with a real BPE tokenizer and chat template, built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DORAG_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # as the CLI sets it: no weight-loading bars

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TRAIN_TEXT = [
    "def add(a, b):\n    return a + b\n",
    "def has_close_elements(numbers, threshold):\n    for i in range(len(numbers)):\n        pass\n",
    "```python\nimport math\nprint(math.sqrt(2))\n```\n",
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:",
    "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:",
] * 20


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer Qwen2 with random weights and a 400-token byte-level BPE tokenizer to `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(TRAIN_TEXT, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # larger logits make greedy choices decisive, not near-ties
        model.lm_head.weight.mul_(20.0)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_generator(tiny_model_dir: Path):
    from dorag.models.hf import TransformersGenerator
    from dorag.models.loading import ModelConfig, load_transformers

    model, tok = load_transformers(ModelConfig(name=str(tiny_model_dir)))
    return TransformersGenerator(model, tok, name="tiny")


@pytest.fixture()
def problems_file(tmp_path: Path) -> Path:
    """Three HumanEval-format problems (the first three of HumanEval itself)."""
    from dorag.core.io import write_jsonl
    from dorag.evaluation.benchmarks import load_problems

    path = tmp_path / "problems.jsonl"
    write_jsonl(path, load_problems("humaneval", limit=3))
    return path
