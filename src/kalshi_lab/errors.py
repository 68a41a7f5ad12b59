"""Errors a user can act on. Stages turn them into one clear message and exit code 2."""


class KalshiLabError(Exception):
    """Base class of every error that is the user's input, not a bug."""


class ParamError(KalshiLabError):
    """An invalid value in params.yaml; the message names the parameter."""


class DataError(KalshiLabError):
    """Input data that cannot be used: empty ranges, malformed API documents, unknown tickers."""
