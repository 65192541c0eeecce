"""A real `dorag serve` process on a loopback port: the tiny model, a LoRA and a DoRA adapter, a BM25 index."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
API_KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_adapter(model_dir: Path, out: Path, *, dora: bool, targets: list[str], seed: int) -> Path:
    """A randomly initialised (non-zero) PEFT adapter, so each adapter changes the model's answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=targets, init_lora_weights=False, use_dora=dora)
    get_peft_model(model, cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def serve_assets(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("peft")
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    pytest.importorskip("bm25s")
    from dorag.retrieval.index import IndexConfig, build_index
    from conftest import CODE_DOCS

    root = tmp_path_factory.mktemp("serve")
    code = make_adapter(tiny_model_dir, root / "code", dora=False, targets=["q_proj", "v_proj"], seed=1)
    doc = make_adapter(tiny_model_dir, root / "docstring", dora=True, targets=["gate_proj", "down_proj"], seed=2)
    index, _ = build_index([{"id": i, "text": t, "meta": {}} for i, t in CODE_DOCS], IndexConfig(method="bm25"))
    index.save(root / "stdlib")
    return {"model": tiny_model_dir, "code": code, "docstring": doc, "index": root / "stdlib", "root": root}


class ServerProcess:
    """`python -m dorag.cli.main serve ARGS` in its own process group; ``wait_ready()`` polls /health."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.log = db.with_suffix(f".{self.port}.log")
        cmd = [sys.executable, "-m", "dorag.cli.main", "serve", "--port", str(self.port), "--feedback-db", str(db),
               "--log-level", "warning", *args]
        env = {**os.environ, "DORAG_API_KEY": "", **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), env=env,
                                     start_new_session=True)

    def wait_ready(self, timeout_s: float = 180.0) -> ServerProcess:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout_s}s: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


def serve_local(assets: dict[str, Path], db: Path, *extra: str, api_key: str | None = API_KEY) -> ServerProcess:
    """The tiny model with adapters `code` (LoRA) and `docstring` (DoRA) and the BM25 index `stdlib`."""
    return ServerProcess(db, "--model", str(assets["model"]), "--adapter", f"code={assets['code']}",
                         "--adapter", f"docstring={assets['docstring']}", "--index", f"stdlib={assets['index']}",
                         "--max-tokens", "64", "--max-body-bytes", "20000", *extra, env={"DORAG_API_KEY": api_key or ""})


@pytest.fixture(scope="session")
def server(serve_assets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    srv = serve_local(serve_assets, tmp_path_factory.mktemp("db") / "feedback.sqlite").wait_ready()
    yield srv
    srv.stop()
