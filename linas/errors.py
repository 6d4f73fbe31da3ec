"""Errors that reach a user as one clear line."""


class LinasError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


class ConfigError(LinasError):
    """An experiment configuration, or a network configuration, is invalid."""
