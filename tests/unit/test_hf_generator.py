"""The batched transformers generator on a tiny random model: parity with plain generate, stops, sampling."""

from __future__ import annotations

import pytest

from dorag.core.types import Prompt
from dorag.models.generator import GenerationParams

torch = pytest.importorskip("torch")

PROMPTS = ["def add(a, b):", "import math\nprint(", "x", "Please provide a self-contained Python script"]


def _reference(gen, text: str, max_new_tokens: int) -> list[int]:
    """Plain HF generate, one prompt, greedy: the trusted implementation."""
    enc = gen.tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = gen.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, eos_token_id=sorted(gen.eos_ids),
                                 pad_token_id=gen.tokenizer.pad_token_id)
    return out[0, enc["input_ids"].shape[1]:].tolist()


def test_batched_greedy_equals_one_at_a_time_generate(tiny_generator):
    params = GenerationParams(max_new_tokens=24, batch_size=4)
    batched = tiny_generator.generate_text(PROMPTS, params)
    for text, comps in zip(PROMPTS, batched):
        ref = _reference(tiny_generator, text, 24)
        body = ref[:-1] if ref and ref[-1] in tiny_generator.eos_ids else ref
        assert comps[0].text == tiny_generator.tokenizer.decode(body, skip_special_tokens=True)
        assert comps[0].n_tokens == len(ref)


def test_each_sample_gets_its_own_latency(tiny_generator):
    free = tiny_generator.generate_text(PROMPTS, GenerationParams(max_new_tokens=30, batch_size=4))
    stop = free[0][0].text[3:7]
    out = tiny_generator.generate_text(PROMPTS, GenerationParams(max_new_tokens=30, batch_size=4, stop=(stop,)))
    lat = {c[0].finish_reason: c[0].latency_s for c in out}
    assert all(c[0].latency_s > 0 for c in out)
    if "stop" in lat and "length" in lat:
        assert lat["stop"] < lat["length"]  # a row that stopped early finished earlier


def test_batch_size_does_not_change_greedy_output(tiny_generator):
    one = tiny_generator.generate_text(PROMPTS, GenerationParams(max_new_tokens=16, batch_size=1))
    four = tiny_generator.generate_text(PROMPTS, GenerationParams(max_new_tokens=16, batch_size=4))
    assert [c[0].text for c in one] == [c[0].text for c in four]


def test_stop_sequence_ends_decoding_early(tiny_generator):
    free = tiny_generator.generate_text([PROMPTS[0]], GenerationParams(max_new_tokens=40))[0][0]
    assert free.n_tokens == 40 and len(free.text) > 12
    stop = free.text[6:10]  # a string the model is known to produce mid-way
    cut = tiny_generator.generate_text([PROMPTS[0]], GenerationParams(max_new_tokens=40, stop=(stop,)))[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.index(stop)]
    assert cut.n_tokens < 40  # decoding stopped when the stop appeared, not at max_new_tokens


def test_rows_stopping_at_different_times_keep_their_own_text(tiny_generator):
    free = tiny_generator.generate_text(PROMPTS, GenerationParams(max_new_tokens=30, batch_size=4))
    stop = free[0][0].text[3:7]
    stopped = tiny_generator.generate_text(PROMPTS, GenerationParams(max_new_tokens=30, batch_size=4, stop=(stop,)))
    for f, s in zip(free, stopped):
        assert s[0].text == f[0].text.split(stop)[0]


def test_sampling_returns_n_reproducible_samples(tiny_generator):
    params = GenerationParams(max_new_tokens=12, temperature=1.0, top_p=0.9, n=3, seed=7)
    a = tiny_generator.generate_text(PROMPTS[:2], params)
    b = tiny_generator.generate_text(PROMPTS[:2], params)
    assert [len(x) for x in a] == [3, 3]
    assert [[c.text for c in x] for x in a] == [[c.text for c in x] for x in b]
    assert len({c.text for c in a[0]}) > 1  # samples differ from each other


def test_chat_prompt_uses_the_template_and_prefix(tiny_generator):
    p = Prompt(messages=(("user", "hi"),), response_prefix="```python\n")
    assert tiny_generator.render(p) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n```python\n"


def test_greedy_n_gt_1_repeats_the_single_decode(tiny_generator):
    out = tiny_generator.generate_text(PROMPTS[:1], GenerationParams(max_new_tokens=8, n=3))
    assert len(out[0]) == 3 and len({c.text for c in out[0]}) == 1
