"""Local generation with transformers: batched, left-padded, KV-cached, stop sequences checked while decoding."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from dorag.core.errors import ModelError
from dorag.core.require import require
from dorag.models.generator import Completion, GenerationParams, ProgressFn, Prompt, cut_at_stop

log = logging.getLogger(__name__)


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The exact text the model sees: the chat template for messages, else the raw text."""
    if prompt.messages is None:
        return prompt.text or ""
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError("this model has no chat template; use prompt.style=completion for a base model")
    messages = [{"role": r, "content": c} for r, c in prompt.messages]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + prompt.response_prefix


def _stopping_criteria(tokenizer: Any, stops: Sequence[str], prompt_len: int, window: int) -> Any:
    transformers = require("transformers", extra="models")
    torch = require("torch", extra="models")

    class StopOnSequences(transformers.StoppingCriteria):
        """Per-row stop: True for a row once any stop string appears in its recent generated text."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            gen = input_ids[:, prompt_len:]  # (B, T_gen)
            tails = tokenizer.batch_decode(gen[:, -window:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stops) for t in tails], dtype=torch.bool, device=input_ids.device)

    return StopOnSequences()


class TransformersGenerator:
    """Batched generation with a local transformers model.

    Prompts are sorted by length and decoded `batch_size` at a time with left padding, so that every row's
    next token sits in the last column and the KV cache is shared by the batch. Stop sequences end a row
    during decoding (the batch ends when all rows have), not after `max_new_tokens`.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str = "model") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        gen_cfg = getattr(model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, (list, tuple)) else [eos])

    @property
    def device(self) -> Any:
        return self.model.device

    def render(self, prompt: Prompt) -> str:
        return render_prompt(self.tokenizer, prompt)

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, progress: ProgressFn | None = None
    ) -> list[list[Completion]]:
        texts = [self.render(p) for p in prompts]
        return self.generate_text(texts, params, progress)

    def generate_text(
        self, texts: Sequence[str], params: GenerationParams, progress: ProgressFn | None = None
    ) -> list[list[Completion]]:
        """Generate `params.n` completions for each already-rendered prompt text."""
        torch = require("torch", extra="models")
        tok = self.tokenizer
        enc = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(enc[i]))  # longest first: similar lengths batch
        results: list[list[Completion]] = [[] for _ in texts]
        n_seq = 1 if params.greedy else params.n
        for start in range(0, len(order), params.batch_size):
            idx = order[start : start + params.batch_size]
            t0 = time.perf_counter()
            batch = self._decode_batch([enc[i] for i in idx], params, n_seq, seed=params.seed + start)
            latency = time.perf_counter() - t0
            for j, i in enumerate(idx):
                comps = batch[j * n_seq : (j + 1) * n_seq]
                for c in comps:
                    c.latency_s = latency
                if params.greedy and params.n > 1:  # greedy samples are identical; decode once
                    comps = [Completion(c.text, c.n_tokens, c.finish_reason, c.latency_s) for c in comps * params.n]
                results[i] = comps
            if progress is not None:
                progress(len(idx))
        return results

    def _decode_batch(self, ids: list[list[int]], params: GenerationParams, n_seq: int, seed: int) -> list[Completion]:
        torch = require("torch", extra="models")
        tok = self.tokenizer
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], dtype=torch.long)  # (B, T)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], dtype=torch.long)  # (B, T)
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        stops = tuple(params.stop)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_new_tokens,
            pad_token_id=pad,
            eos_token_id=sorted(self.eos_ids),
            num_return_sequences=n_seq,
        )
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
            torch.manual_seed(seed)
        if stops:
            window = max(len(tok(s, add_special_tokens=False)["input_ids"]) for s in stops) + 4
            kwargs["stopping_criteria"] = [_stopping_criteria(tok, stops, width, window)]
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)  # (B*n, T+G)
        gen = out[:, width:].tolist()
        comps = []
        for row in gen:
            n_tok = len(row)
            finish = "length"
            for k, t in enumerate(row):
                if t in self.eos_ids or t == pad:
                    n_tok, finish = k + 1, "eos"
                    break
            text = tok.decode(row[: n_tok if finish == "length" else n_tok - 1], skip_special_tokens=True)
            text, stopped = cut_at_stop(text, stops)
            if stopped:
                # A row ended by a stop string is padded afterwards: the pad is not a generated token.
                finish, n_tok = "stop", (n_tok - 1 if finish == "eos" else n_tok)
            comps.append(Completion(text=text, n_tokens=n_tok, finish_reason=finish))
        return comps
