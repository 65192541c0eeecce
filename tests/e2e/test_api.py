"""`dorag serve` over a real socket: the official openai client, bad input, concurrency across adapters,
the proxy backend, kill -9 during feedback writes, and the feedback -> export -> train loop."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from e2e.conftest import API_KEY, ServerProcess, serve_local

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PROMPTS = ["def gcd(a, b):", "Reverse a string in Python.", "def flatten(xs):", "Read a JSON file and return it."]
ADAPTERS = ["base", "code", "docstring"]


def client(server: ServerProcess):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def chat(server: ServerProcess, model: str, prompt: str, **extra) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 12, "temperature": 0,
            **extra}
    r = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_openai_client_models_chat_completion_and_streaming(server):
    c = client(server)
    models = {m.id: m for m in c.models.list().data}
    assert set(models) == {"base", "code", "docstring"}
    assert models["code"].model_extra["parent"] == "base" and models["code"].model_extra["dorag"]["method"] == "lora"
    dora = models["docstring"].model_extra["dorag"]
    assert dora["method"] == "dora" and "unmerged DoRA" in dora["serving"] and "vLLM cannot serve DoRA" in dora["serving"]

    resp = c.chat.completions.create(model="code", messages=[{"role": "user", "content": PROMPTS[0]}],
                                     max_tokens=12, temperature=0)
    text = resp.choices[0].message.content
    assert resp.object == "chat.completion" and resp.model == "code" and text
    assert resp.usage.completion_tokens > 0 and resp.choices[0].finish_reason in ("stop", "length")

    stream = c.chat.completions.create(model="code", messages=[{"role": "user", "content": PROMPTS[0]}],
                                       max_tokens=12, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == text and len([ch for ch in chunks if ch.choices]) > 2  # really incremental
    assert chunks[-1].usage.completion_tokens == resp.usage.completion_tokens

    done = c.completions.create(model="docstring", prompt="def add(a, b):", max_tokens=10, temperature=0)
    assert done.object == "text_completion" and done.choices[0].text
    pieces = [ch.choices[0].text for ch in c.completions.create(model="docstring", prompt="def add(a, b):",
                                                                max_tokens=10, temperature=0, stream=True)]
    assert "".join(pieces) == done.choices[0].text


def test_raw_sse_framing_ends_with_done(server):
    body = {"model": "base", "prompt": "def f():", "max_tokens": 6, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, headers=AUTH, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    first = json.loads(events[0][6:])
    assert first["object"] == "text_completion" and first["retrieved"] == [] and first["dorag"]["adapter"] == "base"


def test_rag_by_model_suffix_or_body_field_returns_the_snippets(server):
    c = client(server)
    by_suffix = c.chat.completions.create(model="code+rag:stdlib", max_tokens=8, temperature=0,
                                          messages=[{"role": "user", "content": "greatest common divisor gcd of a list"}])
    by_field = c.chat.completions.create(model="code", max_tokens=8, temperature=0,
                                         messages=[{"role": "user", "content": "greatest common divisor gcd of a list"}],
                                         extra_body={"rag": {"index": "stdlib", "top_k": 2}})
    plain = c.chat.completions.create(model="code", max_tokens=8, temperature=0,
                                      messages=[{"role": "user", "content": "greatest common divisor gcd of a list"}])
    hits = by_suffix.model_extra["retrieved"]
    assert len(hits) == 3 and hits[0]["id"] == "math:gcd" and "while b:" in hits[0]["text"]
    assert [h["id"] for h in by_field.model_extra["retrieved"]] == [h["id"] for h in hits[:2]]
    assert by_suffix.model_extra["dorag"]["rag_index"] == "stdlib" and "math:gcd" in by_suffix.model_extra["dorag"]["context_ids"]
    assert plain.model_extra["retrieved"] == []
    # the documents really are in the prompt
    assert by_suffix.usage.prompt_tokens > plain.usage.prompt_tokens + 20


def test_adapters_change_the_answers(server):
    answers = {a: chat(server, a, PROMPTS[0])["choices"][0]["message"]["content"] for a in ADAPTERS}
    assert len(set(answers.values())) == 3, answers  # otherwise the mixing test below could not fail


def _assert_error(r, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "code"} and err["message"]
    if code:
        assert err["code"] == code, err


def test_bad_inputs_get_openai_errors_and_the_server_keeps_serving(server):
    url = f"{server.url}/v1/chat/completions"
    good = {"model": "code", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    cases = [
        (lambda: httpx.post(url, content=b'{"model": "code", "messages": [', headers={**AUTH, "content-type": "application/json"}), 400, "invalid_json"),
        (lambda: httpx.post(url, json={**good, "messages": [{"role": "user", "content": "  "}]}, headers=AUTH), 400, None),
        (lambda: httpx.post(url, json={**good, "messages": []}, headers=AUTH), 400, None),
        (lambda: httpx.post(f"{server.url}/v1/completions", json={"model": "code", "prompt": ""}, headers=AUTH), 400, None),
        (lambda: httpx.post(url, json={**good, "model": "nope"}, headers=AUTH), 404, "model_not_found"),
        (lambda: httpx.post(url, json={**good, "model": "code+rag:nope"}, headers=AUTH), 404, "index_not_found"),
        (lambda: httpx.post(url, json={**good, "max_tokens": 10_000}, headers=AUTH), 400, None),
        (lambda: httpx.post(url, json={**good, "temperature": -1}, headers=AUTH), 400, None),
        (lambda: httpx.post(url, json=good, headers={"Authorization": "Bearer wrong"}), 401, "invalid_api_key"),
        (lambda: httpx.post(url, json=good), 401, "invalid_api_key"),
        (lambda: httpx.get(f"{server.url}/metrics"), 401, "invalid_api_key"),
        (lambda: httpx.post(url, json={**good, "messages": [{"role": "user", "content": "x" * 30_000}]}, headers=AUTH),
         413, "request_too_large"),
        # no Content-Length (chunked): counted while it arrives
        (lambda: httpx.post(url, content=(b"x" * 5000 for _ in range(10)), headers=AUTH), 413, "request_too_large"),
        (lambda: httpx.post(f"{server.url}/v1/feedback", json={"model": "code", "prompt": "p", "output": "o", "rating": 9},
                            headers=AUTH), 400, None),
        (lambda: httpx.get(f"{server.url}/v1/nothing", headers=AUTH), 404, None),
    ]
    for send, status, code in cases:
        _assert_error(send(), status, code)
        r = httpx.post(url, json=good, headers=AUTH, timeout=60)  # still serving, right after each
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None

    c = client(server)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # no key needed


def test_concurrent_requests_mixing_adapters_equal_single_requests(server):
    """Greedy answers under 8 concurrent clients (batched per adapter) equal the one-at-a-time answers."""
    reference = {(a, p): chat(server, a, p)["choices"][0]["message"]["content"] for a in ADAPTERS for p in PROMPTS}
    work = [(a, p) for a in ADAPTERS for p in PROMPTS] * 4
    random.Random(0).shuffle(work)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda ap: (ap, chat(server, *ap)), work))
    mismatches = [(ap, r["choices"][0]["message"]["content"], reference[ap]) for ap, r in results
                  if r["choices"][0]["message"]["content"] != reference[ap]]
    assert not mismatches, mismatches[:3]
    assert max(r["dorag"]["batch_size"] for _, r in results) > 1  # some requests really were decoded together

    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    assert 'dorag_requests_total{method="POST",route="/v1/chat/completions",model="docstring",status="200"}' in metrics
    assert 'dorag_request_duration_seconds_bucket{route="/v1/chat/completions",model="code",le="+Inf"}' in metrics
    assert 'status="401"' in metrics and "dorag_batch_size_bucket" in metrics and "dorag_queue_depth" in metrics


def test_web_page_is_self_contained(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text  # no CDN: works offline
    assert all(f'id="{i}"' in r.text for i in ("model", "rag", "prompt", "generate", "output", "snippets", "feedback"))


def test_non_loopback_host_without_key_is_refused(capsys):
    from dorag.cli.main import main

    assert main(["serve", "--host", "0.0.0.0", "--model", "unused"]) == 1
    assert "refusing to serve 0.0.0.0 without an API key" in capsys.readouterr().err


def test_a_port_in_use_is_one_line_before_the_model_loads(capsys, tmp_path):
    import socket

    from dorag.cli.main import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # a model path that does not exist: had serve loaded the model first, this would be the error
        assert main(["serve", "--port", str(port), "--model", str(tmp_path / "no-model")]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: port {port} on 127.0.0.1 is already in use; stop what uses it, or pass --port N "
                   "(--port 0 picks a free one)\n")


def test_openai_backend_proxies_generation_and_keeps_rag_local(server, serve_assets, tmp_path):
    # adapters of the proxy are model names on the upstream server; the index and the feedback store are local
    proxy = ServerProcess(tmp_path / "proxy.sqlite", "--backend", "openai", "--base-url", f"{server.url}/v1",
                          "--served-name", "base", "--model", "upstream", "--adapter", "code", "--adapter", "docstring",
                          "--index", f"stdlib={serve_assets['index']}", env={"OPENAI_API_KEY": API_KEY}).wait_ready()
    try:
        for adapter in ADAPTERS:
            direct = chat(server, adapter, PROMPTS[1])["choices"][0]["message"]["content"]
            r = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=120, json={
                "model": adapter, "messages": [{"role": "user", "content": PROMPTS[1]}], "max_tokens": 12,
                "temperature": 0})
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == direct
        # a streamed request is streamed from upstream: several pieces that add up to the direct answer
        direct = chat(server, "code", PROMPTS[0])["choices"][0]["message"]["content"]
        pieces = list(openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=120)
                      .chat.completions.create(model="code", messages=[{"role": "user", "content": PROMPTS[0]}],
                                               max_tokens=12, temperature=0, stream=True))
        texts = [ch.choices[0].delta.content for ch in pieces if ch.choices and ch.choices[0].delta.content]
        assert "".join(texts) == direct and len(texts) > 2
        r = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=120, json={
            "model": "code+rag:stdlib", "messages": [{"role": "user", "content": "reverse a string"}], "max_tokens": 8})
        assert r.status_code == 200 and r.json()["retrieved"][0]["id"] == "strings:reverse"
        models = httpx.get(f"{proxy.url}/v1/models").json()["data"]
        assert [m["id"] for m in models] == ADAPTERS and "openai-compatible server" in models[0]["dorag"]["backend"]
        fb = httpx.post(f"{proxy.url}/v1/feedback", json={"model": "code", "prompt": "p", "output": "o", "rating": 5})
        assert fb.status_code == 200 and fb.json()["stored"] is True
    finally:
        proxy.stop()


def test_kill9_during_feedback_writes_loses_no_acknowledged_write(serve_assets, tmp_path):
    db = tmp_path / "fb.sqlite"
    srv = serve_local(serve_assets, db, api_key=None).wait_ready()
    acked: list[tuple[int, str]] = []
    lock, stop = threading.Lock(), threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(timeout=10) as h:
            i = 0
            while not stop.is_set():
                prompt = f"writer {w} item {i}"
                try:
                    r = h.post(f"{srv.url}/v1/feedback", json={"model": "code+rag:stdlib", "prompt": prompt,
                                                               "output": "answer", "rating": 1 + i % 5})
                except httpx.HTTPError:
                    return  # the server died mid-request: this write was never acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.append((r.json()["id"], prompt))
                i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    while len(acked) < 150:
        threading.Event().wait(0.01)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join()

    restarted = serve_local(serve_assets, db, api_key=None).wait_ready()
    try:
        r = httpx.post(f"{restarted.url}/v1/feedback", json={"model": "base", "prompt": "after", "output": "o", "rating": 4})
        assert r.status_code == 200
    finally:
        restarted.stop()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    stored = dict(conn.execute("SELECT id, prompt FROM feedback"))
    missing = [(i, p) for i, p in acked if stored.get(i) != p]
    assert not missing and len(acked) >= 150 and stored[r.json()["id"]] == "after"


def test_feedback_exports_pairs_that_dorag_train_trains_on(server, tmp_path, capsys):
    from dorag.cli.main import main

    sent = []
    for rating, correction in ((5, None), (2, "def gcd(a, b):\n    return a if not b else gcd(b, a % b)\n"), (1, None)):
        answer = chat(server, "code", PROMPTS[0])
        output = answer["choices"][0]["message"]["content"]
        assert output
        body = {"model": "code", "prompt": PROMPTS[0], "output": output,
                "rating": rating, "correction": correction, "response_id": answer["id"], "comment": "e2e"}
        r = httpx.post(f"{server.url}/v1/feedback", json=body, headers=AUTH)
        assert r.status_code == 200 and r.json()["verified"] is True, r.text
        sent.append(r.json()["id"])
    # a rating is checked against the answer it names: an id the server never gave, an edited output, or the
    # answer of another adapter are refused; a rating without an id is kept, unverified
    bad = [({"response_id": "chatcmpl-made-up"}, 404, "not an answer this server gave"),
           ({"output": body["output"] + " edited"}, 400, "put an edited answer in correction"),
           ({"model": "docstring"}, 400, "answered with adapter 'code'")]
    for change, status, message in bad:
        r = httpx.post(f"{server.url}/v1/feedback", json={**body, "rating": 5, **change}, headers=AUTH)
        assert r.status_code == status and message in r.json()["error"]["message"], r.text
    r = httpx.post(f"{server.url}/v1/feedback", headers=AUTH, json={"model": "code", "prompt": PROMPTS[1],
                                                                     "output": "typed by hand", "rating": 5})
    assert r.status_code == 200 and r.json()["verified"] is False
    unverified = r.json()["id"]
    pairs = tmp_path / "pairs.jsonl"
    assert main(["feedback", "export", "--db", str(server.db), "--out", str(pairs), "--adapter", "code"]) == 0
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    ids = {r["meta"]["feedback_id"] for r in rows}
    assert sent[0] in ids and sent[1] in ids and sent[2] not in ids and unverified in ids
    checked = tmp_path / "checked.jsonl"
    assert main(["feedback", "export", "--db", str(server.db), "--out", str(checked), "--adapter", "code",
                 "--verified-only"]) == 0
    checked_ids = {json.loads(line)["meta"]["feedback_id"] for line in checked.read_text().splitlines()}
    assert sent[0] in checked_ids and sent[1] in checked_ids and unverified not in checked_ids
    code = main(["train", "--data", str(pairs), "--model", str(server_model(server)), "--max-steps", "1",
                 "--batch-size", "1", "--r", "2", "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()


def server_model(server: ServerProcess) -> str:
    return httpx.get(f"{server.url}/health").json()["model"]
