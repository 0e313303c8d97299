"""Public error types."""


class BackendUnavailableError(RuntimeError):
    """A backend was requested (argument or TQFA_BACKEND) but cannot run this call."""


class UnsupportedFeatureError(BackendUnavailableError, NotImplementedError):
    """The requested backend lacks a feature this call needs (backward, Dv != D, ...).

    It is both a BackendUnavailableError and a NotImplementedError, so callers may catch either.
    """
