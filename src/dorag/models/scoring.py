"""Log-likelihood of a continuation: log P(target | prompt), summed over the target's tokens.

Two backends behind one callable, ``scorer([(prompt, target), ...]) -> [log-prob, ...]``:

- `TransformersScorer`: a local causal LM, frozen, in ``inference_mode``; one forward pass per batch of
  (prompt + target) sequences, left-padded so every target ends in the last column and only the last
  ``max target + 1`` positions go through the LM head (a 150k-token vocabulary times a long prompt
  would not fit otherwise).
- `OpenAIScorer`: an OpenAI-compatible ``/completions`` endpoint that returns the log-probs of the
  prompt's own tokens: vLLM's ``prompt_logprobs`` extension, or the legacy ``echo`` + ``logprobs``.
  `probe` asks once up front and refuses a server that returns neither.

Used by REPLUG LSR (training.replug) for the LM likelihood of Eq. 4.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from dorag.core.errors import ConfigError, ModelError
from dorag.core.require import require
from dorag.models import http
from dorag.models.positions import keep_last

log = logging.getLogger(__name__)

Scorer = Callable[[Sequence[tuple[str, str]]], list[float]]  # (prompt, target) pairs -> log P(target | prompt)
_PROBE = ("def add(a, b):\n", "    return a + b\n")


class TransformersScorer:
    """Summed target log-probs from a local transformers causal LM (no gradient)."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, max_target_tokens: int = 256) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        self.max_target_tokens = max_target_tokens
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(self, prompt: str, target: str) -> tuple[list[int], list[int]]:
        """Prompt and target ids, tokenised apart so the boundary is exact (the target cut to its limit)."""
        tok = self.tokenizer
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        t = tok(target, add_special_tokens=False)["input_ids"][: self.max_target_tokens]
        return p, t

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        encoded = [self.encode(p, t) for p, t in pairs]
        order = sorted(range(len(encoded)), key=lambda i: -sum(map(len, encoded[i])))  # similar lengths batch
        out = [0.0] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, value in zip(idx, self._batch([encoded[i] for i in idx])):
                out[i] = value
        return out

    def _batch(self, rows: list[tuple[list[int], list[int]]]) -> list[float]:
        torch = require("torch", extra="models")
        if any(not t for _, t in rows):
            raise ModelError("a scored continuation is empty after tokenisation; every target needs text")
        seqs = [p + t for p, t in rows]
        width = max(map(len, seqs))
        keep = max(len(t) for _, t in rows) + 1  # logits at W-k..W-1 predict the last k-1 tokens
        dev = self.model.device
        ids = torch.tensor([[self.pad_id] * (width - len(s)) + s for s in seqs], dtype=torch.long, device=dev)  # (B, W)
        attention = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=torch.long, device=dev)
        position = (attention.cumsum(-1) - 1).clamp(min=0)  # (B, W): left padding must not shift positions
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=attention, position_ids=position,
                                logits_to_keep=keep_last(width, keep, dev)).logits[:, :-1].float()  # (B, k-1, V)
            targets = ids[:, width - keep + 1 :]  # (B, k-1): the token each kept position predicts
            token_lp = logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # (B, k-1)
            n_target = torch.tensor([len(t) for _, t in rows], device=dev)  # (B,)
            col = torch.arange(keep - 1, device=dev)  # (k-1,)
            mask = col[None, :] >= (keep - 1 - n_target)[:, None]  # (B, k-1): the target's own positions
            return (token_lp * mask).sum(-1).tolist()


class OpenAIScorer:
    """Summed target log-probs from an OpenAI-compatible ``/completions`` endpoint that scores the prompt.

    The text sent is prompt + target; the tokens whose characters start at or after ``len(prompt)`` (a token
    straddling the boundary counts as the target's) are summed. ``mode`` is found by `probe`.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0,
                 concurrency: int = 8, mode: Literal["prompt_logprobs", "echo"] | None = None,
                 max_retries: int = http.RETRIES) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = max(1, concurrency)
        self._client = http.client(self.base_url, api_key, timeout_s, max_retries)
        self.mode = mode

    def _post(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON answer, or None when the server rejects the request (an unsupported parameter); rate limits,
        server errors and lost connections are retried (dorag.models.http), then fail."""
        try:
            return http.post(self._client, "/completions", {"model": self.model, **body}, what="teacher server")
        except http.StatusError as exc:
            if exc.status in (408, 409, 429) or exc.status >= 500:
                raise
            log.debug("%s", exc)
            return None

    def _request(self, text: str, mode: str) -> dict[str, Any]:
        if mode == "prompt_logprobs":  # vLLM's extension: log-probs of the prompt's own tokens
            return {"prompt": text, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0}
        return {"prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 0}

    @staticmethod
    def _tokens(data: dict[str, Any] | None, mode: str, text: str) -> list[tuple[int, float | None]] | None:
        """(character offset, log-prob) of each prompt token in the answer, or None when it holds none."""
        try:
            choice = data["choices"][0]  # type: ignore[index]
            if mode == "prompt_logprobs":
                entries = choice.get("prompt_logprobs")
                if not isinstance(entries, list) or len(entries) < 2:
                    return None
                infos = [None if e is None else next(iter(e.values())) for e in entries]
                pieces = [(i or {}).get("decoded_token") or "" for i in infos]
                # the first token has no entry (no context), so no text: offsets are counted back from the end
                offset = max(0, len(text) - sum(map(len, pieces)))
                out = []
                for info, piece in zip(infos, pieces):
                    out.append((offset if info is not None else 0, None if info is None else float(info["logprob"])))
                    offset += len(piece)
                return out
            lp = choice.get("logprobs") or {}
            offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
            if not isinstance(offsets, list) or not isinstance(values, list) or len(values) < 2:
                return None
            return [(int(o), None if v is None else float(v)) for o, v in zip(offsets, values)]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            return None

    def probe(self) -> str:
        """Find which prompt log-prob protocol the server speaks; refuse one that speaks neither."""
        text = "".join(_PROBE)
        for mode in ("prompt_logprobs", "echo"):
            toks = self._tokens(self._post(self._request(text, mode)), mode, text)
            # the answer must cover the prompt (echo also returns the generated token, past len(text))
            if toks and sum(1 for o, v in toks if v is not None and o < len(text)) >= 2:
                self.mode = mode
                return mode
        raise ConfigError(
            f"teacher endpoint {self.base_url} returns no prompt log-probs (tried vLLM's prompt_logprobs and "
            "echo+logprobs on /completions); serve the teacher with vLLM (`vllm serve MODEL`), or use "
            "replug.teacher=local")

    def score_one(self, prompt: str, target: str) -> float:
        if self.mode is None:
            self.probe()
        text = prompt + target
        toks = self._tokens(self._post(self._request(text, self.mode or "echo")), self.mode or "echo", text)
        if toks is None:
            raise ModelError(f"{self.base_url}/completions stopped returning prompt log-probs; check the server")
        boundary, end = len(prompt), len(text)
        picked = [v for i, (o, v) in enumerate(toks)
                  if o < end and (o >= boundary or (i + 1 < len(toks) and toks[i + 1][0] > boundary))]
        if not picked or any(v is None for v in picked):
            raise ModelError(f"{self.base_url}: no log-probs for the scored continuation; check the server")
        return float(sum(picked))  # type: ignore[arg-type]

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda pt: self.score_one(*pt), pairs))

    def close(self) -> None:
        self._client.close()
