"""The FastAPI app: OpenAI-compatible completions with adapter switching and RAG, the web page, feedback.

    GET  /                      the web UI (ui.html)
    GET  /health                liveness, model, adapters, indexes, queue depth (no auth)
    GET  /metrics               Prometheus text: requests by route/model/status, latency histograms
    GET  /v1/models             base + adapters (vLLM multi-LoRA naming), with how each is served
    GET  /v1/indexes            the retrieval indexes a request may name
    POST /v1/chat/completions   OpenAI chat completions, streaming (SSE) or not; extra field "rag"
    POST /v1/completions        OpenAI text completions, likewise
    POST /v1/feedback           a 1-5 rating with an optional corrected answer, into SQLite
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from dorag.core.require import require

require("fastapi", extra="serve")  # fail with the pip command, not a bare ImportError
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse  # noqa: E402
from pydantic import BaseModel, ValidationError  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from dorag.models.generator import Completion, GenerationParams
from dorag.serving.config import ServeConfig
from dorag.serving.engine import Engine, Job, LocalRunner, Output, ProxyRunner, Runner, client_gone
from dorag.serving.feedback import FeedbackStore
from dorag.serving.metrics import Metrics
from dorag.serving.middleware import AuthMiddleware, BodyLimitMiddleware, MetricsMiddleware
from dorag.serving.routing import BASE, Retrievers, Target, resolve_model
from dorag.serving.schemas import APIError, ChatRequest, CompletionRequest, FeedbackRequest, error_body

log = logging.getLogger(__name__)

ROUTES = ("/", "/health", "/metrics", "/v1/models", "/v1/indexes", "/v1/chat/completions", "/v1/completions",
          "/v1/feedback")
DORA_SERVING = ("switched per request: PEFT's unmerged DoRA layers on the shared base, one adapter per batch "
                "(vLLM cannot serve DoRA; merge it with `dorag adapters merge` for vLLM)")


def build_runner(cfg: ServeConfig, progress: Callable[[str], None] = lambda m: None) -> Runner:
    """Load the base model once with every adapter (transformers), or connect to an upstream server."""
    if cfg.model.backend == "openai":
        m = cfg.model
        return ProxyRunner(m.base_url or "", m.served_name or m.name, list(m.adapters), m.api_key, m.timeout_s,
                           m.concurrency)
    from dorag.models.loading import load_generator

    return LocalRunner(load_generator(cfg.model, progress=progress))


class Server:
    """Everything the routes share."""

    def __init__(self, cfg: ServeConfig, runner: Runner) -> None:
        self.cfg = cfg
        self.runner = runner
        self.metrics = Metrics()
        self.adapters = runner.adapters()
        self.aliases = {a for a in (cfg.model.name, cfg.model.served_name) if a}
        self.retrievers = Retrievers(cfg.indexes)
        self.store = FeedbackStore(cfg.feedback_db)
        self.engine = Engine(runner, cfg.max_batch, cfg.max_queue, on_batch=self.metrics.observe_batch)
        self.metrics.gauges["dorag_queue_depth"] = lambda: self.engine.depth
        self.metrics.counters["dorag_cancelled_requests_total"] = lambda: self.engine.cancelled
        self.started = int(time.time())

    def target(self, model: str, rag: Any) -> Target:
        return resolve_model(model, rag, self.adapters, self.aliases, self.retrievers.names(), self.cfg.rag_top_k,
                             self.cfg.rag_max_top_k)

    def models(self) -> list[dict[str, Any]]:
        cfg = self.cfg
        backend = ("transformers" if cfg.model.backend == "transformers"
                   else f"openai-compatible server at {cfg.model.base_url}")
        rows = [{"id": BASE, "object": "model", "created": self.started, "owned_by": "dorag", "root": cfg.model.name,
                 "parent": None, "dorag": {"kind": "base", "backend": backend, "aliases": sorted(self.aliases),
                                           "indexes": self.retrievers.names(), "rag_suffix": "+rag:<index>"}}]
        for name, info in self.adapters.items():
            meta = {"kind": "adapter", "method": info["method"], "backend": backend, "path": info["path"]}
            if info["method"] == "dora":
                meta["serving"] = DORA_SERVING
            elif cfg.model.backend == "transformers":
                meta["serving"] = "switched per request: PEFT LoRA layers on the shared base, one adapter per batch"
            rows.append({"id": name, "object": "model", "created": self.started, "owned_by": "dorag",
                         "root": info["path"] or name, "parent": BASE, "dorag": meta})
        return rows


def _validate(model_cls: type[BaseModel], raw: bytes) -> Any:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(400, f"malformed JSON body: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise APIError(400, "the JSON body must be an object", code="invalid_json")
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        raise APIError(400, "; ".join(problems), param=".".join(str(p) for p in first) or None) from exc


def _params(cfg: ServeConfig, req: ChatRequest | CompletionRequest, max_tokens: int | None) -> GenerationParams:
    if req.logprobs not in (None, False, 0):
        raise APIError(400, "logprobs are not supported by dorag serve", param="logprobs")
    if req.stream and req.n > 1:
        raise APIError(400, "stream with n > 1 is not supported; send n requests", param="n")
    n_tokens = max_tokens or cfg.default_max_tokens or min(256, cfg.max_tokens)
    if n_tokens > cfg.max_tokens:
        raise APIError(400, f"max_tokens: at most {cfg.max_tokens} on this server, got {n_tokens}", param="max_tokens")
    temperature = cfg.default_temperature if req.temperature is None else req.temperature
    return GenerationParams(max_new_tokens=n_tokens, temperature=temperature, top_p=req.top_p or 1.0, n=req.n,
                            stop=req.stops(), seed=req.seed or 0, batch_size=1)


def _finish(c: Completion) -> str:
    return "length" if c.finish_reason == "length" else "stop"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def create_app(cfg: ServeConfig, runner: Runner | None = None,
               progress: Callable[[str], None] = lambda m: None) -> Any:
    """The ASGI app for `cfg`. `runner` defaults to loading the model (or connecting) as `cfg` says."""
    from dorag.serving.ui import page

    problems = cfg.check()
    if problems:
        from dorag.core.errors import ConfigError

        raise ConfigError("\n".join(problems))
    srv = Server(cfg, runner or build_runner(cfg, progress))

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        srv.engine.start()
        yield
        srv.engine.stop()
        srv.store.close()

    app = FastAPI(title="dorag serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = srv

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error", code), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(str(exc.errors())[:500], "invalid_request_error", "invalid_request"), status_code=400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body(f"{type(exc).__name__}: {str(exc)[:300]}", "server_error", "internal_error"),
                            status_code=500)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": cfg.model.name, "backend": cfg.model.backend,
                "adapters": list(srv.adapters), "indexes": srv.retrievers.names(), "queue_depth": srv.engine.depth,
                "auth": bool(cfg.api_key)}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(srv.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": srv.models()}

    @app.get("/v1/indexes")
    async def indexes() -> dict[str, Any]:
        return {"object": "list", "data": srv.retrievers.describe()}

    async def prepare(request: Request, req: ChatRequest | CompletionRequest, query: str
                      ) -> tuple[Target, list[dict[str, Any]]]:
        target = srv.target(req.model, req.rag)
        request.state.model = req.model
        docs: list[dict[str, Any]] = []
        if target.index is not None:
            docs = await run_in_threadpool(srv.retrievers.search, target.index, query, target.top_k, target.mode)
        return target, docs

    def snippets(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**d, "text": d["text"][: cfg.snippet_chars]} for d in docs]

    def extra(target: Target, out: Output | None, docs: list[dict[str, Any]], t0: float) -> dict[str, Any]:
        info: dict[str, Any] = {"adapter": target.adapter, "rag_index": target.index}
        if out is not None:
            info.update(context_ids=out.context_ids, queue_ms=round(out.queue_s * 1000, 1), batch_size=out.batch_size,
                        latency_ms=round((time.perf_counter() - t0) * 1000, 1))
        return {"retrieved": snippets(docs), "dorag": info}

    async def remember(rid: str, adapter: str, outputs: list[str]) -> None:
        if cfg.record_responses:
            await run_in_threadpool(srv.store.record_response, rid, adapter, outputs)

    async def answers(request: Request, jobs: list[Job]) -> list[Output]:
        """The jobs' outputs; when the client disconnects first, the jobs are cancelled (dropped from the queue
        or stopped mid-decode) instead of decoding for nobody."""
        waiting = asyncio.gather(*(asyncio.wrap_future(srv.engine.submit(j)) for j in jobs))
        waiting.add_done_callback(lambda f: f.cancelled() or f.exception())  # consumed even when nobody awaits
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=cfg.disconnect_poll_s)
            if done:
                return waiting.result()
            if await request.is_disconnected():
                for job in jobs:
                    job.cancel()
                raise client_gone()

    async def stream(job: Job, target: Target, docs: list[dict[str, Any]], kind: str, rid: str, t0: float,
                     include_usage: bool) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        done = object()

        def push(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
                pass

        job.on_delta = push
        future = srv.engine.submit(job)
        future.add_done_callback(lambda f: push(done))
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

        def chunk(delta: str | None, finish: str | None = None, first: bool = False, **more: Any) -> str:
            if kind == "chat":
                d: dict[str, Any] = {"role": "assistant", "content": ""} if first else ({} if delta is None else {"content": delta})
                choice = {"index": 0, "delta": d, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
            body = {"id": rid, "object": obj, "created": int(time.time()), "model": target.model, "choices": [choice],
                    **more}
            return f"data: {json.dumps(body)}\n\n"

        async def events() -> AsyncIterator[str]:
            try:
                yield chunk(None, first=True, **extra(target, None, docs, t0))
                while (item := await queue.get()) is not done:
                    yield chunk(item)  # type: ignore[arg-type]
                try:
                    out: Output = future.result()
                except APIError as exc:
                    yield f"data: {json.dumps(exc.body())}\n\n"
                else:
                    comp = out.choices[0]
                    await remember(rid, target.adapter, [comp.text])
                    yield chunk(None, _finish(comp), dorag=extra(target, out, docs, t0)["dorag"])
                    if include_usage:
                        body = {"id": rid, "object": obj, "created": int(time.time()), "model": target.model,
                                "choices": [], "usage": _usage(out.prompt_tokens, comp.n_tokens)}
                        yield f"data: {json.dumps(body)}\n\n"
                yield "data: [DONE]\n\n"
            finally:  # the client went away mid-stream (the response task is cancelled): stop decoding for it
                if not future.done():
                    job.cancel()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        t0 = time.perf_counter()
        request.state.model = "unknown"
        req: ChatRequest = _validate(ChatRequest, await request.body())
        if req.tools:
            raise APIError(400, "tools are not supported by dorag serve", param="tools")
        messages = tuple((("system" if m.role == "developer" else m.role), m.text()) for m in req.messages)
        users = [c for role, c in messages if role == "user"]
        if not users or not users[-1].strip():
            raise APIError(400, "messages: the prompt is empty (no user message with content)", param="messages")
        if req.task == "docstring":  # the docstring task's own prompt, as in training and `dorag docstring`
            from dorag.data.prompts import docstring_prompt

            code = users[-1] if users[-1].endswith("\n") else users[-1] + "\n"
            messages = docstring_prompt(code, req.docstring_style).messages
        params = _params(cfg, req, req.max_completion_tokens or req.max_tokens)
        target, docs = await prepare(request, req, users[-1])
        job = Job(target.adapter, "chat", params, messages=messages, docs=docs, budget_tokens=cfg.rag_budget_tokens)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            return await stream(job, target, docs, "chat", rid, t0,
                                bool(req.stream_options and req.stream_options.include_usage))
        out, = await answers(request, [job])
        await remember(rid, target.adapter, [c.text for c in out.choices])
        choices = [{"index": i, "message": {"role": "assistant", "content": c.text}, "finish_reason": _finish(c),
                    "logprobs": None} for i, c in enumerate(out.choices)]
        return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": req.model,
                "choices": choices, "usage": _usage(out.prompt_tokens, sum(c.n_tokens for c in out.choices)),
                **extra(target, out, docs, t0)}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        t0 = time.perf_counter()
        request.state.model = "unknown"
        req: CompletionRequest = _validate(CompletionRequest, await request.body())
        if req.echo:
            raise APIError(400, "echo is not supported by dorag serve", param="echo")
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts or any(not p.strip() for p in prompts):
            raise APIError(400, "prompt: empty prompt", param="prompt")
        if req.stream and len(prompts) > 1:
            raise APIError(400, "stream with several prompts is not supported", param="prompt")
        params = _params(cfg, req, req.max_tokens)
        target, docs = await prepare(request, req, prompts[0])
        if len(prompts) > 1 and target.index is not None:
            raise APIError(400, "rag with several prompts in one request is not supported", param="prompt")
        jobs = [Job(target.adapter, "completion", params, text=p, docs=docs, budget_tokens=cfg.rag_budget_tokens)
                for p in prompts]
        rid = f"cmpl-{uuid.uuid4().hex}"
        if req.stream:
            return await stream(jobs[0], target, docs, "completion", rid, t0,
                                bool(req.stream_options and req.stream_options.include_usage))
        outs = await answers(request, jobs)
        await remember(rid, target.adapter, [c.text for out in outs for c in out.choices])
        choices = [{"index": i * req.n + k, "text": c.text, "finish_reason": _finish(c), "logprobs": None}
                   for i, out in enumerate(outs) for k, c in enumerate(out.choices)]
        usage = _usage(sum(o.prompt_tokens for o in outs), sum(c.n_tokens for o in outs for c in o.choices))
        return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": req.model,
                "choices": choices, "usage": usage, **extra(target, outs[0], docs, t0)}

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        request.state.model = "unknown"
        req: FeedbackRequest = _validate(FeedbackRequest, await request.body())
        target = srv.target(req.model, None)
        request.state.model = req.model
        verified = await check_feedback(req, target.adapter)
        row_id = await run_in_threadpool(
            srv.store.add, model=req.model, prompt=req.prompt, output=req.output, rating=req.rating,
            comment=req.comment, correction=req.correction, kind=req.kind, adapter=target.adapter,
            rag_index=target.index, retrieved=req.retrieved, response_id=req.response_id, latency_ms=req.latency_ms,
            verified=int(verified))
        return {"id": row_id, "object": "feedback", "stored": True, "verified": verified}

    async def check_feedback(req: FeedbackRequest, adapter: str) -> bool:
        """Whether the rated output is an answer this server gave under `req.response_id`; a response id it
        never gave, or an output that is not that answer, is refused (it would train on text nobody served)."""
        if req.response_id is None:
            if cfg.feedback_requires_response:
                raise APIError(400, "response_id is required: rate an answer by the id this server gave it "
                                    "(feedback_requires_response is on)", param="response_id")
            return False
        if not cfg.record_responses:
            return False
        answer = await run_in_threadpool(srv.store.response, req.response_id)
        if answer is None:
            raise APIError(404, f"response_id {req.response_id!r} is not an answer this server gave "
                                "(or it was given before record_responses was on)", code="response_not_found",
                           param="response_id")
        if answer["adapter"] != adapter:
            raise APIError(400, f"response {req.response_id!r} was answered with adapter {answer['adapter']!r}, "
                                f"but model {req.model!r} is adapter {adapter!r}", param="model")
        if req.output not in answer["outputs"]:
            raise APIError(400, f"output is not the answer given under response {req.response_id!r}; send it "
                                "unchanged and put an edited answer in correction", param="output")
        return True

    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)
    app.add_middleware(AuthMiddleware, api_key=cfg.api_key)
    app.add_middleware(MetricsMiddleware, metrics=srv.metrics, routes=ROUTES)
    return app
