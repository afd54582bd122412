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


class ParameterError(PyrovaeError, ValueError):
    """A model or pricing parameter lies outside its domain (a negative variance, a
    correlation with ``|rho| >= 1``, a non-positive maturity)."""


class CheckpointError(PyrovaeError, ValueError):
    """A checkpoint or run folder is missing, corrupt or incompatible."""


class RegistryError(ConfigError, KeyError):
    """An unknown component name was looked up in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RunLockedError(PyrovaeError, RuntimeError):
    """Another process is training into the same run folder (it holds ``run.lock``)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint of its position
    (:mod:`pyrovae.training.interrupt`).

    A ``KeyboardInterrupt``, not a :class:`PyrovaeError`: nothing is wrong, and code
    that handles Ctrl-C handles it too.

    Attributes
    ----------
    signum : int
        The signal's number (``signal.SIGINT`` or ``signal.SIGTERM``).
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = int(signum)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 128 + its number."""
        return 128 + self.signum

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
