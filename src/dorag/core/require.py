"""Import optional heavy dependencies lazily, naming the extra that installs them."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from dorag.core.errors import DataError, MissingDependencyError


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


def package_file(module: str, rel: str, pip: str) -> Path:
    """A data file shipped inside an installed package (found without importing it), or a DataError with
    the `pip` command that installs it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the {module} package is not installed; install it with: {pip}")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed {module} package; reinstall it: {pip}")
    return path
