"""Errors the command line turns into one clear line instead of a traceback."""

from __future__ import annotations


class SetupError(RuntimeError):
    """A run could not start: a bad config value, missing data, a model that cannot be built."""
