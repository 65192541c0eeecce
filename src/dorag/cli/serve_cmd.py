"""`dorag serve` and `dorag feedback export`."""

from __future__ import annotations

import json
import os
from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo, env_defaults

feedback_app = typer.Typer(help="Turn ratings collected by `dorag serve` into training data.", no_args_is_help=True)


def _named(items: Optional[List[str]], flag: str) -> dict[str, str] | None:
    """``["code=runs/a", "doc=runs/b"]`` -> ``{"code": "runs/a", "doc": "runs/b"}``; a bare NAME maps to ""."""
    if not items:
        return None
    from dorag.core.errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        name, _, path = item.partition("=")
        if not name.strip():
            raise ConfigError(f"{flag} {item!r}: expected NAME=PATH")
        out[name.strip()] = path.strip()
    return out


def serve(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. max_batch=4 model.dtype=bfloat16"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config (ServeConfig)"),
    model: Optional[str] = typer.Option(None, help="base model: registered name, local path or hub id"),
    adapter: Optional[List[str]] = typer.Option(None, "--adapter", help="NAME=PEFT_DIR, repeatable; with --backend "
                                                "openai a bare NAME is the LoRA module name on the upstream server"),
    index: Optional[List[str]] = typer.Option(None, "--index", help="NAME=INDEX_DIR (dorag index build), repeatable"),
    host: Optional[str] = typer.Option(None, help="bind address (default 127.0.0.1)"),
    port: Optional[int] = typer.Option(None, help="TCP port (default 8000)"),
    api_key: Optional[str] = typer.Option(None, help="bearer key for /v1/* and /metrics (default: $DORAG_API_KEY)"),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="bind a non-loopback host without an API key"),
    feedback_db: Optional[str] = typer.Option(None, help="SQLite feedback store (default feedback.sqlite)"),
    max_tokens: Optional[int] = typer.Option(None, help="most tokens a request may generate (default 1024)"),
    max_batch: Optional[int] = typer.Option(None, help="queued requests for one adapter decoded together (default 8)"),
    max_body_bytes: Optional[int] = typer.Option(None, help="larger bodies get 413 (default 1000000)"),
    backend: Optional[str] = typer.Option(None, help="transformers (default) or openai: proxy generation to --base-url"),
    base_url: Optional[str] = typer.Option(None, help="openai backend: upstream server, e.g. http://localhost:8001/v1"),
    served_name: Optional[str] = typer.Option(None, help="openai backend: the base model's name upstream"),
    dtype: Optional[str] = typer.Option(None, help="auto, float32, bfloat16, float16"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda, ..."),
    log_level: str = typer.Option("info", help="uvicorn log level"),
    print_config: bool = typer.Option(False, "--print-config", help="print the resolved config and exit"),
) -> None:
    """OpenAI-compatible API and web UI: one base model, adapters switched per request, RAG, feedback."""
    from dorag.core.config import dump_yaml
    from dorag.core.require import require
    from dorag.serving.config import ServeConfig

    flags = {
        **env_defaults(),
        "model.name": model, "model.adapters": _named(adapter, "--adapter"), "indexes": _named(index, "--index"),
        "host": host, "port": port, "api_key": api_key or os.environ.get("DORAG_API_KEY") or None,
        "allow_remote": allow_remote or None, "feedback_db": feedback_db, "max_tokens": max_tokens,
        "max_batch": max_batch, "max_body_bytes": max_body_bytes, "model.backend": backend,
        "model.base_url": base_url, "model.served_name": served_name, "model.dtype": dtype, "model.device": device,
    }
    cfg = build_config(ServeConfig, config, flags, overrides or [])
    if print_config:
        print(dump_yaml({**cfg.__dict__, "api_key": "***" if cfg.api_key else None}), end="")
        return
    uvicorn = require("uvicorn", extra="serve")
    from dorag.serving.app import create_app

    sock = _bind(cfg.host, cfg.port)  # before the model loads: a port in use is an error in a second, not a minute
    app = create_app(cfg, progress=echo)
    adapters = ", ".join(cfg.model.adapters) or "none"
    port = sock.getsockname()[1]  # the real one when --port 0 asked for a free port
    echo(f"serving {cfg.model.name} (adapters: {adapters}; indexes: {', '.join(cfg.indexes) or 'none'}) on "
         f"http://{cfg.host}:{port}  (web UI at /, API at /v1, feedback in {cfg.feedback_db})")
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=10))
    server.run(sockets=[sock])


def _bind(host: str, port: int):
    """A listening socket on host:port, or one line saying why not."""
    import errno
    import socket

    from dorag.core.errors import ConfigError

    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"host {host!r} does not resolve ({exc.strerror}); pass --host 127.0.0.1 or an address "
                          "of this machine") from exc
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use; stop what uses it, or pass --port N "
                              "(--port 0 picks a free one)") from exc
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --host or --port") from exc
    sock.set_inheritable(True)
    return sock


@feedback_app.command("export")
def export(
    db: str = typer.Option(..., "--db", help="the feedback SQLite file (dorag serve --feedback-db)"),
    out: str = typer.Option(..., "--out", "-o", help="training JSONL to write (the format dorag train --data reads)"),
    min_rating: int = typer.Option(4, help="uncorrected answers rated at least this become training pairs"),
    adapter: Optional[str] = typer.Option(None, help="only feedback on this adapter (base for the bare model)"),
    verified_only: bool = typer.Option(False, "--verified-only",
                                       help="only ratings whose response_id and output match an answer the server "
                                            "recorded (not pasted or edited outputs)"),
) -> None:
    """Well-rated answers and every corrected answer become SFT pairs; the loop back to `dorag train`."""
    from dorag.serving.feedback import export_feedback

    result = export_feedback(db, out, min_rating=min_rating, adapter=adapter, verified_only=verified_only)
    echo(json.dumps(result.__dict__))
    print(out)
