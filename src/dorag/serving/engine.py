"""One model, one worker: every generation goes through a single queue served by a single thread.

The adapter is a property of the whole model (PEFT's active adapter), so two requests for different
adapters must never decode at the same time: the worker takes the oldest job, adds the queued jobs that
can share its decoding (same adapter, same greedy settings, up to `max_batch`), switches the adapter once
and decodes them as one batch. Sampled requests decode alone, so a seed reproduces its answer.

Retrieval happens before a job is queued (in the request's thread); everything that touches the
tokenizer (context budget, chat template, streaming deltas) happens in the worker, which owns it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dorag.core.errors import ModelError
from dorag.core.types import Prompt
from dorag.data.prompts import with_context_chat, with_context_comment
from dorag.models.generator import CancelFn, Completion, GenerationParams, TextFn, cut_at_stop
from dorag.retrieval.assemble import assemble_context
from dorag.serving.schemas import APIError

log = logging.getLogger(__name__)


def client_gone() -> APIError:
    """The answer to a request whose client disconnected (nginx's 499: nobody reads it, the logs and metrics do)."""
    return APIError(499, "the client closed the request before the answer was ready", "invalid_request_error",
                    "client_closed")


@dataclass
class Job:
    """One prompt to generate `params.n` answers for, with an adapter and the documents retrieved for it."""

    adapter: str
    kind: Literal["chat", "completion"]
    params: GenerationParams
    messages: tuple[tuple[str, str], ...] | None = None
    text: str | None = None
    docs: Sequence[dict[str, Any]] = ()  # retrieved, best first; assembled under budget_tokens
    budget_tokens: int = 1024
    on_delta: Callable[[str], None] | None = None  # streaming: called (in the worker) with new text
    future: Future = field(default_factory=Future)
    enqueued_at: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)  # set when the client went away

    def cancel(self) -> None:
        """The answer is no longer wanted: a queued job is dropped, a decoding one leaves its batch."""
        self.cancelled.set()

    def group_key(self) -> tuple[Any, ...]:
        if not self.params.greedy:
            return (id(self),)  # sampled jobs decode alone: the batch would change their random stream
        p = self.params
        return (self.adapter, p.max_new_tokens, p.stop, p.n)


@dataclass
class Output:
    choices: list[Completion]
    prompt_tokens: int
    context_ids: list[str]
    queue_s: float  # waiting for the worker
    batch_size: int  # jobs decoded together with this one


class Runner(Protocol):
    """What the worker drives: the local model, or an OpenAI-compatible server."""

    streams: bool  # whether on_text is called while decoding (else the answer arrives in one piece)

    def adapters(self) -> dict[str, dict[str, Any]]: ...
    def count_tokens(self, text: str) -> int: ...
    def prompt_tokens(self, prompt: Prompt) -> int: ...
    def run(self, adapter: str, prompts: list[Prompt], params: GenerationParams,
            on_text: TextFn | None, cancelled: CancelFn | None = None) -> list[list[Completion]]: ...


class LocalRunner:
    """A TransformersGenerator with its AdapterSet: adapters are switched, never merged (DoRA included)."""

    streams = True

    def __init__(self, generator: Any) -> None:
        self.gen = generator
        self.tok = generator.tokenizer

    def adapters(self) -> dict[str, dict[str, Any]]:
        aset = self.gen.adapters
        if aset is None:
            return {}
        return {name: {"path": str(path), "method": aset.methods.get(name, "lora")} for name, path in aset.paths.items()}

    def count_tokens(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def prompt_tokens(self, prompt: Prompt) -> int:
        return self.count_tokens(self.gen.render(prompt))

    def decode(self, token_ids: list[int]) -> str:
        if token_ids and token_ids[-1] in self.gen.eos_ids:
            token_ids = token_ids[:-1]
        return self.tok.decode(token_ids, skip_special_tokens=True)

    def run(self, adapter: str, prompts: list[Prompt], params: GenerationParams,
            on_text: TextFn | None, cancelled: CancelFn | None = None) -> list[list[Completion]]:
        self.gen.use_adapter(adapter)

        def on_tokens(i: int, k: int, ids: list[int]) -> bool:
            if on_text is not None:
                on_text(i, k, self.decode(ids))
            return cancelled is not None and cancelled(i)

        watched = on_text is not None or cancelled is not None
        return self.gen.generate(prompts, params, on_tokens=on_tokens if watched else None)


class ProxyRunner:
    """Generation on an OpenAI-compatible server (vLLM with --enable-lora): the adapter name is the model
    name there, as vLLM's multi-LoRA serving names LoRA modules; "base" is the server's base model."""

    streams = True  # answers are streamed from the upstream server (one sample per request)

    def __init__(self, base_url: str, base_model: str, adapter_names: Sequence[str], api_key: str | None = None,
                 timeout_s: float = 600.0, concurrency: int = 8) -> None:
        from dorag.models.openai_backend import OpenAIGenerator

        self.base_url = base_url
        self.names = list(adapter_names)
        self.gens = {name: OpenAIGenerator(base_url, base_model if name == "base" else name, api_key, timeout_s,
                                           concurrency) for name in ["base", *self.names]}

    def adapters(self) -> dict[str, dict[str, Any]]:
        return {name: {"path": None, "method": "served by the upstream server"} for name in self.names}

    def count_tokens(self, text: str) -> int:
        return int(len(text) / 3.5) + 1  # no tokenizer here: about 3.5 characters a token

    def prompt_tokens(self, prompt: Prompt) -> int:
        text = prompt.text if prompt.text is not None else "\n".join(c for _, c in prompt.messages or ())
        return self.count_tokens(text)

    def run(self, adapter: str, prompts: list[Prompt], params: GenerationParams,
            on_text: TextFn | None, cancelled: CancelFn | None = None) -> list[list[Completion]]:
        return self.gens[adapter].generate(prompts, params, on_text=on_text, cancelled=cancelled)


class DeltaTracker:
    """Turns the decoded text so far into increments a client may see: text that could still turn out to
    be the start of a stop sequence, or half of a multi-byte character, is held back until it is settled."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.sent = ""

    def update(self, text: str) -> str:
        cut, found = cut_at_stop(text, self.stops)
        if not found:
            held = max((n for s in self.stops for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
            cut = text[: len(text) - held]
        cut = cut.rstrip("\ufffd")  # an incomplete UTF-8 sequence decodes to U+FFFD until its last byte
        if len(cut) > len(self.sent) and cut.startswith(self.sent):
            delta, self.sent = cut[len(self.sent):], cut
            return delta
        return ""

    def finish(self, final: str) -> str:
        if not final.startswith(self.sent):  # the tokenizer re-spaced an earlier piece; cannot take it back
            log.warning("streamed text is not a prefix of the final answer; the stream and the answer differ")
            return ""
        delta, self.sent = final[len(self.sent):], final
        return delta


def assemble_prompt(job: Job, count_tokens: Callable[[str], int]) -> tuple[Prompt, list[str]]:
    """The job's prompt with its retrieved documents in front (under the token budget), and their ids."""
    context, used = ("", [])
    if job.docs:
        context, used = assemble_context(job.docs, count_tokens, job.budget_tokens)
    if job.kind == "completion":
        return Prompt(text=with_context_comment(job.text or "", context)), used
    messages = list(job.messages or ())
    last_user = max(i for i, (role, _) in enumerate(messages) if role == "user")
    messages[last_user] = ("user", with_context_chat(messages[last_user][1], context))
    return Prompt(messages=tuple(messages)), used


class Engine:
    """The queue and its single worker thread. ``submit(job)`` returns the job's Future."""

    def __init__(self, runner: Runner, max_batch: int = 8, max_queue: int = 256,
                 on_batch: Callable[[str, int, float, int], None] | None = None) -> None:
        self.runner = runner
        self.max_batch = max(1, max_batch)
        self.max_queue = max_queue
        self.on_batch = on_batch  # (adapter, jobs, seconds, tokens) after each decode
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.busy = False
        self.cancelled = 0  # jobs whose client went away: dropped from the queue or stopped mid-decode

    def _drop(self, job: Job) -> None:
        self.cancelled += 1
        if not job.future.done():
            job.future.set_exception(client_gone())

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dorag-generate", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def submit(self, job: Job) -> Future:
        with self._cond:
            if self._closed:
                raise APIError(503, "the server is shutting down", "server_error", "shutting_down")
            if len(self._queue) >= self.max_queue:
                raise APIError(503, f"{len(self._queue)} requests are waiting for the model; retry later",
                               "server_error", "server_busy")
            self._queue.append(job)
            self._cond.notify()
        return job.future

    def _next_group(self) -> list[Job] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                for job in self._queue:
                    job.future.set_exception(APIError(503, "the server is shutting down", "server_error",
                                                      "shutting_down"))
                self._queue.clear()
                return None
            while self._queue and self._queue[0].cancelled.is_set():
                self._drop(self._queue.popleft())
            if not self._queue:
                return []
            first = self._queue.popleft()
            group, rest = [first], collections.deque()
            key = first.group_key()
            for job in self._queue:
                if job.cancelled.is_set():
                    self._drop(job)
                elif len(group) < self.max_batch and job.group_key() == key:
                    group.append(job)
                else:
                    rest.append(job)
            self._queue = rest
            return group

    def _loop(self) -> None:
        while (group := self._next_group()) is not None:
            self.busy = True
            try:
                self._run(group)
            except BaseException as exc:  # noqa: BLE001 - the worker must survive any one batch
                log.exception("generation failed")
                error = exc if isinstance(exc, APIError) else APIError(
                    500, f"generation failed: {type(exc).__name__}: {str(exc)[:300]}", "server_error", "generation_failed")
                for job in group:
                    if not job.future.done():
                        job.future.set_exception(error)
            finally:
                self.busy = False

    def _run(self, group: list[Job]) -> None:
        started = time.perf_counter()
        ready: list[tuple[Job, Prompt, list[str], int]] = []
        for job in group:
            try:
                prompt, used = assemble_prompt(job, self.runner.count_tokens)
                ready.append((job, prompt, used, self.runner.prompt_tokens(prompt)))
            except ModelError as exc:  # e.g. a chat request to a model without a chat template
                job.future.set_exception(APIError(400, str(exc), code="unsupported_prompt"))
        if not ready:
            return
        trackers = [DeltaTracker(job.params.stop) if job.on_delta else None for job, *_ in ready]

        def on_text(i: int, k: int, text: str) -> None:
            tracker = trackers[i]
            if tracker is not None and k == 0:
                delta = tracker.update(text)
                if delta:
                    ready[i][0].on_delta(delta)  # type: ignore[misc]

        first = ready[0][0]
        params = dataclasses.replace(first.params, batch_size=len(ready))
        streaming = self.runner.streams and any(trackers)
        results = self.runner.run(first.adapter, [p for _, p, _, _ in ready], params,
                                  on_text if streaming else None, lambda i: ready[i][0].cancelled.is_set())
        seconds = time.perf_counter() - started
        tokens = sum(c.n_tokens for comps in results for c in comps)
        if self.on_batch is not None:
            self.on_batch(first.adapter, len(ready), seconds, tokens)
        for (job, _, used, n_prompt), comps, tracker in zip(ready, results, trackers):
            if job.cancelled.is_set():
                self._drop(job)
                continue
            if tracker is not None and job.on_delta is not None:
                rest = tracker.finish(comps[0].text)
                if rest:
                    job.on_delta(rest)
            job.future.set_result(Output(comps, n_prompt, used, started - job.enqueued_at, len(ready)))
