"""Errors that end a run for a reason the user can act on (the ``savi`` command prints them as one line).

Bad input and bad values are ``ValueError`` subclasses next to the code that checks them (``DataError``,
``ConfigError``, ...); :class:`RunError` is for the rest: the output is in use by another process, or a
finished run's result is not usable.
"""

from __future__ import annotations


class RunError(RuntimeError):
    """A run refused or failed for a reason the message explains (one line, naming the file or folder)."""
