"""Generation through any OpenAI-compatible HTTP server (vLLM, llama.cpp server, dorag serve)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dorag.core.errors import ModelError
from dorag.core.require import require
from dorag.models.generator import Completion, GenerationParams, ProgressFn, Prompt, cut_at_stop


class OpenAIGenerator:
    """Chat prompts go to ``/chat/completions``, text prompts to ``/completions``.

    A `response_prefix` is sent as a final assistant message with ``continue_final_message`` (vLLM's
    extension; llama.cpp's server continues a trailing assistant message by itself).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 600.0,
                 concurrency: int = 8) -> None:
        httpx = require("httpx", extra="models")
        self.name = model
        self.model = model
        self.concurrency = max(1, concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        httpx = require("httpx", extra="models")
        try:
            resp = self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ModelError(f"cannot reach {self._client.base_url}{path}: {exc}; is the server running?") from exc
        if resp.status_code >= 400:
            raise ModelError(f"{self._client.base_url}{path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def _one(self, prompt: Prompt, params: GenerationParams) -> list[Completion]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
            "seed": params.seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        t0 = time.perf_counter()
        if prompt.messages is not None:
            messages = [{"role": r, "content": c} for r, c in prompt.messages]
            if prompt.response_prefix:
                messages.append({"role": "assistant", "content": prompt.response_prefix})
                body.update(continue_final_message=True, add_generation_prompt=False)
            data = self._post("/chat/completions", {**body, "messages": messages})
            texts = [(c["message"].get("content") or "", c.get("finish_reason")) for c in data["choices"]]
        else:
            data = self._post("/completions", {**body, "prompt": prompt.text})
            texts = [(c.get("text") or "", c.get("finish_reason")) for c in data["choices"]]
        latency = time.perf_counter() - t0
        usage = data.get("usage") or {}
        per = int(usage.get("completion_tokens", 0)) // max(1, len(texts))
        out = []
        for text, reason in texts:
            if prompt.response_prefix and text.startswith(prompt.response_prefix):
                text = text[len(prompt.response_prefix):]  # some servers echo the prefilled part
            text, stopped = cut_at_stop(text, params.stop)
            finish = "stop" if stopped or reason == "stop" else "length"
            out.append(Completion(text=text, n_tokens=per, finish_reason=finish, latency_s=latency))
        return out

    def chat(self, messages: list[dict[str, str]], max_tokens: int = 256, temperature: float = 0.0) -> str:
        """One plain chat completion (used by the LLM judge)."""
        data = self._post("/chat/completions", {"model": self.model, "messages": messages,
                                                "max_tokens": max_tokens, "temperature": temperature})
        return data["choices"][0]["message"].get("content") or ""

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, progress: ProgressFn | None = None
    ) -> list[list[Completion]]:
        results: list[list[Completion]] = [[] for _ in prompts]
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._one, p, params): i for i, p in enumerate(prompts)}
            for fut, i in futures.items():
                results[i] = fut.result()
                if progress is not None:
                    progress(1)
        return results

    def close(self) -> None:
        self._client.close()
