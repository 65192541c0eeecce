"""Local generation with transformers: batched, left-padded, KV-cached, stop sequences checked while decoding."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from dorag.core.errors import ModelError
from dorag.core.require import require
from dorag.models.generator import Completion, GenerationParams, ProgressFn, Prompt, cut_at_stop

log = logging.getLogger(__name__)

# Streaming hook: called after every decoding step with (prompt index, sample index, tokens so far).
TokensFn = Callable[[int, int, list[int]], bool | None]  # returns True to stop that row now (its client left)


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The exact text the model sees: the chat template for messages, else the raw text."""
    if prompt.messages is None:
        return prompt.text or ""
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError("this model has no chat template; use prompt.style=completion for a base model")
    messages = [{"role": r, "content": c} for r, c in prompt.messages]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + prompt.response_prefix


class TransformersGenerator:
    """Batched generation with a local transformers model.

    Prompts are sorted by length and decoded `batch_size` at a time with left padding, so that every row's
    next token sits in the last column and the KV cache is shared by the batch. Stop sequences end a row
    during decoding (the batch ends when all rows have), not after `max_new_tokens`.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str = "model", adapters: Any | None = None,
                 adapter: str | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.adapters = adapters  # an AdapterSet sharing `model` as its base, or None
        self.adapter = adapter  # which adapter the next calls use (None or "base": the bare model)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        gen_cfg = getattr(model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, (list, tuple)) else [eos])

    @property
    def device(self) -> Any:
        return self.model.device

    def use_adapter(self, name: str | None) -> None:
        """Select a loaded adapter (or None / "base") for the following calls; no reload involved."""
        if name not in (None, "base") and (self.adapters is None or name not in self.adapters.names):
            from dorag.core.errors import ModelError

            loaded = ", ".join(self.adapters.names) if self.adapters else "none"
            raise ModelError(f"unknown adapter {name!r}; loaded: {loaded}")
        self.adapter = name

    def render(self, prompt: Prompt) -> str:
        return render_prompt(self.tokenizer, prompt)

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, progress: ProgressFn | None = None,
        on_tokens: TokensFn | None = None,
    ) -> list[list[Completion]]:
        texts = [self.render(p) for p in prompts]
        return self.generate_text(texts, params, progress, on_tokens)

    def generate_text(
        self, texts: Sequence[str], params: GenerationParams, progress: ProgressFn | None = None,
        on_tokens: TokensFn | None = None,
    ) -> list[list[Completion]]:
        """Generate `params.n` completions for each already-rendered prompt text.

        `on_tokens(prompt_index, sample_index, token_ids)` sees each row's tokens after every step (for
        streaming); it only observes, so the completions are the same with or without it, unless it returns
        True: that row then leaves the batch at once, with finish_reason "cancelled" (the others go on).
        """
        tok = self.tokenizer
        enc = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(enc[i]))  # longest first: similar lengths batch
        n_seq = 1 if params.greedy else params.n
        rows = [(i, s) for i in order for s in range(n_seq)]
        row_fn = None if on_tokens is None else (lambda row, toks: on_tokens(row[0], row[1], toks))
        if self.adapters is not None:
            with self.adapters.using(self.adapter or "base") as model:
                done = self._decode(model, enc, rows, params, row_fn, progress)
        else:
            done = self._decode(self.model, enc, rows, params, row_fn, progress)
        results: list[list[Completion]] = [[] for _ in texts]
        for (i, _), comp in zip(rows, done):
            results[i].append(comp)
        if params.greedy and params.n > 1:  # greedy samples are identical; decode once
            results = [[Completion(c.text, c.n_tokens, c.finish_reason, c.latency_s) for c in r * params.n]
                       for r in results]
        return results

    def _decode(self, model: Any, enc: list[list[int]], rows: list[tuple[int, int]], params: GenerationParams,
                on_row: Callable[[tuple[int, int], list[int]], bool | None] | None = None,
                progress: ProgressFn | None = None) -> list[Completion]:
        """Continuous batching: decode `rows` (prompt index, sample index) with at most `batch_size` in the batch.

        The batch shares one KV cache, left-padded so that every row's next token sits in the last column. A row
        that hits EOS, a stop sequence or `max_new_tokens` leaves the batch at once (input, attention mask and
        every cache layer), and waiting rows are admitted in its place: their prompts are prefilled together and
        their cache joined to the batch's, padded on the left to the same length. So the batch stays full
        until the queue is empty, instead of draining to one long row before the next batch starts (HF
        ``generate`` keeps finished rows in the batch until the longest one ends). Rows are admitted in the
        order given (longest prompt first). Returns one Completion per row, in order.
        """
        torch = require("torch", extra="models")
        tok = self.tokenizer
        dev = self.device
        stops = tuple(params.stop)
        window = max((len(tok(s, add_special_tokens=False)["input_ids"]) for s in stops), default=0) + 4
        rng = None
        if not params.greedy:
            rng = torch.Generator(device=dev)
            rng.manual_seed(params.seed)
        size = max(1, params.batch_size)
        refill = max(1, size // 4)  # admit when this many slots are free (a prefill and a cache copy each time)
        queue = list(range(len(rows)))
        queue.reverse()  # pop() takes the next row
        generated: list[list[int]] = [[] for _ in rows]
        finish: list[str] = ["length"] * len(rows)
        started: list[float] = [0.0] * len(rows)
        latency: list[float] = [0.0] * len(rows)
        live: list[int] = []  # row of each batch position
        cache = attention = pos = logits = None
        left = Counter(i for i, _ in rows)  # rows still decoding, per prompt
        with torch.inference_mode():
            while queue or live:
                if queue and (not live or size - len(live) >= min(refill, len(queue))):
                    take = [queue.pop() for _ in range(min(size - len(live), len(queue)))]
                    new = self._prefill(model, [enc[rows[r][0]] for r in take])
                    t_now = time.perf_counter()
                    for r in take:
                        started[r] = t_now
                    if not live:
                        cache, attention, pos, logits = new
                    else:
                        cache, attention = _join(torch, cache, attention, new[0], new[1])
                        pos, logits = torch.cat([pos, new[2]]), torch.cat([logits, new[3]])
                    live += take
                nxt = self._pick(logits, params, rng)  # (b,)
                keep: list[int] = []
                for j, token in enumerate(nxt.tolist()):
                    r = live[j]
                    generated[r].append(token)
                    if on_row is not None and on_row(rows[r], generated[r]):
                        finish[r] = "cancelled"
                    elif token in self.eos_ids:
                        finish[r] = "eos"
                    elif stops and any(s in tok.decode(generated[r][-window:], skip_special_tokens=True) for s in stops):
                        finish[r] = "stop"
                    elif len(generated[r]) >= params.max_new_tokens:
                        finish[r] = "length"
                    else:
                        keep.append(j)
                        continue
                    latency[r] = time.perf_counter() - started[r]
                    i = rows[r][0]
                    left[i] -= 1
                    if not left[i] and progress is not None:
                        progress(1)
                if not keep:
                    live = []
                    continue
                if len(keep) < len(live):
                    sel = torch.tensor(keep, device=dev)
                    cache.batch_select_indices(sel)
                    attention, pos, nxt = attention[sel], pos[sel], nxt[sel]
                    live = [live[j] for j in keep]
                attention = torch.cat([attention, attention.new_ones(len(live), 1)], dim=1)  # (b, T+1)
                pos = pos + 1
                out = model(input_ids=nxt[:, None], attention_mask=attention, position_ids=pos[:, None],
                            past_key_values=cache, use_cache=True)
                logits = out.logits[:, -1, :].float()
        comps = []
        for r, toks in enumerate(generated):
            body = toks[:-1] if finish[r] == "eos" else toks
            text, stopped = cut_at_stop(tok.decode(body, skip_special_tokens=True), stops)
            comps.append(Completion(text=text, n_tokens=len(toks), finish_reason="stop" if stopped else finish[r],
                                    latency_s=latency[r]))
        return comps

    def _prefill(self, model: Any, ids: list[list[int]]) -> tuple[Any, Any, Any, Any]:
        """(cache, attention mask, last positions, last logits) of left-padded prompts."""
        torch = require("torch", extra="models")
        transformers = require("transformers", extra="models")
        pad, dev = self.tokenizer.pad_token_id, self.device
        width = max(len(x) for x in ids)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], dtype=torch.long, device=dev)  # (B, T)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], dtype=torch.long, device=dev)
        position = (attention.cumsum(-1) - 1).clamp(min=0)  # (B, T): left padding must not shift positions
        cache = transformers.DynamicCache(config=model.config)
        out = model(input_ids=input_ids, attention_mask=attention, position_ids=position, past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
        return cache, attention, position[:, -1], out.logits[:, -1, :].float()

    @staticmethod
    def _pick(logits: Any, params: GenerationParams, rng: Any) -> Any:
        """Greedy argmax, or temperature + top-p (nucleus) sampling. logits: (b, V) -> (b,)."""
        torch = require("torch", extra="models")
        if params.greedy:
            return logits.argmax(dim=-1)
        if params.top_p >= 1.0:
            # the whole distribution, by inverse CDF: one uniform per row against the cumulative mass (same law
            # as multinomial, which costs ten times more over a 152k vocabulary on this CPU)
            cdf = torch.softmax(logits / params.temperature, dim=-1).cumsum(dim=-1)  # (b, V)
            u = torch.rand((cdf.shape[0], 1), generator=rng, device=cdf.device) * cdf[:, -1:]
            return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1).squeeze(-1)
        cand, probs = nucleus(logits, params.temperature, params.top_p)
        choice = torch.multinomial(probs, 1, generator=rng)  # (b, 1), over the nucleus only
        return cand.gather(-1, choice).squeeze(-1)


def nucleus(logits: Any, temperature: float, top_p: float, widths: Sequence[int] = (256, 4096)) -> tuple[Any, Any]:
    """The top-p nucleus of each row of `logits` (b, V) at `temperature`: candidate ids (b, k) and their
    probabilities (b, k), zero outside the nucleus (the smallest set, in probability order, whose mass reaches
    top_p; Holtzman et al., arXiv 1904.09751).

    Sorting a 152k vocabulary for every row at every step cost more than the model's forward pass here (1.3 s
    for 64 rows). The nucleus of a code model is almost always a few dozen tokens, so the top `widths[0]` are
    taken first, and a wider set only when some row's nucleus does not end inside it: the same nucleus as a
    full sort, at a fraction of the cost.
    """
    torch = require("torch", extra="models")
    scaled = logits.float() / temperature
    lse = torch.logsumexp(scaled, dim=-1, keepdim=True)  # (b, 1): probabilities are of the full vocabulary
    vocab = scaled.shape[-1]
    for k in [*(w for w in widths if w < vocab), vocab]:
        top, cand = scaled.topk(k, dim=-1)  # sorted, most probable first
        probs = (top - lse).exp()
        drop = probs.cumsum(-1) - probs > top_p  # a token is kept while the mass before it is below top_p
        if k == vocab or bool(drop[:, -1].all()):  # every row's nucleus ends inside the top k
            return cand, probs.masked_fill(drop, 0.0)
    raise AssertionError("unreachable: the last width is the vocabulary")


def _join(torch: Any, cache: Any, attention: Any, new_cache: Any, new_attention: Any) -> tuple[Any, Any]:
    """The batch's cache and mask with new rows' appended, the shorter side padded on the left (masked out)."""
    width, new_width = attention.shape[1], new_attention.shape[1]

    def pad(t: Any, n: int, dim: int) -> Any:
        if n <= 0:
            return t
        shape = list(t.shape)
        shape[dim] = n
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    for layer, new in zip(cache.layers, new_cache.layers):
        layer.keys = torch.cat([pad(layer.keys, new_width - width, 2), pad(new.keys, width - new_width, 2)])
        layer.values = torch.cat([pad(layer.values, new_width - width, 2), pad(new.values, width - new_width, 2)])
    mask = torch.cat([pad(attention, new_width - width, 1), pad(new_attention, width - new_width, 1)])
    return cache, mask
