"""Shared fixtures: a tiny random causal LM with a real BPE tokenizer and chat template, built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DORAG_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # as the CLI sets it: no weight-loading bars

# DORAG_NO_SKIPS=1 (scripts/test, so CI): a skipped test fails the run, so that a missing browser, data package
# or extra cannot hide a test. Exempt: a test that needs root, when this user is not root.
_SKIPS: list[str] = []
_ROOT_ONLY = ("needs root", "already unprivileged")


def pytest_runtest_logreport(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if not (os.geteuid() != 0 and reason.startswith(_ROOT_ONLY)):
            _SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("DORAG_NO_SKIPS") == "1" and _SKIPS:
        print(f"\nDORAG_NO_SKIPS=1: {len(_SKIPS)} test(s) skipped; install what they need (scripts/test does):")
        for line in _SKIPS:
            print(f"  {line}")
        session.exitstatus = 1


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TRAIN_TEXT = [
    "def add(a, b):\n    return a + b\n",
    "def has_close_elements(numbers, threshold):\n    for i in range(len(numbers)):\n        pass\n",
    "```python\nimport math\nprint(math.sqrt(2))\n```\n",
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:",
    "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:",
] * 20


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer Qwen2 with random weights and a 400-token byte-level BPE tokenizer to `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(TRAIN_TEXT, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # larger logits make greedy choices decisive, not near-ties
        model.lm_head.weight.mul_(20.0)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_generator(tiny_model_dir: Path):
    from dorag.models.hf import TransformersGenerator
    from dorag.models.loading import ModelConfig, load_transformers

    model, tok = load_transformers(ModelConfig(name=str(tiny_model_dir)))
    return TransformersGenerator(model, tok, name="tiny")


@pytest.fixture()
def problems_file(tmp_path: Path) -> Path:
    """Three HumanEval-format problems (the first three of HumanEval itself)."""
    from dorag.core.io import write_jsonl
    from dorag.evaluation.benchmarks import load_problems

    path = tmp_path / "problems.jsonl"
    write_jsonl(path, load_problems("humaneval", limit=3))
    return path


def build_tiny_embedder(path: Path, dim: int = 32, seed: int = 0) -> Path:
    """A 1-layer random BERT sentence-transformer (mean pooling) with MiniLM's WordPiece vocabulary."""
    import logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from dorag.retrieval.embedders import resolve_embedder

    torch.manual_seed(seed)
    raw = path.parent / f"{path.name}-hf"
    tok = AutoTokenizer.from_pretrained(resolve_embedder("all-minilm-l6-v2"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=dim, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=2 * dim, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(raw)
    tok.save_pretrained(raw)
    word = models.Transformer(str(raw), max_seq_length=128)
    SentenceTransformer(modules=[word, models.Pooling(dim, "mean")], device="cpu").save(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_embedder(tmp_path_factory.mktemp("embedder") / "tiny-st")


@pytest.fixture(scope="session")
def tiny_embedder(tiny_embedder_dir: Path):
    from dorag.retrieval.embedders import Embedder

    return Embedder(str(tiny_embedder_dir))


CODE_DOCS = [
    ("math:gcd", "def gcd(a, b):\n    \"\"\"Greatest common divisor of a and b.\"\"\"\n    while b:\n        a, b = b, a % b\n    return a\n"),
    ("strings:reverse", "def reverse(s):\n    \"\"\"Reverse a string.\"\"\"\n    return s[::-1]\n"),
    ("io:read_json", "import json\n\ndef read_json(path):\n    \"\"\"Load a JSON file.\"\"\"\n    with open(path) as fh:\n        return json.load(fh)\n"),
    ("net:parse_url", "from urllib.parse import urlsplit\n\ndef parse_url(url):\n    \"\"\"Split a URL into scheme, host and path.\"\"\"\n    return urlsplit(url)\n"),
    ("lists:flatten", "def flatten(xs):\n    \"\"\"Flatten a list of lists.\"\"\"\n    return [y for x in xs for y in x]\n"),
    ("lists:chunks", "def chunks(xs, n):\n    \"\"\"Split a list into chunks of size n.\"\"\"\n    return [xs[i:i + n] for i in range(0, len(xs), n)]\n"),
]


@pytest.fixture()
def code_corpus(tmp_path: Path) -> Path:
    """A small corpus JSONL of code documents; each id names what the function does."""
    from dorag.core.io import write_jsonl

    path = tmp_path / "corpus.jsonl"
    extra = [(f"filler:f{i}", f"def filler_{i}(x):\n    \"\"\"Filler function number {i}.\"\"\"\n    return x * {i} + {i % 7}\n")
             for i in range(60)]
    write_jsonl(path, [{"id": i, "text": t, "meta": {}} for i, t in CODE_DOCS + extra])
    return path


@pytest.fixture()
def json_server():
    """`start(answer) -> base URL` of a loopback stand-in for an OpenAI-compatible server: every POST gets
    `answer(request body)` back as JSON. Stopped when the test ends."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    servers = []

    def start(answer) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                data = json.dumps(answer(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
