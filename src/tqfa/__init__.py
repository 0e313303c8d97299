"""tqfa: FlashAttention-2 forward attention, one Triton kernel tuned per GPU, PyTorch fallback."""

from .api import attention, available_backends, resolve_backend
from .errors import BackendUnavailableError, UnsupportedFeatureError

__version__ = "0.1.0"


def triton_flash_attention(q, k, v, sm_scale=None, is_causal=False, attention_mask=None):
    """Drop-in for turboquant-vllm's `triton_flash_attention` (see tqfa.triton.compat)."""
    from .triton.compat import triton_flash_attention as compat

    return compat(q, k, v, sm_scale=sm_scale, is_causal=is_causal, attention_mask=attention_mask)


__all__ = [
    "attention",
    "available_backends",
    "resolve_backend",
    "triton_flash_attention",
    "BackendUnavailableError",
    "UnsupportedFeatureError",
    "__version__",
]
