"""Errors a user can act on.

The CLI prints a :class:`UserError` as one line and exits non-zero, without a traceback:
these are problems with the user's files or arguments, not bugs in domainvit.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (config, checkpoint, data file, argument)."""


class ConfigError(UserError):
    """A config file or override that does not validate."""


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupted, or belongs to another task or model."""


class NonFiniteLossError(UserError):
    """Training produced a NaN/inf loss; the run stops before saving anything from it."""
