"""The OpenAI-compatible generation backend against a scripted server (httpx2.MockTransport, the transport
of the `openai` client it sends through): plain and streamed answers, stop sequences, usage, one-line
errors, and retries of rate limits, server errors and lost connections."""

from __future__ import annotations

import json

import pytest

httpx = pytest.importorskip("httpx2")

from dorag.core.errors import ModelError  # noqa: E402
from dorag.core.types import Prompt  # noqa: E402
from dorag.models import http  # noqa: E402
from dorag.models.generator import GenerationParams  # noqa: E402
from dorag.models.openai_backend import OpenAIGenerator  # noqa: E402


def sse(*events: object) -> bytes:
    return b"".join(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events)


def generator(handler, retries: int = 0) -> tuple[OpenAIGenerator, list[dict]]:
    seen: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append({"path": request.url.path, **json.loads(request.content)})
        return handler(request)

    gen = OpenAIGenerator("http://upstream/v1", "m")
    gen._client = http.client("http://upstream/v1", max_retries=retries, transport=httpx.MockTransport(record))
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


# ------------------------------------------------------------------------ retries (dorag.models.http)

ANSWER = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}


def test_a_server_that_fails_twice_then_answers_is_retried_over_real_http():
    """A real HTTP server on a socket: 429 with Retry-After, then 503, then the answer."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(self.path)
            status, headers, body = {1: (429, {"Retry-After": "0.05"}, b'{"error": "slow down"}'),
                                     2: (503, {"retry-after-ms": "20"}, b"restarting")}.get(
                len(hits), (200, {}, json.dumps(ANSWER).encode()))
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = OpenAIGenerator(f"http://127.0.0.1:{server.server_port}/v1", "m")
        out = gen.generate([CHAT], GenerationParams(max_new_tokens=8))
    finally:
        server.shutdown()
    assert out[0][0].text == "ok" and hits == ["/v1/chat/completions"] * 3


def test_backoff_honours_retry_after_then_grows(monkeypatch):
    import openai._base_client as base

    slept: list[float] = []
    monkeypatch.setattr(base.time, "sleep", slept.append)
    script = [httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(500), httpx.Response(502),
              httpx.Response(200, json=ANSWER)]
    gen, seen = generator(lambda r: script[len(seen) - 1], retries=5)
    assert gen.generate([CHAT], GenerationParams(max_new_tokens=8))[0][0].text == "ok" and len(seen) == 4
    assert slept[0] == 7.0  # the server's delay, not the backoff's
    assert 0.5 * 0.75 <= slept[1] <= 1.0 and 1.0 * 0.75 <= slept[2] <= 2.0  # 0.5 s doubling, 0-25% jitter


def test_lost_connections_are_retried(monkeypatch):
    import openai._base_client as base

    monkeypatch.setattr(base.time, "sleep", lambda s: None)

    def drop_twice(request):
        if len(seen) <= 2:
            raise httpx.ConnectError("connection reset by peer")
        return httpx.Response(200, json=ANSWER)

    gen, seen = generator(drop_twice, retries=3)
    assert gen.generate([CHAT], GenerationParams(max_new_tokens=8))[0][0].text == "ok" and len(seen) == 3


def test_spent_retries_are_one_line_and_a_client_error_is_not_retried(monkeypatch):
    import openai._base_client as base

    monkeypatch.setattr(base.time, "sleep", lambda s: None)
    gen, seen = generator(lambda r: httpx.Response(503, text="overloaded"), retries=2)
    with pytest.raises(ModelError, match=r"answered 503 \(after 2 retries\): overloaded") as info:
        gen.generate([CHAT], GenerationParams(max_new_tokens=8))
    assert len(seen) == 3 and "\n" not in str(info.value)
    gen, seen = generator(lambda r: httpx.Response(400, text="unknown parameter"), retries=2)
    with pytest.raises(ModelError, match="answered 400"):
        gen.generate([CHAT], GenerationParams(max_new_tokens=8))
    assert len(seen) == 1


def test_the_teacher_scorer_retries_server_errors_and_reads_a_4xx_as_unsupported(monkeypatch):
    import openai._base_client as base

    from dorag.models.scoring import OpenAIScorer

    monkeypatch.setattr(base.time, "sleep", lambda s: None)
    seen: list[int] = []

    def scorer(handler, retries=2):
        s = OpenAIScorer("http://teacher/v1", "m")
        s._client = http.client("http://teacher/v1", max_retries=retries,
                                transport=httpx.MockTransport(lambda r: (seen.append(1), handler(r))[1]))
        return s

    script = [httpx.Response(500), httpx.Response(429), httpx.Response(200, json={"choices": [{"text": "x"}]})]
    assert scorer(lambda r: script[len(seen) - 1])._post({"prompt": "a"}) == {"choices": [{"text": "x"}]}
    seen.clear()
    assert scorer(lambda r: httpx.Response(400, text="prompt_logprobs is not supported"))._post({}) is None
    assert len(seen) == 1
    with pytest.raises(ModelError, match=r"answered 503 \(after 2 retries\)"):
        scorer(lambda r: httpx.Response(503))._post({})
