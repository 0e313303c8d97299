"""What a backend is: a value with a name, a refusal check and a forward function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch

from .problem import Problem


class Unsupported(str):
    """A refusal reason that names a missing feature (not a missing device or package).

    Forcing a backend that answers with one raises NotImplementedError (UnsupportedFeatureError);
    a plain-string reason raises BackendUnavailableError.
    """


Reason = Optional[str]  # noqa: UP045 (a runtime alias: keeps Python 3.9 syntax out)
"""None when the backend can run the problem, else why not (a str or an Unsupported)."""


@dataclass(frozen=True)
class Backend:
    name: str
    supports: Callable[[Problem], Reason]
    # Returns (out [B, Hq, Sq, Dv] in q's dtype, lse float32 [B, Hq, Sq] or None unless
    # problem.return_lse). Receives a validated Problem and never re-validates.
    forward: Callable[[Problem], tuple[torch.Tensor, torch.Tensor | None]]
    # Whether forward is differentiable through autograd; dispatch refuses grad-requiring
    # calls for backends that are not.
    differentiable: bool
