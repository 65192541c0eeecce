"""Serving internals without a model: the worker queue, model-name routing, stream deltas, config, metrics."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi")

from dorag.core.config import from_dict  # noqa: E402
from dorag.core.errors import ConfigError  # noqa: E402
from dorag.models.generator import Completion, GenerationParams, cut_at_stop  # noqa: E402
from dorag.serving.config import ServeConfig, is_loopback  # noqa: E402
from dorag.serving.engine import DeltaTracker, Engine, Job  # noqa: E402
from dorag.serving.metrics import Metrics  # noqa: E402
from dorag.serving.routing import resolve_model  # noqa: E402
from dorag.serving.schemas import APIError, RagOptions  # noqa: E402


class FakeRunner:
    """Answers `<adapter>:<prompt>`; records each batch; can be told to fail once."""

    streams = False

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.delay_s = delay_s
        self.fail_next = False
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def adapters(self):
        return {"code": {"path": "x", "method": "lora"}, "doc": {"path": "y", "method": "dora"}}

    def count_tokens(self, text):
        return len(text.split())

    def prompt_tokens(self, prompt):
        return 1

    def run(self, adapter, prompts, params, on_text, cancelled=None):
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(self.delay_s)
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("boom")
            texts = [p.text if p.text is not None else p.messages[-1][1] for p in prompts]
            self.batches.append((adapter, texts))
            return [[Completion(f"{adapter}:{t}", 3, "eos")] for t in texts]
        finally:
            with self._lock:
                self.running -= 1


GREEDY = GenerationParams(max_new_tokens=8)


def test_worker_batches_per_adapter_and_never_mixes_adapters():
    runner = FakeRunner(delay_s=0.05)
    engine = Engine(runner, max_batch=3)
    blocker = Job("code", "completion", GREEDY, text="first")
    engine.submit(blocker)
    jobs = [Job(a, "completion", GREEDY, text=f"{a}{i}") for i in range(4) for a in ("code", "doc", "base")]
    for j in jobs:
        engine.submit(j)
    sampled = [Job("code", "completion", GenerationParams(max_new_tokens=8, temperature=0.7), text=f"s{i}") for i in range(2)]
    for j in sampled:
        engine.submit(j)
    engine.start()  # everything is queued before the worker starts: the grouping is deterministic
    results = [j.future.result(10) for j in [blocker, *jobs, *sampled]]
    engine.stop()
    assert [r.choices[0].text for r in results[1:13]] == [f"{j.adapter}:{j.text}" for j in jobs]
    assert runner.max_running == 1  # one decode at a time
    for adapter, texts in runner.batches:
        assert all(t.startswith(adapter) or t.startswith("s") or t == "first" for t in texts)
        assert len(texts) <= 3
    sizes = {adapter: [len(t) for a, t in runner.batches if a == adapter] for adapter in ("code", "doc", "base")}
    assert sizes["doc"] == [3, 1] and sizes["base"] == [3, 1]
    assert [t for a, t in runner.batches if t[0].startswith("s")] == [["s0"], ["s1"]]  # sampled: alone
    assert max(r.batch_size for r in results) == 3


def test_a_failing_batch_fails_its_jobs_and_the_worker_goes_on():
    runner = FakeRunner()
    engine = Engine(runner, max_batch=1)
    engine.start()
    runner.fail_next = True
    bad = engine.submit(Job("code", "completion", GREEDY, text="a"))
    with pytest.raises(APIError, match="generation failed: RuntimeError: boom") as info:
        bad.result(10)
    assert info.value.status == 500
    assert engine.submit(Job("code", "completion", GREEDY, text="b")).result(10).choices[0].text == "code:b"
    engine.stop()
    with pytest.raises(APIError, match="shutting down"):
        engine.submit(Job("code", "completion", GREEDY, text="c"))


def test_full_queue_is_a_503():
    engine = Engine(FakeRunner(), max_queue=2)  # not started: nothing drains
    engine.submit(Job("code", "completion", GREEDY, text="a"))
    engine.submit(Job("code", "completion", GREEDY, text="b"))
    with pytest.raises(APIError) as info:
        engine.submit(Job("code", "completion", GREEDY, text="c"))
    assert info.value.status == 503 and info.value.code == "server_busy"


def test_rag_context_goes_in_front_of_the_last_user_turn():
    runner = FakeRunner()
    engine = Engine(runner)
    engine.start()
    docs = [{"id": "math:gcd", "text": "def gcd(a, b):\n    return a\n", "meta": {}}]
    job = Job("code", "chat", GREEDY, messages=(("system", "be brief"), ("user", "write gcd")), docs=docs)
    out = engine.submit(job).result(10)
    engine.stop()
    text = out.choices[0].text
    assert out.context_ids == ["math:gcd"]
    assert text.startswith("code:Relevant code and documentation:\n# math:gcd\n```python\ndef gcd")
    assert text.endswith("\n\nwrite gcd")


@pytest.mark.parametrize("pieces, stops", [
    (["def f", "():\n", "    return 1", "\n``", "`\nmore"], ["\n```"]),
    (["abc", "\ufffd", "é", " done"], []),
    (["x = 1\n", "\nd", "ef g():"], ["\ndef "]),
])
def test_stream_deltas_add_up_to_the_final_answer(pieces, stops):
    tracker, sent, text = DeltaTracker(stops), [], ""
    for p in pieces:
        text = text.replace("\ufffd", "") + p  # a partial character is later replaced by the whole one
        sent.append(tracker.update(text))
        assert not any(s in "".join(sent) for s in stops)  # never shows (part of) a stop sequence too early
    final, _ = cut_at_stop(text, stops)
    sent.append(tracker.finish(final))
    assert "".join(sent) == final and "\ufffd" not in "".join(sent[:-1])


def test_model_names_resolve_like_vllm_with_a_rag_suffix():
    adapters, aliases, indexes = ["code", "doc"], ["Qwen/x"], ["stdlib"]

    def r(model, rag=None):
        return resolve_model(model, rag, adapters, aliases, indexes, 3, 10)

    assert (r("base").adapter, r("Qwen/x").adapter, r("code").adapter) == ("base", "base", "code")
    t = r("code+rag:stdlib")
    assert (t.adapter, t.index, t.top_k) == ("code", "stdlib", 3)
    assert r("doc+rag").index == "stdlib"  # the only index
    assert r("code", RagOptions(index="stdlib", top_k=5)).top_k == 5
    for model, rag, status, code in [("nope", None, 404, "model_not_found"), ("code+lora", None, 404, "model_not_found"),
                                     ("code+rag:x", None, 404, "index_not_found"),
                                     ("code", RagOptions(index="x"), 404, "index_not_found"),
                                     ("code+rag:stdlib", RagOptions(index="other"), 400, None),
                                     ("code", RagOptions(index="stdlib", top_k=11), 400, None)]:
        with pytest.raises(APIError) as info:
            r(model, rag)
        assert (info.value.status, info.value.code) == (status, code), model


def test_config_refuses_remote_bind_without_key_and_merged_adapters():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(ConfigError) as info:
        from_dict(ServeConfig, {"host": "0.0.0.0", "model": {"merge": True, "adapter": "a", "adapters": {"a": "d"}},
                                "indexes": {"a+b": "x"}})
    msg = str(info.value)
    assert "refusing to serve 0.0.0.0 without an API key" in msg and "dorag adapters merge" in msg and "'a+b'" in msg
    assert from_dict(ServeConfig, {"host": "0.0.0.0", "allow_remote": True}).allow_remote
    assert from_dict(ServeConfig, {"host": "0.0.0.0", "api_key": "k"}).api_key == "k"
    with pytest.raises(ConfigError) as info:
        from_dict(ServeConfig, {"record_responses": False, "feedback_requires_response": True, "disconnect_poll_s": 0})
    assert "feedback_requires_response needs record_responses" in str(info.value)
    assert "disconnect_poll_s: 0.0 must be a positive" in str(info.value)


def test_metrics_text_format():
    m = Metrics()
    m.observe_request("POST", "/v1/completions", "code", 200, 0.03)
    m.observe_request("POST", "/v1/completions", "code", 200, 7.0)
    m.observe_batch("code", 4, 0.5, 40)
    m.gauges["dorag_queue_depth"] = lambda: 2
    text = m.render()
    assert 'dorag_requests_total{method="POST",route="/v1/completions",model="code",status="200"} 2' in text
    assert 'dorag_request_duration_seconds_bucket{route="/v1/completions",model="code",le="0.05"} 1' in text
    assert 'dorag_request_duration_seconds_bucket{route="/v1/completions",model="code",le="+Inf"} 2' in text
    assert 'dorag_generated_tokens_total{adapter="code"} 40' in text and "dorag_queue_depth 2" in text


def test_on_tokens_observes_decoding_without_changing_it(tiny_generator):
    from dorag.serving.engine import LocalRunner

    texts = ["def add(a, b):", "import math\n", "x"]
    params = GenerationParams(max_new_tokens=12, batch_size=3, stop=("\n#",))
    seen: dict[int, list[int]] = {}
    calls = []

    def on_tokens(i, k, ids):
        calls.append(i)
        seen[i] = list(ids)

    plain = tiny_generator.generate_text(texts, params)
    watched = tiny_generator.generate_text(texts, params, on_tokens=on_tokens)
    assert [c[0].text for c in watched] == [c[0].text for c in plain]
    assert set(calls) == {0, 1, 2} and len(calls) >= 3
    runner = LocalRunner(tiny_generator)
    for i, comps in enumerate(plain):  # the last observed tokens are the answer (before the stop cut)
        assert cut_at_stop(runner.decode(seen[i]), params.stop)[0] == comps[0].text
        assert len(seen[i]) == comps[0].n_tokens


class StepRunner(FakeRunner):
    """Decodes `steps` steps of `step_s` each, stopping a row early when `cancelled(i)` turns true."""

    def __init__(self, steps: int = 40, step_s: float = 0.05) -> None:
        super().__init__()
        self.steps, self.step_s = steps, step_s
        self.stopped: list[tuple[str, int]] = []  # (prompt, step) of each row stopped early
        self.started = threading.Event()

    def run(self, adapter, prompts, params, on_text, cancelled=None):
        texts = [p.text if p.text is not None else p.messages[-1][1] for p in prompts]
        live = set(range(len(texts)))
        out = [[Completion(f"{adapter}:{t}", self.steps, "length")] for t in texts]
        self.started.set()
        for step in range(self.steps):
            time.sleep(self.step_s)
            for i in sorted(live):
                if cancelled is not None and cancelled(i):
                    live.discard(i)
                    self.stopped.append((texts[i], step))
                    out[i] = [Completion("", step, "cancelled")]
            if not live:
                break
        self.batches.append((adapter, texts))
        return out


def test_a_cancelled_queued_job_is_dropped_without_decoding():
    runner = FakeRunner()
    engine = Engine(runner)  # not started: everything is queued
    gone, kept = Job("code", "completion", GREEDY, text="gone"), Job("code", "completion", GREEDY, text="kept")
    engine.submit(gone)
    engine.submit(kept)
    gone.cancel()
    engine.start()
    assert kept.future.result(10).choices[0].text == "code:kept"
    with pytest.raises(APIError) as info:
        gone.future.result(10)
    engine.stop()
    assert info.value.status == 499 and info.value.code == "client_closed"
    assert runner.batches == [("code", ["kept"])] and engine.cancelled == 1


def test_a_job_cancelled_mid_decode_leaves_its_batch_and_the_others_finish():
    runner = StepRunner(steps=40, step_s=0.02)
    engine = Engine(runner, max_batch=4)
    jobs = [Job("code", "completion", GREEDY, text=t) for t in ("a", "b", "c")]
    for j in jobs:
        engine.submit(j)
    engine.start()
    assert runner.started.wait(10)
    jobs[1].cancel()
    assert [jobs[i].future.result(10).choices[0].text for i in (0, 2)] == ["code:a", "code:c"]
    with pytest.raises(APIError, match="client closed"):
        jobs[1].future.result(10)
    engine.stop()
    assert [p for p, _ in runner.stopped] == ["b"] and runner.stopped[0][1] < 39 and engine.cancelled == 1


def test_a_model_row_told_to_stop_leaves_the_batch_and_the_other_rows_are_unchanged(tiny_generator):
    texts = ["def add(a, b):", "import math\n", "x"]
    params = GenerationParams(max_new_tokens=12, batch_size=3)
    plain = tiny_generator.generate_text(texts, params)
    watched = tiny_generator.generate_text(texts, params, on_tokens=lambda i, k, ids: i == 1 and len(ids) >= 3)
    assert watched[1][0].finish_reason == "cancelled" and watched[1][0].n_tokens == 3
    assert [watched[i][0].text for i in (0, 2)] == [plain[i][0].text for i in (0, 2)]


def test_a_client_that_disconnects_cancels_its_generation(tmp_path):
    """Over a real socket: a non-streamed request whose client times out, and a stream closed after its first
    chunk, both stop decoding (the runner sees cancelled) and count in dorag_cancelled_requests_total."""
    import socket

    httpx = pytest.importorskip("httpx")
    uvicorn = pytest.importorskip("uvicorn")
    from dorag.serving.app import create_app

    runner = StepRunner(steps=400, step_s=0.02)  # 8 s if nobody stops it
    cfg = from_dict(ServeConfig, {"feedback_db": str(tmp_path / "fb.sqlite"), "disconnect_poll_s": 0.1})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(cfg, runner=runner), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        body = {"model": "code", "prompt": "def f():", "max_tokens": 64}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/completions", json=body, timeout=httpx.Timeout(10, read=0.5))
        deadline = time.time() + 5
        while len(runner.stopped) < 1 and time.time() < deadline:
            time.sleep(0.02)
        # stopped by the disconnect, long before the 400 steps it would otherwise decode
        assert [p for p, _ in runner.stopped] == ["def f():"] and runner.stopped[0][1] < runner.steps // 2

        runner.started.clear()
        with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}, timeout=10) as resp:
            assert resp.status_code == 200
            next(resp.iter_lines())  # the first chunk (retrieved documents), then hang up
        deadline = time.time() + 5
        while len(runner.stopped) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert len(runner.stopped) == 2 and all(step < 399 for _, step in runner.stopped)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert "dorag_cancelled_requests_total 2" in metrics
        ok = httpx.post(f"{url}/v1/completions", json={**body, "max_tokens": 8}, timeout=30)  # still serving
        assert ok.status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_docstring_task_is_rendered_by_the_docstring_prompt(tmp_path):
    """`task: docstring` answers pasted code through `docstring_prompt`, the prompt the docstring adapter was
    trained on and `dorag docstring` uses; a plain chat request is left as the user wrote it."""
    from fastapi.testclient import TestClient

    from dorag.data.prompts import docstring_prompt
    from dorag.serving.app import create_app

    runner = FakeRunner()
    cfg = from_dict(ServeConfig, {"feedback_db": str(tmp_path / "fb.sqlite")})
    code = "def area(w, h):\n    return w * h"
    with TestClient(create_app(cfg, runner=runner)) as client:
        for style in (None, "google"):
            body = {"model": "doc", "messages": [{"role": "user", "content": code}], "task": "docstring",
                    **({"docstring_style": style} if style else {})}
            r = client.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
            expected = docstring_prompt(code + "\n", style).messages[-1][1]
            assert r.json()["choices"][0]["message"]["content"] == f"doc:{expected}"
        r = client.post("/v1/chat/completions", json={"model": "doc", "messages": [{"role": "user", "content": code}]})
        assert r.json()["choices"][0]["message"]["content"] == f"doc:{code}"
        r = client.post("/v1/chat/completions", json={"model": "doc", "task": "poem",
                                                      "messages": [{"role": "user", "content": code}]})
        assert r.status_code == 400 and "task" in r.text
