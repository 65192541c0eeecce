"""Exceptions dorag raises on bad input. The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class DoragError(Exception):
    """Base class: a problem the user can fix. The message names the problem and the fix."""


class ConfigError(DoragError):
    """An unknown key, a wrong type or an invalid value in a config, YAML file or override."""


class DataError(DoragError):
    """A missing, malformed or inconsistent input file (problems, samples, corpus)."""


class ModelError(DoragError):
    """A model that does not exist, cannot be provisioned, or fails to load."""


class MissingDependencyError(DoragError, ImportError):
    """An optional dependency is not installed; the message names the pip extra to install."""
