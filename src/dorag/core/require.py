"""Import optional heavy dependencies lazily, naming the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from dorag.core.errors import MissingDependencyError


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import `module`, or fail with the pip command that installs it.

    Args:
        module: the importable name, e.g. ``"faiss"``.
        extra: the dorag extra that carries it, e.g. ``"rag"``.
        package: the PyPI name when it differs from the module name.

    Example:
        ``faiss = require("faiss", extra="rag")  # pip install 'dorag[rag]'``
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module
        raise MissingDependencyError(
            f"{name} is not installed ({exc}); install it with: pip install 'dorag[{extra}]'"
        ) from exc
