"""Backend choice: the backend= argument, then TQFA_BACKEND, then the probe.

Every refusal carries its reason: forced backends raise with it, auto logs it once and moves on.
"""

from __future__ import annotations

import functools
import logging
import os

from . import chunked
from .backend import Backend, Reason, Unsupported
from .errors import BackendUnavailableError, UnsupportedFeatureError
from .problem import Problem

ENV_VAR = "TQFA_BACKEND"
AUTO = "auto"
BACKEND_NAMES = ("triton", "chunked")  # also the order auto prefers them in

_log = logging.getLogger("tqfa")
_logged_reasons: set[str] = set()


@functools.cache  # an import statement costs about a microsecond, on every call
def _triton_backend() -> Backend:
    from .triton.backend import BACKEND  # imports triton lazily; safe without it

    return BACKEND


def backends() -> dict[str, Backend]:
    """Every backend by name, in the order auto prefers them."""
    return {"triton": _triton_backend(), "chunked": chunked.BACKEND}


def requested_name(backend: str | None) -> str:
    """The name asked for: the argument wins, then TQFA_BACKEND (read at call time), else auto."""
    source = "backend"
    if backend is None:
        backend, source = os.environ.get(ENV_VAR, ""), ENV_VAR
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str or None, got {type(backend).__name__}")
    name = backend.strip().lower() or AUTO
    if name != AUTO and name not in BACKEND_NAMES:
        valid = ", ".join(repr(n) for n in (AUTO,) + BACKEND_NAMES)
        raise ValueError(f"{source}={backend!r} is not a tqfa backend; valid names: {valid}")
    return name


def refusal(backend: Backend, problem: Problem) -> Reason:
    """Why `backend` cannot run `problem`, prefixed with its name, or None."""
    if problem.requires_grad and not backend.differentiable:
        return Unsupported(
            f"{backend.name}: has no backward pass and an input requires grad "
            "(use backend='chunked' or run under torch.no_grad())"
        )
    reason = backend.supports(problem)
    if reason is None:
        return None
    return type(reason)(f"{backend.name}: {reason}")


def choose(problem: Problem, backend: str | None = None) -> Backend:
    """The backend that runs `problem`; raises when a forced backend refuses."""
    name = requested_name(backend)
    table = backends()
    if name != AUTO:
        reason = refusal(table[name], problem)
        if reason is None:
            return table[name]
        error = UnsupportedFeatureError if isinstance(reason, Unsupported) else BackendUnavailableError
        raise error(reason)
    # On a CPU auto never picks the Triton interpreter: it exists to prove the kernel, not to run it.
    candidates = [table["chunked"]] if problem.device.type == "cpu" else table.values()
    for candidate in candidates:
        reason = refusal(candidate, problem)
        if reason is None:
            return candidate
        if reason not in _logged_reasons:
            _logged_reasons.add(reason)
            _log.info("tqfa: skipping %s", reason)
    raise AssertionError("the chunked backend refuses nothing")


def availability(problem: Problem) -> dict[str, str | None]:
    """{backend name: None if it can run `problem`, else the reason it cannot}."""
    return {name: refusal(b, problem) for name, b in backends().items()}
