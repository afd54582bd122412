"""Exceptions raised by pyrovae.

Every error a user can cause derives from :class:`PyrovaeError` and carries a
one-line message that names the problem. The command line prints that line and
exits with status 2; nothing the user wrote is touched.
"""

from __future__ import annotations


class PyrovaeError(Exception):
    """Base class of all user-facing pyrovae errors (one-line message)."""


class ConfigError(PyrovaeError, ValueError):
    """A hyperparameter, option or config file is invalid."""


class DataError(PyrovaeError, ValueError):
    """Input data cannot be used: unreadable, wrong shape, dtype or support."""


class CheckpointError(PyrovaeError, ValueError):
    """A checkpoint or run folder is missing, corrupt or incompatible."""


class RegistryError(ConfigError, KeyError):
    """An unknown component name was looked up in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
