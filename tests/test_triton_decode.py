"""The decode (split-KV) kernels, beyond the shared matrix: explicit split counts into poisoned
outputs, splits that see no key of some rows, HF minima across unequal splits, the split plan and
the routing of short queries.

Runs under TRITON_INTERPRET=1 on the CPU (fp16 / fp32, small shapes) or on a GPU with
TQFA_TEST_DEVICE=cuda.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

import tqfa
from oracle import reference
from tqfa.problem import build_problem

pytest.importorskip("triton")
from tqfa.triton import decode_config, decode_launch  # noqa: E402  (needs triton)
from tqfa.triton.decode_config import select_decode_config  # noqa: E402
from tqfa.triton.tuning import INTERPRETER, default_config, sm90, target_for_arch  # noqa: E402
from tqfa.triton.tuning.config import DecodeConfig  # noqa: E402

DEVICE = os.environ.get("TQFA_TEST_DEVICE", "cpu")
RUNS_HERE = decode_launch.INTERPRETED or DEVICE == "cuda"
needs_kernel = pytest.mark.skipif(not RUNS_HERE, reason="needs TRITON_INTERPRET=1 or a GPU")
FLOOR = {torch.float16: 2e-3, torch.float32: 4e-6}
# 16-key tiles and 16-row blocks: a few dozen keys already make several splits and row blocks.
SMALL = DecodeConfig(block_m=16, block_n=16, num_warps=4, num_stages=1, programs_per_sm=4,
                     min_split_tiles=1, max_q_len=16)


def _inputs(b, hq, hkv, sq, skv, d, dtype, seed, layout="bhsd"):
    gen = torch.Generator().manual_seed(seed)

    def make(h, s):
        t = torch.randn(b, h, s, d, generator=gen).to(dtype)
        return t.transpose(1, 2).contiguous().transpose(1, 2) if layout == "bshd" else t

    return make(hq, sq).to(DEVICE), make(hkv, skv).to(DEVICE), make(hkv, skv).to(DEVICE)


def _run_and_check(q, k, v, mask=None, causal=None, scale=None, num_splits=None, config=SMALL):
    """Launch into NaN-filled outputs with a given split count; compare with the float64 oracle
    (at most twice the naive error in the input dtype, plus a floor)."""
    problem = build_problem(q, k, v, mask, causal is not None, scale,
                            causal_alignment=causal or "top_left")
    out = torch.full_like(q, math.nan)
    lse = torch.full(q.shape[:3], math.nan, device=q.device)
    plan = decode_launch.decode_forward(problem, out, lse, config, 1, num_splits)
    cpu = [t.cpu() if t is not None else None for t in (q, k, v, mask)]
    ref_out, ref_lse = reference(*cpu, causal=causal, scale=scale)
    naive_out, _ = reference(*cpu, causal=causal, scale=scale, matmul_dtype=q.dtype)
    out64, lse64 = out.double().cpu(), lse.double().cpu()
    assert not out64.isnan().any() and not lse64.isnan().any(), "an output element was not written"
    assert torch.equal(torch.isneginf(lse64), torch.isneginf(ref_lse)), "rows with no visible key"
    budget = 2 * (naive_out - ref_out).abs().max().item() + FLOOR[q.dtype]
    assert (out64 - ref_out).abs().max().item() <= budget
    finite = torch.isfinite(ref_lse)
    assert torch.allclose(lse64[finite], ref_lse[finite], rtol=1e-5, atol=1e-5)
    return plan, out


def _key_padding(b, skv, keep_first, dtype=torch.bool):
    """[B, 1, 1, Skv]: batch element i keeps its first keep_first[i] keys."""
    keep = torch.arange(skv)[None, :] < torch.tensor(keep_first)[:, None]
    keep = keep.view(b, 1, 1, skv)
    if dtype == torch.bool:
        return keep.to(DEVICE)
    return torch.zeros(b, 1, 1, skv, dtype=dtype).masked_fill(~keep, torch.finfo(dtype).min).to(DEVICE)


@needs_kernel
@pytest.mark.parametrize("num_splits", [1, 3, 7])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
def test_group7_odd_head_dim(num_splits, dtype):
    q, k, v = _inputs(2, 7, 1, 1, 100, 40, dtype, seed=1)
    plan, _ = _run_and_check(q, k, v, num_splits=num_splits)
    assert plan.num_splits == num_splits


@needs_kernel
@pytest.mark.parametrize("q_len", [1, 2, 5, 16])
def test_query_lengths_bottom_right_key_padding_bool(q_len):
    # Batch element 1 keeps 20 of 70 keys: its later splits see no key at all (m = -inf, l = 0)
    # and must drop out of the merge; element 2 keeps a single key.
    q, k, v = _inputs(3, 8, 2, q_len, 70, 64, torch.float16, seed=2 + q_len)
    mask = _key_padding(3, 70, [70, 20, 1])
    plan, _ = _run_and_check(q, k, v, mask, causal="bottom_right", num_splits=5)
    assert plan.num_splits == 5 and plan.num_m == (8 // 2 * q_len + 15) // 16


@needs_kernel
def test_group7_causal_row_blocks_with_empty_splits():
    # 7 * 16 = 112 packed rows in 7 row blocks of 16; bottom_right with Skv 40: block 0 holds
    # queries 0..2, which see keys up to 26, so its third split (keys 32..39) streams nothing and
    # writes m = -inf, l = 0. Odd head dim 24.
    q, k, v = _inputs(1, 14, 2, 16, 40, 24, torch.float32, seed=3)
    plan, _ = _run_and_check(q, k, v, causal="bottom_right", num_splits=3)
    assert plan.num_m == 7 and plan.num_splits == 3


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
def test_hf_finite_minimum_key_padding_unequal_splits(dtype):
    # Element 1 is entirely padded with finfo.min: SDPA gives the uniform mean of V over all 50
    # keys. The splits hold 32 and 18 keys, so a per-split LSE (finfo.min + log(n) == finfo.min)
    # would weigh the two split averages equally; (m, l) per split keeps the counts.
    q, k, v = _inputs(2, 4, 2, 1, 50, 32, dtype, seed=4)
    mask = _key_padding(2, 50, [37, 0], dtype)
    plan, out = _run_and_check(q, k, v, mask, num_splits=2)
    assert plan.split_len == 32
    if dtype != torch.float32:
        return  # -65504 does not absorb the scores: not uniform, and the oracle check suffices
    mean_v = v[1].double().mean(1).cpu()  # [Hkv, D]
    for h in range(4):
        torch.testing.assert_close(out[1, h, 0].double().cpu(), mean_v[h // 2], atol=2e-3, rtol=0)


@needs_kernel
def test_hf_bool_mask_rows_without_keys():
    # HF's [B, 1, Sq, Skv] bool mask: every third query row sees nothing (0 and LSE -inf).
    q, k, v = _inputs(2, 6, 2, 4, 60, 48, torch.float16, seed=5)
    gen = torch.Generator().manual_seed(5)
    keep = torch.rand(2, 1, 4, 60, generator=gen) > 0.5
    keep[:, :, ::3] = False
    _run_and_check(q, k, v, keep.to(DEVICE), causal="bottom_right", num_splits=3)


@needs_kernel
def test_top_left_causal_and_rows_before_the_first_key():
    # top_left with Sq 16 < Skv: only keys 0..15 are visible, one tile, one split whatever is
    # asked; bottom_right with Sq 16 > Skv 5: rows 0..10 see no key.
    q, k, v = _inputs(1, 4, 2, 16, 60, 32, torch.float32, seed=6)
    plan, _ = _run_and_check(q, k, v, causal="top_left", num_splits=4)
    assert plan.num_splits == 1
    q, k, v = _inputs(1, 4, 2, 16, 5, 32, torch.float32, seed=7)
    _run_and_check(q, k, v, causal="bottom_right")


@needs_kernel
@pytest.mark.parametrize("scale", [-0.3, 0.5])
def test_bshd_layout_additive_mask_and_scale(scale):
    q, k, v = _inputs(2, 4, 1, 3, 45, 80, torch.float32, seed=8, layout="bshd")
    gen = torch.Generator().manual_seed(8)
    mask = torch.randn(1, 4, 3, 45, generator=gen).masked_fill(
        torch.rand(1, 4, 3, 45, generator=gen) < 0.2, float("-inf")).to(DEVICE)
    _, out = _run_and_check(q, k, v, mask, scale=scale, num_splits=2)
    assert out.stride() == q.stride()


@needs_kernel
def test_public_call_routes_short_queries(monkeypatch):
    calls = []
    forward = decode_launch.decode_forward

    def spy(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(decode_launch, "decode_forward", spy)
    dtype = torch.float32
    for q_len, decoded in [(1, True), (16, True), (17, False)]:
        q, k, v = _inputs(1, 4, 2, q_len, 40, 16, dtype, seed=q_len)
        out, lse = tqfa.attention(q, k, v, is_causal=True, causal_alignment="bottom_right",
                                  backend="triton", return_lse=True)
        assert len(calls) == decoded
        calls.clear()
        ref_out, _ = reference(q.cpu(), k.cpu(), v.cpu(), causal="bottom_right")
        assert (out.double().cpu() - ref_out).abs().max().item() < 1e-5


def _problem(b, hq, hkv, sq, skv, causal=None):
    q = torch.empty(b, hq, sq, 128, device="meta", dtype=torch.bfloat16)
    k = torch.empty(b, hkv, skv, 128, device="meta", dtype=torch.bfloat16)
    return build_problem(q, k, k, is_causal=causal is not None, causal_alignment=causal or "top_left")


@pytest.mark.parametrize("shape", [(1, 32, 8, 1, 131072), (8, 32, 8, 1, 8192), (1, 32, 8, 1, 4096),
                                   (32, 32, 8, 1, 2048), (8, 32, 8, 4, 8192), (1, 7, 1, 16, 100),
                                   (1, 32, 8, 1, 1)], ids=str)
def test_split_plan_fills_the_gpu_and_covers_the_keys(shape):
    config = sm90.DECODE.defaults[(128, 2)]
    problem = _problem(*shape, causal="bottom_right")
    plan = decode_launch.plan_splits(problem, config, 132)
    visible = decode_launch.visible_kv_len(problem.causal, problem.q_len, problem.kv_len)
    assert plan.split_len % config.block_n == 0
    assert (plan.num_splits - 1) * plan.split_len < visible <= plan.num_splits * plan.split_len
    if plan.num_splits > 1:
        # Splits never shorter than min_split_tiles, never more programs than programs_per_sm
        # per SM (a partial extra wave would leave most SMs idle while it runs).
        assert plan.split_len >= config.min_split_tiles * config.block_n
        assert plan.programs(problem) <= config.programs_per_sm * 132
    # Equal split lengths may cost splits, never half of those the rules allow.
    tiles = -(-visible // config.block_n)
    allowed = min(config.programs_per_sm * 132 // (plan.programs(problem) // plan.num_splits),
                  tiles // config.min_split_tiles)
    assert 2 * plan.num_splits > allowed
    rows = problem.group * problem.q_len
    assert plan.num_m * plan.block_m >= rows and plan.block_m <= max(16, config.block_m)


def test_decode_choice_by_query_length():
    config = select_decode_config(_problem(1, 8, 2, 1, 64), INTERPRETER)
    assert select_decode_config(_problem(1, 8, 2, config.max_q_len, 64), INTERPRETER) == config
    assert select_decode_config(_problem(1, 8, 2, config.max_q_len + 1, 64), INTERPRETER) is None


@pytest.mark.parametrize("arch", ["sm80", "sm86", "sm89", "sm90", "sm120", "gfx942", "gfx1100", "gfx1201",
                                  "gfx908"])
def test_the_longest_decode_shortcut_agrees_with_every_table(arch):
    """select_decode_config answers None without a lookup past LONGEST_DECODE queries: no
    family's decode default, fitted to its device, serves that many."""
    target = target_for_arch(arch)
    for sq in (decode_config.LONGEST_DECODE, decode_config.LONGEST_DECODE + 1):
        problem = _problem(1, 8, 2, sq, 64)
        config = default_config(problem, target, kind="decode")
        expected = config if sq <= config.max_q_len else None
        assert select_decode_config(problem, target) == expected
