"""Generation through any OpenAI-compatible HTTP server (vLLM, llama.cpp server, dorag serve)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dorag.core.errors import ModelError
from dorag.models import http
from dorag.models.generator import CancelFn, Completion, GenerationParams, ProgressFn, Prompt, TextFn, cut_at_stop


class OpenAIGenerator:
    """Chat prompts go to ``/chat/completions``, text prompts to ``/completions``.

    A `response_prefix` is sent as a final assistant message with ``continue_final_message`` (vLLM's
    extension; llama.cpp's server continues a trailing assistant message by itself).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 600.0,
                 concurrency: int = 8, max_retries: int = http.RETRIES) -> None:
        self.name = model
        self.model = model
        self.concurrency = max(1, concurrency)
        self._client = http.client(base_url, api_key, timeout_s, max_retries)

    def _url(self, path: str) -> str:
        return http.url(self._client, path)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return http.post(self._client, path, body)

    def _stream(self, path: str, body: dict[str, Any], on_text: Callable[[str], None],
                gone: Callable[[], bool] = lambda: False) -> dict[str, Any]:
        """POST with ``stream: true`` and read the server-sent events; `on_text` sees the text so far after each
        chunk. Returns the same shape as a non-streamed answer (one choice, usage when the server sends it).
        When `gone()` turns true the connection is closed, which stops the upstream generation too."""
        url = self._url(path)
        text, reason, usage, chunks = "", None, None, 0
        with http.stream(self._client, path, body) as events:
            for event in events:
                if not isinstance(event, dict):
                    raise ModelError(f"{url} sent a stream event that is not a JSON object: {str(event)[:200]!r}")
                usage = event.get("usage") or usage
                if gone():
                    reason = "cancelled"
                    break
                for choice in event.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                    if piece:
                        text += piece
                        chunks += 1
                        on_text(text)
                    reason = choice.get("finish_reason") or reason
        usage = usage or {"completion_tokens": chunks}  # about one token a chunk when the server sends no usage
        return {"choices": [{"text": text, "message": {"content": text}, "finish_reason": reason}], "usage": usage}

    def _one(self, prompt: Prompt, params: GenerationParams, on_text: Callable[[str], None] | None = None,
             gone: Callable[[], bool] | None = None) -> list[Completion]:
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
        streamed = (on_text is not None or gone is not None) and params.n == 1
        show = on_text or (lambda text: None)
        if streamed:
            body.update(stream=True, stream_options={"include_usage": True})
        prefix = prompt.response_prefix or ""

        def post(path: str, payload: dict[str, Any]) -> dict[str, Any]:
            if not streamed:
                return self._post(path, payload)
            # some servers echo the prefilled part; the caller sees the answer without it, as in the final text
            return self._stream(path, payload, lambda t: show(t[len(prefix):] if prefix and t.startswith(prefix)
                                                             else t), gone or (lambda: False))

        t0 = time.perf_counter()
        if prompt.messages is not None:
            messages = [{"role": r, "content": c} for r, c in prompt.messages]
            if prompt.response_prefix:
                messages.append({"role": "assistant", "content": prompt.response_prefix})
                body.update(continue_final_message=True, add_generation_prompt=False)
            data = post("/chat/completions", {**body, "messages": messages})
            texts = [(c["message"].get("content") or "", c.get("finish_reason")) for c in data["choices"]]
        else:
            data = post("/completions", {**body, "prompt": prompt.text})
            texts = [(c.get("text") or "", c.get("finish_reason")) for c in data["choices"]]
        latency = time.perf_counter() - t0
        usage = data.get("usage") or {}
        per = int(usage.get("completion_tokens", 0)) // max(1, len(texts))
        out = []
        for text, reason in texts:
            if prompt.response_prefix and text.startswith(prompt.response_prefix):
                text = text[len(prompt.response_prefix):]  # some servers echo the prefilled part
            text, stopped = cut_at_stop(text, params.stop)
            finish = "cancelled" if reason == "cancelled" else "stop" if stopped or reason == "stop" else "length"
            out.append(Completion(text=text, n_tokens=per, finish_reason=finish, latency_s=latency,
                                  prompt_tokens=int(usage.get("prompt_tokens", 0))))
        return out

    def chat(self, messages: list[dict[str, str]], max_tokens: int = 256, temperature: float = 0.0) -> str:
        """One plain chat completion (used by the LLM judge)."""
        data = self._post("/chat/completions", {"model": self.model, "messages": messages,
                                                "max_tokens": max_tokens, "temperature": temperature})
        return data["choices"][0]["message"].get("content") or ""

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, progress: ProgressFn | None = None,
        on_text: TextFn | None = None, cancelled: CancelFn | None = None,
    ) -> list[list[Completion]]:
        """`on_text(i, 0, text)`, when given, sees prompt i's answer grow: the request is streamed (one sample
        per prompt; with n > 1 the answers arrive whole). `cancelled(i)` turning true closes prompt i's
        streamed request (finish_reason "cancelled")."""
        results: list[list[Completion]] = [[] for _ in prompts]

        def watcher(i: int) -> Callable[[str], None] | None:
            return None if on_text is None else (lambda text: on_text(i, 0, text))

        def gone(i: int) -> Callable[[], bool] | None:
            return None if cancelled is None else (lambda: cancelled(i))

        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._one, p, params, watcher(i), gone(i)): i for i, p in enumerate(prompts)}
            for fut, i in futures.items():
                results[i] = fut.result()
                if progress is not None:
                    progress(1)
        return results

    def close(self) -> None:
        self._client.close()
