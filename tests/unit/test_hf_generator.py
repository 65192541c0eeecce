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


def _sorted_nucleus(logits, temperature: float, top_p: float):
    """The nucleus by a full sort of the vocabulary (the textbook algorithm): dense (b, V) probabilities."""
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    sorted_p = sorted_p.masked_fill(sorted_p.cumsum(-1) - sorted_p > top_p, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_p)


@pytest.mark.parametrize("temperature,top_p", [(0.8, 0.95), (1.0, 0.5), (5.0, 0.99), (0.2, 0.9)])
def test_the_windowed_nucleus_is_the_full_sort_nucleus(temperature, top_p):
    from dorag.models.hf import nucleus

    gen = torch.Generator().manual_seed(0)
    peaked = torch.randn(6, 5000, generator=gen) * 6  # nucleus of a few tokens: inside the first window
    flat = torch.randn(2, 5000, generator=gen) * 0.1  # nucleus of thousands of tokens: the wider windows
    for logits in (peaked, flat, torch.cat([peaked, flat])):
        cand, probs = nucleus(logits, temperature, top_p, widths=(16, 256))
        dense = torch.zeros_like(logits).scatter_(-1, cand, probs)
        torch.testing.assert_close(dense, _sorted_nucleus(logits, temperature, top_p), rtol=1e-5, atol=1e-7)


def test_sampled_tokens_follow_the_nucleus_distribution(tiny_generator):
    from dorag.models.hf import TransformersGenerator

    logits = torch.tensor([[4.0, 3.0, 2.0, 0.0, -1.0, -9.0]]).repeat(20000, 1)
    want = _sorted_nucleus(logits[:1], 1.0, 0.9)[0]
    for top_p in (0.9, 1.0):
        params = GenerationParams(temperature=1.0, top_p=top_p)
        picks = TransformersGenerator._pick(logits, params, torch.Generator().manual_seed(3))
        freq = torch.bincount(picks, minlength=6).float() / len(picks)
        ref = want if top_p < 1 else torch.softmax(logits[0], -1)
        assert (freq[ref == 0] == 0).all()  # never outside the nucleus
        torch.testing.assert_close(freq, ref, atol=0.015, rtol=0)


def test_the_preallocated_cache_gives_the_dynamic_caches_outputs_without_growing(tiny_generator, monkeypatch):
    """Rows leave the batch at different steps (a stop sequence), greedy and sampled: the in-place cache decodes
    exactly what transformers' concatenating DynamicCache does, and allocates each layer's buffers once."""
    from dorag.models import kv_cache

    free = tiny_generator.generate_text(PROMPTS, GenerationParams(max_new_tokens=30, batch_size=4))
    stop = free[1][0].text[5:8] or "e"
    cases = [GenerationParams(max_new_tokens=30, batch_size=4, stop=(stop,)),
             GenerationParams(max_new_tokens=20, batch_size=3, n=2, temperature=0.8, top_p=0.9, seed=3)]
    allocations = []
    real_update = kv_cache.PreallocatedLayer.update

    def counting(self, k, v, *a, **kw):
        before = self._k
        out = real_update(self, k, v, *a, **kw)
        if self._k is not before:
            allocations.append(self._k.shape[-2])
        return out

    monkeypatch.setattr(kv_cache.PreallocatedLayer, "update", counting)
    for params in cases:
        tiny_generator.kv_cache = "preallocated"
        allocations.clear()
        fast = tiny_generator.generate_text(PROMPTS, params)
        n_layers = tiny_generator.model.config.num_hidden_layers
        n_batches = -(-len(PROMPTS) // params.batch_size)
        assert len(allocations) == n_layers * n_batches  # one buffer per layer and batch: never regrown
        tiny_generator.kv_cache = "dynamic"  # the default
        slow = tiny_generator.generate_text(PROMPTS, params)
        assert [[(c.text, c.n_tokens, c.finish_reason) for c in row] for row in fast] == \
               [[(c.text, c.n_tokens, c.finish_reason) for c in row] for row in slow]
        if params.stop:  # rows left the batch early, so batch_select_indices ran on the buffers
            reasons = [c.finish_reason for row in fast for c in row]
            assert "stop" in reasons and len(set(reasons)) > 1  # some rows stopped, others ran on


def test_prefill_projects_its_last_position_from_a_contiguous_gather(tiny_generator, monkeypatch):
    """The prefill asks for its last position by index (dorag.models.positions): transformers then gathers it into
    a contiguous tensor, where an integer would hand lm_head a strided slice (a pathological bf16 CPU path).
    The logits are the same either way."""
    seen = []
    model = tiny_generator.model
    real = type(model).forward

    def spy(self, *args, **kwargs):
        if "logits_to_keep" in kwargs:
            seen.append(kwargs["logits_to_keep"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", spy)
    tiny_generator.generate_text(PROMPTS[:2], GenerationParams(max_new_tokens=3))
    assert len(seen) == 1 and isinstance(seen[0], torch.Tensor) and seen[0].ndim == 1
    enc = tiny_generator.tokenizer(PROMPTS[:2], return_tensors="pt", padding=True)
    width = enc["input_ids"].shape[1]
    with torch.inference_mode():
        by_int = model(**enc, logits_to_keep=1).logits
        by_index = model(**enc, logits_to_keep=seen[0].new_tensor([width - 1])).logits
    assert by_index.is_contiguous() and torch.equal(by_int, by_index)
