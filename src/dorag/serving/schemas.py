"""Request bodies of the OpenAI-compatible API (the fields dorag honours) and the OpenAI error shape.

Fields a client may send that change nothing here (``user``, ``presence_penalty``...) are accepted and
ignored, as vLLM does; fields whose meaning we cannot honour (``logprobs``, ``echo``, tools) are a 400,
never a silent fallback.
"""

from __future__ import annotations

from typing import Any, Literal

from dorag.core.require import require

require("pydantic", extra="serve")  # the request schemas are pydantic models: fail with the pip command
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402


class APIError(Exception):
    """An error answered as ``{"error": {"message", "type", "code", "param"}}`` with `status`."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(message: str, type: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


class RagOptions(BaseModel):
    """dorag's extension: retrieve from a named index and put the documents in front of the prompt."""

    model_config = ConfigDict(extra="forbid")
    index: str = Field(min_length=1)
    top_k: int | None = Field(None, ge=1)
    mode: Literal["dense", "bm25", "hybrid"] | None = None


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=8)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: Any = None
    rag: RagOptions | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return tuple(s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s)


class ChatRequest(_Common):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: Any = None
    # dorag's extension: `docstring` answers the last user message (Python code) with its docstring, through the
    # docstring task's own prompt (the one its adapter was trained on and `dorag docstring` uses)
    task: Literal["chat", "docstring"] = "chat"
    docstring_style: Literal["plain", "google", "numpy"] | None = None


class CompletionRequest(_Common):
    prompt: str | list[str]
    echo: bool = False


class FeedbackRequest(BaseModel):
    """A rating of one generated answer, with an optional corrected answer: the raw material of retraining."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1)
    output: str
    rating: int = Field(ge=1, le=5)
    correction: str | None = None
    comment: str | None = Field(None, max_length=10_000)
    kind: Literal["chat", "completion"] = "chat"
    response_id: str | None = Field(None, max_length=200)
    retrieved: list[str] | None = None
    latency_ms: float | None = Field(None, ge=0)
