"""`tqfa.attention` as the torch.library custom op `tqfa::attention`.

Dynamo must not trace into tqfa.attention: the backend probe, TQFA_BACKEND, the Triton launch and
the chunked backend's Python loop are run-time decisions. As a custom op the call is one opaque
node: torch.compile(fullgraph=True) keeps it without a graph break, torch.export records
`tqfa.attention.default` in the graph, and the backend is still chosen inside the op each time it
runs. The fake implementation validates through the same `build_problem` as eager calls, so a
malformed call fails at trace time with the eager message, and it allocates outputs with the
layout the real implementation guarantees (see _new_out).

Eager calls that nothing traces or differentiates skip the op's dispatch (_plain_eager): it
costs 60-100 us of host time per call (an H200's host, benchmarks/gpu_pieces.py --parts hf),
which an attention whose GPU time is a few microseconds pays in full, and it adds nothing there.

Backward is by recomputation: `tqfa::attention_backward` reruns the forward on the differentiable
chunked backend under torch.func.vjp. It is an op of its own so that compiled and exported
backward graphs also hold one opaque node. (torch.autograd.grad cannot be used inside an op's
implementation: ops run below the autograd dispatch keys, so nothing would be recorded; functorch
transforms carry their own autograd.) The forward may run on Triton while the gradients come from
the chunked math: both compute the same function.
"""

from __future__ import annotations

# typing.Optional, not `X | None`: torch.library infers the op schema from these annotations and
# matches typing.Optional (as torch's own code does).
# ruff: noqa: UP045
from typing import Optional

import torch
from torch import Tensor
from torch.nn.attention.bias import CausalBias

from .. import api
from ..problem import build_problem


def _new_out(q: Tensor, v_head_dim: int, bshd_out: bool) -> Tensor:
    """An empty output [B, Hq, Sq, Dv] in the layout the op promises: contiguous, or with
    bshd_out a view of [B, Sq, Hq, Dv] storage. The layout depends on shapes and the flag only,
    never on q's strides: Inductor may hand the op inputs laid out otherwise than at trace time."""
    b, h, s, _ = q.shape
    if bshd_out:
        return q.new_empty((b, s, h, v_head_dim)).transpose(1, 2)
    return q.new_empty((b, h, s, v_head_dim))


def _in_layout(out: Tensor, bshd_out: bool) -> Tensor:
    """`out` itself when the backend already wrote it in the promised layout, else a copy."""
    b, h, s, d = out.shape
    want = (s * h * d, d, h * d, 1) if bshd_out else (h * s * d, s * d, d, 1)
    if out.stride() == want:
        return out
    strides = zip(out.shape, out.stride(), want, strict=True)
    if all(size == 1 or got == wanted for size, got, wanted in strides):
        # The strides of size-1 dims address nothing, but the compiler compares them too.
        return out.as_strided(out.shape, want)
    return _new_out(out, d, bshd_out).copy_(out)


def _run(q, k, v, attn_mask, is_causal, scale, causal_alignment, backend, bshd_out):
    """The op's implementation: (out in the promised layout, contiguous lse)."""
    # The LSE is always returned so that the op has one schema; every backend computes it anyway.
    out, lse = api.attention(
        q, k, v, attn_mask, is_causal, scale,
        causal_alignment=causal_alignment, return_lse=True, backend=backend,
    )
    return _in_layout(out, bshd_out), lse.contiguous()


@torch.library.custom_op("tqfa::attention", mutates_args=())
def _attention_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Optional[Tensor],
    is_causal: bool,
    scale: Optional[float],
    causal_alignment: str,
    backend: Optional[str],
    bshd_out: bool,
) -> tuple[Tensor, Tensor]:
    return _run(q, k, v, attn_mask, is_causal, scale, causal_alignment, backend, bshd_out)


def _plain_eager(tensors: tuple) -> bool:
    """Whether calling the implementation directly is the op's call with nothing watching: no
    compiler or tracer (Dynamo, fake tensors, proxy and other dispatch modes, torch function
    modes, functorch transforms), plain tensors, and no autograd graph to record (the op records
    its recomputing backward)."""
    if torch.compiler.is_compiling():
        return False
    if torch._C._len_torch_dispatch_stack() or torch._C._len_torch_function_stack():
        return False
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return False
    grad = torch.is_grad_enabled()
    return all(t is None or (type(t) is Tensor and not (grad and t.requires_grad)) for t in tensors)


@_attention_op.register_fake
def _attention_fake(q, k, v, attn_mask, is_causal, scale, causal_alignment, backend, bshd_out):
    p = build_problem(q, k, v, attn_mask, is_causal, scale, causal_alignment=causal_alignment)
    lse = q.new_empty((p.batch, p.q_heads, p.q_len), dtype=p.lse_dtype)
    return _new_out(q, p.v_head_dim, bshd_out), lse


@torch.library.custom_op("tqfa::attention_backward", mutates_args=())
def _attention_backward_op(
    grad_out: Tensor,
    grad_lse: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Optional[Tensor],
    is_causal: bool,
    scale: Optional[float],
    causal_alignment: str,
    mask_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, dmask); dmask is an empty tensor unless mask_grad (a float mask needing grad)."""

    def forward(q, k, v, *mask):
        return api.attention(
            q, k, v, mask[0] if mask_grad else attn_mask, is_causal, scale,
            causal_alignment=causal_alignment, return_lse=True, backend="chunked",
        )

    primals = (q, k, v, attn_mask) if mask_grad else (q, k, v)
    _, vjp = torch.func.vjp(forward, *primals)
    grads = [g.contiguous() for g in vjp((grad_out, grad_lse))]
    if not mask_grad:
        grads.append(q.new_empty(0))
    return tuple(grads)


@_attention_backward_op.register_fake
def _attention_backward_fake(grad_out, grad_lse, q, k, v, attn_mask, is_causal, scale,
                             causal_alignment, mask_grad):
    dmask = attn_mask.new_empty(attn_mask.shape) if mask_grad else q.new_empty(0)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), dmask


def _setup_context(ctx, inputs, output):
    q, k, v, attn_mask, is_causal, scale, causal_alignment, _backend, _bshd_out = inputs
    ctx.save_for_backward(q, k, v, attn_mask)
    ctx.options = (is_causal, scale, causal_alignment)


def _backward(ctx, grad_out, grad_lse):
    q, k, v, attn_mask = ctx.saved_tensors
    mask_grad = attn_mask is not None and attn_mask.is_floating_point() and ctx.needs_input_grad[3]
    dq, dk, dv, dmask = _attention_backward_op(
        grad_out, grad_lse, q, k, v, attn_mask, *ctx.options, mask_grad
    )
    return dq, dk, dv, (dmask if mask_grad else None), None, None, None, None, None


_attention_op.register_autograd(_backward, setup_context=_setup_context)


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Optional[Tensor] = None,
    is_causal: bool = False,
    scale: Optional[float] = None,
    *,
    causal_alignment: str = "top_left",
    return_lse: bool = False,
    backend: Optional[str] = None,
    bshd_out: bool = False,
):
    """`tqfa.attention` through the op `tqfa::attention`: same arguments, same results.

    Use it inside modules that are compiled or exported. Differences from tqfa.attention: attn_mask
    must be a tensor or None (pass is_causal / causal_alignment instead of a CausalBias), scale a
    float or None; the forward may run on Triton even when inputs require grad (backward recomputes
    on the chunked backend). The output is contiguous, or with bshd_out=True a [B, Hq, Sq, Dv] view
    of [B, Sq, Hq, Dv] storage (`out.transpose(1, 2)` is then contiguous at no cost; the Triton
    backend writes it without a copy when q is such a view too).
    """
    if attn_mask is not None and not isinstance(attn_mask, Tensor):
        raise TypeError(f"attn_mask must be a torch.Tensor or None, got {type(attn_mask).__name__}")
    if isinstance(attn_mask, CausalBias):
        raise TypeError(
            "tqfa's custom op takes no CausalBias; pass is_causal=True and causal_alignment="
            "'top_left' (causal_upper_left) or 'bottom_right' (causal_lower_right) instead"
        )
    run = _run if _plain_eager((q, k, v, attn_mask)) else _attention_op
    out, lse = run(q, k, v, attn_mask, is_causal, scale, causal_alignment, backend, bshd_out)
    return (out, lse) if return_lse else out
