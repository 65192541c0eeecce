"""The OpenAI-compatible generation backend against a scripted server (httpx.MockTransport): plain and
streamed answers, stop sequences, usage, and one-line errors."""

from __future__ import annotations

import json

import pytest

httpx = pytest.importorskip("httpx")

from dorag.core.errors import ModelError  # noqa: E402
from dorag.core.types import Prompt  # noqa: E402
from dorag.models.generator import GenerationParams  # noqa: E402
from dorag.models.openai_backend import OpenAIGenerator  # noqa: E402


def sse(*events: object) -> bytes:
    return b"".join(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events)


def generator(handler) -> tuple[OpenAIGenerator, list[dict]]:
    seen: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append({"path": request.url.path, **json.loads(request.content)})
        return handler(request)

    gen = OpenAIGenerator("http://upstream/v1", "m")
    gen._client = httpx.Client(base_url="http://upstream/v1", transport=httpx.MockTransport(record))
    return gen, seen


CHAT = Prompt(messages=[("user", "write f")])


def test_streamed_chat_reports_growing_text_and_matches_the_final_answer():
    pieces = ["```python\n", "def f():", "\n    return 1", "\n```", "\nThat is all."]
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    events += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
               {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 11}}, b"[DONE]"]
    gen, seen = generator(lambda r: httpx.Response(200, content=sse(*events),
                                                   headers={"content-type": "text/event-stream"}))
    calls: list[tuple[int, int, str]] = []
    out = gen.generate([CHAT], GenerationParams(max_new_tokens=32, stop=("\nThat",)),
                       on_text=lambda i, k, t: calls.append((i, k, t)))
    assert seen[0]["path"].endswith("/chat/completions") and seen[0]["stream"] is True
    assert seen[0]["stream_options"] == {"include_usage": True}
    assert [t for _, _, t in calls] == ["".join(pieces[: n + 1]) for n in range(len(pieces))]
    assert {(i, k) for i, k, _ in calls} == {(0, 0)}
    comp = out[0][0]
    assert comp.text == "```python\ndef f():\n    return 1\n```" and comp.finish_reason == "stop" and comp.n_tokens == 11


def test_streamed_text_completion_without_usage_counts_chunks():
    events = [{"choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in ["a", "b", "c"]]
    events.append({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    gen, seen = generator(lambda r: httpx.Response(200, content=sse(*events, b"[DONE]")))
    texts: list[str] = []
    out = gen.generate([Prompt(text="x")], GenerationParams(max_new_tokens=3), on_text=lambda i, k, t: texts.append(t))
    assert seen[0]["path"].endswith("/completions") and texts == ["a", "ab", "abc"]
    assert out[0][0].text == "abc" and out[0][0].n_tokens == 3 and out[0][0].finish_reason == "length"


def test_without_a_watcher_or_with_several_samples_the_answer_is_not_streamed():
    body = {"choices": [{"message": {"content": "one"}, "finish_reason": "stop"},
                        {"message": {"content": "two"}, "finish_reason": "stop"}], "usage": {"completion_tokens": 4}}
    gen, seen = generator(lambda r: httpx.Response(200, json=body))
    out = gen.generate([CHAT], GenerationParams(max_new_tokens=8, n=2, temperature=0.8),
                       on_text=lambda i, k, t: pytest.fail("n > 1 is not streamed"))
    assert "stream" not in seen[0] and [c.text for c in out[0]] == ["one", "two"] and out[0][0].n_tokens == 2


@pytest.mark.parametrize("response, message", [
    (lambda r: httpx.Response(400, text="stream_options is not supported"), "answered 400: stream_options"),
    (lambda r: httpx.Response(200, content=sse({"choices": []}, b"{not json")), "stream event that is not JSON"),
    (lambda r: httpx.Response(200, content=sse({"error": {"message": "out of memory"}})), "failed while streaming"),
])
def test_stream_errors_are_one_line_model_errors(response, message):
    gen, _ = generator(response)
    with pytest.raises(ModelError, match=message) as info:
        gen.generate([CHAT], GenerationParams(max_new_tokens=8), on_text=lambda i, k, t: None)
    assert "\n" not in str(info.value)


def test_unreachable_server_names_the_url():
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    gen, _ = generator(refuse)
    with pytest.raises(ModelError, match=r"cannot reach http://upstream/v1/chat/completions: .*is the server running"):
        gen.generate([CHAT], GenerationParams(max_new_tokens=8), on_text=lambda i, k, t: None)


def test_a_cancelled_prompt_closes_its_stream_and_the_others_finish():
    events = [{"choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in ["a", "b", "c"]]
    gen, seen = generator(lambda r: httpx.Response(200, content=sse(*events, b"[DONE]")))
    read: dict[int, list[str]] = {0: [], 1: []}
    out = gen.generate([Prompt(text="x"), Prompt(text="y")], GenerationParams(max_new_tokens=3),
                       on_text=lambda i, k, t: read[i].append(t), cancelled=lambda i: i == 1)
    assert all(body["stream"] for body in seen)  # a cancellable request is streamed, even without a watcher
    assert out[0][0].text == "abc" and read[0] == ["a", "ab", "abc"]
    assert out[1][0].finish_reason == "cancelled" and read[1] == []  # closed at its first event
