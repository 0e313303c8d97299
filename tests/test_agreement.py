"""Every available backend agrees with the float64 oracle on every shared case and dtype.

Tolerance (FlashAttention's rule): a backend's largest error against the oracle may be at most
twice that of the same math done naively in the input dtype (products rounded to the dtype,
softmax in float32), plus a floor of a few units in the last place of the output dtype, so that
cases where the naive math happens to be nearly exact still leave room for a different (equally
valid) order of summation.
"""

from __future__ import annotations

import math
import os
import zlib

import pytest
import torch

import tqfa
from cases import CASES, Case, make_inputs
from oracle import reference

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}
# A few ulps of a value of magnitude ~1 in each dtype.
FLOOR = {torch.float64: 1e-12, torch.float32: 4e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
# The Triton interpreter runs every program in numpy: keep its share of CI to small cases.
INTERPRETER_MAX_WORK = 600_000

# tox's cuda/rocm environments run the same matrix on the GPU.
DEVICE = os.environ.get("TQFA_TEST_DEVICE", "cpu")


def _errors(out, lse, ref_out, ref_lse):
    out_err = (out.double().cpu() - ref_out).abs().max().item() if out.numel() else 0.0
    finite = torch.isfinite(ref_lse)
    lse_err = (lse.double().cpu()[finite] - ref_lse[finite]).abs().max().item() if finite.any() else 0.0
    return out_err, lse_err


@pytest.mark.parametrize("dtype_name", ["fp32", "fp16", "bf16", "fp64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("backend", tqfa.dispatch.BACKEND_NAMES)
def test_agreement(backend: str, case: Case, dtype_name: str):
    dtype = DTYPES[dtype_name]
    q, k, v, mask = make_inputs(case, dtype, seed=zlib.crc32(case.id.encode()), device=DEVICE)
    kwargs = dict(
        attn_mask=mask,
        is_causal=case.causal is not None,
        causal_alignment=case.causal or "top_left",
        return_lse=True,
    )
    reason = tqfa.available_backends(q, k, v, **kwargs)[backend]
    if reason is not None:
        pytest.skip(reason)
    if backend == "triton" and DEVICE == "cpu" and case.work > INTERPRETER_MAX_WORK:
        pytest.skip(f"{case.work} score elements are too slow for the Triton interpreter")
    out, lse = tqfa.attention(q, k, v, backend=backend, **kwargs)

    cpu = [t.cpu() if t is not None else None for t in (q, k, v, mask)]
    ref_out, ref_lse = reference(*cpu, causal=case.causal)
    naive_out, naive_lse = reference(*cpu, causal=case.causal, matmul_dtype=dtype)
    naive_out_err, naive_lse_err = _errors(naive_out, naive_lse, ref_out, ref_lse)
    assert math.isfinite(naive_out_err) and math.isfinite(naive_lse_err), "the naive baseline broke"

    assert out.shape == (case.batch, case.q_heads, case.q_len, case.dv) and out.dtype == dtype
    lse_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    assert lse.shape == (case.batch, case.q_heads, case.q_len) and lse.dtype == lse_dtype
    assert not out.isnan().any() and not lse.isnan().any()
    assert torch.equal(torch.isneginf(lse.cpu()), torch.isneginf(ref_lse)), "rows with no visible key"
    out_err, lse_err = _errors(out, lse, ref_out, ref_lse)
    floor = FLOOR[dtype]
    assert out_err <= 2 * naive_out_err + floor, f"out error {out_err:.3g}, naive {naive_out_err:.3g}"
    # LSE is float32 (float64 for float64 inputs): its floor is its dtype's, scaled by its size.
    finite = ref_lse[torch.isfinite(ref_lse)]
    magnitude = finite.abs().max().item() if finite.numel() else 0.0
    lse_floor = (floor if dtype == torch.float64 else max(floor, 4e-6)) * (1 + magnitude)
    assert lse_err <= 2 * naive_lse_err + lse_floor, f"lse error {lse_err:.3g}, naive {naive_lse_err:.3g}"
