"""ASGI middleware that acts before a body is parsed: metrics, bearer-key auth, and the body size limit."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from dorag.serving.metrics import Metrics
from dorag.serving.schemas import error_body

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


async def send_error(send: Callable[[Message], Awaitable[None]], status: int, message: str, type: str,
                     code: str, headers: Collection[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(error_body(message, type, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Counts every HTTP response by route, served model and status, and times it to its last byte."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Collection[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, set(routes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            path = scope.get("path", "")
            route = path if path in self.routes else "other"
            model = (scope.get("state") or {}).get("model", "")
            self.metrics.observe_request(scope.get("method", ""), route, model, status, time.perf_counter() - t0)


class AuthMiddleware:
    """Requires ``Authorization: Bearer <key>`` on the protected path prefixes (the web page itself is
    static and asks for the key; everything it does goes through /v1)."""

    def __init__(self, app: ASGIApp, api_key: str | None, protected: tuple[str, ...] = ("/v1/", "/metrics")) -> None:
        self.app, self.key, self.protected = app, (api_key or "").encode(), protected

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.key and scope.get("path", "").startswith(self.protected):
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, given = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.key):
                await send_error(send, 401, "Incorrect or missing API key: send Authorization: Bearer <key>",
                                 "invalid_request_error", "invalid_api_key", [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413 before the app reads (or parses) them: a declared
    Content-Length over the limit is refused unread; a chunked body is counted as it arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_big = f"request body over {self.max_bytes} bytes (the server's max_body_bytes)"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await send_error(send, 413, too_big, "invalid_request_error", "request_too_large",
                             [(b"connection", b"close")])
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_error(send, 413, too_big, "invalid_request_error", "request_too_large",
                                 [(b"connection", b"close")])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as a real receive does

        await self.app(scope, replay, send)
