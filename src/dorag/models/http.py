"""Requests to OpenAI-compatible servers, through the `openai` client for its retries.

Generation, the LLM judge and the REPLUG teacher run for hours against servers that rate-limit, restart
and drop connections. The `openai` client retries connection errors, timeouts, 408, 409, 429 and 5xx with
exponential backoff (0.5 s doubling to 8 s, with jitter), honours `Retry-After` / `retry-after-ms` up to
two minutes, and gives up on any other 4xx at once. Its generic `post` reaches any path with any body, so
vLLM's and llama.cpp's extensions (`continue_final_message`, `prompt_logprobs`, `echo`) pass through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dorag.core.errors import ModelError
from dorag.core.require import require

RETRIES = 5  # about 0.5 + 1 + 2 + 4 + 8 s of backoff when the server names no delay


class StatusError(ModelError):
    """The server answered an HTTP error (after the retries, for a retryable one)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def client(base_url: str, api_key: str | None = None, timeout_s: float = 600.0, max_retries: int = RETRIES,
           transport: Any = None) -> Any:
    """An `openai.OpenAI` client for `base_url`; `transport` (an httpx2 transport, the client's HTTP library)
    replaces the network, as tests do with httpx2.MockTransport."""
    openai = require("openai", extra="models")
    extra: dict[str, Any] = {}
    if transport is not None:
        import httpx2

        extra["http_client"] = httpx2.Client(transport=transport, timeout=timeout_s)
    return openai.OpenAI(base_url=base_url.rstrip("/"), api_key=api_key or "none", timeout=timeout_s,
                         max_retries=max_retries, **extra)


def url(api: Any, path: str) -> str:
    return str(api.base_url).rstrip("/") + path


def _error(api: Any, path: str, exc: Exception, what: str) -> ModelError:
    openai = require("openai", extra="models")
    tries = f" (after {api.max_retries} retries)" if api.max_retries else ""
    if isinstance(exc, openai.APIStatusError):
        body = exc.response.text[:300] if exc.response is not None else ""
        return StatusError(f"{url(api, path)} answered {exc.status_code}{tries}: {body}", exc.status_code)
    return ModelError(f"cannot reach {url(api, path)}{tries}: {exc}; is the {what} running?")


def post(api: Any, path: str, body: dict[str, Any], what: str = "server") -> dict[str, Any]:
    """The JSON answer of a POST; a one-line ModelError once the retries are spent."""
    openai = require("openai", extra="models")
    try:
        data = api.post(path, body=body, cast_to=object)
    except (openai.APIStatusError, openai.APIConnectionError) as exc:
        raise _error(api, path, exc, what) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{url(api, path)} answered with something that is not a JSON object: {str(data)[:200]!r}")
    return data


@contextmanager
def stream(api: Any, path: str, body: dict[str, Any], what: str = "server") -> Iterator[Iterator[dict[str, Any]]]:
    """The server-sent events of a streamed POST, each a JSON object; the request itself is retried as `post`
    is (once events flow, a failure is final). Leaving the block closes the connection."""
    openai = require("openai", extra="models")
    try:
        events = api.post(path, body=body, cast_to=object, stream=True, stream_cls=openai.Stream[object])
    except (openai.APIStatusError, openai.APIConnectionError) as exc:
        raise _error(api, path, exc, what) from exc

    def read() -> Iterator[dict[str, Any]]:
        try:
            for event in events:
                yield event
        except openai.APIError as exc:
            raise ModelError(f"{url(api, path)} failed while streaming: {exc}") from exc
        except ValueError as exc:  # an event whose data is not JSON
            raise ModelError(f"{url(api, path)} sent a stream event that is not JSON: {exc}") from exc

    try:
        yield read()
    finally:
        events.close()
