"""A KV cache that is written in place instead of grown by concatenation.

transformers' ``DynamicCache`` appends each decoded token with ``torch.cat``, which copies every layer's whole
cache at every step: for 16 rows of 600 tokens on the 0.5B model that is about 120 MB a step, 16% of a decoding
step on 2 CPU cores (profiled, issue 21). ``PreallocatedCache`` reserves room for the prompt and every new
token at the first write, then writes each token into its slot and hands attention a view of the filled
part. The values attention sees are the same tensors, so greedy outputs do not change.

Measured (bench/generation.py, 32 HumanEval prompts x 384 tokens, bf16, batch 16, AMD EPYC): 99.2 tok/s against
101.8 for DynamicCache, outputs identical 32/32. The profile that suggested it was taken on a shared CPU; the
concatenation is not what limits decoding here, so it is an option (``TransformersGenerator(kv_cache=...)``),
not the default.
"""

from __future__ import annotations

from typing import Any

from dorag.core.require import require

torch = require("torch", extra="models")
cache_utils = require("transformers", extra="models").cache_utils


class PreallocatedLayer(cache_utils.DynamicLayer):
    """One layer's keys and values in buffers of ``capacity`` positions; grows by doubling only when a write
    would overflow (it does not, when the reserve covers max_new_tokens)."""

    def __init__(self, reserve: int = 0) -> None:
        super().__init__()
        self.reserve = reserve
        self._k: Any = None
        self._v: Any = None
        self._n = 0

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, t = self._n, key_states.shape[-2]
        if self._k is None or n + t > self._k.shape[-2]:
            cap = max(n + t + self.reserve, 2 * (self._k.shape[-2] if self._k is not None else 0))
            b, h, _, d = key_states.shape
            k = key_states.new_empty(b, h, cap, d)
            v = value_states.new_empty(b, h, cap, value_states.shape[-1])
            if n:
                k[:, :, :n] = self._k[:, :, :n]
                v[:, :, :n] = self._v[:, :, :n]
            self._k, self._v = k, v
        self._k[:, :, n : n + t] = key_states
        self._v[:, :, n : n + t] = value_states
        self._n = n + t
        self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._n

    def batch_select_indices(self, indices: Any) -> None:
        if self._n:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._n:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        self._n = max(0, self._n + tokens_to_remove)
        if self._k is not None:
            self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]

    def reset(self) -> None:
        self._k = self._v = None
        self._n = 0
        super().reset()


def preallocated_cache(config: Any, reserve: int) -> Any:
    """A ``DynamicCache`` for `config` whose layers are ``PreallocatedLayer``s with room for `reserve` more
    tokens than the prompt (pass max_new_tokens)."""
    cache = cache_utils.DynamicCache(config=config)
    # only full-attention layers: a sliding-window layer (Gemma 3) keeps its own semantics
    cache.layers = [PreallocatedLayer(reserve) if type(layer) is cache_utils.DynamicLayer else layer
                    for layer in cache.layers]
    return cache
