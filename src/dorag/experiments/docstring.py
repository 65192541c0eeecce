"""`dorag docstring PATH`: generate docstrings for functions that lack them, as a diff or in place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dorag.core.io import write_text_atomic
from dorag.data.ast_extract import iter_python_files
from dorag.data.docinsert import clean_docstring, insert_docstrings, missing_docstrings, unified_diff
from dorag.data.prompts import DOC_STYLE_HINT, docstring_prompt
from dorag.models.generator import GenerationParams, Generator

STYLE_HINT = DOC_STYLE_HINT


@dataclass
class FileChange:
    path: Path
    n_added: int
    diff: str


def document_path(path: str | Path, generator: Generator, style: Literal["google", "numpy"] = "google",
                  in_place: bool = False, params: GenerationParams | None = None,
                  progress: Callable[[str], None] = lambda m: None) -> list[FileChange]:
    """Add docstrings to every undocumented public function under `path` (a file or a directory)."""
    params = params or GenerationParams(max_new_tokens=200, batch_size=8)
    changes = []
    for file in iter_python_files(path, exclude=("__pycache__",)):
        source = file.read_text(encoding="utf-8")
        targets = missing_docstrings(source)
        if not targets:
            continue
        progress(f"{file}: {len(targets)} function(s) without a docstring")
        outs = generator.generate([docstring_prompt(t.code, style) for t in targets], params)
        docs = {t.lineno: clean_docstring(o[0].text) for t, o in zip(targets, outs)}
        new = insert_docstrings(source, docs, targets)
        if new == source:
            continue
        if in_place:
            write_text_atomic(file, new)
        changes.append(FileChange(file, sum(1 for d in docs.values() if d), unified_diff(source, new, str(file))))
    return changes
